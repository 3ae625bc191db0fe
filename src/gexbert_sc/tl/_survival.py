"""``tl.survival``: cross-validated Cox models of survival on input genes, restored anchors or embeddings."""

from __future__ import annotations

import logging
import numbers
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from tqdm.auto import tqdm

from gexbert_sc._validate import check_anndata, check_layer, check_matrix_values, check_obs_key, obs_labels
from gexbert_sc._validate import check_int as _check_int

from ._anchor_genes import _fill_nan_with_mean
from ._cox import cv_concordance
from ._survival_data import groups_with_few_events, survival_arrays

logger = logging.getLogger("gexbert_sc")

FEATURES = ("original", "restored", "both", "embedding", "pca")
_NEEDS_MODEL = ("restored", "both", "embedding")

#: Penalties searched by inner cross-validation when ``alpha=None`` (sksurv Coxnet units: the penalty is
#: added to the mean negative partial log-likelihood, on standardised features).
ALPHA_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
#: Elastic-net mixing of the Cox model: sksurv's Coxnet needs it > 0; 1e-6 makes it a ridge (L2) penalty in
#: practice (no coefficient set to zero even at the largest penalty of the grid).
L1_RATIO = 1e-6
#: Inner cross-validation folds used to choose ``alpha`` on each outer training fold.
INNER_FOLDS = 3
#: Coordinate-descent iterations per Cox fit; fits with tiny penalties and more features than samples stop
#: there (they overfit and lose the inner cross-validation anyway).
MAX_ITER = 1000
#: Percentiles of a group's event times that bound the integrated Brier score's time grid, and its size.
BRIER_PERCENTILES = (10.0, 80.0)
BRIER_POINTS = 20

# warnings the model raises for every sub-AnnData of input genes: expected here, said once in the docs
_MODEL_NOISE = (
    r".*genes are absent from the AnnData and are treated as missing",
    r"this GexBERT has not been trained",
)



def check_key_added(key_added) -> str:
    """Raise ``ValueError`` unless ``key_added`` can name ``.uns``/``.obs`` entries of an ``.h5ad`` file."""
    if not isinstance(key_added, str) or not key_added or "/" in key_added:
        raise ValueError(f"key_added must be a non-empty string without '/', got {key_added!r}")
    return key_added


def check_model(model, features: str):
    """Raise unless ``model`` is a GexBERT (or None where ``features`` needs none)."""
    from gexbert_sc.model import GexBERT

    if model is None:
        return None
    if not isinstance(model, GexBERT):
        raise TypeError(f"model must be a trained GexBERT or None, got {type(model).__name__}")
    return model


def input_gene_pool(adata: AnnData, model) -> np.ndarray:
    """Genes the input genes are drawn from: ``adata``'s genes, those of the model's vocabulary with a model."""
    names = np.asarray(adata.var_names.astype(str))
    if model is None:
        return names
    known = np.isin(names, np.asarray(model.genes, dtype=str))
    if not known.any():
        raise ValueError(
            f"none of the {adata.n_vars} genes of adata is in the model's vocabulary of {len(model.genes)} genes; "
            "check that var_names hold the same kind of gene identifiers as the model's (model.genes)"
        )
    return names[known]


def draw_input_genes(input_genes, pool: np.ndarray, rng: np.random.Generator, with_model: bool = False) -> np.ndarray:
    """``input_genes`` random genes of ``pool`` (an int), or the given names, checked."""
    where = "adata's genes that the model knows" if with_model else "adata.var_names"
    if isinstance(input_genes, numbers.Integral) and not isinstance(input_genes, bool | np.bool_):
        k = int(input_genes)
        if not 1 <= k <= len(pool):
            raise ValueError(
                f"input_genes={k} but {len(pool)} gene(s) can be drawn ({where}); pass between 1 and that many"
            )
        return np.sort(rng.choice(pool, k, replace=False))
    if isinstance(input_genes, str) or not isinstance(input_genes, Sequence | np.ndarray | pd.Index):
        raise TypeError(f"input_genes must be an int (random genes) or a list of gene names, got {input_genes!r}")
    names = np.asarray(list(input_genes), dtype=str)
    if len(names) == 0:
        raise ValueError("input_genes is an empty list; pass gene names or a number of random genes")
    dup = pd.Index(names)[pd.Index(names).duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"input_genes repeats gene name(s) {dup[:5]}; list each gene once")
    unknown = [g for g in names if g not in set(pool)]
    if unknown:
        raise KeyError(
            f"{len(unknown)} of input_genes cannot be used, e.g. {unknown[:5]}: they are not among {where}"
        )
    return names


def dense_rows(X, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
    """Rows (and columns) of a dense, sparse or backed matrix as a float64 array (a copy)."""
    sub = X[rows] if cols is None else (X[rows][:, cols])
    if sp.issparse(sub):
        sub = sub.toarray()
    return np.array(sub, dtype=np.float64)


def repeat_seed(random_state: int, repeat: int) -> int:
    """The seed of repeat ``repeat`` of a run seeded with ``random_state`` (input genes, folds, model subsets)."""
    return int(np.random.SeedSequence([int(random_state), int(repeat)]).generate_state(1)[0])


def _alpha_grid(alpha) -> tuple[list[float], bool]:
    if alpha is None:
        return list(ALPHA_GRID), True
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool | np.bool_):
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        return [float(alpha)], False
    grid = [float(a) for a in np.asarray(alpha, dtype=float).ravel()]
    if not grid or not all(a > 0 for a in grid):
        raise ValueError(f"alpha must be None, a positive number or a list of positive numbers, got {alpha!r}")
    return sorted(set(grid)), len(set(grid)) > 1


def _cox_pipeline(n_pcs: int | None, random_state: int):
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    steps = [("impute", SimpleImputer(strategy="mean", keep_empty_features=True)), ("scale", StandardScaler())]
    if n_pcs is not None:
        steps += [("pca", PCA(n_components=n_pcs, random_state=random_state)), ("pc_scale", StandardScaler())]
    steps.append(
        ("cox", CoxnetSurvivalAnalysis(l1_ratio=L1_RATIO, alphas=[1.0], max_iter=MAX_ITER, fit_baseline_model=True))
    )
    return Pipeline(steps)


def _fit_cox(Xtr, ytr, grid: list[float], search: bool, n_pcs: int | None, seed: int):
    """Fit the Cox pipeline, choosing ``alpha`` by inner cross-validation (Harrell's C) when ``search``."""
    from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    pipe = _cox_pipeline(n_pcs, seed)
    with warnings.catch_warnings(), np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        # a penalty too small for the data fails (numerical overflow) and scores NaN: it is never chosen
        warnings.simplefilter("ignore", FitFailedWarning)
        warnings.filterwarnings("ignore", message=r"One or more of the test scores are non-finite")
        warnings.filterwarnings("ignore", message=r".*least populated class", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*(Optimization terminated early|Numerical error|all coefficients)")
        if search:
            inner = StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed)
            splits = list(inner.split(np.zeros(len(ytr)), ytr["event"]))
            gs = GridSearchCV(
                pipe.set_params(cox__fit_baseline_model=False),
                {"cox__alphas": [[a] for a in grid]},
                cv=splits,
                error_score=np.nan,
                refit=False,
            )
            gs.fit(Xtr, ytr)
            scores = np.nan_to_num(gs.cv_results_["mean_test_score"], nan=-np.inf)
            # ties go to the larger penalty (the simpler model)
            best = float(grid[int(np.flatnonzero(scores == scores.max())[-1])])
        else:
            best = grid[0]
        # a penalty too small to fit (numerical overflow) steps up the grid
        for a in [g for g in grid if g >= best] + [max(grid) * 10.0]:
            try:
                return pipe.set_params(cox__alphas=[a], cox__fit_baseline_model=True).fit(Xtr, ytr), a
            except ArithmeticError:
                continue
    raise ArithmeticError("the Cox model could not be fitted at any penalty; check the features for extreme values")


def _brier_times(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(time[event], BRIER_PERCENTILES)
    times = np.unique(np.linspace(lo, hi, BRIER_POINTS))
    return times[(times >= time.min()) & (times < time.max())]


def _survival_at(fitted, X, times: np.ndarray) -> np.ndarray | None:
    """Predicted survival probabilities at ``times``, or None where the model's baseline does not reach them."""
    try:
        fns = fitted.predict_survival_function(X)
        return np.vstack([fn(times) for fn in fns])
    except ValueError:
        return None


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
        The summary embedding of the input genes (:meth:`GexBERT.embed`, same inputs).
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

    check_anndata(adata)
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    model = check_model(model, features)
    if model is None and features in _NEEDS_MODEL:
        raise ValueError(
            f"features={features!r} needs a trained GexBERT: pass model=GexBERT(adata).train() (or GexBERT.load(...)); "
            "features='original' and 'pca' need no model"
        )
    repeats = _check_int(repeats, "repeats", 1)
    random_state = _check_int(random_state, "random_state", 0)
    n_anchors = _check_int(n_anchors, "n_anchors", 1)
    n_folds = _check_int(n_folds, "n_folds", 2)
    min_events = _check_int(min_events, "min_events", 1)
    n_pcs = _check_int(n_pcs, "n_pcs", 1)
    if min_events < n_folds:
        raise ValueError(
            f"min_events ({min_events}) must be >= n_folds ({n_folds}) so that every held-out fold can hold an "
            "event; raise min_events or lower n_folds"
        )
    grid, search = _alpha_grid(alpha)
    check_key_added(key_added)
    if time_unit is not None and not isinstance(time_unit, str):
        raise TypeError(f"time_unit must be a string such as 'days', got {time_unit!r}")
    if model is not None:
        if layer is not None and layer != model.layer:
            raise ValueError(
                f"layer={layer!r} but the model reads {'adata.X' if model.layer is None else repr(model.layer)}; "
                "leave layer=None to use the model's"
            )
        layer = model.layer
    check_layer(adata, layer)
    if not adata.var_names.is_unique:
        raise ValueError("adata.var_names has duplicated gene names; call adata.var_names_make_unique() first")
    X = adata.layers[layer] if layer is not None else adata.X
    if X is None:
        raise ValueError("adata.X is empty; pass layer= naming the layer with the expression values")
    check_matrix_values(X, "adata.X" if layer is None else f"adata.layers[{layer!r}]")
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
            stacklevel=2,
        )
    has_group = ~pd.isna(labels[keep])
    rows_all = np.flatnonzero(keep)[has_group]
    time, event, kept_labels = time[has_group], event[has_group], labels[keep][has_group]
    if groupby is not None and isinstance(adata.obs[groupby].dtype, pd.CategoricalDtype):
        present = set(kept_labels)
        groups = [str(c) for c in adata.obs[groupby].cat.categories if str(c) in present]
    else:
        groups = sorted(set(kept_labels))
    few = groups_with_few_events(event, kept_labels, min_events)
    if few:
        warnings.warn(
            f"skipping {len(few)} group(s) with fewer than {min_events} events: "
            + ", ".join(f"{g!r} ({n} events)" for g, n in few.items()),
            UserWarning,
            stacklevel=2,
        )
    scored = [g for g in groups if g not in few]
    if not scored:
        raise ValueError(
            f"no group has {min_events} or more events; lower min_events (at least n_folds={n_folds}) or pool groups"
        )
    if model is not None and not model.is_trained:
        warnings.warn(
            "this GexBERT has not been trained: its restorations and embeddings are random. Call model.train() first",
            UserWarning,
            stacklevel=2,
        )

    pool = input_gene_pool(adata, model)
    gene_col = pd.Index(adata.var_names.astype(str))
    genes_per_repeat = [
        draw_input_genes(input_genes, pool, np.random.default_rng(repeat_seed(random_state, r)), model is not None)
        for r in range(repeats)
    ]
    k = len(genes_per_repeat[0])
    pool_cols = gene_col.get_indexer(pool)
    need_anchors = features in ("restored", "both")
    n_anch = min(n_anchors, len(pool))

    if copy:
        adata = adata.copy()
        X = adata.layers[layer] if layer is not None else adata.X
    cols = [str(r) for r in range(repeats)]
    c_index = pd.DataFrame(np.nan, index=pd.Index(scored, dtype=object), columns=cols)
    brier = c_index.copy()
    alphas = c_index.copy()
    risk_first = np.full(adata.n_obs, np.nan)
    bar = tqdm(total=len(scored) * repeats, desc=f"survival ({features})", unit="fit", disable=not progress)
    for grp in scored:
        in_grp = kept_labels == grp
        rows = rows_all[in_grp]
        t_g, e_g = time[in_grp], event[in_grp]
        y_g = Surv.from_arrays(event=e_g, time=t_g)
        X_pool = dense_rows(X, rows, pool_cols) if need_anchors else None
        times = _brier_times(t_g, e_g)
        for r in range(repeats):
            seed = repeat_seed(random_state, r)
            genes_r = genes_per_repeat[r]
            in_cols = gene_col.get_indexer(genes_r)
            folds = list(
                StratifiedKFold(n_folds, shuffle=True, random_state=seed % (2**32 - 1)).split(np.zeros(len(e_g)), e_g)
            )
            X_in = dense_rows(X, rows, in_cols)
            sub = adata[rows, in_cols] if model is not None else None
            emb = restored = None
            if features == "embedding":
                with warnings.catch_warnings():
                    for msg in _MODEL_NOISE:
                        warnings.filterwarnings("ignore", message=msg, category=UserWarning)
                    emb = model.embed(sub, n_input=k, n_repeats=1, random_state=seed).astype(np.float64)
            anchors = []
            if need_anchors:
                for train, _ in folds:
                    Xtr = X_pool[train].copy()
                    empty = _fill_nan_with_mean(Xtr)
                    c = cv_concordance(Xtr, t_g[train], e_g[train], n_folds=n_folds, random_state=seed % (2**32 - 1))
                    c[empty] = np.nan
                    ok = np.flatnonzero(~np.isnan(c))
                    anchors.append(ok[np.argsort(-c[ok], kind="stable")][:n_anch])
                union = np.unique(np.concatenate(anchors))
                with warnings.catch_warnings():
                    for msg in _MODEL_NOISE:
                        warnings.filterwarnings("ignore", message=msg, category=UserWarning)
                    restored = model.restore(sub, genes=pool[union], n_input=k, n_repeats=1, random_state=seed)
                restored = restored.astype(np.float64)
                where_in_union = {int(g): j for j, g in enumerate(union)}
            risk = np.full(len(rows), np.nan)
            surv = np.full((len(rows), len(times)), np.nan)
            surv_ok = len(times) > 0
            chosen = []
            for f, (train, test) in enumerate(folds):
                if features == "original" or features == "pca":
                    F = X_in
                elif features == "embedding":
                    F = emb
                else:
                    R = restored[:, [where_in_union[int(g)] for g in anchors[f]]]
                    F = R if features == "restored" else np.hstack([X_in, R])
                # components capped by the genes and by the samples of the smallest (inner) training set
                n_fit = (len(train) * (INNER_FOLDS - 1)) // INNER_FOLDS if search else len(train)
                pcs = max(1, min(n_pcs, n_fit - 1, k)) if features == "pca" else None
                fitted, a = _fit_cox(F[train], y_g[train], grid, search, pcs, seed % (2**32 - 1))
                chosen.append(a)
                risk[test] = fitted.predict(F[test])
                if surv_ok:
                    s = _survival_at(fitted, F[test], times)
                    if s is None:
                        surv_ok = False
                    else:
                        surv[test] = s
            c_index.loc[grp, cols[r]] = concordance_index_censored(e_g, t_g, risk)[0]
            alphas.loc[grp, cols[r]] = float(np.median(chosen))
            if surv_ok:
                try:
                    brier.loc[grp, cols[r]] = integrated_brier_score(y_g, y_g, surv, times)
                except ValueError as err:
                    logger.info("no integrated Brier score for group %r, repeat %d: %s", grp, r, err)
            if r == 0:
                risk_first[rows] = risk
            bar.update(1)
    bar.close()

    per_repeat = c_index.mean(axis=0).to_numpy()
    finite_brier = brier.to_numpy()[np.isfinite(brier.to_numpy())]
    n_samples = pd.Series(kept_labels).value_counts()
    n_events = pd.Series(event).groupby(pd.Series(kept_labels)).sum()
    adata.obs[key_added + "_risk"] = risk_first
    adata.uns[key_added] = {
        "c_index": c_index,
        "mean": float(np.mean(per_repeat)),
        "sd": float(np.std(per_repeat, ddof=1)) if repeats > 1 else 0.0,
        "integrated_brier": brier,
        "integrated_brier_mean": float(finite_brier.mean()) if finite_brier.size else float("nan"),
        "alpha": alphas,
        "groups": pd.DataFrame(
            {
                "n_samples": [int(n_samples.get(g, 0)) for g in groups],
                "n_events": [int(n_events.get(g, 0)) for g in groups],
                "scored": [g not in few for g in groups],
            },
            index=pd.Index(groups, dtype=object),
        ),
        "input_genes": np.array(genes_per_repeat, dtype=object).astype(str),
        "params": {
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
        },
    }
    logger.info(
        "survival (%s, %d input genes): mean C-index %.3f over %d group(s) x %d repeat(s); added .obs[%r] and .uns[%r]",
        features,
        k,
        adata.uns[key_added]["mean"],
        len(scored),
        repeats,
        key_added + "_risk",
        key_added,
    )
    return adata if copy else None
