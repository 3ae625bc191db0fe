"""``pl.imputation``: imputed against true values, and whether the intervals cover as promised."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from anndata import AnnData

from gexbert_sc.pl._utils import finish


def imputation(
    adata: AnnData,
    *,
    key: str = "gexbert_imputed",
    truth_layer: str = "simulated_truth",
    mask_layer: str = "simulated_mask",
    show: bool | None = None,
    return_fig: bool = False,
    save: str | None = None,
):
    """Imputed against true values on the entries a simulation hid, and the calibration of the intervals.

    Left: a density (hexbin) of imputed vs true values with the identity line and the RMSE. Right (when
    :func:`gexbert_sc.tl.impute` wrote intervals): the empirical coverage of the intervals as they are widened
    or narrowed around the calibrated width, against the nominal level (a calibrated method follows the
    diagonal; the stored interval is marked).

    Parameters
    ----------
    adata
        AnnData with ``.layers[key]`` (from :func:`~gexbert_sc.tl.impute`) and the truth and mask layers of
        :func:`~gexbert_sc.pp.simulate_missing`.
    key
        The ``key_added`` of :func:`~gexbert_sc.tl.impute`.
    truth_layer, mask_layer
        Layers with the values before removal and where they were removed.
    show, return_fig, save
        As in scanpy.

    Returns
    -------
    The list of axes, or the figure with ``return_fig``, or None when shown.
    """
    for k, tool in ((key, "gexbert_sc.tl.impute(adata)"), (truth_layer, "gexbert_sc.pp.simulate_missing(adata, ...)"),
                    (mask_layer, "gexbert_sc.pp.simulate_missing(adata, ...)")):
        if k not in adata.layers:
            raise KeyError(f".layers[{k!r}] not found; run {tool} first")
    mask = np.asarray(adata.layers[mask_layer], dtype=bool)
    truth, pred = np.asarray(adata.layers[truth_layer])[mask], np.asarray(adata.layers[key])[mask]
    ok = np.isfinite(truth) & np.isfinite(pred)
    if not ok.any():
        raise ValueError(f"no imputed value at the {int(mask.sum())} hidden entries of .layers[{mask_layer!r}]")
    has_iv = f"{key}_sd" in adata.layers and f"{key}_lower" in adata.layers
    fig, axes = plt.subplots(1, 2 if has_iv else 1, figsize=(9.5 if has_iv else 4.8, 4.2), squeeze=False,
                             layout="constrained")
    axes = list(axes[0])
    a = axes[0]
    hb = a.hexbin(truth[ok], pred[ok], gridsize=50, mincnt=1, bins="log", cmap="viridis")
    lo, hi = np.percentile(np.r_[truth[ok], pred[ok]], [0.5, 99.5])
    a.plot([lo, hi], [lo, hi], color="C3", lw=1, ls="--", label="imputed = true")
    a.set_xlim(lo, hi)
    a.set_ylim(lo, hi)
    rmse = float(np.sqrt(np.mean((pred[ok] - truth[ok]) ** 2)))
    r = float(np.corrcoef(truth[ok], pred[ok])[0, 1])
    method = adata.uns.get(key, {}).get("params", {}).get("method", key)
    a.set_title(f"{method}: {int(ok.sum()):,} hidden entries\nRMSE {rmse:.3f}, Pearson r {r:.2f}")
    a.set_xlabel("true value (before removal)")
    a.set_ylabel("imputed value")
    a.legend(frameon=False, loc="upper left", fontsize="small")
    fig.colorbar(hb, ax=a, label="entries per hexagon (log scale)")
    if has_iv:
        sd = np.asarray(adata.layers[f"{key}_sd"])[mask][ok]
        half = np.asarray(adata.layers[f"{key}_upper"])[mask][ok] - pred[ok]
        q = float(np.nanmedian(half / np.where(sd > 0, sd, np.nan)))
        err = np.abs(pred[ok] - truth[ok]) / np.where(sd > 0, sd, np.nan)
        factors = np.linspace(0, 3, 61)
        coverage = [np.nanmean(err <= f) for f in factors]
        nominal = float(adata.uns.get(key, {}).get("params", {}).get("interval", np.nan))
        b = axes[1]
        b.plot(factors, coverage, color="C0", lw=1.8, label="empirical coverage")
        if np.isfinite(q):
            cov_q = float(np.nanmean(err <= q))
            b.axvline(q, color="0.5", lw=0.8, ls=":")
            b.scatter([q], [cov_q], color="C3", zorder=3,
                      label=f"stored interval: {cov_q:.1%} covered" + (f" (nominal {nominal:.0%})" if nominal > 0 else ""))
        if nominal > 0:
            b.axhline(nominal, color="C3", lw=0.8, ls="--")
        b.set_xlabel("interval half-width / calibrated sd")
        b.set_ylabel("fraction of true values inside")
        b.set_ylim(0, 1.02)
        b.set_title("Calibration of the intervals")
        b.legend(frameon=False, loc="lower right", fontsize="small")
        b.spines[["top", "right"]].set_visible(False)
    return finish(fig, axes, show=show, return_fig=return_fig, save=save)
