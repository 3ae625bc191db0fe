import warnings

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored

from gexbert_sc.tl._cox import concordance_index, cv_concordance, univariate_cox


def _survival(n, rng, n_times=None):
    """Times with ties (integers when n_times is set) and ~35% censoring."""
    t = rng.exponential(10.0, n)
    if n_times is not None:
        t = np.ceil(t * n_times / t.max())
    return t, rng.random(n) > 0.35


def _sksurv_coef(x, time, event, l2):
    y = np.array(list(zip(event, time, strict=True)), dtype=[("event", bool), ("time", float)])
    model = CoxPHSurvivalAnalysis(alpha=l2, ties="breslow", n_iter=500, tol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(x[:, None], y).coef_[0]


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_univariate_cox_matches_sksurv_breslow(l2):
    """Coefficients equal sksurv's Breslow fits gene by gene, with tied times, odd scales and ridge."""
    rng = np.random.default_rng(0)
    n = 90
    time, event = _survival(n, rng, n_times=25)  # many tied times, events and censored among them
    assert len(np.unique(time)) < n / 2
    X = rng.normal(size=(n, 10))
    X[:, 0] = X[:, 0] * 200 + 1000  # large scale and offset
    X[:, 1] *= 1e-3  # small scale
    X[:, 2] = rng.integers(0, 3, n)  # tied values
    X[:, 3] += 0.8 * np.log(1 / time)  # a real effect
    beta, converged = univariate_cox(X, time, event, l2=l2, tol=1e-10)
    assert converged.all()
    ref = np.array([_sksurv_coef(X[:, j], time, event, l2) for j in range(X.shape[1])])
    np.testing.assert_allclose(beta, ref, rtol=1e-5, atol=1e-12 if l2 == 0 else 1e-9)


def test_univariate_cox_constant_gene_one_d_and_separation():
    """Constant genes get 0, 1-D input gives floats, separation is flagged and fixed by l2."""
    rng = np.random.default_rng(1)
    n = 40
    time = np.arange(1.0, n + 1)
    event = np.ones(n, dtype=bool)
    event[::3] = False
    X = np.column_stack([np.full(n, 7.0), -time, rng.normal(size=n)])  # constant, separating, noise
    beta, converged = univariate_cox(X, time, event)
    assert beta[0] == 0 and converged[0]
    assert beta[1] > 1 and not converged[1]  # no finite maximiser without l2
    b1, c1 = univariate_cox(X[:, 2], time, event)
    assert isinstance(b1, float) and c1 and b1 == pytest.approx(beta[2], rel=1e-10)
    # with a ridge the separating gene has a finite optimum, the same as sksurv's
    beta_r, conv_r = univariate_cox(X, time, event, l2=1.0, tol=1e-10)
    assert conv_r.all()
    assert beta_r[1] == pytest.approx(_sksurv_coef(X[:, 1], time, event, 1.0), rel=1e-5)


def test_univariate_cox_no_event_and_bad_inputs():
    """No event gives beta 0; NaN, bad events and mismatched lengths raise."""
    X = np.random.default_rng(2).normal(size=(10, 3))
    beta, conv = univariate_cox(X, np.arange(1.0, 11), np.zeros(10, dtype=bool))
    assert (beta == 0).all() and conv.all()
    X[0, 1] = np.nan
    with pytest.raises(ValueError, match="fill them first"):
        univariate_cox(X, np.arange(1.0, 11), np.ones(10))
    with pytest.raises(ValueError, match="bool or 0/1"):
        univariate_cox(X[:, [0]], np.arange(1.0, 11), np.full(10, 2))
    with pytest.raises(ValueError, match="same length"):
        univariate_cox(X[:, [0]], np.arange(1.0, 10), np.ones(9))


@pytest.mark.parametrize("n", [7, 64, 130])
def test_concordance_index_matches_sksurv(n):
    """Harrell's C equals sksurv's exactly, with tied risks, tied times and near ties."""
    rng = np.random.default_rng(n)
    for _ in range(4):
        time, event = _survival(n, rng, n_times=max(3, n // 4))  # tied times: event/event, event/censored
        event[0] = True
        risk = np.column_stack(
            [
                rng.normal(size=n),
                rng.integers(0, 4, n).astype(float),  # tied risks
                np.zeros(n),  # all tied
                rng.integers(0, 3, n) * 5e-9,  # distinct, but tied within sksurv's tolerance 1e-8
                np.cumsum(rng.integers(0, 2, n)) * 0.6e-8,  # chains of near ties (not transitive)
                -time + rng.normal(scale=0.1, size=n),
            ]
        )
        got = concordance_index(risk, time, event)
        ref = [concordance_index_censored(event, time, risk[:, j])[0] for j in range(risk.shape[1])]
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
        assert concordance_index(risk[:, 0], time, event) == pytest.approx(ref[0], abs=1e-12)


def test_concordance_index_tied_event_times_are_not_comparable():
    """Tied times: event/event pairs are not comparable, event/censored pairs are."""
    # two events at the same time: no comparable pair (sksurv raises, we return NaN);
    # an event and a censored sample at the same time: comparable
    assert np.isnan(concordance_index(np.array([1.0, 2.0]), [5.0, 5.0], [True, True]))
    assert concordance_index(np.array([2.0, 1.0]), [5.0, 5.0], [True, False]) == 1.0
    assert concordance_index(np.array([1.0, 2.0]), [5.0, 5.0], [True, False]) == 0.0
    assert np.isnan(concordance_index(np.array([1.0, 2.0]), [1.0, 2.0], [False, False]))
    with pytest.raises(ValueError, match="NaN"):
        concordance_index(np.array([1.0, np.nan]), [1.0, 2.0], [True, True])


def test_cv_concordance_matches_a_sksurv_loop():
    """The cross-validated C-index equals a gene-by-gene sksurv loop over the same folds."""
    rng = np.random.default_rng(5)
    n = 120
    X = rng.normal(size=(n, 6))
    X[:, 5] = 3.0  # constant: beta 0, all risks tied, C = 0.5
    time = rng.exponential(1 / np.exp(0.7 * X[:, 0] - 0.5 * X[:, 1]))
    time = np.ceil(time * 20)  # tied times
    event = rng.random(n) > 0.3
    got = cv_concordance(X, time, event, n_folds=4, random_state=3, l2=0.0)
    folds = StratifiedKFold(n_splits=4, shuffle=True, random_state=3).split(X, event)
    per_fold = []
    for train, test in folds:
        coefs = [_sksurv_coef(X[train, j], time[train], event[train], 0.0) for j in range(5)]
        c = [concordance_index_censored(event[test], time[test], X[test, j] * coefs[j])[0] for j in range(5)]
        per_fold.append(c + [0.5])
    np.testing.assert_allclose(got, np.mean(per_fold, axis=0), atol=1e-12)
    assert got[0] > 0.6 and got[1] > 0.6  # the two real effects
    np.testing.assert_array_equal(got, cv_concordance(X, time, event, n_folds=4, random_state=3, l2=0.0))
    with pytest.raises(ValueError, match="n_folds"):
        cv_concordance(X, time, event, n_folds=1)
