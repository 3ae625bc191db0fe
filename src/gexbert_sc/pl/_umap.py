"""``pl.umap``: the UMAP of the GexBERT sample embeddings."""

from __future__ import annotations

import pandas as pd
import scanpy as sc
from anndata import AnnData

from ._utils import finish, new_axes, new_panels


def _is_boolean(col: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(col.dtype)  # numpy bool and pandas' nullable "boolean"


def _as_categorical(col: pd.Series) -> pd.Categorical:
    """A bool / nullable boolean column as a categorical of ``"True"`` / ``"False"`` (NA stays missing)."""
    labels = col.astype("boolean").astype(str).where(col.notna())
    return pd.Categorical(labels, categories=[c for c in ("False", "True") if (labels == c).any()])


def _plottable(adata: AnnData, basis: str, colors: list[str]) -> AnnData:
    """``adata``, or a light stand-in whose boolean ``.obs`` colour columns are categorical.

    scanpy cannot colour by a nullable boolean column (and draws a numpy bool one as numbers), so such columns
    are plotted as categories; the stand-in shares the matrices with ``adata`` and the user's AnnData is never
    changed.
    """
    boolean = [c for c in colors if c in adata.obs.columns and _is_boolean(adata.obs[c])]
    if not boolean:
        return adata
    obs = adata.obs.copy()
    for c in boolean:
        obs[c] = _as_categorical(obs[c])
    stand_in = AnnData(X=adata.X, obs=obs, var=adata.var, uns=dict(adata.uns), obsm={basis: adata.obsm[basis]},
                       layers=dict(adata.layers))
    if adata.raw is not None:
        stand_in.raw = adata.raw
    return stand_in


def umap(
    adata: AnnData,
    *,
    basis: str = "X_gexbert_umap",
    color: str | list[str] | None = None,
    title: str | None = None,
    ncols: int = 3,
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
        ``.obs`` column or gene to colour by, or a list of them: one panel each, in a new figure (None: no
        colouring). A boolean ``.obs`` column (numpy ``bool`` or pandas' nullable ``"boolean"``, e.g. an event
        indicator) is drawn as the categories ``"True"`` / ``"False"``, missing values grey; ``adata`` is not
        changed.
    title
        Panel title (default: says what the points are). With several colours: the figure's title, and each
        panel is titled by its colour.
    ncols
        Panels per row with several colours.
    ax
        Axes to draw one panel into (a single colour only: several colours make their own figure).
    show, return_fig, save
        As in scanpy.
    **kwargs
        Passed to :func:`scanpy.pl.embedding`.

    Returns
    -------
    The axes (a list of them with several colours), or the figure with ``return_fig``, or None when shown.
    """
    if basis not in adata.obsm:
        raise KeyError(f".obsm[{basis!r}] not found; run gexbert_sc.tl.umap(adata, key_added={basis!r}) first")
    colors = [color] if isinstance(color, str) else list(color or [])
    for c in colors:
        if not isinstance(c, str):
            raise TypeError(f"color must be a string or a list of strings, got an item {c!r}")
        if c not in adata.obs.columns and c not in adata.var_names:
            raise KeyError(f"color={c!r} is neither an .obs column nor a gene; .obs columns: {list(adata.obs.columns)}")
    if len(colors) > 1 and ax is not None:
        raise ValueError(f"ax= holds one panel, but color= names {len(colors)}; pass one colour with ax=, or leave "
                         "ax out to get a new figure with one panel per colour")
    default_title = f"GexBERT sample embeddings (n={adata.n_obs})"
    plot_adata = _plottable(adata, basis, colors)
    if len(colors) <= 1:
        fig, ax = new_axes(ax, (5.5, 4.5))
        sc.pl.embedding(plot_adata, basis=basis, color=colors[0] if colors else None, ax=ax, show=False,
                        title=title or default_title, frameon=False, **kwargs)
        return finish(fig, ax, show=show, return_fig=return_fig, save=save)
    fig, axes = new_panels(None, len(colors), ncols=ncols, panel_size=(5.5, 4.5))
    for c, panel in zip(colors, axes, strict=True):
        sc.pl.embedding(plot_adata, basis=basis, color=c, ax=panel, show=False, title=c, frameon=False, **kwargs)
    fig.suptitle(title or default_title)
    return finish(fig, axes, show=show, return_fig=return_fig, save=save)
