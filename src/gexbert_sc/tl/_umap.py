"""``tl.umap``: a UMAP of the GexBERT sample embeddings."""

from __future__ import annotations

import logging

import scanpy as sc
from anndata import AnnData

from .._validate import check_anndata

logger = logging.getLogger("gexbert_sc")


def umap(
    adata: AnnData, *, key: str = "gexbert", n_neighbors: int = 15, random_state: int = 0, copy: bool = False
) -> AnnData | None:
    """UMAP of the sample embeddings ``.obsm["X_" + key]`` (run :func:`gexbert_sc.tl.fit` first).

    Runs :func:`scanpy.pp.neighbors` on the embedding and :func:`scanpy.tl.umap` on that graph.

    Parameters
    ----------
    adata
        AnnData with ``.obsm["X_" + key]``.
    key
        The ``key_added`` of :func:`~gexbert_sc.tl.fit`.
    n_neighbors
        Neighbours in the kNN graph (cut to ``n_obs - 1`` for tiny data).
    random_state
        Seed of the layout.
    copy
        Return a modified copy instead of working in place.

    Returns
    -------
    The copy if ``copy``, else None. Adds the kNN graph (``.uns[key + "_neighbors"]``,
    ``.obsp[key + "_neighbors_distances"]``, ``.obsp[key + "_neighbors_connectivities"]``) and the
    layout ``.obsm["X_" + key + "_umap"]`` (with its parameters in ``.uns["X_" + key + "_umap"]``).
    """
    check_anndata(adata)
    rep = f"X_{key}"
    if rep not in adata.obsm:
        raise KeyError(f".obsm[{rep!r}] not found; run gexbert_sc.tl.fit(adata, key_added={key!r}) first")
    if adata.n_obs < 3:
        raise ValueError(f"a UMAP needs at least 3 samples, got {adata.n_obs}")
    if copy:
        adata = adata.copy()
    nk = f"{key}_neighbors"
    sc.pp.neighbors(adata, use_rep=rep, n_neighbors=min(n_neighbors, adata.n_obs - 1), key_added=nk, random_state=random_state)
    sc.tl.umap(adata, neighbors_key=nk, random_state=random_state, key_added=f"{rep}_umap")
    logger.info("added .obsm[%r] and the kNN graph under .uns[%r]", f"{rep}_umap", nk)
    return adata if copy else None
