"""``pp.log_normalize``: counts to log1p counts-per-target, keeping the counts."""

from __future__ import annotations

import logging

import numpy as np
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData

from gexbert_sc._validate import check_anndata

logger = logging.getLogger("gexbert_sc")


def _check_counts(adata: AnnData, counts_layer: str | None) -> None:
    """Refuse data that are not raw counts, or that were normalised already (never destroy data)."""
    if "log1p" in adata.uns:
        raise ValueError(
            "adata was log-transformed already (adata.uns['log1p'] exists): running log_normalize again would "
            "log the logs" + (f" and overwrite the raw counts in .layers[{counts_layer!r}]" if counts_layer else "")
            + ". Use adata as it is, or start again from the counts"
            + (f": adata.X = adata.layers[{counts_layer!r}].copy()" if counts_layer in adata.layers else "")
        )
    if counts_layer is not None and counts_layer in adata.layers:
        raise ValueError(
            f".layers[{counts_layer!r}] exists already; log_normalize keeps the raw counts there and will not "
            "overwrite it. Pass another counts_layer=, or counts_layer=None if the counts are kept elsewhere"
        )
    X = adata.X
    data = X.data if sp.issparse(X) else np.asarray(X)
    if not np.issubdtype(data.dtype, np.number):
        raise TypeError(f"adata.X must be numeric counts, got dtype {data.dtype}")
    finite = data[np.isfinite(data)] if np.issubdtype(data.dtype, np.floating) else data
    n_neg = int((finite < 0).sum())
    if n_neg:
        raise ValueError(
            f"adata.X holds {n_neg} negative value(s) ({n_neg / max(finite.size, 1):.0%} of the values): these are "
            "not counts, the data look log-scaled already (log ratios, z-scores or log expression). GexBERT takes "
            "such values as they are: skip log_normalize"
        )
    if np.issubdtype(data.dtype, np.floating) and data.size and np.isnan(data).any():
        raise ValueError(
            f"adata.X holds {int(np.isnan(data).sum())} NaN value(s); counts per million need every count of a "
            "sample. Normalise the complete counts first, then set missing entries to NaN"
        )


def log_normalize(
    adata: AnnData, *, target_sum: float = 1e6, counts_layer: str | None = "counts", copy: bool = False
) -> AnnData | None:
    """Normalise read counts to ``target_sum`` per sample and take ``log1p``, as GexBERT expects.

    A thin wrapper of :func:`scanpy.pp.normalize_total` and :func:`scanpy.pp.log1p` that first keeps the
    raw counts in ``.layers[counts_layer]``. It refuses data that cannot be counts (negative values: the
    data are log-scaled already; NaN), data it normalised before (``.uns["log1p"]``), and an existing
    ``counts_layer``, so that the raw counts are never overwritten.

    Parameters
    ----------
    adata
        Samples x genes of read counts in ``.X``.
    target_sum
        Counts per sample after normalisation (1e6: counts per million).
    counts_layer
        Layer to keep the raw counts in (None: do not keep them).
    copy
        Return a modified copy instead of working in place.

    Returns
    -------
    The copy if ``copy``, else None. Changes ``.X``; adds ``.layers[counts_layer]`` and ``.uns["log1p"]``.
    """
    check_anndata(adata)
    if not target_sum > 0:
        raise ValueError(f"target_sum must be > 0, got {target_sum!r}")
    _check_counts(adata, counts_layer)
    if copy:
        adata = adata.copy()
    if counts_layer is not None:
        adata.layers[counts_layer] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=target_sum)
    sc.pp.log1p(adata)
    logger.info(
        "log1p(counts per %g) in .X%s", target_sum, f"; raw counts in .layers[{counts_layer!r}]" if counts_layer else ""
    )
    return adata if copy else None
