"""``pl.attention_umap``: each group's most attended genes on the UMAP of the learned gene embeddings."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.lines import Line2D

from ._utils import check_figure, finish, new_panels


def attention_umap(
    adata: AnnData,
    *,
    groups: str | list[str] | None = None,
    top_n: int = 512,
    key: str = "gexbert_attention",
    basis: str = "X_gexbert_gene_umap",
    cluster: bool = True,
    ncols: int | None = None,
    cmap: str = "viridis",
    log_color: bool = True,
    size: float | None = None,
    title: str | None = None,
    fig=None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | None = None,
):
    """One panel per group: the gene-embedding UMAP with the group's ``top_n`` most attended genes coloured by score.

    The paper's Figure 5. Every panel shows all genes placed by :func:`gexbert_sc.tl.gene_umap` as
    small grey points; the group's ``top_n`` genes with the highest attention score
    (``.varm[key][group]`` from :func:`gexbert_sc.tl.attention`) are drawn on top, coloured on one
    colour scale shared by all panels (highest scores drawn last). With ``cluster`` and more than two
    groups, the panels are ordered so that groups with similar attention sit side by side: the
    groups' score vectors (over the genes scored in every shown group) are compared by Spearman
    correlation, and the panels follow the leaf order (:func:`scipy.cluster.hierarchy.leaves_list`,
    optimal ordering) of an average-linkage clustering on ``1 - rho``. Each panel after the first
    states its Spearman rho with the panel before it.

    Parameters
    ----------
    adata
        AnnData with ``.varm[key]`` (:func:`~gexbert_sc.tl.attention`) and ``.varm[basis]``
        (:func:`~gexbert_sc.tl.gene_umap`); no model is needed.
    groups
        Groups (columns of ``.varm[key]``) to show; all if None.
    top_n
        Genes highlighted per group (fewer where fewer genes have a score and a position).
    key
        The ``key_added`` of :func:`~gexbert_sc.tl.attention`.
    basis
        The ``key_added`` of :func:`~gexbert_sc.tl.gene_umap`.
    cluster
        Order the panels by the clustering above; False keeps the order of ``groups``.
    ncols
        Panels per row (default: all in one row up to 4 panels, else ``ceil(sqrt(n_panels))``).
    cmap
        Colour map of the scores.
    log_color
        Logarithmic colour scale (the scores are positive and skewed: a few genes can take several
        times the attention of the rest, and on a linear scale they flatten every other panel).
    size
        Marker size of the highlighted genes (the others are a third of it); default from the number of genes.
    title
        Figure title (default: says what is shown).
    fig
        An empty matplotlib Figure or SubFigure to draw into (default: a new figure).
    show, return_fig, save
        As in scanpy.

    Returns
    -------
    The list of axes (in panel order), or the figure with ``return_fig``, or None when shown.
    """
    scores = _attention_table(adata, key)
    if basis not in adata.varm:
        raise KeyError(f".varm[{basis!r}] not found; run gexbert_sc.tl.gene_umap(adata, model=model, "
                       f"key_added={basis!r}) first")
    groups = _check_groups(scores, groups, key)
    if isinstance(top_n, bool) or not isinstance(top_n, int | np.integer) or top_n < 1:
        raise ValueError(f"top_n must be a positive integer, got {top_n!r}")
    if size is not None and not size > 0:
        raise ValueError(f"size must be positive, got {size!r}")
    check_figure(fig)
    coords = np.asarray(adata.varm[basis], dtype=float)
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise ValueError(f".varm[{basis!r}] must have two columns (a 2-D layout), got shape {coords.shape}")
    coords = coords[:, :2]
    placed = np.isfinite(coords).all(axis=1)
    if not placed.any():
        raise ValueError(f".varm[{basis!r}] places no gene (all NaN)")

    order = cluster_order(scores[groups]) if cluster else list(range(len(groups)))
    groups = [groups[i] for i in order]
    values = scores[groups].to_numpy(dtype=float)
    rho_prev = [np.nan] + [_spearman(values[:, i - 1], values[:, i]) for i in range(1, len(groups))]
    top = []
    for j in range(len(groups)):
        cand = np.flatnonzero(placed & np.isfinite(values[:, j]))
        n_hi = min(int(top_n), len(cand))
        best = cand[np.argsort(-values[cand, j], kind="stable")[:n_hi]]
        top.append(best[np.argsort(values[best, j], kind="stable")])  # highest drawn last
    shown = np.concatenate([values[t, j] for j, t in enumerate(top)])
    lo, hi = (float(np.nanmin(shown)), float(np.nanmax(shown))) if len(shown) else (0.0, 1.0)
    norm = LogNorm(lo, hi) if log_color and lo > 0 else Normalize(lo, hi)
    n_samples = _samples_per_group(adata, key)

    size = float(size) if size is not None else float(np.clip(20_000 / placed.sum(), 4.0, 24.0))
    if ncols is None:
        ncols = len(groups) if len(groups) <= 4 else math.ceil(math.sqrt(len(groups)))
    elif isinstance(ncols, bool) or not isinstance(ncols, int | np.integer) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    fig, axes = new_panels(fig, len(groups), ncols=ncols, panel_size=(3.6, 3.4), extra_width=1.0)
    rest_colour = "0.82"
    for j, (ax, g) in enumerate(zip(axes, groups, strict=True)):
        others = np.setdiff1d(np.flatnonzero(placed), top[j])
        ax.scatter(coords[others, 0], coords[others, 1], s=size / 3, c=rest_colour, linewidths=0, rasterized=True)
        ax.scatter(coords[top[j], 0], coords[top[j], 1], s=size, c=values[top[j], j], cmap=cmap, norm=norm,
                   linewidths=0, rasterized=True)
        n = n_samples.get(g)
        ax.set_title(f"{g} (n={n})" if n is not None else str(g), fontsize="medium")
        ax.set_xlabel("gene UMAP 1")
        ax.set_ylabel("gene UMAP 2")
        ax.set_xticks([])
        ax.set_yticks([])
        if j and np.isfinite(rho_prev[j]):
            ax.text(0.02, 0.02, f"Spearman ρ with previous panel: {rho_prev[j]:.2f}", transform=ax.transAxes,
                    fontsize="x-small", color="0.25", va="bottom")
    cbar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.85, aspect=30)
    cbar.set_label("attention score\n(mean cls→gene weight" + (", log scale)" if isinstance(norm, LogNorm) else ")"))
    n_hi_max = max(len(t) for t in top)
    handles = [
        Line2D([], [], ls="", marker="o", ms=4, mfc=plt.get_cmap(cmap)(0.75), mec="none",
               label=f"top {n_hi_max} genes by attention in the group"),
        Line2D([], [], ls="", marker="o", ms=3, mfc=rest_colour, mec="none", label="other genes"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False, fontsize="small", title="points")
    if title is None:
        title = f"Most attended genes on the UMAP of GexBERT gene embeddings ({int(placed.sum())} genes)"
        if cluster and len(groups) > 2:
            title += "\npanels ordered by average-linkage clustering of the groups' attention (1 − Spearman ρ)"
    fig.suptitle(title)
    return finish(fig.figure, axes, show=show, return_fig=return_fig, save=save)


def _attention_table(adata: AnnData, key: str) -> pd.DataFrame:
    """``.varm[key]`` as a DataFrame (genes x groups); KeyError naming :func:`~gexbert_sc.tl.attention` when absent."""
    if key not in adata.varm:
        raise KeyError(f".varm[{key!r}] not found; run gexbert_sc.tl.attention(adata, model=model, groupby=..., "
                       f"key_added={key!r}) first")
    table = adata.varm[key]
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f".varm[{key!r}] must be a DataFrame (genes x groups) as gexbert_sc.tl.attention writes it, "
                        f"got {type(table).__name__}")
    return table


def _check_groups(scores: pd.DataFrame, groups, key: str) -> list[str]:
    available = [str(c) for c in scores.columns]
    if groups is None:
        return available
    groups = [groups] if isinstance(groups, str) else [str(g) for g in groups]
    if not groups:
        raise ValueError("groups is empty; pass None for all groups")
    unknown = [g for g in groups if g not in available]
    if unknown:
        raise KeyError(f"group(s) {unknown} not in .varm[{key!r}]; its groups are {available}")
    if len(set(groups)) < len(groups):
        raise ValueError(f"groups repeat: {groups}")
    return groups


def _samples_per_group(adata: AnnData, key: str) -> dict[str, int]:
    info = adata.uns.get(key, {})
    if "groups" not in info or "n_samples" not in info:
        return {}
    return {str(g): int(n) for g, n in zip(info["groups"], info["n_samples"], strict=False)}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(a[ok], b[ok]).statistic)


def cluster_order(table: pd.DataFrame) -> list[int]:
    """Leaf order of an average-linkage clustering of ``table``'s columns on ``1 - Spearman rho`` (genes scored in every column); the given order for fewer than 3 columns or 3 such genes."""
    values = table.to_numpy(dtype=float)
    ok = np.isfinite(values).all(axis=1)
    k = values.shape[1]
    if k < 3 or ok.sum() < 3:
        return list(range(k))
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform
    from scipy.stats import rankdata

    ranks = rankdata(values[ok], axis=0)
    rho = np.corrcoef(ranks, rowvar=False)
    dist = np.clip(1.0 - np.nan_to_num(rho, nan=0.0), 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    dist = (dist + dist.T) / 2
    return [int(i) for i in leaves_list(linkage(squareform(dist, checks=False), method="average", optimal_ordering=True))]
