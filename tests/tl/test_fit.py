import anndata as ad
import numpy as np
import pytest
import scanpy as sc

import gexbert_sc as gb

from ..conftest import TINY


def test_fit_writes_documented_keys_only(small_adata, tmp_path):
    before_obs = small_adata.obs.copy()
    X_before = small_adata.X.copy()
    model = gb.tl.fit(small_adata, phase1_epochs=1, phase2_epochs=1, progress=False, **TINY)
    assert isinstance(model, gb.GexBERT)
    assert list(small_adata.obsm) == ["X_gexbert"]
    assert list(small_adata.uns) == ["synthetic", "gexbert"]
    assert not small_adata.layers and not small_adata.obsp
    assert small_adata.obs.equals(before_obs) and np.array_equal(small_adata.X, X_before)
    emb = small_adata.obsm["X_gexbert"]
    assert emb.shape == (small_adata.n_obs, TINY["d_model"]) and np.isfinite(emb).all()
    u = small_adata.uns["gexbert"]
    assert u["params"]["d_model"] == 16 and u["params"]["layer"] == "X"
    assert len(u["history"]["train_loss"]) == 2
    assert set(u["metrics"]) == {"val_same", "val_other", "val_mean"}
    assert np.array_equal(emb, model.embed(small_adata))

    # scanpy works on the embedding, and the AnnData round-trips through .h5ad with every key
    sc.pp.neighbors(small_adata, use_rep="X_gexbert")
    sc.tl.umap(small_adata)
    gb.tl.umap(small_adata)
    assert small_adata.obsm["X_gexbert_umap"].shape == (small_adata.n_obs, 2)
    small_adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert np.array_equal(back.obsm["X_gexbert"], emb)
    assert set(back.uns["gexbert"]) == {"params", "version", "history", "metrics"}
    assert np.array_equal(back.uns["gexbert"]["history"]["val_other"], u["history"]["val_other"])
    assert back.uns["gexbert"]["params"]["value_encoding"] == "interp_proj"
    for k in small_adata.obsm:
        assert k in back.obsm


def test_fit_copy_leaves_input_untouched(small_adata):
    model = gb.tl.fit(small_adata, copy=True, key_added="gb2", phase1_epochs=1, phase2_epochs=0, progress=False, **TINY)
    assert "X_gb2" not in small_adata.obsm and "gb2" not in small_adata.uns
    assert "X_gb2" in model.adata.obsm and model.adata is not small_adata


def test_fit_rejects_bad_arguments(small_adata):
    with pytest.raises(TypeError, match="expected an AnnData"):
        gb.tl.fit(small_adata.X)
    with pytest.raises(TypeError, match="unknown config setting"):
        gb.tl.fit(small_adata, d_modle=8)
    with pytest.raises(KeyError, match="batch_key 'cohortt'"):
        gb.tl.fit(small_adata, batch_key="cohortt")
    assert "X_gexbert" not in small_adata.obsm


def test_umap_needs_fit_first(small_adata):
    with pytest.raises(KeyError, match="run gexbert_sc.tl.fit"):
        gb.tl.umap(small_adata)
