"""``pp.simulate_missing``: hide known values to benchmark imputation against the truth."""

from __future__ import annotations

import difflib
import logging
from numbers import Integral, Real

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

logger = logging.getLogger("gexbert_sc")

MECHANISMS = ("mcar", "gene_block", "low_value")


def _close(name, options) -> str:
    matches = difflib.get_close_matches(str(name), [str(o) for o in options], n=3)
    return f" Close matches: {matches}." if matches else ""


def _check_inputs(adata, rate, mechanism, groupby, layer, key_added, random_state, overwrite) -> None:
    """Validate every argument before anything is changed; each error names the fix."""
    if not isinstance(adata, AnnData):
        raise TypeError(f"expected an AnnData, got {type(adata).__name__}; wrap your matrix with anndata.AnnData(X)")
    if isinstance(rate, bool) or not isinstance(rate, Real) or not (0.0 <= float(rate) < 1.0):
        raise ValueError(f"rate must be a number in [0, 1), got {rate!r}; e.g. rate=0.2 hides 20% of observed entries")
    if mechanism not in MECHANISMS:
        raise ValueError(
            f"unknown mechanism {mechanism!r}; choose one of {list(MECHANISMS)}.{_close(mechanism, MECHANISMS)}"
        )
    if mechanism == "gene_block" and groupby is None:
        raise ValueError(
            "mechanism='gene_block' needs groupby=<an adata.obs column> naming the groups (e.g. batch or cohort) "
            f"that each lose their own genes; adata.obs columns: {list(adata.obs.columns)}"
        )
    if mechanism != "gene_block" and groupby is not None:
        raise ValueError(
            f"groupby is only used by mechanism='gene_block', not {mechanism!r}; drop groupby or use mechanism='gene_block'"
        )
    if groupby is not None:
        if groupby not in adata.obs.columns:
            raise KeyError(
                f"groupby {groupby!r} is not a column of adata.obs (columns: {list(adata.obs.columns)})."
                f"{_close(groupby, adata.obs.columns)}"
            )
        n_na = int(pd.isna(adata.obs[groupby]).sum())
        if n_na:
            raise ValueError(
                f"adata.obs[{groupby!r}] has {n_na} missing value(s); give those samples a group label "
                "(e.g. adata.obs[groupby] = adata.obs[groupby].astype(str)) or drop them first"
            )
    if layer is not None and layer not in adata.layers:
        raise KeyError(
            f"layer {layer!r} is not in adata.layers (available: {list(adata.layers)}).{_close(layer, adata.layers)}"
            " Pass layer=None to use adata.X."
        )
    if layer is None and adata.X is None:
        raise ValueError("adata.X is None; put the expression matrix in adata.X or name a layer with layer=...")
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"key_added must be a non-empty string, got {key_added!r}")
    truth_key, mask_key = f"{key_added}_truth", f"{key_added}_mask"
    if layer is not None and layer in (truth_key, mask_key):
        raise ValueError(
            f"layer {layer!r} would be overwritten by this call's output; choose another key_added, e.g. "
            f"key_added={key_added + '2'!r}"
        )
    if not overwrite:
        taken = [f".layers[{k!r}]" for k in (truth_key, mask_key) if k in adata.layers]
        if key_added in adata.uns:
            taken.append(f".uns[{key_added!r}]")
        if taken:
            raise ValueError(
                f"{', '.join(taken)} already exist(s); pass another key_added (e.g. {key_added + '2'!r}) "
                "or overwrite=True to replace them"
            )
    if random_state is not None and (isinstance(random_state, bool) or not isinstance(random_state, Integral)):
        raise TypeError(f"random_state must be an int or None, got {type(random_state).__name__}")
    X = adata.X if layer is None else adata.layers[layer]
    dtype = np.dtype(X.dtype if hasattr(X, "dtype") else np.asarray(X).dtype)
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        where = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
        raise TypeError(f"{where} must be numeric, got dtype {dtype}; convert it with .astype(np.float32)")


def _low_value_probabilities(X: np.ndarray, observed: np.ndarray, rate: float) -> np.ndarray:
    """Per-entry removal probabilities of the ``low_value`` mechanism (0 where not observed)."""
    n_obs_gene = observed.sum(axis=0)
    Xo = np.where(observed, X, 0.0).astype(np.float64)
    mean = Xo.sum(axis=0) / np.maximum(n_obs_gene, 1)
    var = (np.where(observed, X - mean, 0.0) ** 2).sum(axis=0) / np.maximum(n_obs_gene, 1)
    sd = np.sqrt(var)
    sd[sd == 0] = 1.0  # constant gene: z = 0 everywhere, so equal weights
    z = np.where(observed, (X - mean) / sd, 0.0)
    w = np.where(observed, 0.5 * (1.0 - np.tanh(z / 2.0)), 0.0)  # logistic(-z), overflow-free
    target = rate * observed.sum()
    if target <= 0:
        return np.zeros_like(w)
    # find c with sum(min(1, c * w)) == target by bisection; the sum is continuous and increasing in c
    w_pos = w[w > 0]
    lo, hi = 0.0, 1.0 / w_pos.min()  # at hi every weight is clipped to 1: sum = n_observed > target
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if np.minimum(1.0, mid * w_pos).sum() < target:
            lo = mid
        else:
            hi = mid
    return np.minimum(1.0, hi * w)


def _spare_emptied(mask: np.ndarray, observed: np.ndarray) -> tuple[int, int]:
    """Clear (in place) the mask of genes, then samples, that it would leave with nothing observed."""
    genes = observed.any(0) & ~(observed & ~mask).any(0)
    mask[:, genes] = False
    samples = observed.any(1) & ~(observed & ~mask).any(1)
    mask[samples] = False
    return int(genes.sum()), int(samples.sum())


def simulate_missing(
    adata: AnnData,
    *,
    rate: float,
    mechanism: str = "mcar",
    groupby: str | None = None,
    layer: str | None = None,
    key_added: str = "simulated",
    random_state: int | None = 0,
    keep_measurable: bool = True,
    overwrite: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Hide known expression values (set them to NaN) to benchmark imputation against the truth.

    Keeps a copy of the values before removal and a mask of exactly what this call removed, so that
    any imputation can afterwards be scored on the removed entries only.

    Parameters
    ----------
    adata : anndata.AnnData
        Samples x genes. Dense or scipy sparse. Entries that are already NaN count as missing and are
        never part of the mask.
    rate : float
        In ``[0, 1)``. What it means depends on ``mechanism`` (see Notes).
    mechanism : {"mcar", "gene_block", "low_value"}, default "mcar"
        How entries are chosen:

        ``"mcar"``
            Missing completely at random: each observed entry is removed independently with
            probability ``rate``.
        ``"gene_block"``
            Each group of ``adata.obs[groupby]`` loses its own random set of
            ``round(rate * n_vars)`` genes, in all of its samples (as when cohorts were measured on
            different gene panels).
        ``"low_value"``
            Missing not at random: lower values of a gene are more likely removed (as with a
            detection limit). See Notes for the exact rule.
    groupby : str, optional
        Column of ``adata.obs`` with the groups; required by, and only used by, ``"gene_block"``.
    layer : str, optional
        Layer to remove entries from; None (default) uses ``adata.X``.
    key_added : str, default "simulated"
        Prefix of the keys written (see Returns).
    random_state : int or None, default 0
        Seed of the random choices (None: not reproducible).
    keep_measurable : bool, default True
        Leave out of the removal every gene (and every sample) that it would leave with no observed
        value at all, as when every group of a ``"gene_block"`` loses the same gene: no imputer can
        estimate a gene that no sample measures, and a benchmark should not score it. Such genes and
        samples keep all their values; their number is stored in ``.uns[key_added]``
        (``"n_kept_genes"``, ``"n_kept_samples"``). False removes them anyway.
    overwrite : bool, default False
        Replace the layers and ``.uns`` entry of an earlier call with the same ``key_added``.
        Without it such a call is refused, so that nothing already stored is lost.
    copy : bool, default False
        Return a modified copy instead of working in place.

    Returns
    -------
    AnnData or None
        The copy if ``copy``, else None. Writes:

        ``.X`` or ``.layers[layer]``
            Dense float32 with the removed entries set to NaN. Sparse input is converted to a
            dense float32 array first, because NaN has no sensible meaning in a sparse matrix
            (unstored entries are zeros, not missing values).
        ``.layers[key_added + "_truth"]``
            Dense float32 copy of the values before removal (NaN where they were already NaN).
        ``.layers[key_added + "_mask"]``
            Bool, True exactly where this call removed an entry (False where the entry was NaN
            before).
        ``.uns[key_added]``
            ``{"params": {...}, "n_removed": int, "n_observed_before": int, "n_kept_genes": int,
            "n_kept_samples": int}``. ``"params"``
            holds the arguments; an unset one (``groupby``, ``layer``, ``random_state``) is stored
            as ``""`` so the AnnData stays writable to h5ad.

    Raises
    ------
    ValueError
        ``rate`` outside ``[0, 1)``, unknown ``mechanism``, ``groupby`` missing for
        ``"gene_block"`` (or given for another mechanism), missing group labels, infinite values,
        or output keys that already exist without ``overwrite=True``.
    KeyError
        ``layer`` or ``groupby`` not found (the message lists close matches).
    TypeError
        ``adata`` not an AnnData, or non-numeric data.

    Notes
    -----
    Fraction removed. With ``"mcar"`` the expected fraction of observed entries removed is
    ``rate``. With ``"gene_block"``, ``rate`` is the fraction of genes each group loses, so the
    fraction of observed entries removed is ``rate`` only up to rounding and pre-existing NaN.
    With ``"low_value"`` the expected fraction is ``rate`` exactly.

    The ``"low_value"`` rule: for gene ``j`` with observed mean ``m_j`` and standard deviation
    ``s_j`` (1 for a constant gene), an observed entry ``x_ij`` has z-score
    ``z_ij = (x_ij - m_j) / s_j``, weight ``w_ij = 1 / (1 + exp(z_ij))`` (logistic of ``-z``)
    and removal probability ``p_ij = min(1, c * w_ij)``, where the single constant ``c`` is found
    by bisection so that the ``p_ij`` sum to ``rate`` times the number of observed entries.
    Entries are then removed independently with probability ``p_ij``.

    Examples
    --------
    >>> import gexbert_sc as gb
    >>> adata = gb.datasets.synthetic(n_obs=100, n_vars=50, random_state=0)  # doctest: +SKIP
    >>> gb.pp.simulate_missing(adata, rate=0.2)  # doctest: +SKIP
    >>> truth, mask = adata.layers["simulated_truth"], adata.layers["simulated_mask"]  # doctest: +SKIP
    """
    _check_inputs(adata, rate, mechanism, groupby, layer, key_added, random_state, overwrite)
    rate = float(rate)
    X_in = adata.X if layer is None else adata.layers[layer]
    where = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    was_sparse = sp.issparse(X_in)
    X = X_in.toarray() if was_sparse else np.asarray(X_in)
    X = np.array(X, dtype=np.float32, copy=True)
    if np.isinf(X).any():
        raise ValueError(
            f"{where} has {int(np.isinf(X).sum())} infinite value(s); replace them (e.g. with np.nan) before simulating"
        )

    if copy:
        adata = adata.copy()

    rng = np.random.default_rng(random_state)
    observed = ~np.isnan(X)
    truth = X.copy()
    if mechanism == "mcar":
        mask = observed & (rng.random(X.shape) < rate)
    elif mechanism == "gene_block":
        mask = np.zeros(X.shape, dtype=bool)
        groups = adata.obs[groupby].to_numpy()
        k = int(round(rate * X.shape[1]))
        for g in pd.unique(groups):
            rows = np.flatnonzero(groups == g)
            cols = rng.choice(X.shape[1], size=k, replace=False)
            mask[np.ix_(rows, cols)] = True
        mask &= observed
    else:  # low_value
        p = _low_value_probabilities(X, observed, rate)
        mask = observed & (rng.random(X.shape) < p)
    kept_genes, kept_samples = _spare_emptied(mask, observed) if keep_measurable else (0, 0)

    X[mask] = np.nan
    if layer is None:
        adata.X = X
    else:
        adata.layers[layer] = X
    truth_key, mask_key = f"{key_added}_truth", f"{key_added}_mask"
    adata.layers[truth_key] = truth
    adata.layers[mask_key] = mask
    n_removed, n_observed = int(mask.sum()), int(observed.sum())
    adata.uns[key_added] = {
        "params": {
            "rate": rate,
            "mechanism": mechanism,
            "groupby": "" if groupby is None else str(groupby),
            "layer": "" if layer is None else str(layer),
            "random_state": "" if random_state is None else int(random_state),
            "keep_measurable": bool(keep_measurable),
        },
        "n_removed": n_removed,
        "n_observed_before": n_observed,
        "n_kept_genes": int(kept_genes),
        "n_kept_samples": int(kept_samples),
    }
    if kept_genes or kept_samples:
        logger.info("simulate_missing: %d gene(s) and %d sample(s) would have lost every observed value; they "
                    "keep their values (keep_measurable=True)", kept_genes, kept_samples)
    logger.info(
        "simulate_missing (%s, rate=%g): set %d of %d observed entries of %s to NaN%s; "
        "truth in .layers[%r], mask in .layers[%r], parameters in .uns[%r]",
        mechanism,
        rate,
        n_removed,
        n_observed,
        where,
        " (converted from sparse to dense float32)" if was_sparse else "",
        truth_key,
        mask_key,
        key_added,
    )
    return adata if copy else None
