"""``pl.classification``: confusion matrix and per-class recall from :func:`gexbert_sc.tl.classify`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from ._utils import check_figure, finish


def _confusion(adata: AnnData, key: str) -> pd.DataFrame:
    if not isinstance(adata, AnnData):
        raise TypeError(f"expected an AnnData, got {type(adata).__name__}")
    if key not in adata.uns or "confusion_matrix" not in adata.uns[key]:
        raise KeyError(
            f".uns[{key!r}]['confusion_matrix'] not found; run gexbert_sc.tl.classify(adata, ..., key_added={key!r}) "
            "first"
        )
    cm = adata.uns[key]["confusion_matrix"]
    if not isinstance(cm, pd.DataFrame):  # written by hand or by an older version
        classes = [str(c) for c in adata.uns[key].get("classes", range(len(cm)))]
        cm = pd.DataFrame(np.asarray(cm), index=classes, columns=classes)
    return cm


def classification(
    adata: AnnData,
    *,
    key: str = "gexbert_classify",
    ax=None,
    fig=None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | None = None,
):
    """Confusion matrix (row-normalised colours, annotated with counts) and per-class recall of :func:`gexbert_sc.tl.classify`.

    Reads ``.uns[key]["confusion_matrix"]`` (true classes x predicted classes, counts over the predicted
    samples) and the metrics stored beside it.

    Parameters
    ----------
    adata
        AnnData on which :func:`~gexbert_sc.tl.classify` ran.
    key
        The ``key_added`` of :func:`~gexbert_sc.tl.classify`.
    ax
        None (a new figure with both panels), a sequence of two Axes (confusion matrix, recall), or one
        Axes (the confusion matrix only).
    fig
        An empty Figure or SubFigure to draw both panels into (instead of ``ax``).
    show
        Show the figure (default: when matplotlib is interactive).
    return_fig
        Return the figure instead of the axes.
    save
        Save the figure to this path.

    Returns
    -------
    The list of axes drawn into (or the one Axes given), or the figure with ``return_fig``, or None when shown.
    """
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    cm = _confusion(adata, key)
    uns = adata.uns[key]
    params = uns.get("params", {})
    counts = cm.to_numpy(dtype=float)
    classes = [str(c) for c in cm.index]
    n_true = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n_true[:, None] > 0, counts / n_true[:, None], np.nan)
    recall = np.diag(frac)

    check_figure(fig)
    if fig is not None and ax is not None:
        raise ValueError("pass ax= or fig=, not both")
    single = isinstance(ax, Axes)
    if ax is None:
        n = len(classes)
        width = 4.0 + 0.45 * n
        if fig is None:
            fig = plt.figure(figsize=(width + 3.0, max(3.5, 0.4 * n + 2.0)), layout="constrained")
        ax_cm, ax_rec = fig.subplots(1, 2, width_ratios=[width, 3.0])
    elif single:
        fig, ax_cm, ax_rec = ax.figure, ax, None
    else:
        try:
            ax_cm, ax_rec = ax
        except (TypeError, ValueError):
            raise TypeError("ax must be None, one matplotlib Axes or a pair of Axes") from None
        fig = ax_cm.figure

    im = ax_cm.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if counts[i, j] > 0:
                dark = frac[i, j] > 0.6
                ax_cm.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize="small",
                           color="white" if dark else "black")
    ax_cm.set_xticks(range(len(classes)), classes, rotation=90 if max(map(len, classes)) > 3 else 0)
    ax_cm.set_yticks(range(len(classes)), classes)
    ax_cm.set_xlabel("predicted class")
    groupby = params.get("groupby", "")
    ax_cm.set_ylabel(f"true class ({groupby})" if groupby else "true class")
    method = params.get("method", "")
    acc = uns.get("accuracy", float("nan"))
    ax_cm.set_title(f"{method + ': ' if method else ''}accuracy {acc:.3f}, balanced {uns.get('balanced_accuracy', float('nan')):.3f}")
    cbar = fig.colorbar(im, ax=ax_cm, shrink=0.8)
    cbar.set_label("fraction of the true class (row-normalised)")

    if ax_rec is not None:
        y = np.arange(len(classes))
        ax_rec.barh(y, np.nan_to_num(recall), color="C0")
        for yi, r in zip(y, recall, strict=True):
            if np.isfinite(r):
                ax_rec.text(min(r + 0.02, 0.98), yi, f"{r:.2f}", va="center", ha="left" if r < 0.85 else "right",
                            fontsize="small", color="black" if r < 0.85 else "white")
        ax_rec.set_yticks(y, classes)
        ax_rec.set_ylim(len(classes) - 0.5, -0.5)  # same order as the matrix rows
        ax_rec.set_xlim(0, 1)
        ax_rec.axvline(1 / len(classes), color="0.5", ls=":", lw=1, label=f"chance (1/{len(classes)})")
        ax_rec.set_xlabel("recall (fraction of the class predicted correctly)")
        ax_rec.set_ylabel("true class")
        ax_rec.set_title(f"per-class recall, macro F1 {uns.get('macro_f1', float('nan')):.3f}")
        ax_rec.legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(0.0, -0.12))
        ax_rec.spines[["top", "right"]].set_visible(False)
    drawn = ax_cm if single else [ax_cm, ax_rec]
    return finish(fig, drawn, show=show, return_fig=return_fig, save=save)
