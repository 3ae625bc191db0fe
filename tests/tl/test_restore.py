import anndata as ad
import numpy as np
import pandas as pd
import pytest

import gexbert_sc as gb


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
