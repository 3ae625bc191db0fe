"""``tl.score_imputation``: the scores of ``tl.benchmark_impute``, for any imputed matrix."""

import numpy as np
import pytest

import gexbert_sc as gb


def _case():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(40, 5)) * np.array([1.0, 2.0, 0.5, 1.0, 3.0])
    truth[0, 4] = np.nan  # missing before hiding: never in the mask
    mask = rng.random(truth.shape) < 0.5
    mask[0, 4] = False
    return truth, mask


def test_scores_by_hand():
    truth, mask = _case()
    imputed = np.where(mask, truth + 0.1, truth)
    sd = np.array([1.0, 2.0, 0.5, 1.0, 3.0])
    s = gb.tl.score_imputation(truth, imputed, mask, gene_sd=sd)
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean((0.1 / np.broadcast_to(sd, truth.shape)[mask]) ** 2)))
    assert s["pearson"] == pytest.approx(1.0)  # a shift keeps every gene's r at 1
    assert np.isnan(s["coverage"]) and np.isnan(s["width"])  # no bounds

    lower, upper = imputed - 0.05, imputed + 0.2  # contain truth (= imputed - 0.1) nowhere: coverage 0
    s = gb.tl.score_imputation(truth, imputed, mask, gene_sd=sd, lower=lower, upper=upper)
    assert s["coverage"] == 0.0
    assert s["width"] == pytest.approx(np.mean((0.25 / np.broadcast_to(sd, truth.shape))[mask]))
    s = gb.tl.score_imputation(truth, imputed, mask, gene_sd=sd, lower=imputed - 0.2, upper=upper)
    assert s["coverage"] == 1.0


def test_default_gene_sd_is_the_observed_sd_of_truth():
    truth, mask = _case()
    imputed = np.where(mask, 0.0, truth)
    sd = np.nanstd(truth, axis=0)
    assert gb.tl.score_imputation(truth, imputed, mask)["rmse"] == gb.tl.score_imputation(
        truth, imputed, mask, gene_sd=sd)["rmse"]
    const = np.ones_like(truth)  # no spread: sd 1, errors in the data's units
    assert gb.tl.score_imputation(const, const + 2, mask)["rmse"] == pytest.approx(2.0)


def test_matches_benchmark_impute(small_adata):
    """The same numbers as ``tl.benchmark_impute`` on the same mask (mean filling, whose RMSE ratio is 1)."""
    gb.tl.benchmark_impute(small_adata, methods=["mean"], rates=[0.3], random_state=3, progress=False)
    row = small_adata.uns["gexbert_benchmark_impute"]["results"].iloc[0]
    sim = small_adata.copy()
    gb.pp.simulate_missing(sim, rate=0.3, random_state=3)
    gb.tl.impute(sim, method="mean", interval=0.9, random_state=3, progress=False)
    truth, mask = sim.layers["simulated_truth"], sim.layers["simulated_mask"]
    s = gb.tl.score_imputation(truth, sim.layers["mean_imputed"], mask,
                               lower=sim.layers["mean_imputed_lower"], upper=sim.layers["mean_imputed_upper"])
    for k in ("rmse", "coverage", "width"):
        assert s[k] == pytest.approx(row[k], rel=1e-6), k


def test_refuses_mismatched_inputs():
    truth, mask = _case()
    with pytest.raises(ValueError, match="imputed has shape"):
        gb.tl.score_imputation(truth, truth[:, :3], mask)
    with pytest.raises(TypeError, match="mask must be boolean"):
        gb.tl.score_imputation(truth, truth, mask.astype(int))
    with pytest.raises(ValueError, match="both lower and upper"):
        gb.tl.score_imputation(truth, truth, mask, lower=truth)
    with pytest.raises(ValueError, match="one value per gene"):
        gb.tl.score_imputation(truth, truth, mask, gene_sd=np.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        gb.tl.score_imputation(truth[:, 0], truth[:, 0], mask[:, 0])
