"""Input checks shared by the AnnData-facing code. Each error names the problem and the fix."""

from __future__ import annotations

import difflib
import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData


def _close(name: str, options) -> str:
    m = difflib.get_close_matches(str(name), [str(o) for o in options], n=3)
    return f" Close matches: {m}." if m else ""


def check_int(value, name: str, minimum: int) -> int:
    """``value`` as an int; ``ValueError`` naming ``name`` unless it is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_anndata(adata) -> AnnData:
    """Raise ``TypeError`` if ``adata`` is not an AnnData."""
    if not isinstance(adata, AnnData):
        raise TypeError(f"expected an AnnData, got {type(adata).__name__}; wrap your matrix with anndata.AnnData(X)")
    return adata


def check_layer(adata: AnnData, layer: str | None) -> None:
    """Raise ``KeyError`` listing close matches if ``layer`` is not in ``adata.layers``."""
    if layer is not None and layer not in adata.layers:
        raise KeyError(
            f"layer {layer!r} is not in adata.layers (available: {list(adata.layers)}).{_close(layer, adata.layers)}"
            " Pass layer=None to use adata.X."
        )


def check_obs_key(adata: AnnData, key: str | None, what: str = "key") -> None:
    """Raise ``KeyError`` listing close matches if ``key`` is not an ``adata.obs`` column."""
    if key is not None and key not in adata.obs.columns:
        raise KeyError(
            f"{what} {key!r} is not a column of adata.obs (columns: {list(adata.obs.columns)}).{_close(key, adata.obs.columns)}"
        )


def check_unique_genes(adata: AnnData) -> None:
    """Raise ``ValueError`` if gene names repeat."""
    if not adata.var_names.is_unique:
        dup = adata.var_names[adata.var_names.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"adata.var_names has {int(adata.var_names.duplicated().sum())} duplicated gene name(s), e.g. {dup}; "
            "call adata.var_names_make_unique() or aggregate the duplicates first"
        )


def check_dtype(X, where: str = "adata.X") -> None:
    """Raise ``TypeError`` unless ``X`` holds real numbers (reads only the dtype: cheap on backed data)."""
    dtype = np.dtype(X.dtype if hasattr(X, "dtype") else np.asarray(X).dtype)
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"{where} must be numeric, got dtype {dtype}; convert it with .astype(np.float32)")


def check_matrix_values(X, where: str = "adata.X") -> None:
    """Raise ``ValueError``/``TypeError`` for non-numeric data or infinite values (NaN is allowed)."""
    check_dtype(X, where)
    data = X.data if sp.issparse(X) else np.asarray(X)
    if np.issubdtype(data.dtype, np.floating) and np.isinf(data).any():
        n = int(np.isinf(data).sum())
        raise ValueError(
            f"{where} holds {n} infinite value(s); replace them with NaN (treated as missing), "
            "e.g. X[~np.isfinite(X)] = np.nan"
        )


def obs_labels(adata: AnnData, key: str) -> pd.Series:
    """The ``adata.obs[key]`` column as strings (NaN kept as NaN)."""
    col = adata.obs[key]
    return col.astype("object").where(col.notna(), None).map(lambda v: None if v is None else str(v))


def check_not_counts(nonneg_integers: bool, vmax: float, where: str = "adata.X") -> None:
    """Refuse raw counts (non-negative integers over a wide range): GexBERT expects log-scale values."""
    if nonneg_integers and vmax > 1000:
        raise ValueError(
            f"{where} looks like raw counts (non-negative integers up to {vmax:,.0f}); GexBERT expects "
            "log-scale values. Run gexbert_sc.pp.log_normalize(adata) (log1p of counts per million, raw counts "
            "kept in .layers['counts']), or pass layer= naming a log-scale layer"
        )


#: Largest absolute value accepted. Log-scale expression (log2 or ln of counts, CPM, TPM or intensities;
#: log ratios; z-scores, which stay below sqrt(n_samples)) stays within a few hundred.
MAX_ABS_VALUE = 1e4


def check_value_range(
    gene_absmax: np.ndarray, sample_absmax: np.ndarray, var_names, obs_names, where: str = "adata.X"
) -> None:
    """Refuse values far outside any log-expression range (``|value| > MAX_ABS_VALUE``), naming where."""
    bad_genes = np.flatnonzero(gene_absmax > MAX_ABS_VALUE)
    if not len(bad_genes):
        return
    bad_samples = np.flatnonzero(sample_absmax > MAX_ABS_VALUE)
    genes = [str(var_names[i]) for i in bad_genes[:5]]
    samples = [str(obs_names[i]) for i in bad_samples[:5]]
    raise ValueError(
        f"{where} holds values up to {float(gene_absmax.max()):.3g}, far outside any log-expression range "
        f"(|value| <= {MAX_ABS_VALUE:g}), in {len(bad_genes)} gene(s), e.g. {genes}, and {len(bad_samples)} "
        f"sample(s), e.g. {samples}. If the data are on a linear scale (TPM, FPKM, intensities), take logs first, "
        "e.g. adata.X = np.log2(adata.X + 1); if these are errors, set them to NaN (treated as missing)"
    )


def check_observed(
    n_per_gene: np.ndarray,
    n_per_sample: np.ndarray,
    gmin: np.ndarray,
    gmax: np.ndarray,
    var_names,
    obs_names,
    where: str = "adata.X",
    *,
    allow_empty_genes: bool = False,
) -> None:
    """Refuse samples or genes without a single observed value (genes allowed with ``allow_empty_genes``, as when a model's genes are absent from new data), and constant genes."""
    empty_genes = np.flatnonzero(n_per_gene == 0)
    if len(empty_genes) and not allow_empty_genes:
        ex = [str(var_names[i]) for i in empty_genes[:5]]
        raise ValueError(
            f"{len(empty_genes)} gene(s) have no observed value in {where} (all NaN), e.g. {ex}; drop them, e.g. "
            "adata = adata[:, ~np.isnan(adata.X).all(axis=0)].copy()"
        )
    empty_samples = np.flatnonzero(n_per_sample == 0)
    if len(empty_samples):
        ex = [str(obs_names[i]) for i in empty_samples[:5]]
        raise ValueError(
            f"{len(empty_samples)} sample(s) have no observed value in {where} (all NaN), e.g. {ex}; drop them, e.g. "
            "adata = adata[~np.isnan(adata.X).all(axis=1)].copy()"
        )
    const = np.flatnonzero((gmax - gmin == 0) & (n_per_gene >= 2))  # one value: nothing to compare, not constant
    if len(const):
        ex = [str(var_names[i]) for i in const[:5]]
        raise ValueError(
            f"{len(const)} gene(s) are constant in {where}, e.g. {ex}; they carry no information and cannot be "
            "standardised. Drop them, e.g. adata = adata[:, np.nanstd(adata.X, axis=0) > 0].copy()"
        )
