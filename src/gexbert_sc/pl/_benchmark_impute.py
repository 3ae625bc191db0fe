"""``pl.benchmark_impute``: the imputation benchmark, methods side by side."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData

from gexbert_sc.pl._utils import finish

METRICS = {"rmse_ratio": "RMSE / mean-filling RMSE", "rmse": "RMSE (standardised units)",
           "pearson": "median per-gene Pearson r", "coverage": "interval coverage", "seconds": "seconds"}


def benchmark_impute(
    adata: AnnData,
    *,
    key: str = "gexbert_benchmark_impute",
    metric: str = "rmse_ratio",
    ax=None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | None = None,
):
    """Plot the results of :func:`gexbert_sc.tl.benchmark_impute`.

    One panel per mechanism, the rate on the x axis, one line per method (mean and sd over repeats).

    Parameters
    ----------
    adata
        AnnData with ``.uns[key]["results"]``.
    key
        The ``key_added`` of :func:`~gexbert_sc.tl.benchmark_impute`.
    metric
        ``"rmse_ratio"`` (default; below 1 beats filling with gene means), ``"rmse"``, ``"pearson"``,
        ``"coverage"`` (with the nominal level as a dashed line) or ``"seconds"``.
    ax
        Axes to draw into (one mechanism only), else a new figure.
    show, return_fig, save
        As in scanpy.

    Returns
    -------
    The axes (a list with several mechanisms), or the figure with ``return_fig``, or None when shown.
    """
    if key not in adata.uns or "results" not in adata.uns[key]:
        raise KeyError(f".uns[{key!r}]['results'] not found; run gexbert_sc.tl.benchmark_impute(adata) first")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)}")
    df = pd.DataFrame(adata.uns[key]["results"])
    mechs = list(dict.fromkeys(df["mechanism"].astype(str)))
    if ax is not None and len(mechs) > 1:
        raise ValueError(f"the results hold {len(mechs)} mechanisms: pass ax=None for one panel each")
    if ax is None:
        fig, axes = plt.subplots(1, len(mechs), figsize=(4.2 * len(mechs) + 1.6, 3.8), squeeze=False,
                                 layout="constrained", sharey=metric != "seconds")
        axes = list(axes[0])
    else:
        fig, axes = ax.figure, [ax]
    methods = list(dict.fromkeys(df["method"].astype(str)))
    for a, mech in zip(axes, mechs, strict=True):
        d = df[df["mechanism"].astype(str) == mech]
        for i, m in enumerate(methods):
            g = d[d["method"].astype(str) == m].groupby("rate")[metric].agg(["mean", "std"]).reset_index()
            a.errorbar(g["rate"], g["mean"], yerr=g["std"].fillna(0), marker="o", ms=4, capsize=2, lw=1.5,
                       color=f"C{i}", label=m)
        if metric == "rmse_ratio":
            a.axhline(1.0, color="0.6", lw=0.8, ls=":")
        if metric == "coverage":
            nominal = float(adata.uns[key].get("params", {}).get("interval", np.nan))
            if np.isfinite(nominal) and nominal > 0:
                a.axhline(nominal, color="0.4", lw=1, ls="--", label=f"nominal {nominal:.0%}")
        a.set_xlabel("fraction hidden")
        a.set_title(f"{mech} (n repeats = {int(d['repeat'].nunique())})")
        a.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel(METRICS[metric])
    if metric == "seconds":
        for a in axes:
            a.set_yscale("log")
    axes[-1].legend(title="method", frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Imputation benchmark: the same hidden entries for every method")
    return finish(fig, axes if len(axes) > 1 else axes[0], show=show, return_fig=return_fig, save=save)
