"""``pl.umap``: the UMAP of the GexBERT sample embeddings."""

from __future__ import annotations

import scanpy as sc
from anndata import AnnData

from ._utils import finish, new_axes


def umap(
    adata: AnnData,
    *,
    basis: str = "X_gexbert_umap",
    color: str | list[str] | None = None,
    title: str | None = None,
    ax=None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | None = None,
    **kwargs,
):
    """Scatter of the layout ``.obsm[basis]`` (from :func:`gexbert_sc.tl.umap`), coloured by ``color``.

    Parameters
    ----------
    adata
        AnnData with the UMAP layout.
    basis
        The layout: the ``key_added`` of :func:`~gexbert_sc.tl.umap` (scanpy's ``basis``).
    color
        ``.obs`` column or gene to colour by (None: no colouring).
    title
        Panel title (default: says what the points are).
    ax, show, return_fig, save
        As in scanpy.
    **kwargs
        Passed to :func:`scanpy.pl.embedding`.

    Returns
    -------
    The axes, or the figure with ``return_fig``, or None when shown.
    """
    if basis not in adata.obsm:
        raise KeyError(f".obsm[{basis!r}] not found; run gexbert_sc.tl.umap(adata, key_added={basis!r}) first")
    for c in [color] if isinstance(color, str) else (color or []):
        if c not in adata.obs.columns and c not in adata.var_names:
            raise KeyError(f"color={c!r} is neither an .obs column nor a gene; .obs columns: {list(adata.obs.columns)}")
    fig, ax = new_axes(ax, (5.5, 4.5))
    sc.pl.embedding(
        adata,
        basis=basis,
        color=color,
        ax=ax,
        show=False,
        title=title or f"GexBERT sample embeddings (n={adata.n_obs})",
        frameon=False,
        **kwargs,
    )
    return finish(fig, ax, show=show, return_fig=return_fig, save=save)
