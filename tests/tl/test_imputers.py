"""Baseline imputers (gexbert_sc.tl._imputers)."""

import numpy as np
import pytest
import scipy.sparse as sp

from gexbert_sc.tl._imputers import BASELINE_METHODS, impute_matrix
from tests.conftest import low_rank_matrix as _low_rank


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
