import logging
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import gexbert_sc as gb
from tests.conftest import TINY


@pytest.fixture(scope="module")
def split():
    a = gb.datasets.synthetic(n_obs=260, n_vars=80, n_types=3, n_modules=5, module_size=12, random_state=6)
    return a[:200].copy(), a[200:].copy()


def test_ridge_restores_absent_genes_into_obsm_with_calibrated_intervals(split, tmp_path):
    ref, test = split
    panel = test[:, :25].copy()
    targets = list(ref.var_names[25:])
    gb.tl.restore(panel, method="ridge", reference=ref, genes=targets)
    P = panel.obsm["ridge_restored"]
    assert isinstance(P, pd.DataFrame) and list(P.columns) == targets and P.shape == (panel.n_obs, len(targets))
    T = test[:, targets].X
    rmse = np.sqrt(np.mean((P.to_numpy() - T) ** 2))
    mean_rmse = np.sqrt(np.mean((ref[:, targets].X.mean(0) - T) ** 2))
    assert rmse < 0.7 * mean_rmse
    lo, hi = panel.obsm["ridge_restored_lower"].to_numpy(), panel.obsm["ridge_restored_upper"].to_numpy()
    assert 0.8 <= np.mean((T >= lo) & (T <= hi)) <= 0.97
    panel.write_h5ad(tmp_path / "p.h5ad")
    back = ad.read_h5ad(tmp_path / "p.h5ad")
    assert list(back.obsm["ridge_restored"].columns) == targets
    assert list(back.uns["ridge_restored"]["targets_in_obsm"]) == targets


def test_gexbert_restores_present_targets_into_layers_without_using_them(trained):
    model, adata = trained
    a = adata[:40].copy()
    targets = list(a.var_names[:6])
    gb.tl.restore(a, model=model, genes=targets, interval=None)
    L = a.layers["gexbert_restored"]
    assert np.isfinite(L[:, :6]).all() and np.isnan(L[:, 6:]).all()
    # the targets were not inputs: the same as restoring from an AnnData without them
    without = a[:, a.var_names[6:]].copy()
    with pytest.warns(UserWarning):
        want = model.restore(without, genes=targets)
    assert np.allclose(L[:, :6], want, atol=1e-5)
    assert "gexbert_restored" not in a.obsm


def test_restore_errors(trained, split):
    model, adata = trained
    with pytest.raises(ValueError, match="needs model="):
        gb.tl.restore(adata)
    with pytest.raises(ValueError, match="method='ridge' learns from a reference"):
        gb.tl.restore(adata, method="ridge")
    with pytest.raises(KeyError, match="not in the model's vocabulary"):
        gb.tl.restore(adata, model=model, genes=["NOPE"])
    with pytest.raises(ValueError, match="unknown method"):
        gb.tl.restore(adata, model=model, method="magic")


def test_default_targets_are_the_model_genes_adata_lacks(trained, tmp_path, caplog):
    """Without genes=, a panel's missing model genes are restored (not "no input genes"); no reference and a
    loaded model (nothing to calibrate on: its loadings are not saved): no intervals."""
    trained_model, adata = trained
    trained_model.save(tmp_path / "m")
    model = gb.GexBERT.load(tmp_path / "m", adata)
    panel = adata[:40, :50].copy()
    lacking = [g for g in model.genes if g not in set(panel.var_names)]
    assert len(lacking) == 30
    with caplog.at_level(logging.INFO, logger="gexbert_sc"):
        gb.tl.restore(panel, model=model)  # interval=0.9 by default, but there is no reference to calibrate on
    P = panel.obsm["gexbert_restored"]
    assert list(P.columns) == lacking and "gexbert_restored" not in panel.layers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = model.restore(panel, genes=lacking)
    assert np.allclose(P.to_numpy(), want, atol=1e-5)
    truth = adata[:40, lacking].X
    assert np.sqrt(np.mean((P.to_numpy() - truth) ** 2)) < np.sqrt(np.mean(truth**2))  # better than all zeros
    # what was done is recorded: no intervals
    params = panel.uns["gexbert_restored"]["params"]
    assert params["interval"] == 0.0 and params["intervals"] == "none"
    assert "gexbert_restored_lower" not in panel.obsm and "calibration" not in panel.uns["gexbert_restored"]
    assert "no prediction intervals" in caplog.text and "reference=" in caplog.text
    panel.write_h5ad(tmp_path / "r.h5ad")
    back = ad.read_h5ad(tmp_path / "r.h5ad").uns["gexbert_restored"]["params"]
    assert back["interval"] == 0.0 and back["intervals"] == "none"


def test_default_targets_when_adata_has_every_model_gene(trained):
    model, adata = trained
    full = adata[:40].copy()
    with pytest.raises(ValueError, match=r"every one of the 80 genes of the model.*pass genes=\[\.\.\.\]"):
        gb.tl.restore(full, model=model)
    gb.tl.restore(full, model=model, genes=list(full.var_names[:3]))  # the documented way out
    assert np.isfinite(full.layers["gexbert_restored"][:, :3]).all()


def test_intervals_recorded_with_a_reference(trained, split):
    model, adata = trained
    panel = adata[:40, :50].copy()
    with pytest.warns(UserWarning, match="110 of the 110 reference samples are samples this model was fitted on"):
        gb.tl.restore(panel, model=model, reference=adata[40:].copy(), interval=0.8)
    params = panel.uns["gexbert_restored"]["params"]
    assert params["interval"] == 0.8 and params["intervals"] == "split-conformal"
    lo, hi = panel.obsm["gexbert_restored_lower"].to_numpy(), panel.obsm["gexbert_restored_upper"].to_numpy()
    assert (hi > lo).all()


def test_calibration_on_unseen_samples_does_not_warn(trained, split):
    model, adata = trained
    unseen = adata[40:].copy()
    unseen.obs_names = [f"new_{i}" for i in range(unseen.n_obs)]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*fitted on")
        gb.tl.restore(adata[:40, :50].copy(), model=model, reference=unseen, interval=0.8)


def test_restore_passes_device_and_progress(trained, split, monkeypatch, capsys):
    model, adata = trained
    seen = []
    real = gb.GexBERT.restore

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("device"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(gb.GexBERT, "restore", spy)
    panel = adata[:20, :50].copy()
    gb.tl.restore(panel, model=model, device="cpu")
    assert seen == ["cpu", "cpu"]  # the panel, then the validation samples the intervals are calibrated on
    # a model trained here: no progress bar with progress=False, the device reaches training and restoring
    ref, test = split
    tiny = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "n_levels": 16, "n_input": 32, "n_target": 32,
            "batch_size": 16, "phase1_epochs": 1, "phase2_epochs": 1}
    torch.set_num_threads(1)  # a tiny model trains 20x slower on 2 threads of a loaded 2-core machine
    capsys.readouterr()
    gb.tl.restore(test[:, :50].copy(), reference=ref, fit_kwargs=tiny, progress=False, device="cpu", interval=None)
    assert "GexBERT" not in capsys.readouterr().err and seen[2:] == ["cpu"]


def test_without_reference_intervals_are_calibrated_on_the_models_validation_samples(split):
    ref, test = split
    model = gb.GexBERT(ref, random_state=0, **{**TINY, "linear_rank": 128}).train(
        phase1_epochs=1, phase2_epochs=1, progress=False)
    panel = test[:, :25].copy()
    targets = list(ref.var_names[25:])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*fitted on")
        gb.tl.restore(panel, model=model, genes=targets)
    params = panel.uns["gexbert_restored"]["params"]
    assert params["calibrated_on"] == "validation samples" and params["interval"] == 0.9
    lo, hi = panel.obsm["gexbert_restored_lower"].to_numpy(), panel.obsm["gexbert_restored_upper"].to_numpy()
    T = test[:, targets].X
    assert 0.84 <= np.mean((T >= lo) & (T <= hi)) <= 0.96


def test_a_model_without_linear_path_calibrates_on_its_validation_samples_as_they_are(split, monkeypatch):
    ref, test = split
    model = gb.GexBERT(ref, random_state=0, **{**TINY, "linear_path": "none"}).train(
        phase1_epochs=1, phase2_epochs=1, progress=False)
    assert not model.can_leave_out
    calls = []
    real = gb.GexBERT.restore
    monkeypatch.setattr(gb.GexBERT, "restore", lambda self, *a, **k: calls.append(k["leave_out"]) or real(self, *a, **k))
    panel = test[:, :25].copy()
    gb.tl.restore(panel, model=model, genes=list(ref.var_names[25:]))
    assert panel.uns["gexbert_restored"]["params"]["calibrated_on"] == "validation samples"
    assert calls == [False, False]  # the panel, then the validation samples: nothing to leave out
