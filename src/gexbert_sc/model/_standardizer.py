"""Per-batch standardisation of genes: fit on training rows, transform, inverse, saved with the model."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from anndata import AnnData

from gexbert_sc._validate import obs_labels

from ._reader import RowReader

logger = logging.getLogger("gexbert_sc")

#: The single group name used when there is no ``batch_key``.
ALL = "__all__"


class GroupMoments:
    """Per-group, per-gene count, sum and sum of squares of observed values, fed chunk by chunk."""

    def __init__(self, n_groups: int, n_genes: int):
        self.n = np.zeros((n_groups, n_genes))
        self.s1 = np.zeros((n_groups, n_genes))
        self.s2 = np.zeros((n_groups, n_genes))

    def add(self, x: np.ndarray, codes: np.ndarray) -> None:
        """Add the rows ``x`` (NaN = missing), row ``i`` belonging to group ``codes[i]``."""
        for g in np.unique(codes):
            m = codes == g
            xm = x if m.all() else x[m]
            self.n[g] += (~np.isnan(xm)).sum(0)
            xm = np.nan_to_num(xm).astype(np.float64)
            self.s1[g] += xm.sum(0)
            self.s2[g] += np.einsum("ij,ij->j", xm, xm)

    @staticmethod
    def _finish(n, s1, s2) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s1 / n
            sd = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
        sd = np.where(np.isfinite(sd) & (sd > 1e-6), sd, 1.0)  # constant or single value: sd 1
        return np.where(n > 0, mean, np.nan).astype(np.float32), np.where(n > 0, sd, np.nan).astype(np.float32)

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-group mean and sd, NaN where a group has no value of a gene."""
        return self._finish(self.n, self.s1, self.s2)

    def pooled(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd over all groups together."""
        return self._finish(self.n.sum(0), self.s1.sum(0), self.s2.sum(0))


def batch_labels(adata: AnnData, batch_key: str | None) -> np.ndarray | None:
    """The batch of each row as strings (None without ``batch_key``); missing labels are refused."""
    if batch_key is None:
        return None
    labels = obs_labels(adata, batch_key)
    if labels.isna().any():
        raise ValueError(
            f"adata.obs[{batch_key!r}] has {int(labels.isna().sum())} missing value(s); fill them (e.g. with "
            "'unknown') so that every sample belongs to a batch"
        )
    return labels.to_numpy()


@dataclass
class Standardizer:
    """Each gene to mean 0 and sd 1 within each batch, with statistics of the training rows.

    Attributes
    ----------
    batches
        Batch names (``[ALL]`` without a ``batch_key``).
    mean, sd
        ``(n_batches, n_genes)`` float32 statistics.
    """

    batches: list[str]
    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def from_moments(cls, batches: list[str], moments: GroupMoments) -> Standardizer:
        """Statistics from accumulated moments; a gene without a value in some batch falls back on the statistics pooled over batches (and on mean 0, sd 1 where it has none at all)."""
        mean, sd = moments.stats()
        bad = np.isnan(mean)
        if bad.any():
            pm, ps = moments.pooled()
            mean = np.where(bad, np.nan_to_num(pm, nan=0.0), mean)
            sd = np.where(bad, np.nan_to_num(ps, nan=1.0), sd)
        return cls(list(batches), mean.astype(np.float32), sd.astype(np.float32))

    def codes(self, labels: np.ndarray | None) -> np.ndarray:
        """Batch index of each row of the batches the standardiser knows (-1 for unknown ones)."""
        if labels is None:
            return None
        known = {b: i for i, b in enumerate(self.batches)}
        return np.array([known.get(b, -1) for b in labels], dtype=np.int64)

    def for_data(self, reader: RowReader, labels: np.ndarray | None) -> BoundStandardizer:
        """The standardiser bound to one AnnData's rows. Batches it has not seen get their own statistics, computed from that AnnData (logged); known batches keep the fitted ones."""
        n_obs = reader.n_obs
        if labels is None:
            return BoundStandardizer(np.zeros(n_obs, dtype=np.int64), self.mean, self.sd)
        codes = self.codes(labels)
        mean, sd = self.mean, self.sd
        new = sorted(set(labels[codes < 0]))
        if new:
            logger.info("batches %s are new to the model: they are standardised with their own statistics", new)
            rows = np.flatnonzero(codes < 0)
            new_codes = np.searchsorted(new, labels[rows])
            moments = GroupMoments(len(new), mean.shape[1])
            for part, x in reader.chunks(rows):
                moments.add(x, new_codes[np.searchsorted(rows, part)])
            m, s = moments.stats()
            m = np.where(np.isnan(m), self.mean.mean(0), m)
            s = np.where(np.isnan(s), self.sd.mean(0), s)
            mean, sd = np.vstack([mean, m]), np.vstack([sd, s])
            codes = codes.copy()
            codes[rows] = len(self.batches) + new_codes
        return BoundStandardizer(codes, mean, sd)


@dataclass
class BoundStandardizer:
    """A :class:`Standardizer` bound to the rows of one AnnData (``codes[row]`` indexes the tables)."""

    codes: np.ndarray
    mean: np.ndarray
    sd: np.ndarray

    def transform(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Standardise raw values ``x`` of ``rows`` (all vocabulary genes)."""
        c = self.codes[rows]
        return (x - self.mean[c]) / self.sd[c]

    def inverse(self, z: np.ndarray, rows: np.ndarray, genes: np.ndarray | None = None) -> np.ndarray:
        """Back to input units: ``z`` of ``rows`` at vocabulary ``genes`` (``(M,)`` shared or ``(B, M)`` per row; all genes if None)."""
        c = self.codes[rows]
        if genes is None:
            return z * self.sd[c] + self.mean[c]
        if genes.ndim == 1:
            return z * self.sd[c][:, genes] + self.mean[c][:, genes]
        return z * self.sd[c[:, None], genes] + self.mean[c[:, None], genes]
