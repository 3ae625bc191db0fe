"""Input checks shared by the AnnData-facing code. Each error names the problem and the fix."""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData


def _close(name: str, options) -> str:
    m = difflib.get_close_matches(str(name), [str(o) for o in options], n=3)
    return f" Close matches: {m}." if m else ""


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


def check_matrix_values(X, where: str = "adata.X") -> None:
    """Raise ``ValueError``/``TypeError`` for non-numeric data or infinite values (NaN is allowed)."""
    data = X.data if sp.issparse(X) else np.asarray(X)
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise TypeError(f"{where} must be numeric, got dtype {data.dtype}; convert it with .astype(np.float32)")
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
