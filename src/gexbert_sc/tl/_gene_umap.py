"""``tl.gene_umap``: the learned gene embeddings and their UMAP layout."""

from __future__ import annotations

import logging
import warnings

import numpy as np
from anndata import AnnData

from gexbert_sc._validate import check_anndata

from ._threads import keep_torch_threads

logger = logging.getLogger("gexbert_sc")


def gene_umap(
    adata: AnnData,
    *,
    model,
    n_neighbors: int = 15,
    min_dist: float = 0.3,
    metric: str = "euclidean",
    random_state: int = 0,
    embedding_key: str = "gexbert_gene_embedding",
    key_added: str = "X_gexbert_gene_umap",
    copy: bool = False,
) -> AnnData | None:
    """UMAP of the model's learned gene embeddings, one point per gene of ``adata``.

    A gene's embedding is its row of the token table ``model.module.tokens.gene`` (the vector added
    to every token of that gene, before the value's level embedding). The layout is computed with
    umap-learn on the genes the model knows, seeded (``random_state``; umap-learn then runs on one
    thread, so the layout is reproducible). Torch's thread count (:func:`torch.get_num_threads`) is the same
    afterwards, although numba, which umap-learn uses, resets it the first time it runs.

    Parameters
    ----------
    adata
        AnnData whose genes (``var_names``) are placed; genes the model lacks get NaN rows.
    model
        A :class:`~gexbert_sc.GexBERT` (trained: an untrained model's embeddings are random).
    n_neighbors
        UMAP neighbours (cut to the number of known genes - 1).
    min_dist
        UMAP minimum distance between points of the layout.
    metric
        Distance between gene embeddings (any metric umap-learn accepts, e.g. ``"cosine"``).
    random_state
        Seed of the layout.
    embedding_key
        The embeddings go to ``.varm[embedding_key]``.
    key_added
        The layout goes to ``.varm[key_added]``, the parameters to ``.uns[key_added]["params"]``.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    The copy if ``copy``, else None. Adds:

    ``.varm[embedding_key]``
        float32 ``(n_vars, d_model)``: the gene embeddings (NaN rows for genes the model lacks).
    ``.varm[key_added]``
        float32 ``(n_vars, 2)``: the UMAP layout (NaN rows for genes the model lacks).
    ``.uns[key_added]``
        ``params``: ``n_neighbors`` (as used), ``min_dist``, ``metric``, ``random_state``,
        ``embedding_key``, ``n_genes`` (genes placed).

    Examples
    --------
    >>> import gexbert_sc as gb
    >>> adata = gb.datasets.synthetic()
    >>> model = gb.tl.fit(adata)
    >>> gb.tl.gene_umap(adata, model=model)
    """
    from gexbert_sc.model import GexBERT

    check_anndata(adata)
    if not isinstance(model, GexBERT):
        raise TypeError(f"model must be a gexbert_sc.GexBERT, got {type(model).__name__}")
    for name, key in (("key_added", key_added), ("embedding_key", embedding_key)):
        if not isinstance(key, str) or not key:
            raise ValueError(f"{name} must be a non-empty string")
    if key_added == embedding_key:
        raise ValueError(f"key_added and embedding_key must differ, both are {key_added!r}")
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int | np.integer) or n_neighbors < 2:
        raise ValueError(f"n_neighbors must be an integer >= 2, got {n_neighbors!r}")
    if not isinstance(min_dist, int | float) or not 0 <= min_dist:
        raise ValueError(f"min_dist must be a number >= 0, got {min_dist!r}")
    if not isinstance(random_state, int | np.integer):
        raise TypeError(f"random_state must be an int, got {type(random_state).__name__}")
    if not model.is_trained:
        warnings.warn("this GexBERT has not been trained: its gene embeddings are random. Train it first "
                      "(gexbert_sc.tl.fit or model.train())", UserWarning, stacklevel=2)
    align = model.align(adata)
    if align.n_known < 4:
        raise ValueError(f"only {align.n_known} of the AnnData's genes are in the model's vocabulary; a gene UMAP "
                         "needs at least 4")

    table = model.module.tokens.gene.weight.detach().float().cpu().numpy()  # (n_vocab, d_model)
    emb = np.full((adata.n_vars, table.shape[1]), np.nan, dtype=np.float32)
    have = align.present
    emb[align.columns[have]] = table[have]
    known = np.flatnonzero(~np.isnan(emb).any(axis=1))
    k = int(min(n_neighbors, len(known) - 1))

    with keep_torch_threads(), warnings.catch_warnings():  # numba would otherwise change torch's thread count
        import umap

        reducer = umap.UMAP(n_neighbors=k, min_dist=float(min_dist), metric=metric, random_state=int(random_state),
                            n_jobs=1)
        warnings.filterwarnings("ignore", message=".*n_jobs.*")  # seeded UMAP runs on one thread: intended
        warnings.filterwarnings("ignore", message=".*gradient function is not yet implemented.*")
        layout = reducer.fit_transform(emb[known])
    coords = np.full((adata.n_vars, 2), np.nan, dtype=np.float32)
    coords[known] = layout

    if copy:
        adata = adata.copy()
    adata.varm[embedding_key] = emb
    adata.varm[key_added] = coords
    adata.uns[key_added] = {
        "params": {
            "n_neighbors": k,
            "min_dist": float(min_dist),
            "metric": str(metric),
            "random_state": int(random_state),
            "embedding_key": embedding_key,
            "n_genes": len(known),
        }
    }
    logger.info("added .varm[%r] (gene embeddings, %d x %d), .varm[%r] (UMAP of %d genes) and .uns[%r]",
                embedding_key, *emb.shape, key_added, len(known), key_added)
    return adata if copy else None
