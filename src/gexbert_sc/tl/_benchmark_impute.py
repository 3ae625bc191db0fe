"""``tl.benchmark_impute``: hide observed entries, impute them with each method, and score it all alike."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from anndata import AnnData
from tqdm.auto import tqdm

from gexbert_sc._validate import check_anndata, check_obs_key
from gexbert_sc.model import GexBERT
from gexbert_sc.pp import simulate_missing

from ._impute import METHODS, dense_matrix, impute
from ._score_imputation import score_imputation

logger = logging.getLogger("gexbert_sc")

MECHANISMS = ("mcar", "gene_block", "low_value")


def benchmark_impute(
    adata: AnnData,
    *,
    methods=("gexbert", "mean", "knn", "softimpute"),
    mechanisms=("mcar",),
    rates=(0.1, 0.3),
    repeats: int = 1,
    groupby: str | None = None,
    model: GexBERT | None = None,
    layer: str | None = None,
    interval: float | None = 0.9,
    fit_kwargs: dict | None = None,
    random_state: int = 0,
    key_added: str = "gexbert_benchmark_impute",
    progress: bool = True,
    copy: bool = False,
) -> AnnData | None:
    """Compare imputers on the same hidden entries: the check to run before trusting any of them.

    For each mechanism, rate and repeat, observed entries are hidden with :func:`~gexbert_sc.pp.simulate_missing`
    (seeded: ``random_state + repeat``; genes or samples the mask would empty keep their values and are not
    scored, since no method can estimate a gene that no sample measures), every method fills the hidden copy with :func:`~gexbert_sc.tl.impute`
    as a careful user would (no method sees the hidden values; without ``model=``, GexBERT is trained anew on
    the remaining entries of each copy), and each is scored on the hidden entries only.

    Parameters
    ----------
    adata
        Samples x genes, NaN where missing (entries missing already are never scored).
    methods
        Any of ``"gexbert"``, ``"zero"``, ``"mean"``, ``"knn"``, ``"softimpute"``, ``"mice"``.
    mechanisms
        Any of ``"mcar"``, ``"gene_block"`` (needs ``groupby``), ``"low_value"``.
    rates
        Fractions hidden (see :func:`~gexbert_sc.pp.simulate_missing`).
    repeats
        Masks per mechanism and rate.
    groupby
        ``adata.obs`` column of the groups (cohorts, platforms) for ``"gene_block"``; also passed to
        :func:`~gexbert_sc.tl.impute`, so that values missing for a whole group get intervals calibrated on
        whole (group, gene) blocks.
    model
        A trained GexBERT to use instead of training one per copy. If it was trained on these samples it has
        seen the hidden values and its scores are optimistic (a warning says so).
    layer
        Benchmark this layer instead of ``.X``.
    interval
        Coverage of the calibrated intervals whose empirical coverage and width are scored (None: none).
    fit_kwargs
        Settings of the GexBERT trained per copy (see :func:`~gexbert_sc.tl.impute`).
    random_state
        Seeds the masks, models and baselines.
    key_added
        Results go to ``.uns[key_added]``.
    progress
        Show a progress bar.
    copy
        Return a modified copy instead of working in place.

    Returns
    -------
    The copy if ``copy``, else None. Adds ``.uns[key_added]``: ``"results"``, a tidy DataFrame with one row per
    method, mechanism, rate and repeat (``rmse`` in standardised units, i.e. each gene's error over its
    observed sd; ``rmse_ratio``, that over the mean baseline's RMSE on the same entries; ``pearson``, the
    median per-gene Pearson r of imputed vs true; ``coverage`` and ``width`` of the intervals, all as
    :func:`~gexbert_sc.tl.score_imputation` computes them; ``seconds``; ``n_hidden``; ``n_scored``, the hidden
    entries the method filled), and ``"params"``.
    """
    check_anndata(adata)
    methods, mechanisms, rates = list(methods), list(mechanisms), [float(r) for r in rates]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"unknown method(s) {bad}; choose from {list(METHODS)}")
    bad = [m for m in mechanisms if m not in MECHANISMS]
    if bad or not mechanisms:
        raise ValueError(f"unknown mechanism(s) {bad}; choose from {list(MECHANISMS)}")
    if "gene_block" in mechanisms:
        if groupby is None:
            raise ValueError("mechanism 'gene_block' hides genes per group: pass groupby= naming an .obs column")
        check_obs_key(adata, groupby, "groupby")
    if int(repeats) < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if model is not None and layer is None:
        layer = model.layer
    if model is not None:
        logger.warning("benchmark_impute with model=: if the model was trained on these samples it has seen the "
                       "hidden values, and its scores are optimistic; leave model=None to train one per mask")
    X = dense_matrix(adata, layer)
    base = AnnData(X=X, obs=adata.obs.copy(), var=pd.DataFrame(index=adata.var_names))
    rows = []
    runs = [(mech, rate, rep) for mech in mechanisms for rate in rates for rep in range(int(repeats))]
    bar = tqdm(total=len(runs) * len(methods), desc="benchmark_impute", disable=not progress)
    for mech, rate, rep in runs:
        seed = int(random_state) + rep
        sim = base.copy()
        simulate_missing(sim, rate=rate, mechanism=mech, groupby=groupby if mech == "gene_block" else None,
                         random_state=seed)
        truth, mask = sim.layers["simulated_truth"], sim.layers["simulated_mask"]
        mean_fill = np.broadcast_to(np.nanmean(sim.X, axis=0), sim.shape)
        mean_rmse = score_imputation(truth, np.where(mask, mean_fill, truth), mask)["rmse"]
        for method in methods:
            bar.set_postfix(mechanism=mech, rate=rate, method=method)
            t0 = time.perf_counter()
            impute(sim, method=method, model=model if method == "gexbert" else None, key_added="bench",
                   interval=interval, groupby=groupby, fit_kwargs=fit_kwargs, random_state=seed, progress=False)
            secs = time.perf_counter() - t0
            F = sim.layers["bench"]
            lo, hi = (sim.layers.get("bench_lower"), sim.layers.get("bench_upper")) if interval else (None, None)
            ok = mask & np.isfinite(F)
            s = score_imputation(truth, F, ok, lower=lo, upper=hi)
            rows.append({"method": method, "mechanism": mech, "rate": rate, "repeat": rep, **s,
                         "rmse_ratio": s["rmse"] / mean_rmse, "seconds": secs, "n_hidden": int(mask.sum()),
                         "n_scored": int(ok.sum())})
            bar.update(1)
    bar.close()
    df = pd.DataFrame(rows)
    df["method"] = pd.Categorical(df["method"], categories=methods)
    df["mechanism"] = pd.Categorical(df["mechanism"], categories=mechanisms)
    if copy:
        adata = adata.copy()
    adata.uns[key_added] = {"results": df, "params": {
        "methods": np.asarray(methods, dtype=str), "mechanisms": np.asarray(mechanisms, dtype=str),
        "rates": np.asarray(rates), "repeats": int(repeats), "groupby": groupby or "", "layer": layer or "X",
        "interval": float(interval or 0.0), "random_state": int(random_state),
        "model": "given" if model is not None else "trained per mask"}}
    logger.info("added .uns[%r]['results'] (%d rows: %d methods x %d masks)", key_added, len(df), len(methods), len(runs))
    return adata if copy else None
