"""``pl.history``: training and validation loss curves."""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from matplotlib.ticker import MaxNLocator

from ._utils import finish, new_axes


def history(
    data,
    *,
    key: str = "gexbert",
    log_y: bool = False,
    title: str | None = "GexBERT training history",
    ax=None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | None = None,
):
    """Plot the training loss and the validation MSEs per epoch, with the two phases marked.

    Parameters
    ----------
    data
        An AnnData with ``.uns[key]["history"]`` (written by :func:`gexbert_sc.tl.fit`) or a
        :class:`~gexbert_sc.GexBERT`.
    key
        The ``key_added`` of :func:`~gexbert_sc.tl.fit`.
    log_y
        Logarithmic y axis.
    title
        Axes title (None or ``""``: none).
    ax
        Axes to draw into.
    show
        Show the figure (default: when matplotlib is interactive).
    return_fig
        Return the figure instead of the axes.
    save
        Save the figure to this path.

    Returns
    -------
    The axes, or the figure with ``return_fig``, or None when shown.
    """
    if isinstance(data, AnnData):
        if key not in data.uns or "history" not in data.uns[key]:
            raise KeyError(f".uns[{key!r}]['history'] not found; run gexbert_sc.tl.fit(adata, key_added={key!r}) first")
        h = {k: np.asarray(v) for k, v in data.uns[key]["history"].items()}
    else:
        recs = getattr(data, "history", None)
        if recs is None:
            raise TypeError(f"expected an AnnData or a GexBERT, got {type(data).__name__}")
        h = {k: np.asarray([r[k] for r in recs]) for k in (recs[0] if recs else {})}
    if not h or len(h.get("epoch", [])) == 0:
        raise ValueError("the training history is empty: the model has not been trained")
    fig, ax = new_axes(ax, (6.0, 4.0))
    ep = h["epoch"] + 1
    ax.plot(ep, h["train_loss"], color="0.35", lw=1.5, label="training loss")
    ax.plot(ep, h["val_same"], color="C0", lw=1.5, label="validation: restore input genes")
    ax.plot(ep, h["val_other"], color="C3", lw=1.5, label="validation: restore other genes")
    ax.plot(ep, h["val_mean"], color="C3", lw=1, ls=":", label="validation: predict training mean")
    p2 = np.flatnonzero(h["phase"] == 2)
    if len(p2):
        ax.axvspan(ep[p2[0]] - 0.5, ep[-1] + 0.5, color="0.9", zorder=0, label="phase 2 (restore other genes)")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        ax.set_title(title)
    ax.set_ylabel("MSE (standardised units)")
    if log_y:
        ax.set_yscale("log")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize="small", title="curves and training phase", title_fontsize="small")
    return finish(fig, ax, show=show, return_fig=return_fig, save=save)
