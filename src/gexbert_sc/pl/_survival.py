"""``pl.survival``: Kaplan-Meier curves of risk groups from :func:`gexbert_sc.tl.survival`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from ._utils import finish

_SPLITS = {"median": ("low risk", "high risk"), "tertiles": ("low risk", "intermediate risk", "high risk")}


def _stored(adata: AnnData, key: str) -> dict:
    if not isinstance(adata, AnnData):
        raise TypeError(f"expected an AnnData, got {type(adata).__name__}")
    if key not in adata.uns or "params" not in adata.uns[key]:
        raise KeyError(
            f".uns[{key!r}] not found; run gexbert_sc.tl.survival(adata, ..., key_added={key!r}) first"
        )
    if key + "_risk" not in adata.obs:
        raise KeyError(
            f".obs[{key + '_risk'!r}] not found; run gexbert_sc.tl.survival(adata, ..., key_added={key!r}) first"
        )
    return adata.uns[key]["params"]


def risk_groups(risk: np.ndarray, split: str) -> np.ndarray:
    """Risk group of each sample (0 = lowest): halves at the median, or thirds at the tertiles."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
    n = len(_SPLITS[split])
    ranks = pd.Series(risk).rank(method="first").to_numpy()  # ties split by order: groups of equal size
    return np.minimum((ranks - 1) * n // len(risk), n - 1).astype(int)


def _at_risk(time: np.ndarray, groups: np.ndarray, n_groups: int, ticks: np.ndarray) -> np.ndarray:
    return np.array([[int(((groups == g) & (time >= t)).sum()) for t in ticks] for g in range(n_groups)])


def survival(
    adata: AnnData,
    group: str | None = None,
    *,
    key: str = "gexbert_survival",
    split: str = "median",
    ax=None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | None = None,
):
    """Kaplan-Meier curves of the samples split by their out-of-fold risk, with the log-rank p and numbers at risk.

    Reads ``.obs[key + "_risk"]`` and the time, event and group columns named in ``.uns[key]["params"]``,
    all written by :func:`gexbert_sc.tl.survival`. The samples of ``group`` with a risk score are split at
    the median (two groups) or the tertiles (three) of their risk; each risk group's survival is estimated
    with :func:`sksurv.nonparametric.kaplan_meier_estimator` and the groups are compared with the log-rank
    test (:func:`sksurv.compare.compare_survival`). A table of the numbers at risk at the x ticks sits under
    the curves.

    Parameters
    ----------
    adata
        AnnData on which :func:`~gexbert_sc.tl.survival` ran.
    group
        The group (value of the ``groupby`` column) to plot; may be omitted when only one group was scored.
    key
        The ``key_added`` of :func:`~gexbert_sc.tl.survival`.
    split
        ``"median"`` (low / high risk) or ``"tertiles"`` (low / intermediate / high risk).
    ax
        Axes to draw the curves into; the numbers at risk go into an inset under it.
    show
        Show the figure (default: when matplotlib is interactive).
    return_fig
        Return the figure instead of the axes.
    save
        Save the figure to this path.

    Returns
    -------
    The axes of the curves, or the figure with ``return_fig``, or None when shown.
    """
    import matplotlib.pyplot as plt
    from sksurv.compare import compare_survival
    from sksurv.nonparametric import kaplan_meier_estimator
    from sksurv.util import Surv

    params = _stored(adata, key)
    names = _SPLITS.get(split)
    if names is None:
        raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
    for col in (params["time_key"], params["event_key"]):
        if col not in adata.obs:
            raise KeyError(f".obs[{col!r}] (used by tl.survival) is missing; it was removed after tl.survival ran")
    risk = adata.obs[key + "_risk"].to_numpy(dtype=float)
    scored = ~np.isnan(risk)
    groupby = params["groupby"]
    if groupby:
        if groupby not in adata.obs:
            raise KeyError(f".obs[{groupby!r}] (the groupby of tl.survival) is missing")
        labels = adata.obs[groupby].astype(object).to_numpy()
        options = sorted({str(v) for v in labels[scored]})
        if group is None:
            if len(options) != 1:
                raise ValueError(f"pass group= naming one of the scored groups of {groupby!r}: {options}")
            group = options[0]
        if str(group) not in options:
            raise KeyError(f"group {group!r} has no risk scores; scored groups of {groupby!r}: {options}")
        sel = scored & np.array([str(v) == str(group) for v in labels])
        title = f"{group}"
    else:
        sel = scored
        title = "all samples"
    time = adata.obs[params["time_key"]][sel].to_numpy(dtype=float)
    event = adata.obs[params["event_key"]][sel].astype(bool).to_numpy()
    if sel.sum() < 2 * len(names):
        raise ValueError(f"only {int(sel.sum())} scored sample(s) in {title}: too few to split into {split}")
    groups = risk_groups(risk[sel], split)
    _, p = compare_survival(Surv.from_arrays(event=event, time=time), groups)

    if ax is None:
        fig, (ax, ax_risk) = plt.subplots(2, 1, figsize=(5.5, 5.0), height_ratios=[4, 1], layout="constrained")
    else:
        fig = ax.figure
        ax_risk = ax.inset_axes([0.0, -0.5, 1.0, 0.25])
    colors = ["C0", "C1", "C3"] if len(names) == 3 else ["C0", "C3"]
    for g, name in enumerate(names):
        m = groups == g
        t, s = kaplan_meier_estimator(event[m], time[m])
        t = np.concatenate([[0.0], t])
        s = np.concatenate([[1.0], s])
        label = f"{name} (n = {int(m.sum())}, {int(event[m].sum())} events)"
        ax.step(t, s, where="post", color=colors[g], lw=1.6, label=label)
        cens = m & ~event
        if cens.any():
            at = s[np.searchsorted(t, time[cens], side="right") - 1]  # the curve's value at each censoring time
            ax.plot(time[cens], at, "|", color=colors[g], ms=6, mew=1)
    unit = params.get("time_unit", "") or ""
    xlabel = f"time ({unit})" if unit else "time"
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.set_ylabel("survival probability")
    ax.set_title(f"{title}: log-rank p = {p:.2g}")
    ax.legend(title=f"risk group ({split} split of out-of-fold risk)", frameon=False, fontsize="small",
              title_fontsize="small", loc="best")
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_xlabel(xlabel)

    ticks = [t for t in ax.get_xticks() if 0 <= t <= time.max()]
    counts = _at_risk(time, groups, len(names), np.asarray(ticks))
    for g in range(len(names)):
        for t, c in zip(ticks, counts[g], strict=True):
            ax_risk.text(t, len(names) - 1 - g, str(c), ha="center", va="center", fontsize="small", color=colors[g])
    ax_risk.set_xlim(ax.get_xlim())
    ax_risk.set_ylim(-0.6, len(names) - 0.4)
    ax_risk.set_yticks(range(len(names)), [names[len(names) - 1 - i] for i in range(len(names))], fontsize="small")
    ax_risk.tick_params(axis="y", length=0, pad=14)
    ax_risk.set_xticks([])
    ax_risk.set_title(f"number at risk (at the {xlabel} ticks above)", fontsize="small", loc="left")
    ax_risk.spines[["top", "right", "left", "bottom"]].set_visible(False)
    return finish(fig, ax, show=show, return_fig=return_fig, save=save)
