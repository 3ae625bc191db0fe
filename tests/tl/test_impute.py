import anndata as ad
import numpy as np
import pytest
import torch

import gexbert_sc as gb
from tests.conftest import TINY

FIT = dict(TINY, phase1_epochs=3, phase2_epochs=6)


def _hidden(adata, rate=0.3, seed=0):
    a = adata.copy()
    gb.pp.simulate_missing(a, rate=rate, random_state=seed)
    return a, a.layers["simulated_truth"], a.layers["simulated_mask"]


def _rmse(F, T, M):
    return float(np.sqrt(np.mean((F[M] - T[M]) ** 2)))


def test_impute_with_a_model_fills_only_missing_and_matches_restore(trained):
    model, adata = trained
    a, truth, mask = _hidden(adata)
    before = a.X.copy()
    gb.tl.impute(a, model=model, interval=None)
    filled = a.layers["gexbert_imputed"]
    assert np.array_equal(a.X, before, equal_nan=True)  # .X untouched
    assert np.isfinite(filled).all()
    assert np.array_equal(filled[~mask], before[~mask])  # observed values kept exactly
    full = model.restore(a, n_repeats=a.uns["gexbert_imputed"]["params"]["n_repeats"] or None)
    assert full.shape == a.shape
    # better than filling with the gene means
    mean_fill = np.broadcast_to(np.nanmean(before, 0), a.shape)
    assert _rmse(filled, truth, mask) < _rmse(mean_fill, truth, mask)


def test_impute_without_a_model_trains_on_observed_entries_and_beats_the_mean():
    adata = gb.datasets.synthetic(n_obs=200, n_vars=80, n_types=3, n_modules=5, module_size=12, random_state=4)
    a, truth, mask = _hidden(adata, rate=0.2)
    gb.tl.impute(a, fit_kwargs=FIT, progress=False)
    F = a.layers["gexbert_imputed"]
    mean_fill = np.broadcast_to(np.nanmean(a.X, 0), a.shape)
    # correlated genes: the trained model is clearly better than the gene means (margin measured: ~0.85x)
    assert _rmse(F, truth, mask) < 0.93 * _rmse(mean_fill, truth, mask)
    u = a.uns["gexbert_imputed"]
    assert u["params"]["model"] == "trained here" and u["metrics"]["val_other"] < u["metrics"]["val_mean"]
    assert u["n_filled"] == int(mask.sum())


@pytest.mark.parametrize("method", ["zero", "mean", "knn", "softimpute", "mice"])
def test_every_baseline_runs_and_writes_its_layer(small_adata, method):
    a, truth, mask = _hidden(small_adata, rate=0.1)
    gb.tl.impute(a, method=method, interval=None)
    F = a.layers[f"{method}_imputed"]
    assert np.isfinite(F).all() and np.array_equal(F[~mask], truth[~mask])
    if method == "zero":
        assert (F[mask] == 0).all()
    if method in ("knn", "softimpute", "mice"):
        mean_fill = np.broadcast_to(np.nanmean(a.X, 0), a.shape)
        assert _rmse(F, truth, mask) < _rmse(mean_fill, truth, mask)


def test_intervals_cover_close_to_nominal_on_synthetic_data():
    adata = gb.datasets.synthetic(n_obs=300, n_vars=60, n_types=3, n_modules=4, module_size=12, random_state=5)
    a, truth, mask = _hidden(adata, rate=0.2, seed=1)
    gb.tl.impute(a, method="softimpute", interval=0.9, calibration_fraction=0.1)
    lo, hi = a.layers["softimpute_imputed_lower"], a.layers["softimpute_imputed_upper"]
    cover = np.mean((truth[mask] >= lo[mask]) & (truth[mask] <= hi[mask]))
    assert 0.85 <= cover <= 0.95, cover  # tolerance: +-5 points around the nominal 90%
    sd = a.layers["softimpute_imputed_sd"]
    assert (sd[~mask] == 0).all() and (sd[mask] > 0).all()


def test_genes_a_group_never_measured_get_block_calibrated_intervals():
    """gene_block gaps (each group without its own genes): with ``groupby`` those values get the block
    calibration (one scale, from whole blocks hidden on purpose), wider than the entry-wise one, and cover
    close to 90%."""
    adata = gb.datasets.synthetic(n_obs=300, n_vars=80, n_types=3, n_modules=4, module_size=12, random_state=5)
    adata.obs["site"] = np.where(np.arange(300) < 150, "a", "b")
    gb.pp.simulate_missing(adata, rate=0.25, mechanism="gene_block", groupby="site", random_state=2)
    truth, mask = adata.layers["simulated_truth"], adata.layers["simulated_mask"]
    cover = {}
    for groupby in (None, "site"):
        gb.tl.impute(adata, method="softimpute", groupby=groupby, calibration_fraction=0.1, key_added="si")
        lo, hi = adata.layers["si_lower"], adata.layers["si_upper"]
        cover[groupby] = float(np.mean((truth[mask] >= lo[mask]) & (truth[mask] <= hi[mask])))
    cal = adata.uns["si"]["calibration"]
    assert adata.uns["si"]["params"]["groupby"] == "site"
    assert cal["n_block_missing"] == int(mask.sum()) and cal["block_rms"] > cal["rms"]
    assert 0.85 <= cover["site"] <= 0.97, cover
    sd = adata.layers["si_sd"]
    np.testing.assert_allclose(sd[mask], cal["block_rms"], rtol=1e-5)
    with pytest.raises(KeyError, match="nope"):
        gb.tl.impute(adata, method="mean", groupby="nope")


def test_keys_survive_h5ad_and_params_are_recorded(small_adata, tmp_path):
    a, _, _ = _hidden(small_adata, rate=0.1)
    gb.tl.impute(a, method="knn", key_added="mine")
    a.write_h5ad(tmp_path / "a.h5ad")
    b = ad.read_h5ad(tmp_path / "a.h5ad")
    for k in ("mine", "mine_sd", "mine_lower", "mine_upper"):
        assert np.array_equal(b.layers[k], a.layers[k], equal_nan=True)
    assert b.uns["mine"]["params"]["method"] == "knn" and b.uns["mine"]["calibration"]["q"] > 0


def test_copy_and_bad_input(small_adata):
    a, _, _ = _hidden(small_adata, rate=0.1)
    b = gb.tl.impute(a, method="mean", copy=True, interval=None)
    assert "mean_imputed" in b.layers and "mean_imputed" not in a.layers
    with pytest.raises(ValueError, match=r"unknown method 'magic'.*softimpute"):
        gb.tl.impute(a, method="magic")
    bad = a.copy()
    bad.X[:, 3] = np.nan
    with pytest.raises(ValueError, match=r"1 gene\(s\) have no observed value.*GENE00003"):
        gb.tl.impute(bad, method="mean")
    bad = a.copy()
    bad.X[5, :] = np.nan
    with pytest.raises(ValueError, match=r"1 sample\(s\) have no observed value"):
        gb.tl.impute(bad, method="knn")
    with pytest.raises(TypeError, match="trained GexBERT"):
        gb.tl.impute(a, model="nope")
    with pytest.raises(ValueError, match="model= is used by method='gexbert' only"):
        gb.tl.impute(a, method="knn", model=object.__new__(gb.GexBERT))


def test_a_model_trained_on_the_calibration_copy_refits_its_linear_path_on_every_observed_value():
    """tl.impute trains the model on the copy with the calibration entries hidden; the final fill must not lose
    those entries: the linear path is fitted again on the whole matrix before it (and only then)."""
    from gexbert_sc.tl._impute import GexBERTFiller, matrix_adata
    from tests.conftest import low_rank_matrix

    _, X, _ = low_rank_matrix(150, 40, rank=3, rate=0.2, seed=5)
    X = X.astype(np.float32)
    adata = ad.AnnData(X.copy())
    calibration = X.copy()
    calibration[np.random.default_rng(1).random(X.shape) < 0.05] = np.nan
    fill = GexBERTFiller(adata, None, None, fit_kwargs={**TINY, "phase1_epochs": 0, "phase2_epochs": 0},
                         n_repeats=None, random_state=0, progress=False)
    fill(calibration)
    linear = fill.model.module.linear
    on_calibration = linear.factors.detach().clone()
    fill(calibration)  # the same matrix again: nothing to refit
    assert torch.equal(linear.factors, on_calibration)
    fill(X)
    on_all = linear.factors.detach().clone()
    assert not torch.allclose(on_all, on_calibration, atol=1e-4)
    fill.model.refit_linear_path(matrix_adata(X, adata, None, None))
    assert torch.allclose(linear.factors, on_all)  # what fill(X) used is the fit on X
