"""``tl.restore``: predict chosen genes (measured or not) from the genes a sample has, with intervals."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from anndata import AnnData

from gexbert_sc._validate import check_anndata
from gexbert_sc.model import GexBERT
from gexbert_sc.tl._conformal import ConformalCalibration, calibrate_residuals
from gexbert_sc.tl._impute import dense_matrix, split_fit_kwargs

logger = logging.getLogger("gexbert_sc")

METHODS = ("gexbert", "ridge")
#: Penalties RidgeCV chooses from (efficient leave-one-out), on standardised inputs.
RIDGE_ALPHAS = np.logspace(-2, 5, 15)


def _targets(genes, model: GexBERT | None, reference: AnnData | None, adata: AnnData) -> np.ndarray:
    if genes is not None:
        out = np.asarray([genes] if isinstance(genes, str) else list(genes), dtype=str)
        if len(out) == 0:
            raise ValueError("genes is empty; name the genes to restore")
        return out
    source, names = ("the model", model.genes) if model is not None else ("reference", reference.var_names)
    have = set(adata.var_names)
    out = np.asarray([g for g in names if g not in have], dtype=str)
    if len(out) == 0:
        raise ValueError(
            f"adata has every one of the {len(names)} genes of {source}, so there is no gene to restore by default "
            f"(the default targets are the genes of {source} that adata lacks); pass genes=[...] naming the genes "
            "to restore: they are then hidden from the inputs and predicted from adata's other genes")
    return out


def _warn_if_fitted_on(model: GexBERT, reference: AnnData) -> None:
    """Warn when the calibration samples are samples the model was fitted on (its validation samples included)."""
    fitted = getattr(model, "adata", None)
    if fitted is None:
        return
    n = int(np.isin(np.asarray(reference.obs_names), np.asarray(fitted.obs_names)).sum())
    if n:
        warnings.warn(
            f"{n} of the {reference.n_obs} reference samples are samples this model was fitted on (its validation "
            "samples included: the linear path's factors are refitted on them), so their residuals are too small "
            "and the intervals too narrow (measured: 0.29-0.69 coverage of 90% intervals); calibrate on samples "
            "the model never saw",
            UserWarning,
            stacklevel=3,
        )


def _ridge(reference: AnnData, ref_layer, inputs, targets, n_folds: int, random_state: int):
    """RidgeCV from ``inputs`` to ``targets`` fitted on ``reference``.

    NaN inputs are filled with the reference means, then standardised. Returns the fitted pipeline and
    cross-validated residuals on the reference.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    R = dense_matrix(reference, ref_layer)
    col = {g: i for i, g in enumerate(reference.var_names)}
    Xr = R[:, [col[g] for g in inputs]]
    Yr = R[:, [col[g] for g in targets]]
    y_obs = ~np.isnan(Yr)
    Y_fit = np.where(y_obs, Yr, np.nanmean(Yr, 0))  # ridge needs complete targets: missing ones at the mean
    pipe = make_pipeline(SimpleImputer(keep_empty_features=True), StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    folds = KFold(n_folds, shuffle=True, random_state=random_state)
    cv_pred = cross_val_predict(pipe, Xr, Y_fit, cv=folds)
    pipe.fit(Xr, Y_fit)
    rows, cols = np.nonzero(y_obs)
    return pipe, Yr[rows, cols] - cv_pred[rows, cols], cols


def _quiet_restore(model: GexBERT, adata: AnnData, targets, n_input, n_repeats, random_state, device,
                   leave_out: bool = False) -> np.ndarray:
    """``model.restore`` without the warning about absent genes: the targets are left out on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*treated as missing", category=UserWarning)
        return model.restore(adata, genes=targets, n_input=n_input, n_repeats=n_repeats, random_state=random_state,
                             device=device, leave_out=leave_out)


def _calibrate_gexbert(model: GexBERT, reference: AnnData, inputs, targets, layer, interval, leave_out: bool,
                       **restore_kw) -> ConformalCalibration | None:
    """Residuals of the model restoring ``reference``'s targets from its input genes, calibrated."""
    ref_in = reference[:, [g for g in inputs if g in reference.var_names]].copy()
    ref_pred = _quiet_restore(model, ref_in, targets, leave_out=leave_out, **restore_kw)
    R = dense_matrix(reference[:, [g for g in targets if g in reference.var_names]], layer)
    tcols = np.flatnonzero(np.isin(targets, reference.var_names))
    rows, cols = np.nonzero(~np.isnan(R))
    if rows.size == 0:
        logger.info("no prediction intervals: the calibration samples measure none of the targets")
        return None
    return calibrate_residuals(R[rows, cols] - ref_pred[rows, tcols[cols]], tcols[cols], len(targets),
                               interval=interval)


def _validation_samples(model: GexBERT) -> AnnData | None:
    """The model's validation samples (never trained on by the network) where they are held out of everything.

    With a linear path, that needs its factors of the training samples alone (``GexBERT.restore(leave_out=True)``,
    in the session the model was set up in), since the refit added the validation samples to them.
    """
    rows = model.validation_rows
    if model.adata is None or rows is None or len(rows) == 0:
        return None
    if model.config.linear_path != "none" and not model.can_leave_out:
        return None
    sub = model.adata[np.sort(rows)]
    return sub.to_memory() if sub.isbacked else sub.copy()


def restore(
    adata: AnnData,
    *,
    model: GexBERT | None = None,
    genes=None,
    method: str = "gexbert",
    reference: AnnData | None = None,
    layer: str | None = None,
    key_added: str | None = None,
    interval: float | None = 0.9,
    n_input: int | None = None,
    n_repeats: int | None = None,
    fit_kwargs: dict | None = None,
    n_folds: int = 5,
    random_state: int = 0,
    progress: bool = True,
    device: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Restore (predict) chosen genes of every sample from the other genes it measures, with intervals.

    The paper's main use: a small panel of measured genes in, many genes out. Target genes are never used as
    inputs, even where ``adata`` measures them, so a restored value is always a prediction.

    Parameters
    ----------
    adata
        Samples x genes (the inputs), NaN where missing.
    model
        A trained :class:`~gexbert_sc.GexBERT` (``method="gexbert"``). Without one, a model is trained on
        ``reference`` (settings through ``fit_kwargs``).
    genes
        Genes to restore. Default: every gene of the model (gexbert) or of ``reference`` (ridge) that ``adata``
        lacks; if ``adata`` has them all, name the targets here (those that ``adata`` has are hidden from the
        inputs, so a restored value is never the measured one).
    method
        ``"gexbert"`` or ``"ridge"``: ridge regression from the input genes to the targets (scikit-learn
        ``RidgeCV``, penalty by efficient leave-one-out over a grid, inputs standardised and missing inputs
        set to the reference mean), fitted on ``reference``; the linear baseline of the restoration
        literature (D-GEX and successors).
    reference
        Samples with both the input genes and the targets: what ridge (and a model trained here) learns from,
        and where the intervals are calibrated (cross-validated residuals for ridge; for a given model, its
        residuals restoring the reference's targets from its input genes: if the model was trained on the
        reference, these are optimistic and so are the intervals (warned); pass held-out samples, or none, see
        ``interval``). A model trained here is calibrated on its own validation samples.
    layer
        Read this layer of ``adata`` and ``reference`` instead of ``.X`` (default: the model's layer).
    key_added
        Default ``"gexbert_restored"`` or ``"ridge_restored"``.
    interval
        Coverage of the split-conformal prediction intervals. They are calibrated on ``reference``; without
        one, for gexbert, on the model's own validation samples when the model was set up in this session
        (the network never trained on them, and they are restored with the linear path's factors of the training
        samples alone, before the refit that added them: ``GexBERT.restore(leave_out=True)``), otherwise none
        are computed (logged) and
        ``params["interval"]`` is 0. None: no intervals.
    n_input, n_repeats
        Input genes per encoding and subsets averaged (see :meth:`~gexbert_sc.GexBERT.embed`).
    fit_kwargs
        Settings of a model trained here (as in :func:`~gexbert_sc.tl.impute`).
    n_folds
        Folds of the cross-validated ridge residuals.
    random_state
        Seeds the model's input subsets and the folds.
    progress
        Show progress bars while training a model here (without ``model=``).
    device
        Where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, ``"auto"``); default: the model's
        device, or ``"auto"`` for a model trained here. Unused by ridge.
    copy
        Return a modified copy instead of working in place.

    Returns
    -------
    The copy if ``copy``, else None. Adds:

    ``.layers[key_added]`` (and ``_sd``, ``_lower``, ``_upper``)
        Restored values of the targets that ``adata`` has, in their columns; NaN in the other columns.
    ``.obsm[key_added]`` (and ``_sd``, ``_lower``, ``_upper``)
        Restored values of the targets that ``adata`` lacks, a DataFrame with the gene names as columns.
    ``.uns[key_added]``
        ``params`` (``interval`` is the coverage of the intervals computed, 0 when none were; ``intervals``:
        ``"split-conformal"`` or ``"none"``; ``calibrated_on``: ``"reference"``, ``"validation samples"`` or
        ``""``), ``targets_in_layer``, ``targets_in_obsm`` and, with intervals,
        ``calibration`` (``q``, ``n_calibration``, ``rms``).
    """
    check_anndata(adata)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    if model is not None and not isinstance(model, GexBERT):
        raise TypeError(f"model must be a trained GexBERT, got {type(model).__name__}")
    if method == "ridge" and reference is None:
        raise ValueError("method='ridge' learns from a reference: pass reference=, an AnnData whose samples have both "
                         "the input genes and the genes to restore")
    if method == "gexbert" and model is None and reference is None:
        raise ValueError("method='gexbert' needs model= (a trained GexBERT) or reference= (samples to train one on)")
    if reference is not None:
        check_anndata(reference)
    if interval is not None and not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1) or None, got {interval!r}")
    if layer is None and model is not None:
        layer = model.layer
    key_added = key_added or f"{method}_restored"

    trained_here = method == "gexbert" and model is None
    if trained_here:
        if genes is None:
            _targets(None, None, reference, adata)  # the default targets exist: check before training
        setup, train = split_fit_kwargs(fit_kwargs)
        train.setdefault("progress", progress)
        if device is not None:
            train.setdefault("device", device)
        model = GexBERT(reference, layer=layer, random_state=random_state, **setup).train(**train)
    targets = _targets(genes, model if method == "gexbert" else None, reference, adata)
    if method == "gexbert":
        unknown = [g for g in targets if g not in set(model.genes)]
        if unknown:
            raise KeyError(f"{len(unknown)} gene(s) to restore are not in the model's vocabulary, e.g. {unknown[:5]}")
    else:
        missing_ref = [g for g in targets if g not in reference.var_names]
        if missing_ref:
            raise KeyError(f"{len(missing_ref)} gene(s) to restore are not in reference, e.g. {missing_ref[:5]}")
    target_set = set(targets)
    inputs = [g for g in adata.var_names if g not in target_set]
    if method == "ridge":
        inputs = [g for g in inputs if g in reference.var_names]
    if not inputs:
        raise ValueError("no input genes: every gene of adata is a target (or, for ridge, absent from reference)")
    if copy:
        adata = adata.copy()

    X_in = adata[:, inputs].copy()
    cal: ConformalCalibration | None = None
    calibrated_on = ""
    if method == "gexbert":
        kw = {"n_input": n_input, "n_repeats": n_repeats, "random_state": random_state, "device": device}
        pred = _quiet_restore(model, X_in, targets, **kw)
        if interval is not None and reference is not None and not trained_here:
            _warn_if_fitted_on(model, reference)
            cal = _calibrate_gexbert(model, reference, inputs, targets, layer, interval, False, **kw)
            calibrated_on = "reference"
        elif interval is not None:
            val = _validation_samples(model)
            if val is None:
                logger.info("no prediction intervals: they are calibrated on samples with both the input genes and "
                            "the targets; pass reference= (held-out samples) to get them")
            else:
                cal = _calibrate_gexbert(model, val, inputs, targets, model.layer, interval,
                                         model.config.linear_path != "none", **kw)
                calibrated_on = "validation samples"
                logger.info("intervals calibrated on the model's %d validation samples (never trained on by the "
                            "network; with a linear path, restored with its factors of the training samples)",
                            val.n_obs)
    else:
        pipe, resid, rcols = _ridge(reference, layer, inputs, targets, n_folds, random_state)
        pred = pipe.predict(dense_matrix(X_in, layer)).astype(np.float32)
        if interval is not None:
            cal = calibrate_residuals(resid, rcols, len(targets), interval=interval)
            calibrated_on = "reference"
    pred = np.asarray(pred, dtype=np.float32)
    bands = dict(zip(("_sd", "_lower", "_upper"), cal.intervals(pred), strict=True)) if cal is not None else {}

    present = np.isin(targets, adata.var_names)
    col = {g: i for i, g in enumerate(adata.var_names)}
    if present.any():
        idx = [col[g] for g in targets[present]]
        for suffix, values in {"": pred, **bands}.items():
            layer_vals = np.full(adata.shape, np.nan, dtype=np.float32)
            layer_vals[:, idx] = values[:, present]
            adata.layers[key_added + suffix] = layer_vals
    if (~present).any():
        for suffix, values in {"": pred, **bands}.items():
            adata.obsm[key_added + suffix] = pd.DataFrame(values[:, ~present], index=adata.obs_names,
                                                          columns=targets[~present])
    adata.uns[key_added] = {
        "params": {"method": method, "layer": layer or "X", "interval": float(interval) if cal is not None else 0.0,
                   "n_input_genes": len(inputs), "random_state": int(random_state),
                   "reference": "given" if reference is not None else "",
                   "intervals": "split-conformal" if cal is not None else "none",
                   "calibrated_on": calibrated_on if cal is not None else ""},
        "targets_in_layer": np.asarray(targets[present], dtype=str),
        "targets_in_obsm": np.asarray(targets[~present], dtype=str),
    }
    if cal is not None:
        adata.uns[key_added]["calibration"] = {"q": float(cal.q), "n_calibration": int(cal.n_calibration),
                                               "rms": float(cal.global_rms)}
    logger.info("restored %d genes from %d input genes with %s: %d to .layers[%r], %d to .obsm[%r]%s",
                len(targets), len(inputs), method, int(present.sum()), key_added, int((~present).sum()), key_added,
                " (with intervals: _sd, _lower, _upper)" if cal is not None else "")
    return adata if copy else None
