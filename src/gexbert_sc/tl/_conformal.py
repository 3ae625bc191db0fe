"""Split-conformal prediction intervals for any imputer (numpy, no AnnData): per gene, and per kind of gap.

Values missing at random get intervals calibrated on observed entries hidden at random; values missing for
a whole group of samples (a cohort or platform without some genes) get intervals calibrated on whole
(group, gene) blocks hidden on purpose, since restoring a gene that a group never measured is harder.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gexbert_sc.tl._imputers import _as_matrix

logger = logging.getLogger("gexbert_sc")

#: At least this many (group, gene) blocks are hidden for calibration where a third of the candidates allow:
#: a block's residuals share its gene's error, so the blocks, not the entries, are the effective sample.
MIN_BLOCKS = 30


def group_codes(groups, n_obs: int) -> np.ndarray:
    """Integer codes ``0 .. n_groups - 1`` of the group labels of ``n_obs`` samples."""
    labels = np.asarray(groups)
    if labels.shape != (n_obs,):
        raise ValueError(f"groups must hold one label per sample ({n_obs}), got shape {labels.shape}")
    return np.unique(labels.astype(str), return_inverse=True)[1].astype(np.int64)


def whole_group_gaps(missing: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Missing entries whose gene has no observed value in the sample's whole group but has one in another group.

    Parameters
    ----------
    missing
        ``(n_samples, n_genes)`` boolean, True where missing.
    codes
        Group code of each sample (see :func:`group_codes`).

    Returns
    -------
    numpy.ndarray
        Boolean like ``missing``.
    """
    n_groups = int(codes.max()) + 1 if codes.size else 0
    observed_in = np.zeros((n_groups, missing.shape[1]), dtype=bool)  # group g measures gene j
    np.logical_or.at(observed_in, codes, ~missing)
    gap = ~observed_in & (observed_in.sum(0) > 0)[None, :]
    return missing & gap[codes]


def _hide_blocks(known: np.ndarray, codes: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Hide whole (group, gene) blocks: ``fraction`` of the measured blocks (at least :data:`MIN_BLOCKS`), at most one per gene.

    Only genes measured by at least two groups qualify, so every hidden gene stays measured by another group.
    """
    n_groups = int(codes.max()) + 1
    observed_in = np.zeros((n_groups, known.shape[1]), dtype=bool)
    np.logical_or.at(observed_in, codes, known)
    g, j = np.nonzero(observed_in & (observed_in.sum(0) >= 2)[None, :])
    hidden = np.zeros_like(known)
    if g.size == 0:
        return hidden
    want = max(1, round(fraction * g.size), min(MIN_BLOCKS, g.size // 3))
    taken = np.zeros(known.shape[1], dtype=bool)
    n = 0
    for k in rng.permutation(g.size):
        if taken[j[k]]:
            continue
        taken[j[k]] = True
        hidden[:, j[k]] = known[:, j[k]] & (codes == g[k])
        n += 1
        if n >= want:
            break
    return hidden


@dataclass
class ConformalCalibration:
    """Split-conformal calibration of an imputer: per-gene residual scale and a quantile of scores.

    Parameters
    ----------
    scale : numpy.ndarray of shape (n_genes,)
        Per-gene residual scale (shrunken RMS residual on the calibration entries).
        All parameters are also attributes.
    q : float
        Conformal quantile of the scores ``|residual| / scale`` (``inf`` when too few calibration
        entries for the requested ``interval``).
    interval : float
        Target coverage, e.g. 0.9.
    n_calibration : int
        Number of calibration entries (observed entries hidden and imputed).
    n_per_gene : numpy.ndarray of shape (n_genes,)
        Calibration entries per gene.
    global_rms : float, default 0.0
        RMS residual over all calibration entries.
    block : ConformalCalibration or None, default None
        The calibration of values missing for a whole group of samples (from whole (group, gene) blocks
        hidden on purpose; see :func:`conformal_calibrate`'s ``groups``), used where ``intervals`` is
        told so; None when there were none.
    """

    scale: np.ndarray
    q: float
    interval: float
    n_calibration: int
    n_per_gene: np.ndarray = field(repr=False)
    global_rms: float = 0.0
    block: ConformalCalibration | None = None

    def intervals(self, pred, block=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Residual standard deviations and prediction intervals around imputed values.

        Parameters
        ----------
        pred : array_like of shape (n_samples, n_genes) or (n_genes,)
            Imputed values, samples x genes (or one sample, ``(n_genes,)``), in the units the
            calibration was done in.
        block : array_like of bool, optional
            Shaped like ``pred``: True at values missing for their sample's whole group, which get the
            ``block`` calibration's scale and quantile (where there is one).

        Returns
        -------
        sd : numpy.ndarray
            ``scale`` broadcast to ``pred``'s shape: an estimate of the residual standard deviation
            of each gene.
        lower, upper : numpy.ndarray
            ``pred - q * scale`` and ``pred + q * scale``.
        """
        P = np.asarray(pred, dtype=np.float32)
        if P.ndim not in (1, 2) or P.shape[-1] != self.scale.shape[0]:
            raise ValueError(
                f"pred must be (n_samples, {self.scale.shape[0]}) or ({self.scale.shape[0]},), got shape {P.shape}"
            )
        sd = np.broadcast_to(self.scale.astype(np.float32), P.shape).copy()
        half = np.float32(self.q) * sd
        if self.block is not None and block is not None:
            B = np.broadcast_to(np.asarray(block, dtype=bool), P.shape)
            bsd = np.broadcast_to(self.block.scale.astype(np.float32), P.shape)
            sd = np.where(B, bsd, sd)
            half = np.where(B, np.float32(self.block.q) * bsd, half)
        return sd, P - half, P + half


def conformal_calibrate(
    X,
    impute_fn: Callable[[np.ndarray], np.ndarray],
    *,
    interval: float = 0.9,
    fraction: float = 0.05,
    random_state: int | np.random.Generator | None = 0,
    min_per_gene: float = 5,
    groups=None,
) -> ConformalCalibration:
    """Calibrate prediction intervals for any imputer by split-conformal prediction.

    Hides a random ``fraction`` of the observed entries of ``X``, imputes with ``impute_fn`` and
    scores the residuals on the hidden entries. This costs one extra imputation on top of the one
    whose values the intervals will surround.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_genes)
        Dense samples x genes matrix with NaN marking missing entries.
    impute_fn : callable
        Function taking a float32 matrix of ``X``'s shape with NaN entries and returning the
        filled matrix (of the same shape), e.g. ``lambda A: impute_matrix(A, "softimpute")``.
    interval : float, default 0.9
        Target coverage in (0, 1).
    fraction : float, default 0.05
        Fraction of the observed entries hidden for calibration, in (0, 1). No gene loses all of
        its observed values: where the random draw would do so, one entry is kept.
    random_state : int, numpy.random.Generator or None, default 0
        Seed of the entries hidden.
    min_per_gene : float, default 5
        Pseudo-count (> 0) of the shrinkage of per-gene scales toward the global RMS residual
        (see Notes): a gene needs this many calibration residuals for its own RMS to get half of
        the weight. With the default ``fraction=0.05``, genes get about ``0.05 x`` their number of
        observed samples of residuals (25 for 500 samples).
    groups : array_like, optional
        A group label per sample (a cohort, platform or batch). Where ``X`` has values missing for a
        whole group (genes a group never measured but another did), whole (group, gene) blocks are hidden
        too, in the same imputation: ``fraction`` of the blocks that some group measures (at least 30 where
        a third of them allow), at most one per gene, so every gene stays measured somewhere. Their residuals calibrate ``block`` (see
        :class:`ConformalCalibration`; one scale for all genes, since the genes a group lacks have no
        residuals of their own), for the values missing that way: restoring a gene a group never
        measured is harder than filling a value missing at random, so entry-wise intervals would be too
        narrow there. Without such gaps, ``groups`` changes nothing.

    Returns
    -------
    ConformalCalibration
        With ``scale``, ``q``, ``interval`` and the method ``intervals(pred)``.

    Raises
    ------
    ValueError
        ``interval``, ``fraction`` or ``min_per_gene`` out of range, no observed entries, or an
        ``impute_fn`` result of the wrong shape or non-finite on a hidden entry.

    Notes
    -----
    With ``n_j`` calibration residuals of gene ``j``, their RMS ``s_j``, the RMS ``g`` of all
    calibration residuals and ``k = min_per_gene``, the gene's scale is the weighted geometric mean
    ``scale_j = exp((n_j log s_j + k log g) / (n_j + k))``: the gene's own RMS when it has many
    residuals, the global RMS when it has none, half-way (on the log scale) at ``n_j = k``. The
    shrinkage is on the log scale because residual spreads of genes can differ by orders of
    magnitude; shrinking variances additively would pull quiet genes far up toward the noisy
    ones. (``s_j`` and ``g`` are floored at ``1e-6 g``.) Each calibration residual is scored as
    ``|r| / scale_j^(-)`` where ``scale_j^(-)`` is the same formula with that residual left out
    (so the score, like that of a new entry, does not use its own residual). ``q`` is the
    ``ceil((n + 1) * interval)``-th smallest of the ``n`` scores (``inf`` if that exceeds ``n``),
    and the interval is ``pred +/- q * scale_j``.

    The coverage guarantee holds, on average over entries, for entries missing the way the
    calibration entries were hidden, i.e. completely at random among observed entries. It is not
    guaranteed for values missing not at random (e.g. low values, or whole genes of a cohort), and
    the calibration imputation sees slightly more missing values than the real one, which tends to
    make intervals a little conservative.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 3)) @ rng.normal(size=(3, 20))
    >>> X[rng.random(X.shape) < 0.2] = np.nan
    >>> cal = conformal_calibrate(X, lambda A: impute_matrix(A, "softimpute"), interval=0.9)
    >>> sd, lower, upper = cal.intervals(impute_matrix(X, "softimpute"))
    >>> sd.shape
    (100, 20)
    """
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1), got {interval!r}; e.g. interval=0.9 for 90% intervals")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}; e.g. fraction=0.05")
    if not min_per_gene > 0:
        raise ValueError(f"min_per_gene must be > 0, got {min_per_gene!r}")
    A = _as_matrix(X)
    known = ~np.isnan(A)
    if not known.any():
        raise ValueError("X has no observed entry to calibrate on")
    rng = np.random.default_rng(random_state)
    blocks = np.zeros_like(known)
    if groups is not None:
        codes = group_codes(groups, A.shape[0])
        if whole_group_gaps(~known, codes).any():
            blocks = _hide_blocks(known, codes, fraction, rng)
    obs_idx = np.flatnonzero(known & ~blocks)
    if obs_idx.size == 0:
        raise ValueError("X has no observed entry to calibrate on outside the hidden blocks")
    n_cal = max(1, int(round(fraction * obs_idx.size)))
    hidden = np.zeros(A.size, dtype=bool)
    hidden[rng.choice(obs_idx, size=n_cal, replace=False)] = True
    hidden = hidden.reshape(A.shape)
    emptied = np.flatnonzero(known.any(axis=0) & ~(known & ~hidden & ~blocks).any(axis=0))
    for j in emptied:  # keep one observed value in every gene that had one
        hidden[rng.choice(np.flatnonzero(hidden[:, j])), j] = False

    A_hidden = A.astype(np.float32)
    A_hidden[hidden | blocks] = np.nan
    filled = np.asarray(impute_fn(A_hidden), dtype=np.float64)
    if filled.shape != A.shape:
        raise ValueError(f"impute_fn returned shape {filled.shape}, expected {A.shape}")
    residuals = {}
    for kind, where in (("entries", hidden), ("blocks", blocks)):
        rows, cols = np.nonzero(where)
        r = A[rows, cols] - filled[rows, cols]
        if not np.isfinite(r).all():
            raise ValueError(f"impute_fn left {int((~np.isfinite(r)).sum())} hidden entries NaN or infinite")
        residuals[kind] = (r, cols)
    cal = calibrate_residuals(*residuals["entries"], A.shape[1], interval=interval, min_per_gene=min_per_gene)
    if blocks.any():
        cal.block = calibrate_residuals(*residuals["blocks"], A.shape[1], interval=interval, per_gene=False)
        logger.info("conformal calibration of values missing for a whole group: %d (group, gene) blocks hidden, "
                    "%d entries, q = %.3g", int(np.any(blocks, 0).sum()), int(blocks.sum()), cal.block.q)
    return cal


def calibrate_residuals(
    residuals: np.ndarray, genes: np.ndarray, n_genes: int, *, interval: float = 0.9, min_per_gene: float = 5,
    per_gene: bool = True,
) -> ConformalCalibration:
    """Split-conformal calibration from residuals already computed on held-out entries.

    The scoring of :func:`conformal_calibrate` (see its Notes), for callers that obtain residuals in
    another way, e.g. cross-validated predictions of a regression on a reference set.

    Parameters
    ----------
    residuals
        Truth minus prediction on the calibration entries, 1-D.
    genes
        The gene (column index) of each residual.
    n_genes
        Number of genes.
    interval
        Target coverage in (0, 1).
    min_per_gene
        Pseudo-count of the shrinkage of per-gene scales toward the global RMS residual.
    per_gene
        False: one scale (the global RMS residual) for every gene, for residuals whose genes are not
        those the intervals will be used on (the genes hidden as whole blocks are measured ones; the
        genes a group never measured have no residual of their own).

    Returns
    -------
    ConformalCalibration
    """
    r = np.asarray(residuals, dtype=np.float64)
    cols = np.asarray(genes, dtype=np.int64)
    if r.size == 0:
        raise ValueError("no calibration residuals")
    k = float(min_per_gene)
    n_j = np.bincount(cols, minlength=n_genes).astype(np.float64)
    S_j = np.bincount(cols, weights=r**2, minlength=n_genes)
    g2 = float((r**2).mean())
    floor = max(1e-6 * math.sqrt(g2), 1e-30)

    def shrunk(ss, n):  # exp of the (n, k)-weighted mean of log(own RMS) and log(global RMS)
        log_own = np.log(np.maximum(np.sqrt(ss / np.maximum(n, 1.0)), floor))
        log_global = math.log(max(math.sqrt(g2), floor))
        return np.exp((n * log_own + k * log_global) / (n + k))

    if per_gene:
        scale = shrunk(S_j, n_j)
        scale_loo = shrunk(np.maximum(S_j[cols] - r**2, 0.0), n_j[cols] - 1.0)
    else:
        scale = np.full(n_genes, max(math.sqrt(g2), floor))
        scale_loo = scale[cols]
    scores = np.sort(np.abs(r) / scale_loo)
    n = scores.size
    rank = math.ceil((n + 1) * interval)
    q = float(scores[rank - 1]) if rank <= n else math.inf
    if not math.isfinite(q):
        logger.warning("%d calibration entries are too few for interval=%g; the intervals are infinite. Raise the "
                       "calibration fraction or lower interval.", n, interval)
    logger.info("conformal calibration: %d entries, q = %.3g, global RMS residual %.3g", n, q, math.sqrt(g2))
    return ConformalCalibration(scale=scale, q=q, interval=float(interval), n_calibration=n,
                                n_per_gene=n_j.astype(np.int64), global_rms=math.sqrt(g2))
