"""``pp.log_normalize``: counts to log1p counts-per-target, keeping the counts."""

from __future__ import annotations

import logging

import scanpy as sc
from anndata import AnnData

from .._validate import check_anndata

logger = logging.getLogger("gexbert_sc")


def log_normalize(
    adata: AnnData, *, target_sum: float = 1e6, counts_layer: str | None = "counts", copy: bool = False
) -> AnnData | None:
    """Normalise read counts to ``target_sum`` per sample and take ``log1p``, as GexBERT expects.

    A thin wrapper of :func:`scanpy.pp.normalize_total` and :func:`scanpy.pp.log1p` that first
    keeps the raw counts in ``.layers[counts_layer]``.

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
    The copy if ``copy``, else None. Changes ``.X``; adds ``.layers[counts_layer]`` and
    ``.uns["log1p"]``.
    """
    check_anndata(adata)
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
