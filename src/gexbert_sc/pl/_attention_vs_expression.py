"""``pl.attention_vs_expression``: within one group, attention against the size and spread of the genes' z-scores."""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from matplotlib.lines import Line2D

from ._attention_umap import _attention_table, _check_groups, _samples_per_group
from ._utils import check_figure, finish, new_panels


def attention_vs_expression(
    adata: AnnData,
    group: str | None = None,
    *,
    key: str = "gexbert_attention",
    log_y: bool = False,
    n_bins: int = 10,
    size: float | None = None,
    title: str | None = None,
    fig=None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | None = None,
):
    """Attention score of each gene against ``|mean z|`` and against the sd of z within one group (the paper's Figure 6).

    ``z`` are the model-standardised values (each gene's training mean and sd), so ``|mean z|`` says
    how far the group sits from the training cohort's mean in that gene and ``sd z`` how much the
    gene varies within the group. Both, and the scores, are read from the keys that
    :func:`gexbert_sc.tl.attention` wrote (``.varm[key]``, ``.varm[key + "_mean_z"]``,
    ``.varm[key + "_sd_z"]``); no model is needed. Each panel shows one point per gene with a score,
    the median score within ``n_bins`` equal-count bins of the x axis, and the Spearman correlation
    (rho, two-sided p, number of genes).

    Parameters
    ----------
    adata
        AnnData with the keys of :func:`~gexbert_sc.tl.attention`.
    group
        The group (a column of ``.varm[key]``); may be None when there is only one.
    key
        The ``key_added`` of :func:`~gexbert_sc.tl.attention`.
    log_y
        Logarithmic y axis (the scores are positive and often skewed).
    n_bins
        Equal-count bins of x for the median line.
    size
        Marker size (default from the number of genes).
    title
        Figure title (default: names the group).
    fig
        An empty matplotlib Figure or SubFigure to draw the two panels into (default: a new figure).
    show, return_fig, save
        As in scanpy.

    Returns
    -------
    The two axes, or the figure with ``return_fig``, or None when shown.
    """
    scores = _attention_table(adata, key)
    tables = {}
    for suffix in ("_mean_z", "_sd_z"):
        if key + suffix not in adata.varm:
            raise KeyError(f".varm[{key + suffix!r}] not found; run gexbert_sc.tl.attention(adata, model=model, "
                           f"groupby=..., key_added={key!r}) first")
        tables[suffix] = _attention_table(adata, key + suffix)
    if group is None:
        if scores.shape[1] != 1:
            raise ValueError(f"pass group=, one of {[str(c) for c in scores.columns]}")
        group = str(scores.columns[0])
    (group,) = _check_groups(scores, [group], key)
    for suffix, t in tables.items():
        if group not in [str(c) for c in t.columns]:
            raise KeyError(f"group {group!r} is not in .varm[{key + suffix!r}]; rerun gexbert_sc.tl.attention")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    check_figure(fig)
    y = scores[group].to_numpy(dtype=float)
    xs = {
        "abs_mean": np.abs(tables["_mean_z"][group].to_numpy(dtype=float)),
        "sd": tables["_sd_z"][group].to_numpy(dtype=float),
    }
    ok = np.isfinite(y) & np.isfinite(xs["abs_mean"]) & np.isfinite(xs["sd"])
    if log_y:
        ok &= y > 0
    if ok.sum() < 3:
        raise ValueError(f"only {int(ok.sum())} genes of group {group!r} have a score and z moments; need 3")
    size = float(size) if size is not None else float(np.clip(6_000 / ok.sum(), 1.5, 16.0))

    from scipy.stats import spearmanr

    n = _samples_per_group(adata, key).get(group)
    fig, axes = new_panels(fig, 2, ncols=2, panel_size=(4.6, 4.0))
    labels = {
        "abs_mean": ("|mean z| within the group", "attention vs |mean z|"),
        "sd": ("sd of z within the group", "attention vs sd of z"),
    }
    for ax, (name, x) in zip(axes, xs.items(), strict=True):
        xo, yo = x[ok], y[ok]
        ax.scatter(xo, yo, s=size, c="C0", alpha=0.5, linewidths=0, rasterized=True)
        edges = np.unique(np.quantile(xo, np.linspace(0, 1, int(n_bins) + 1)))
        if len(edges) > 2:
            which = np.clip(np.searchsorted(edges, xo, side="right") - 1, 0, len(edges) - 2)
            mids = [np.median(xo[which == b]) for b in range(len(edges) - 1) if (which == b).any()]
            meds = [np.median(yo[which == b]) for b in range(len(edges) - 1) if (which == b).any()]
            ax.plot(mids, meds, color="C3", lw=2, marker="o", ms=4, label="binned medians")
        res = spearmanr(xo, yo)
        ax.text(0.03, 0.97, f"Spearman ρ = {res.statistic:.2f}\np = {res.pvalue:.1e}\n{len(xo):,} genes",
                transform=ax.transAxes, va="top", ha="left", fontsize="small",
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.9})
        ax.set_xlabel(labels[name][0])
        ax.set_ylabel("attention score\n(mean cls→gene weight)")
        ax.set_title(labels[name][1], fontsize="medium")
        if log_y:
            ax.set_yscale("log")
        ax.spines[["top", "right"]].set_visible(False)
    handles = [
        Line2D([], [], ls="", marker="o", ms=4, mfc="C0", mec="none", alpha=0.6, label="genes"),
        Line2D([], [], color="C3", lw=2, marker="o", ms=4, label=f"median score in {int(n_bins)} equal-count bins of x"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False, fontsize="small",
               title="one point per gene; line: binned medians", title_fontsize="small")
    if title is None:
        title = f"Attention against expression within {group}" + (f" (n={n} samples)" if n is not None else "")
    fig.suptitle(title)
    return finish(fig.figure, axes, show=show, return_fig=return_fig, save=save)
