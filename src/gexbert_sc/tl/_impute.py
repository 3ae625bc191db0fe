"""``tl.impute``: fill missing values with GexBERT (trained here or given) or a classic imputer."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from gexbert_sc._validate import check_anndata, check_layer, check_matrix_values, check_obs_key
from gexbert_sc.model import GexBERT
from gexbert_sc.tl._conformal import ConformalCalibration, conformal_calibrate, group_codes, whole_group_gaps
from gexbert_sc.tl._imputers import BASELINE_METHODS, impute_matrix

logger = logging.getLogger("gexbert_sc")

METHODS = ("gexbert", *BASELINE_METHODS)
#: Keyword arguments of ``fit_kwargs`` that go to :meth:`GexBERT.train`; the others go to :class:`GexBERT`.
TRAIN_KWARGS = ("phase1_epochs", "phase2_epochs", "device", "progress", "checkpoint_dir", "checkpoint_every", "resume")


def dense_matrix(adata: AnnData, layer: str | None) -> np.ndarray:
    """A dense float32 copy of ``adata.layers[layer]`` (``.X`` if None), checked for infinite values."""
    check_layer(adata, layer)
    X = adata.layers[layer] if layer is not None else adata.X
    where = f"adata.layers[{layer!r}]" if layer else "adata.X"
    check_matrix_values(X, where)
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    return np.array(X, dtype=np.float32)


def check_observed_rows_cols(X: np.ndarray, adata: AnnData, where: str) -> None:
    """Refuse genes or samples without a single observed value: nothing can be imputed from them."""
    for axis, names, what, fix in ((0, adata.var_names, "gene", "adata[:, ~np.isnan(adata.X).all(axis=0)]"),
                                   (1, adata.obs_names, "sample", "adata[~np.isnan(adata.X).all(axis=1)]")):
        empty = np.flatnonzero(np.isnan(X).all(axis=axis))
        if len(empty):
            raise ValueError(f"{len(empty)} {what}(s) have no observed value in {where}, e.g. "
                             f"{[str(names[i]) for i in empty[:5]]}; nothing can be imputed from them: drop them, "
                             f"e.g. adata = {fix}.copy()")


def split_fit_kwargs(fit_kwargs: dict | None) -> tuple[dict, dict]:
    """``fit_kwargs`` split into the model's settings and :meth:`GexBERT.train`'s arguments."""
    fit_kwargs = dict(fit_kwargs or {})
    train = {k: fit_kwargs.pop(k) for k in TRAIN_KWARGS if k in fit_kwargs}
    return fit_kwargs, train


def matrix_adata(X: np.ndarray, like: AnnData, layer: str | None, batch_key: str | None) -> AnnData:
    """An AnnData holding ``X`` (in ``layer``, or ``.X``) with ``like``'s genes, samples and batch column."""
    obs = like.obs[[batch_key]].copy() if batch_key is not None else pd.DataFrame(index=like.obs_names)
    a = AnnData(X=None if layer is not None else X, obs=obs, var=pd.DataFrame(index=like.var_names))
    if layer is not None:
        a.layers[layer] = X
    return a


class GexBERTFiller:
    """Fills matrices shaped like ``adata`` with a GexBERT.

    The given model, or one trained on the first matrix it is asked to fill (its observed entries only).
    """

    def __init__(self, adata: AnnData, model: GexBERT | None, layer: str | None, *, fit_kwargs: dict | None,
                 n_repeats: int | None, random_state: int, progress: bool):
        self.adata, self.model, self.layer = adata, model, layer
        self.setup, self.train = split_fit_kwargs(fit_kwargs)
        self.train.setdefault("progress", progress)
        self.n_repeats, self.random_state = n_repeats, random_state
        self._trained_missing = 0  # missing values of the matrix a model trained here last fitted its linear path on

    def _train(self, X: np.ndarray) -> None:
        a = matrix_adata(X, self.adata, self.layer, self.setup.get("batch_key"))
        self.model = GexBERT(a, layer=self.layer, random_state=self.random_state, **self.setup).train(**self.train)
        m = self.model.metrics
        if m:
            logger.info("trained GexBERT on the observed entries: validation MSE restoring held-out genes %.3f, "
                        "predicting the mean %.3f (standardised units)", m["val_other"], m["val_mean"])

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """``X`` with its NaN entries filled at the genes the model knows (others stay NaN).

        A model trained here on a matrix with more missing values (the calibration copy) first refits its
        linear path on ``X``'s values, so that the final fill uses every observed value, as the classic
        imputers do.
        """
        n_missing = int(np.isnan(X).sum())
        if self.model is None:
            self._train(X)
            self._trained_missing = n_missing
        model = self.model
        a = matrix_adata(X, self.adata, model.layer, model.batch_key)
        if self._trained_missing > n_missing:
            model.refit_linear_path(a)
            self._trained_missing = n_missing
        n_repeats = self.n_repeats
        if n_repeats is None and model.module.linear is not None:
            n_repeats = 1  # the linear path reads every observed gene; more network subsets change little
        elif n_repeats is None:  # every observed gene of a sample in one of the input subsets
            n_obs_max = int((~np.isnan(X)).sum(1).max())
            n_repeats = max(1, math.ceil(n_obs_max / model.config.n_input))
        full = model.impute(a, n_repeats=n_repeats, random_state=self.random_state)
        out = X.copy()
        model.align(a).to_var(full, out)
        out[~np.isnan(X)] = X[~np.isnan(X)]
        return out


def write_intervals(adata: AnnData, key: str, filled: np.ndarray, observed: np.ndarray,
                    cal: ConformalCalibration | None, genes: np.ndarray | None = None,
                    block: np.ndarray | None = None) -> None:
    """Write ``.layers[key + "_sd" / "_lower" / "_upper"]``.

    The calibrated spread and interval at imputed entries; at observed entries sd 0 and lower = upper = the
    value; NaN where uncalibrated. ``block`` (over the ``genes`` columns): entries missing for their whole group,
    which get the block calibration.
    """
    sd = np.full_like(filled, np.nan)
    lower, upper = sd.copy(), sd.copy()
    if cal is not None:
        cols = np.arange(filled.shape[1]) if genes is None else genes
        s, lo, hi = cal.intervals(filled[:, cols], block)
        sd[:, cols], lower[:, cols], upper[:, cols] = s, lo, hi
    sd[observed], lower[observed], upper[observed] = 0.0, filled[observed], filled[observed]
    adata.layers[key + "_sd"], adata.layers[key + "_lower"], adata.layers[key + "_upper"] = sd, lower, upper


def impute(
    adata: AnnData,
    *,
    model: GexBERT | None = None,
    method: str = "gexbert",
    layer: str | None = None,
    key_added: str | None = None,
    interval: float | None = 0.9,
    calibration_fraction: float = 0.05,
    groupby: str | None = None,
    fit_kwargs: dict | None = None,
    n_repeats: int | None = None,
    n_neighbors: int = 10,
    random_state: int = 0,
    progress: bool = True,
    copy: bool = False,
) -> AnnData | None:
    """Fill the missing (NaN) values of ``adata`` with GexBERT or a classic imputer, with calibrated intervals.

    Only missing entries are filled; observed values stay exactly as they were; the output is in the input's
    units. ``.X`` (or ``layer``) is never changed.

    Parameters
    ----------
    adata
        Samples x genes, NaN where missing.
    model
        A trained :class:`~gexbert_sc.GexBERT` to impute with (``method="gexbert"``). Without one, a model is
        trained here on the observed entries of ``adata`` (settings through ``fit_kwargs``) and discarded.
    method
        ``"gexbert"`` (default), ``"zero"`` (zeros in the input's units, the paper's zero filling), ``"mean"``
        (each gene's observed mean), ``"knn"`` (scikit-learn ``KNNImputer``), ``"softimpute"`` (low-rank
        iterative SVD with soft-thresholded singular values, penalty chosen on held-out observed entries) or
        ``"mice"`` (scikit-learn ``IterativeImputer`` over the 64 most correlated genes).
    layer
        Impute this layer instead of ``.X`` (default: the model's layer when a model is given).
    key_added
        Layer to write; default ``"gexbert_imputed"`` for the model, ``"<method>_imputed"`` for a baseline.
    interval
        Coverage of the prediction intervals (e.g. 0.9), calibrated by split-conformal prediction: a fraction
        ``calibration_fraction`` of the observed entries is hidden, imputed and scored, and each gene's
        interval is ``value +/- q * scale_gene`` (see :func:`~gexbert_sc.tl._conformal.conformal_calibrate`).
        Without a model, the model is trained with the calibration entries hidden, so that they are honest
        held-out values; its linear path is then fitted again on every observed entry for the final fill
        (:meth:`~gexbert_sc.GexBERT.refit_linear_path`), so the fill loses none of them and its intervals, from
        a model that knew a few percent fewer values, are if anything a little wide. A given model that was trained on these samples has seen them: its intervals may
        then be too narrow. None: no intervals (one imputation less).
    calibration_fraction
        Fraction of the observed entries hidden for calibration.
    groupby
        Column of ``.obs`` naming groups of samples that may lack whole genes (cohorts, platforms, batches).
        Values missing for a whole group (a gene the group never measured but another did) get intervals
        calibrated on whole (group, gene) blocks hidden on purpose in the same calibration imputation
        (``calibration_fraction`` of the blocks, at most one per gene), the rest on entries hidden at random:
        restoring a gene a group never measured is harder, so entry-wise intervals are too narrow there.
        Default: the model's ``batch_key`` (or ``fit_kwargs["batch_key"]``); None without one.
    fit_kwargs
        Settings of the model trained without ``model=``: :class:`~gexbert_sc.GexBERT` arguments
        (``config``, ``batch_key``, any config setting) and :meth:`~gexbert_sc.GexBERT.train` arguments
        (``phase1_epochs``, ``phase2_epochs``, ``device``, ...).
    n_repeats
        GexBERT input subsets per sample. Default: with a linear path (``linear_path="fixed"``, the default
        presets) 1, since the linear estimate already reads every observed gene of a sample (1 vs 4
        subsets: RMSE 0.6047 vs 0.6045 on the synthetic 1,000 x 2,000 at 30% MCAR); without one, enough
        that every observed gene of a sample is in one of them (``ceil(observed genes / n_input)``). The
        subsets' summaries are averaged (see :meth:`~gexbert_sc.GexBERT.embed`) and the missing genes
        decoded once, in chunks, so memory stays bounded for 20,000 genes.
    n_neighbors
        Neighbours of ``method="knn"``.
    random_state
        Seeds the model, the calibration entries and the randomised baselines.
    progress
        Show progress bars while training.
    copy
        Return a modified copy instead of working in place.

    Returns
    -------
    The copy if ``copy``, else None. Adds:

    ``.layers[key_added]``
        The completed matrix (float32).
    ``.layers[key_added + "_sd"]``, ``["_lower"]``, ``["_upper"]``
        With ``interval``: each imputed entry's calibrated residual sd and interval bounds; 0 and the value at
        observed entries; NaN at genes the model does not know.
    ``.uns[key_added]``
        ``params``, ``n_filled``, ``calibration`` (``q``, ``n_calibration``, ``rms``) and, for a model trained
        here, ``metrics`` (its validation MSEs).

    Examples
    --------
    >>> import gexbert_sc as gb
    >>> adata = gb.datasets.synthetic()
    >>> gb.pp.simulate_missing(adata, rate=0.1)
    >>> gb.tl.impute(adata)                       # trains a model on the observed entries
    >>> gb.tl.impute(adata, method="softimpute")  # -> .layers["softimpute_imputed"]
    """
    check_anndata(adata)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    if model is not None and not isinstance(model, GexBERT):
        raise TypeError(f"model must be a trained GexBERT, got {type(model).__name__}")
    if model is not None and method != "gexbert":
        raise ValueError(f"model= is used by method='gexbert' only, not by method={method!r}; drop one of them")
    if interval is not None and not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1) or None, got {interval!r}")
    if layer is None and model is not None:
        layer = model.layer
    key_added = key_added or ("gexbert_imputed" if method == "gexbert" else f"{method}_imputed")
    if groupby is None:
        groupby = model.batch_key if model is not None else (fit_kwargs or {}).get("batch_key")
    if groupby is not None:
        check_obs_key(adata, groupby, "groupby")
    X = dense_matrix(adata, layer)
    where = f"adata.layers[{layer!r}]" if layer else "adata.X"
    check_observed_rows_cols(X, adata, where)
    if copy:
        adata = adata.copy()
    missing = np.isnan(X)

    if method == "gexbert":
        fill = GexBERTFiller(adata, model, layer, fit_kwargs=fit_kwargs, n_repeats=n_repeats,
                             random_state=random_state, progress=progress)
        known = _known_genes(model, adata)
    else:
        def fill(A):
            return impute_matrix(A, method, random_state=random_state, n_neighbors=n_neighbors,
                                 feature_names=list(adata.var_names))
        known = np.ones(adata.n_vars, bool)

    cal, block = None, None
    codes = group_codes(adata.obs[groupby].to_numpy(), adata.n_obs) if groupby is not None else None
    if interval is not None and missing.any():
        cols = np.flatnonzero(known)
        Xk = X[:, cols]

        def fill_known(A):
            full = X.copy()
            full[:, cols] = A
            return fill(full)[:, cols]

        cal = conformal_calibrate(Xk, fill_known, interval=interval, fraction=calibration_fraction,
                                  random_state=random_state, groups=codes)
        if cal.block is not None:
            block = whole_group_gaps(np.isnan(Xk), codes)
    filled = fill(X) if missing.any() else X.copy()
    filled[~missing] = X[~missing]
    adata.layers[key_added] = filled
    if interval is not None:
        write_intervals(adata, key_added, filled, ~missing, cal, np.flatnonzero(known), block)
    n_filled = int((missing & ~np.isnan(filled)).sum())
    params = {"method": method, "layer": layer or "X", "interval": float(interval) if interval is not None else 0.0,
              "calibration_fraction": float(calibration_fraction), "groupby": groupby or "",
              "random_state": int(random_state),
              "model": "given" if model is not None else ("trained here" if method == "gexbert" else ""),
              "fit_kwargs": json.dumps(fit_kwargs or {}, default=str),
              "n_repeats": int(n_repeats) if n_repeats is not None else 0}
    adata.uns[key_added] = {"params": params, "n_filled": n_filled, "n_missing": int(missing.sum())}
    if cal is not None:
        adata.uns[key_added]["calibration"] = {"q": float(cal.q), "n_calibration": int(cal.n_calibration),
                                               "rms": float(cal.global_rms)}
        if cal.block is not None:
            adata.uns[key_added]["calibration"].update(
                block_q=float(cal.block.q), n_block_calibration=int(cal.block.n_calibration),
                block_rms=float(cal.block.global_rms), n_block_missing=int(block.sum()))
    if method == "gexbert" and model is None and fill.model is not None:
        adata.uns[key_added]["metrics"] = {k: float(v) for k, v in fill.model.metrics.items()}
    if not missing.any():
        logger.warning("%s has no missing value: .layers[%r] is a copy of it", where, key_added)
    logger.info("added .layers[%r] (%d of %d missing values filled by %s)%s", key_added, n_filled, int(missing.sum()),
                method, f" and its {interval:.0%} intervals (_sd, _lower, _upper)" if interval is not None else "")
    return adata if copy else None


def _known_genes(model: GexBERT | None, adata: AnnData) -> np.ndarray:
    """Boolean mask over ``adata``'s genes: those the model can fill (all without a model)."""
    if model is None:
        return np.ones(adata.n_vars, bool)
    known = np.zeros(adata.n_vars, bool)
    align = model.align(adata)
    known[align.columns[align.present]] = True
    return known
