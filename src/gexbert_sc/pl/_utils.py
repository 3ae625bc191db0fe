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
