"""``tl.score_imputation``: how close imputed values are to the hidden truth, and how well the intervals cover it."""

from __future__ import annotations

import warnings

import numpy as np


def _median_gene_r(truth: np.ndarray, imputed: np.ndarray, mask: np.ndarray) -> float:
    """Median over genes (with at least 3 scored entries and some spread) of the Pearson r of imputed vs true."""
    rs = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in np.flatnonzero(mask.sum(0) >= 3):
            t, p = truth[mask[:, j], j], imputed[mask[:, j], j]
            if t.std() > 0 and p.std() > 0:
                rs.append(np.corrcoef(t, p)[0, 1])
    return float(np.median(rs)) if rs else float("nan")


def _as_matrix(a, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (samples x genes), got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, but truth has shape {shape}; pass arrays of the same samples and genes")
    return a


def score_imputation(
    truth: np.ndarray,
    imputed: np.ndarray,
    mask: np.ndarray,
    *,
    gene_sd: np.ndarray | None = None,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> dict[str, float]:
    """Score imputed values against the true ones on the entries of ``mask``.

    The scores of :func:`~gexbert_sc.tl.benchmark_impute`, for values imputed some other way: hide entries
    with :func:`~gexbert_sc.pp.simulate_missing`, fill them (e.g. with :func:`~gexbert_sc.tl.impute`), then
    score the filled matrix against ``.layers["simulated_truth"]`` on ``.layers["simulated_mask"]``.

    Parameters
    ----------
    truth
        True values, samples x genes (NaN outside ``mask`` is fine).
    imputed
        Imputed (completed) values, the same shape.
    mask
        Boolean, the same shape: the entries scored (the hidden ones). An entry of ``mask`` where ``imputed``
        is NaN makes ``rmse`` NaN; pass ``mask & np.isfinite(imputed)`` to score only the filled entries.
    gene_sd
        Each gene's scale, shape ``(n_genes,)``: errors and interval widths are divided by it, so that they
        are in standardised units. None: each gene's standard deviation over the non-NaN values of ``truth``
        (1 for a gene without spread), as :func:`~gexbert_sc.tl.benchmark_impute` uses.
    lower, upper
        Bounds of prediction intervals, the same shape as ``truth`` (e.g. ``.layers[key_added + "_lower"]``
        and ``[key_added + "_upper"]`` of :func:`~gexbert_sc.tl.impute` with ``interval=``). Both or neither.

    Returns
    -------
    dict
        ``rmse``
            Root mean squared error over the scored entries, each divided by its gene's ``gene_sd`` (NaN if
            ``mask`` is empty).
        ``pearson``
            Median over genes (those with at least 3 scored entries and some spread in both the true and the
            imputed values) of the Pearson r of imputed vs true; NaN if no gene qualifies.
        ``coverage``
            Fraction of the scored entries with finite bounds whose true value lies within them (NaN without
            bounds).
        ``width``
            Mean width of those intervals, in units of ``gene_sd`` (NaN without bounds).

    Examples
    --------
    >>> import gexbert_sc as gb
    >>> adata = gb.datasets.synthetic(n_obs=200, n_vars=100, n_modules=4, module_size=20)
    >>> gb.pp.simulate_missing(adata, rate=0.2, random_state=0)
    >>> gb.tl.impute(adata, method="knn", interval=0.9)  # -> .layers["knn_imputed"], ["knn_imputed_lower"], ...
    >>> layers = adata.layers
    >>> gb.tl.score_imputation(layers["simulated_truth"], layers["knn_imputed"], layers["simulated_mask"],
    ...                        lower=layers["knn_imputed_lower"], upper=layers["knn_imputed_upper"])
    {'rmse': 0.67..., 'pearson': 0.81..., 'coverage': 0.89..., 'width': 2.28...}
    """
    truth = _as_matrix(truth, "truth")
    imputed = _as_matrix(imputed, "imputed", truth.shape)
    mask = _as_matrix(mask, "mask", truth.shape)
    if mask.dtype != np.bool_:
        raise TypeError(f"mask must be boolean (True: an entry to score), got dtype {mask.dtype}")
    if (lower is None) != (upper is None):
        raise ValueError("pass both lower and upper (the interval bounds), or neither")
    if gene_sd is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a gene without any true value: sd NaN, taken as 1
            sd = np.nanstd(truth, axis=0)
        gene_sd = np.where(sd > 0, sd, 1.0)
    gene_sd = np.asarray(gene_sd)
    if gene_sd.shape != (truth.shape[1],):
        raise ValueError(f"gene_sd must have one value per gene, shape ({truth.shape[1]},), got shape {gene_sd.shape}")
    err = (imputed - truth) / gene_sd
    out = {"rmse": float(np.sqrt(np.mean(err[mask] ** 2))) if mask.any() else float("nan"),
           "pearson": _median_gene_r(truth, imputed, mask), "coverage": np.nan, "width": np.nan}
    if lower is not None:
        lower = _as_matrix(lower, "lower", truth.shape)
        upper = _as_matrix(upper, "upper", truth.shape)
        ok = mask & np.isfinite(lower) & np.isfinite(upper)
        if ok.any():
            t = truth[ok]
            out["coverage"] = float(np.mean((t >= lower[ok]) & (t <= upper[ok])))
            out["width"] = float(np.mean(((upper - lower) / gene_sd)[ok]))
    return out
