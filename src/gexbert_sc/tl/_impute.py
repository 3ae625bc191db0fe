"""``tl.impute``: fill missing values with a trained GexBERT."""

from __future__ import annotations

import logging

import numpy as np
from anndata import AnnData

from gexbert_sc._validate import check_anndata
from gexbert_sc.model import GexBERT

logger = logging.getLogger("gexbert_sc")


def impute(
    adata: AnnData,
    model: GexBERT,
    *,
    n_repeats: int | None = None,
    random_state: int = 0,
    layer_added: str = "gexbert_imputed",
    copy: bool = False,
) -> AnnData | None:
    """Fill the missing (NaN) values of ``adata`` with the model's restorations.

    Parameters
    ----------
    adata
        Samples x genes with NaN where missing; genes are aligned to the model's by name.
    model
        A trained :class:`~gexbert_sc.GexBERT`.
    n_repeats
        Input subsets averaged per sample (see :meth:`GexBERT.embed`).
    random_state
        Seeds the input subsets.
    layer_added
        Name of the layer to write.
    copy
        Return a modified copy instead of working in place.

    Returns
    -------
    The copy if ``copy``, else None. Adds ``.layers[layer_added]``: ``adata``'s values where
    observed, the model's restored values (input units) where missing; genes of ``adata`` that the
    model does not know keep their NaN.
    """
    check_anndata(adata)
    if not isinstance(model, GexBERT):
        raise TypeError(f"model must be a trained GexBERT, got {type(model).__name__}")
    if copy:
        adata = adata.copy()
    full = model.impute(adata, n_repeats=n_repeats, random_state=random_state)
    X = adata.layers[model.layer] if model.layer is not None else adata.X
    out = np.array(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)  # a copy
    n_missing = int(np.isnan(out).sum())
    model.align(adata).to_var(full, out)
    adata.layers[layer_added] = out
    logger.info("added .layers[%r] (%d missing values filled)", layer_added, n_missing - int(np.isnan(out).sum()))
    return adata if copy else None
