"""``tl.umap``: a UMAP of the GexBERT sample embeddings."""

from __future__ import annotations

import logging

import scanpy as sc
from anndata import AnnData

from gexbert_sc._validate import check_anndata

from ._threads import keep_torch_threads

logger = logging.getLogger("gexbert_sc")


def umap(
    adata: AnnData,
    *,
    use_rep: str = "X_gexbert",
    key_added: str = "X_gexbert_umap",
    neighbors_key: str = "gexbert_neighbors",
    n_neighbors: int = 15,
    random_state: int = 0,
    copy: bool = False,
) -> AnnData | None:
    """UMAP of the sample embeddings ``.obsm[use_rep]`` (run :func:`gexbert_sc.tl.fit` first).

    Runs :func:`scanpy.pp.neighbors` on the embedding and :func:`scanpy.tl.umap` on that graph. As in
    scanpy, the input (``use_rep``) and the outputs (``neighbors_key``, ``key_added``) are named apart, so
    the graph and layout of the GexBERT embedding never replace scanpy's default ``"neighbors"`` and
    ``"X_umap"``. Torch's thread count (:func:`torch.get_num_threads`) is the same afterwards, although numba,
    which scanpy uses, resets it the first time it runs.

    Parameters
    ----------
    adata
        AnnData with ``.obsm[use_rep]``.
    use_rep
        The embedding to use: ``"X_" + key_added`` of :func:`~gexbert_sc.tl.fit`.
    key_added
        The layout goes to ``.obsm[key_added]``, its parameters to ``.uns[key_added]``.
    neighbors_key
        The kNN graph goes to ``.uns[neighbors_key]``, ``.obsp[neighbors_key + "_distances"]`` and
        ``.obsp[neighbors_key + "_connectivities"]``.
    n_neighbors
        Neighbours in the kNN graph (cut to ``n_obs - 1`` for tiny data).
    random_state
        Seed of the layout.
    copy
        Return a modified copy instead of working in place.

    Returns
    -------
    The copy if ``copy``, else None.
    """
    check_anndata(adata)
    if use_rep not in adata.obsm:
        raise KeyError(f".obsm[{use_rep!r}] not found (.obsm has {list(adata.obsm)}); run gexbert_sc.tl.fit(adata) "
                       "first, or pass use_rep= naming the embedding")
    if adata.n_obs < 3:
        raise ValueError(f"a UMAP needs at least 3 samples, got {adata.n_obs}")
    if copy:
        adata = adata.copy()
    with keep_torch_threads():  # numba would otherwise change torch's thread count
        sc.pp.neighbors(adata, use_rep=use_rep, n_neighbors=min(n_neighbors, adata.n_obs - 1),
                        key_added=neighbors_key, random_state=random_state)
        sc.tl.umap(adata, neighbors_key=neighbors_key, random_state=random_state, key_added=key_added)
    logger.info("added .obsm[%r] and the kNN graph under .uns[%r]", key_added, neighbors_key)
    return adata if copy else None
