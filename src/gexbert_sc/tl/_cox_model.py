"""The survival model of ``tl.survival``: scikit-survival's ridge Cox pipeline, its penalty search, Brier times."""

from __future__ import annotations

import numbers
import warnings

import numpy as np

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

def alpha_grid(alpha) -> tuple[list[float], bool]:
    """The penalties to try and whether to search them: ``alpha`` None, a number or a list (checked)."""
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


def cox_pipeline(n_pcs: int | None, random_state: int):
    """Mean imputation, scaling, optional PCA, and sksurv's ridge-penalised Coxnet, as one pipeline."""
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


def fit_cox(Xtr, ytr, grid: list[float], search: bool, n_pcs: int | None, seed: int):
    """Fit the Cox pipeline, choosing ``alpha`` by inner cross-validation (Harrell's C) when ``search``."""
    from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    pipe = cox_pipeline(n_pcs, seed)
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


def brier_times(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """The integrated Brier score's time grid: evenly spaced over the given percentiles of the event times."""
    lo, hi = np.percentile(time[event], BRIER_PERCENTILES)
    times = np.unique(np.linspace(lo, hi, BRIER_POINTS))
    return times[(times >= time.min()) & (times < time.max())]


def survival_at(fitted, X, times: np.ndarray) -> np.ndarray | None:
    """Predicted survival probabilities at ``times``, or None where the model's baseline does not reach them."""
    try:
        fns = fitted.predict_survival_function(X)
        return np.vstack([fn(times) for fn in fns])
    except ValueError:
        return None
