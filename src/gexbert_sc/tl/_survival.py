"""``tl.survival``: cross-validated Cox models of survival on input genes, restored anchors or embeddings."""

from __future__ import annotations

import logging
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from anndata import AnnData
from tqdm.auto import tqdm

from gexbert_sc._validate import check_anndata, check_obs_key, obs_labels
from gexbert_sc._validate import check_int as _check_int

from ._anchor_genes import _fill_nan_with_mean
from ._cox import cv_concordance
from ._cox_model import (
    BRIER_PERCENTILES,
    BRIER_POINTS,
    INNER_FOLDS,
    L1_RATIO,
    alpha_grid,
    brier_times,
    fit_cox,
    survival_at,
)
from ._inputs import (
    check_expression,
    check_key_added,
    check_model,
    dense_rows,
    draw_input_genes,
    input_gene_pool,
    quiet_model,
    repeat_seed,
)
from ._survival_data import groups_with_few_events, survival_arrays

logger = logging.getLogger("gexbert_sc")

FEATURES = ("original", "restored", "both", "embedding", "pca")
_NEEDS_MODEL = ("restored", "both", "embedding")


@dataclass
class _Cohort:
    """The samples ``tl.survival`` scores: rows with survival data and a group, and the groups scored."""

    rows: np.ndarray
    time: np.ndarray
    event: np.ndarray
    labels: np.ndarray
    groups: list
    few: dict

    @property
    def scored(self) -> list:
        return [g for g in self.groups if g not in self.few]


def _check_args(adata, model, features, layer, time_unit, key_added, ints: dict) -> tuple[object, str | None]:
    """Check every argument up front; returns the model and the layer to read."""
    check_anndata(adata)
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    model = check_model(model, features)
    if model is None and features in _NEEDS_MODEL:
        raise ValueError(
            f"features={features!r} needs a trained GexBERT: pass model=GexBERT(adata).train() (or GexBERT.load(...)); "
            "features='original' and 'pca' need no model"
        )
    for name, (value, low) in ints.items():
        _check_int(value, name, low)
    if ints["min_events"][0] < ints["n_folds"][0]:
        raise ValueError(
            f"min_events ({ints['min_events'][0]}) must be >= n_folds ({ints['n_folds'][0]}) so that every held-out "
            "fold can hold an event; raise min_events or lower n_folds"
        )
    check_key_added(key_added)
    if time_unit is not None and not isinstance(time_unit, str):
        raise TypeError(f"time_unit must be a string such as 'days', got {time_unit!r}")
    layer = check_expression(adata, model, layer)
    if model is not None and not model.is_trained:
        warnings.warn(
            "this GexBERT has not been trained: its restorations and embeddings are random. Call model.train() first",
            UserWarning,
            stacklevel=3,
        )
    return model, layer


def _cohort(adata, groupby, time_key, event_key, min_events, n_folds) -> _Cohort:
    """Samples with survival data and a group; groups with too few events are skipped with a warning."""
    if groupby is not None:
        check_obs_key(adata, groupby, "groupby")
    time, event, keep = survival_arrays(adata, time_key, event_key)
    labels = (
        pd.Series("all", index=adata.obs_names, dtype=object) if groupby is None else obs_labels(adata, groupby)
    ).to_numpy(dtype=object)
    no_group = pd.isna(labels) & keep
    if no_group.any():
        warnings.warn(
            f"dropping {int(no_group.sum())} sample(s) without a group in adata.obs[{groupby!r}]",
            UserWarning,
            stacklevel=3,
        )
    has_group = ~pd.isna(labels[keep])
    rows = np.flatnonzero(keep)[has_group]
    time, event, labels = time[has_group], event[has_group], labels[keep][has_group]
    if groupby is not None and isinstance(adata.obs[groupby].dtype, pd.CategoricalDtype):
        present = set(labels)
        groups = [str(c) for c in adata.obs[groupby].cat.categories if str(c) in present]
    else:
        groups = sorted(set(labels))
    few = groups_with_few_events(event, labels, min_events)
    if few:
        warnings.warn(
            f"skipping {len(few)} group(s) with fewer than {min_events} events: "
            + ", ".join(f"{g!r} ({n} events)" for g, n in few.items()),
            UserWarning,
            stacklevel=3,
        )
    cohort = _Cohort(rows, time, event, labels, groups, few)
    if not cohort.scored:
        raise ValueError(
            f"no group has {min_events} or more events; lower min_events (at least n_folds={n_folds}) or pool groups"
        )
    return cohort


def _fold_anchors(X_pool, t, e, folds, n_anchors: int, n_folds: int, seed: int) -> list[np.ndarray]:
    """Per outer training fold, the ``n_anchors`` pool columns with the best cross-validated univariate C-index."""
    anchors = []
    for train, _ in folds:
        Xtr = X_pool[train].copy()
        empty = _fill_nan_with_mean(Xtr)
        c = cv_concordance(Xtr, t[train], e[train], n_folds=n_folds, random_state=seed)
        c[empty] = np.nan
        ok = np.flatnonzero(~np.isnan(c))
        anchors.append(ok[np.argsort(-c[ok], kind="stable")][:n_anchors])
    return anchors


def _fold_features(features, model, sub, X_in, X_pool, t, e, folds, *, pool, n_anchors, n_folds, seed):
    """A function of the fold index giving the feature matrix of every sample of the group for that fold."""
    k = X_in.shape[1]
    if features in ("original", "pca"):
        return lambda f: X_in
    if features == "embedding":
        with quiet_model():
            emb = model.embed(sub, n_input=k, n_repeats=1, random_state=seed).astype(np.float64)
        return lambda f: emb
    anchors = _fold_anchors(X_pool, t, e, folds, n_anchors, n_folds, seed % (2**32 - 1))
    union = np.unique(np.concatenate(anchors))
    with quiet_model():
        restored = model.restore(sub, genes=pool[union], n_input=k, n_repeats=1, random_state=seed).astype(np.float64)
    position = {int(g): j for j, g in enumerate(union)}

    def build(f: int) -> np.ndarray:
        R = restored[:, [position[int(g)] for g in anchors[f]]]
        return R if features == "restored" else np.hstack([X_in, R])

    return build


def _cross_validate(F_of, y, folds, times, *, features, grid, search, n_pcs, k, seed):
    """Out-of-fold risks, survival curves at ``times`` (None where a fold's baseline does not reach them), penalties."""
    risk = np.full(len(y), np.nan)
    surv = np.full((len(y), len(times)), np.nan) if len(times) else None
    chosen = []
    for f, (train, test) in enumerate(folds):
        F = F_of(f)
        # components capped by the genes and by the samples of the smallest (inner) training set
        n_fit = (len(train) * (INNER_FOLDS - 1)) // INNER_FOLDS if search else len(train)
        pcs = max(1, min(n_pcs, n_fit - 1, k)) if features == "pca" else None
        fitted, a = fit_cox(F[train], y[train], grid, search, pcs, seed % (2**32 - 1))
        chosen.append(a)
        risk[test] = fitted.predict(F[test])
        if surv is not None:
            s = survival_at(fitted, F[test], times)
            if s is None:
                surv = None
            else:
                surv[test] = s
    return risk, surv, float(np.median(chosen))

def survival(
    adata: AnnData,
    *,
    model=None,
    features: str = "both",
    input_genes: int | Sequence[str] = 64,
    groupby: str | None = None,
    time_key: str = "os_time",
    event_key: str = "os_event",
    repeats: int = 3,
    random_state: int = 0,
    alpha: float | Sequence[float] | None = None,
    n_anchors: int = 512,
    n_folds: int = 5,
    min_events: int = 10,
    n_pcs: int = 200,
    layer: str | None = None,
    time_unit: str | None = None,
    progress: bool = True,
    key_added: str = "gexbert_survival",
    copy: bool = False,
) -> AnnData | None:
    """Cross-validated survival prediction per group with a ridge Cox model, as in the GexBERT paper.

    For each group (e.g. cancer type) and repeat, the samples with a survival time and event are split
    into ``n_folds`` folds stratified by event. On each training fold an L2-penalised Cox
    proportional-hazards model (:class:`sksurv.linear_model.CoxnetSurvivalAnalysis` with ``l1_ratio=1e-6``,
    a ridge penalty in practice: Coxnet needs ``l1_ratio > 0``, and sksurv's ``CoxPHSurvivalAnalysis`` takes
    seconds per fit with hundreds of features; features mean-imputed and standardised on the training fold) is fitted on ``features`` and predicts the held-out fold's risk. Harrell's
    C-index is computed on the pooled out-of-fold risks of each group and repeat.

    Features, all built from the same ``input_genes``:

    ``"original"``
        The input genes' values.
    ``"restored"``
        The anchors restored by the model from the input genes alone. The anchors are chosen inside each
        training fold, on its rows only, as the ``n_anchors`` genes with the best cross-validated
        C-index of a univariate Cox model (:func:`~gexbert_sc.tl._cox.cv_concordance`, as
        :func:`~gexbert_sc.tl.anchor_genes` does); candidates are adata's genes in the model's vocabulary.
        The model sees an AnnData that holds only the input genes' columns (:meth:`GexBERT.restore` with
        ``n_input = len(input genes)``, one subset: every input gene goes into the encoder).
    ``"both"``
        ``"original"`` and ``"restored"`` concatenated.
    ``"embedding"``
        The embedding of the input genes (:meth:`GexBERT.embed`, same inputs: the summary, then the linear
        latent with the default linear path).
    ``"pca"``
        Baseline without a model: the first ``n_pcs`` principal components (capped by the training
        samples and the input genes) of the same input genes, fitted on the training fold. The paper
        compares its embedding with a PCA "of the same genes" (its PCA-200); no model is needed.

    The pretrained model never sees survival data, so restoring or embedding the held-out samples leaks
    nothing; the anchors and the Cox model see the training fold only.

    Parameters
    ----------
    adata
        Samples x genes, the values the model was trained on (log scale), NaN where missing.
    model
        A trained :class:`~gexbert_sc.GexBERT`; needed for ``"restored"``, ``"both"`` and ``"embedding"``.
        With a model, input genes are drawn from adata's genes that the model knows (whatever
        ``features``), so runs with the same ``random_state`` and different ``features`` use the same
        genes and folds.
    features
        ``"original"``, ``"restored"``, ``"both"``, ``"embedding"`` or ``"pca"``, see above.
    input_genes
        Number of random input genes (drawn afresh for every repeat, seeded), or a list of gene names
        (the same for every repeat; repeats then differ in their folds).
    groupby
        ``adata.obs`` column of groups scored separately (e.g. ``"cancer_type"``); None scores all
        samples as one group ``"all"``. Samples without a group are dropped with a warning.
    time_key
        ``adata.obs`` column with the survival or censoring times (positive numbers).
    event_key
        ``adata.obs`` column with 1 / True for an event (death), 0 / False for censored. Samples
        without a time or an event are dropped with a warning counting them.
    repeats
        Repeats, each with its own input genes (for an int ``input_genes``), folds and seeds.
    random_state
        Seeds the input genes, the folds, the inner folds and the model's subsets.
    alpha
        Penalty of the Cox model (sksurv Coxnet units, on standardised features). None: chosen on each
        training fold by a 3-fold inner cross-validation (Harrell's C) over
        ``(0.01, 0.1, 1, 10, 100, 1000)``; a number: fixed; a list: the grid to search.
    n_anchors
        Anchors chosen per training fold (the paper: 512), capped by the candidate genes.
    n_folds
        Outer cross-validation folds; the anchor screen uses as many inner folds.
    min_events
        Groups with fewer events are skipped with a warning naming them (at least ``n_folds``).
    n_pcs
        Principal components of ``"pca"``.
    layer
        Read the values from this layer (a model reads its own: leave None or pass the model's).
    time_unit
        Unit of the times (e.g. ``"days"``), stored for plot labels.
    progress
        Show a progress bar over groups x repeats.
    key_added
        Prefix of the keys written.
    copy
        Return a modified copy instead of working in place.

    Returns
    -------
    The copy if ``copy``, else None. Adds

    ``.obs[key_added + "_risk"]``
        Out-of-fold risk score (Cox linear predictor, higher = earlier death) of the first repeat; NaN for
        samples not scored. Fold models are fitted apart, so risks are comparable within a fold; the
        pooled C-index (and the median split of :func:`gexbert_sc.pl.survival`) treat them as one scale.
    ``.uns[key_added]``
        ``"c_index"``: DataFrame, scored groups x repeats (columns ``"0"``, ``"1"``, ...), Harrell's C of
        the pooled out-of-fold risks; ``"mean"``: its mean over groups and repeats; ``"sd"``: the standard
        deviation over repeats of the mean over groups (0 with one repeat); ``"integrated_brier"``:
        DataFrame like ``"c_index"``, the integrated Brier score
        (:func:`sksurv.metrics.integrated_brier_score`) of the pooled out-of-fold survival curves on 20
        times evenly spaced between the 10th and 80th percentiles of the group's event times, the
        censoring distribution estimated on the group's samples; NaN where a fold model's baseline
        does not reach those times or the censoring distribution reaches 0 (short follow-up);
        ``"integrated_brier_mean"``: its mean over the finite entries (NaN if none); ``"alpha"``:
        DataFrame like ``"c_index"``, the median chosen penalty over the folds; ``"groups"``: DataFrame,
        all groups: ``n_samples``, ``n_events``, ``scored``; ``"input_genes"``: array, repeats x input
        genes; ``"params"``: the arguments (None stored as ``""``).

    Raises
    ------
    ValueError
        ``features`` needs a model and none is given; bad parameter values; no group with enough events.
    KeyError
        ``time_key``, ``event_key`` or ``groupby`` is not an ``adata.obs`` column; unknown input genes.
    TypeError
        Non-numeric times; a model that is not a GexBERT.

    Examples
    --------
    >>> import gexbert_sc as gb
    >>> adata = gb.datasets.synthetic()
    >>> model = gb.GexBERT(adata).train()
    >>> gb.tl.survival(adata, model=model, features="both", input_genes=64, groupby="cancer_type")
    >>> adata.uns["gexbert_survival"]["c_index"]
    """
    from sklearn.model_selection import StratifiedKFold
    from sksurv.metrics import concordance_index_censored, integrated_brier_score
    from sksurv.util import Surv

    ints = {"repeats": (repeats, 1), "random_state": (random_state, 0), "n_anchors": (n_anchors, 1),
            "n_folds": (n_folds, 2), "min_events": (min_events, 1), "n_pcs": (n_pcs, 1)}
    model, layer = _check_args(adata, model, features, layer, time_unit, key_added, ints)
    repeats, random_state, n_anchors, n_folds, min_events, n_pcs = (int(v) for v, _ in ints.values())
    grid, search = alpha_grid(alpha)
    cohort = _cohort(adata, groupby, time_key, event_key, min_events, n_folds)

    pool = input_gene_pool(adata, model)
    gene_col = pd.Index(adata.var_names.astype(str))
    genes_per_repeat = [
        draw_input_genes(input_genes, pool, np.random.default_rng(repeat_seed(random_state, r)), model is not None)
        for r in range(repeats)
    ]
    k = len(genes_per_repeat[0])
    need_anchors = features in ("restored", "both")
    n_anch = min(n_anchors, len(pool))

    if copy:
        adata = adata.copy()
    X = adata.layers[layer] if layer is not None else adata.X
    cols = [str(r) for r in range(repeats)]
    c_index = pd.DataFrame(np.nan, index=pd.Index(cohort.scored, dtype=object), columns=cols)
    brier, alphas = c_index.copy(), c_index.copy()
    risk_first = np.full(adata.n_obs, np.nan)
    bar = tqdm(total=len(cohort.scored) * repeats, desc=f"survival ({features})", unit="fit", disable=not progress)
    for grp in cohort.scored:
        in_grp = cohort.labels == grp
        rows = cohort.rows[in_grp]
        t_g, e_g = cohort.time[in_grp], cohort.event[in_grp]
        y_g = Surv.from_arrays(event=e_g, time=t_g)
        X_pool = dense_rows(X, rows, gene_col.get_indexer(pool)) if need_anchors else None
        times = brier_times(t_g, e_g)
        for r in range(repeats):
            seed = repeat_seed(random_state, r)
            in_cols = gene_col.get_indexer(genes_per_repeat[r])
            folds = list(
                StratifiedKFold(n_folds, shuffle=True, random_state=seed % (2**32 - 1)).split(np.zeros(len(e_g)), e_g)
            )
            X_in = dense_rows(X, rows, in_cols)
            sub = adata[rows, in_cols] if model is not None else None
            F_of = _fold_features(features, model, sub, X_in, X_pool, t_g, e_g, folds, pool=pool, n_anchors=n_anch,
                                  n_folds=n_folds, seed=seed)
            risk, surv, alpha_r = _cross_validate(F_of, y_g, folds, times, features=features, grid=grid,
                                                  search=search, n_pcs=n_pcs, k=k, seed=seed)
            c_index.loc[grp, cols[r]] = concordance_index_censored(e_g, t_g, risk)[0]
            alphas.loc[grp, cols[r]] = alpha_r
            if surv is not None:
                try:
                    brier.loc[grp, cols[r]] = integrated_brier_score(y_g, y_g, surv, times)
                except ValueError as err:
                    logger.info("no integrated Brier score for group %r, repeat %d: %s", grp, r, err)
            if r == 0:
                risk_first[rows] = risk
            bar.update(1)
    bar.close()

    params = {
        "features": features,
        "n_input_genes": k,
        "input_genes_given": not isinstance(input_genes, numbers.Integral),
        "groupby": "" if groupby is None else groupby,
        "time_key": time_key,
        "event_key": event_key,
        "repeats": repeats,
        "random_state": random_state,
        "alpha": "cv" if search else grid[0],
        "alpha_grid": np.asarray(grid, dtype=float),
        "l1_ratio": L1_RATIO,
        "inner_folds": INNER_FOLDS if search else 0,
        "n_anchors": n_anch if need_anchors else 0,
        "n_folds": n_folds,
        "min_events": min_events,
        "n_pcs": n_pcs if features == "pca" else 0,
        "layer": "" if layer is None else layer,
        "time_unit": "" if time_unit is None else time_unit,
        "model": "" if model is None else repr(model),
        "brier_times": f"{BRIER_POINTS} times evenly spaced between the {BRIER_PERCENTILES[0]:g}th and "
        f"{BRIER_PERCENTILES[1]:g}th percentiles of each group's event times",
    }
    _store(adata, key_added, cohort, c_index, brier, alphas, risk_first, genes_per_repeat, params)
    return adata if copy else None


def _store(adata, key_added, cohort: _Cohort, c_index, brier, alphas, risk_first, genes_per_repeat, params) -> None:
    """Write ``.obs[key_added + "_risk"]`` and ``.uns[key_added]``, and log what was added."""
    per_repeat = c_index.mean(axis=0).to_numpy()
    finite_brier = brier.to_numpy()[np.isfinite(brier.to_numpy())]
    n_samples = pd.Series(cohort.labels).value_counts()
    n_events = pd.Series(cohort.event).groupby(pd.Series(cohort.labels)).sum()
    adata.obs[key_added + "_risk"] = risk_first
    adata.uns[key_added] = {
        "c_index": c_index,
        "mean": float(np.mean(per_repeat)),
        "sd": float(np.std(per_repeat, ddof=1)) if len(per_repeat) > 1 else 0.0,
        "integrated_brier": brier,
        "integrated_brier_mean": float(finite_brier.mean()) if finite_brier.size else float("nan"),
        "alpha": alphas,
        "groups": pd.DataFrame(
            {
                "n_samples": [int(n_samples.get(g, 0)) for g in cohort.groups],
                "n_events": [int(n_events.get(g, 0)) for g in cohort.groups],
                "scored": [g not in cohort.few for g in cohort.groups],
            },
            index=pd.Index(cohort.groups, dtype=object),
        ),
        "input_genes": np.array(genes_per_repeat, dtype=object).astype(str),
        "params": params,
    }
    logger.info(
        "survival (%s, %d input genes): mean C-index %.3f over %d group(s) x %d repeat(s); added .obs[%r] and .uns[%r]",
        params["features"],
        params["n_input_genes"],
        adata.uns[key_added]["mean"],
        len(cohort.scored),
        params["repeats"],
        key_added + "_risk",
        key_added,
    )
