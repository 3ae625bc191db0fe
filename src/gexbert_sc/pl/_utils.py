"""Shared plumbing of the plotting functions (scanpy's show/ax/return_fig/save convention)."""

from __future__ import annotations

import matplotlib.pyplot as plt


def new_axes(ax, figsize=(5.0, 4.0)):
    """Return (fig, ax): the given axes' figure, or a new figure."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def finish(fig, ax, *, show: bool | None, return_fig: bool, save: str | None):
    """Save, show, and return what scanpy's plotting functions return."""
    if save:
        fig.savefig(save, dpi=150, bbox_inches="tight")
    if return_fig:
        return fig
    if show is None:
        show = plt.isinteractive()
    if show:
        plt.show()
        return None
    return ax


def new_panels(fig, n_panels: int, *, ncols: int | None = None, panel_size=(4.0, 3.6), extra_width: float = 0.0):
    """Return (fig, axes): ``n_panels`` axes in a grid of ``ncols`` columns, in ``fig`` (a Figure or SubFigure) or a new figure.

    ``extra_width`` (inches) is added to a new figure's width, e.g. for a colour bar.
    """
    ncols = max(1, min(n_panels, ncols or n_panels))
    nrows = -(-n_panels // ncols)
    if fig is None:
        fig = plt.figure(figsize=(panel_size[0] * ncols + extra_width, panel_size[1] * nrows), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False)
    axes = list(grid.ravel())
    for extra in axes[n_panels:]:
        extra.remove()
    return fig, axes[:n_panels]


def check_figure(fig) -> None:
    """Raise ``TypeError`` unless ``fig`` is None or a matplotlib Figure/SubFigure without axes."""
    from matplotlib.figure import FigureBase

    if fig is None:
        return
    if not isinstance(fig, FigureBase):
        raise TypeError(f"fig must be a matplotlib Figure or SubFigure, got {type(fig).__name__}")
    if fig.axes:
        raise ValueError("fig already has axes; pass an empty Figure or SubFigure (e.g. plt.figure() or fig.subfigures())")
