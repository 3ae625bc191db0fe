"""Split-conformal intervals for any imputer, per gene and per kind of gap (gexbert_sc.tl._conformal)."""

import numpy as np
import pytest

from gexbert_sc.tl._conformal import ConformalCalibration, conformal_calibrate, group_codes, whole_group_gaps
from gexbert_sc.tl._imputers import impute_matrix
from tests.conftest import low_rank_matrix as _low_rank


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


def test_whole_group_gaps():
    missing = np.zeros((4, 3), dtype=bool)
    missing[:2, 0] = True  # group a never measured gene 0, group b did: a gap
    missing[:, 1] = True  # nobody measured gene 1: no group can be calibrated against it, not a gap
    missing[2, 2] = True  # one value of group b: missing at random
    codes = group_codes(["a", "a", "b", "b"], 4)
    gaps = whole_group_gaps(missing, codes)
    expected = np.zeros_like(missing)
    expected[:2, 0] = True
    np.testing.assert_array_equal(gaps, expected)
    with pytest.raises(ValueError, match="one label per sample"):
        group_codes(["a"], 4)


def _two_platforms(seed=0):
    """Low-rank data of two groups, group 1 with its own gene offsets (a platform effect) and 30 genes it
    never measured; 10% of the other values missing at random."""
    rng = np.random.default_rng(seed)
    n, p = 300, 120
    X = rng.normal(size=(n, 4)) @ rng.normal(size=(4, p)) + 0.3 * rng.normal(size=(n, p))
    codes = (np.arange(n) >= n // 2).astype(int)
    X[codes == 1] += rng.normal(scale=1.0, size=p)
    gap = np.zeros_like(X, dtype=bool)
    gap[np.ix_(codes == 1, rng.choice(p, 30, replace=False))] = True
    mcar = (rng.random(X.shape) < 0.1) & ~gap
    return X, np.where(gap | mcar, np.nan, X), gap, mcar, codes


def test_whole_group_gaps_get_their_own_calibration():
    """Restoring genes a group never measured is harder than filling values missing at random: entry-wise
    intervals are too narrow there; block-calibrated ones cover about 90% of both kinds."""
    X, X_missing, gap, mcar, codes = _two_platforms()

    def fill(A):
        return impute_matrix(A, "softimpute", random_state=0)

    F = fill(X_missing)
    entry_only = conformal_calibrate(X_missing, fill, interval=0.9, fraction=0.1, random_state=1)
    both = conformal_calibrate(X_missing, fill, interval=0.9, fraction=0.1, random_state=1, groups=codes)
    assert entry_only.block is None and both.block is not None
    assert both.block.global_rms > 1.5 * both.global_rms  # the gaps' residuals are larger

    def coverage(cal, where):
        _, lo, hi = cal.intervals(F, whole_group_gaps(np.isnan(X_missing), codes))
        return float(((X >= lo) & (X <= hi))[where].mean())

    assert coverage(entry_only, gap) < 0.75
    assert 0.85 <= coverage(both, gap) <= 0.97
    assert 0.85 <= coverage(both, mcar) <= 0.95
    # without gaps in the data, groups change nothing
    X2 = np.where(mcar, np.nan, X)
    a = conformal_calibrate(X2, fill, interval=0.9, fraction=0.1, random_state=1)
    b = conformal_calibrate(X2, fill, interval=0.9, fraction=0.1, random_state=1, groups=codes)
    assert b.block is None and a.q == b.q


def test_conformal_errors():
    Y = np.ones((20, 3))
    with pytest.raises(ValueError, match=r"interval must be in \(0, 1\)"):
        conformal_calibrate(Y, lambda A: A, interval=1.0)
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
        conformal_calibrate(Y, lambda A: A, fraction=0)
    with pytest.raises(ValueError, match=r"impute_fn returned shape \(2, 2\)"):
        conformal_calibrate(Y, lambda A: np.ones((2, 2)))
    with pytest.raises(ValueError, match="left .* hidden entries NaN"):
        conformal_calibrate(Y, lambda A: A)
