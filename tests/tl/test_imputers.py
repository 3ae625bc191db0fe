"""Baseline imputers and split-conformal intervals (gexbert_sc.tl._imputers)."""

import numpy as np
import pytest
import scipy.sparse as sp

from gexbert_sc.tl._imputers import BASELINE_METHODS, ConformalCalibration, conformal_calibrate, impute_matrix


def _low_rank(n, p, *, rank=3, noise=0.1, rate=0.2, seed=0):
    """Rank-``rank`` matrix with gene offsets + Gaussian noise, and an MCAR mask of ``rate``."""
    rng = np.random.default_rng(seed)
    X = (
        rng.normal(size=(n, rank)) @ rng.normal(size=(rank, p))
        + 2 * rng.normal(size=p)
        + noise * rng.normal(size=(n, p))
    )
    mask = rng.random(X.shape) < rate
    X_missing = X.copy()
    X_missing[mask] = np.nan
    return X, X_missing, mask


def _rmse(F, X, mask):
    return float(np.sqrt(((F[mask] - X[mask]) ** 2).mean()))


@pytest.fixture(scope="module")
def low_rank():
    return _low_rank(200, 50)


@pytest.mark.parametrize("method", BASELINE_METHODS)
def test_observed_untouched_and_missing_filled(method):
    rng = np.random.default_rng(3)
    X = rng.normal(loc=5.0, size=(60, 30))
    X[rng.random(X.shape) < 0.15] = np.nan
    X_before = X.copy()
    F = impute_matrix(X, method, n_neighbors=5, max_iter=3 if method == "mice" else None)
    missing = np.isnan(X)
    assert F.dtype == np.float32 and F.shape == X.shape
    assert np.array_equal(F[~missing], X[~missing].astype(np.float32))
    assert np.isfinite(F).all()
    assert np.array_equal(X, X_before, equal_nan=True)  # input not modified
    if method == "zero":
        assert (F[missing] == 0).all()
    if method == "mean":
        np.testing.assert_allclose(F[missing], np.broadcast_to(np.nanmean(X, axis=0), X.shape)[missing], rtol=1e-6)


def test_no_missing_returns_float32_copy():
    X = np.arange(12, dtype=np.int64).reshape(3, 4)
    F = impute_matrix(X, "softimpute")
    assert F.dtype == np.float32 and np.array_equal(F, X)


def test_low_rank_accuracy(low_rank):
    X, X_missing, mask = low_rank
    rmse = {m: _rmse(impute_matrix(X_missing, m), X, mask) for m in ("zero", "mean", "knn", "softimpute")}
    assert rmse["mean"] < rmse["zero"]
    assert rmse["knn"] < rmse["mean"]
    assert rmse["softimpute"] < 0.5 * rmse["mean"]
    assert rmse["softimpute"] < 0.25  # noise sd is 0.1; a rank-3 fit gets close to it
    assert rmse["softimpute"] < rmse["knn"]


def test_mice_beats_mean_on_low_rank(low_rank):
    X, X_missing, mask = low_rank
    assert _rmse(impute_matrix(X_missing, "mice", max_iter=3), X, mask) < 0.5 * _rmse(
        impute_matrix(X_missing, "mean"), X, mask
    )


def test_softimpute_reproducible(low_rank):
    _, X_missing, _ = low_rank
    a = impute_matrix(X_missing, "softimpute", random_state=1)
    b = impute_matrix(X_missing, "softimpute", random_state=1)
    assert np.array_equal(a, b)


def test_softimpute_randomized_svd_path():
    # smaller side > 300 takes the randomized truncated SVD
    X, X_missing, mask = _low_rank(320, 310, rank=4, noise=0.1, seed=5)
    F = impute_matrix(X_missing, "softimpute", n_lambdas=8)
    assert _rmse(F, X, mask) < 0.25 * _rmse(impute_matrix(X_missing, "mean"), X, mask)


def test_conformal_coverage_softimpute():
    X, X_missing, mask = _low_rank(300, 80, seed=11)
    cal = conformal_calibrate(X_missing, lambda A: impute_matrix(A, "softimpute"), interval=0.9, fraction=0.1)
    assert isinstance(cal, ConformalCalibration)
    assert cal.scale.shape == (80,) and np.isfinite(cal.q) and cal.q > 0
    F = impute_matrix(X_missing, "softimpute")
    sd, lower, upper = cal.intervals(F)
    assert sd.shape == lower.shape == upper.shape == F.shape
    assert (lower <= F).all() and (F <= upper).all()
    covered = (X[mask] >= lower[mask]) & (X[mask] <= upper[mask])
    assert 0.85 <= covered.mean() <= 0.95
    # the residual sd estimate is of the order of the noise (0.1), not of the gene spread
    assert 0.05 < float(np.median(cal.scale)) < 0.3


def test_conformal_any_imputer_and_per_gene_scale():
    # genes 0-39 are noisy (sd 2), genes 40-79 quiet (sd 0.2): the mean imputer's residuals differ per gene
    rng = np.random.default_rng(2)
    sd_gene = np.r_[np.full(40, 2.0), np.full(40, 0.2)]
    X = rng.normal(size=(400, 80)) * sd_gene
    mask = rng.random(X.shape) < 0.2
    X_missing = np.where(mask, np.nan, X)
    cal = conformal_calibrate(X_missing, lambda A: impute_matrix(A, "mean"), interval=0.9, fraction=0.1, random_state=4)
    assert cal.scale[:40].mean() / cal.scale[40:].mean() > 5
    F = impute_matrix(X_missing, "mean")
    _, lower, upper = cal.intervals(F)
    covered = (X >= lower) & (X <= upper)
    assert 0.85 <= covered[mask].mean() <= 0.95
    # per-gene scales keep coverage on both kinds of gene, not just on average
    assert 0.8 <= covered[:, :40][mask[:, :40]].mean() <= 0.98
    assert 0.8 <= covered[:, 40:][mask[:, 40:]].mean() <= 0.98


def test_conformal_quantile_and_shrinkage_rule():
    X = np.zeros((50, 4))
    X[::7, 0] = np.nan
    # residual X - pred is exactly -1 on every hidden entry
    cal = conformal_calibrate(X, lambda A: np.where(np.isnan(A), 1.0, A), interval=0.8, fraction=0.2)
    np.testing.assert_allclose(cal.scale, 1.0)
    assert cal.q == pytest.approx(1.0) and cal.global_rms == pytest.approx(1.0)
    assert cal.n_calibration == round(0.2 * (~np.isnan(X)).sum()) == cal.n_per_gene.sum()
    # too few calibration entries for the requested coverage: q is infinite, by the finite-sample rule
    cal = conformal_calibrate(np.zeros((3, 3)), lambda A: np.nan_to_num(A), interval=0.9, fraction=0.5)
    assert cal.n_calibration == 4 and cal.q == np.inf  # ceil(5 * 0.9) = 5 > 4


def test_conformal_keeps_one_value_per_gene():
    X = np.full((10, 3), np.nan)
    X[0, :] = 1.0  # one observed value per gene: none may be hidden
    X[:, 2] = np.arange(10.0)
    seen = []
    conformal_calibrate(X, lambda A: seen.append(A) or impute_matrix(A, "mean"), fraction=0.9)
    assert (~np.isnan(seen[0])).any(axis=0).all()


def test_intervals_one_sample():
    cal = ConformalCalibration(
        scale=np.array([1.0, 2.0]), q=1.5, interval=0.9, n_calibration=10, n_per_gene=np.array([5, 5])
    )
    sd, lo, hi = cal.intervals(np.array([0.0, 10.0]))
    np.testing.assert_allclose(sd, [1.0, 2.0])
    np.testing.assert_allclose(lo, [-1.5, 7.0])
    np.testing.assert_allclose(hi, [1.5, 13.0])
    with pytest.raises(ValueError, match=r"pred must be \(n_samples, 2\)"):
        cal.intervals(np.zeros((3, 5)))


def test_errors():
    X = np.ones((5, 4))
    X[:, 1] = np.nan
    X[:, 3] = np.nan
    X[0, 0] = np.nan
    with pytest.raises(
        ValueError, match=r"unknown method 'svd'; choose one of \['zero', 'mean', 'knn', 'softimpute', 'mice'\]"
    ):
        impute_matrix(X, "svd")
    with pytest.raises(ValueError, match=r"2 column\(s\) have no observed value.*first: \[1, 3\].*drop these genes"):
        impute_matrix(X, "mean")
    with pytest.raises(ValueError, match=r"first: \['g1', 'g3'\]"):
        impute_matrix(X, "knn", feature_names=["g0", "g1", "g2", "g3"])
    with pytest.raises(TypeError, match=r"pass X.toarray\(\)"):
        impute_matrix(sp.csr_matrix(np.ones((3, 3))), "mean")
    with pytest.raises(ValueError, match="infinite"):
        impute_matrix(np.array([[1.0, np.inf], [np.nan, 2.0]]), "mean")
    with pytest.raises(ValueError, match="takes no further keywords"):
        impute_matrix(np.array([[1.0, np.nan], [2.0, 2.0]]), "zero", tol=1e-3)
    with pytest.raises(ValueError, match="must be 2-D"):
        impute_matrix(np.ones(4), "mean")
    Y = np.ones((20, 3))
    with pytest.raises(ValueError, match=r"interval must be in \(0, 1\)"):
        conformal_calibrate(Y, lambda A: A, interval=1.0)
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
        conformal_calibrate(Y, lambda A: A, fraction=0)
    with pytest.raises(ValueError, match=r"impute_fn returned shape \(2, 2\)"):
        conformal_calibrate(Y, lambda A: np.ones((2, 2)))
    with pytest.raises(ValueError, match="left .* hidden entries NaN"):
        conformal_calibrate(Y, lambda A: A)
