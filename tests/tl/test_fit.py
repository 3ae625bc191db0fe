import anndata as ad
import numpy as np
import pytest
import scanpy as sc

import gexbert_sc as gb
from tests.conftest import TINY


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
    assert emb.shape == (small_adata.n_obs, TINY["d_model"] + TINY["linear_rank"]) and np.isfinite(emb).all()
    u = small_adata.uns["gexbert"]
    assert u["params"]["d_model"] == 16 and u["params"]["layer"] == "X"
    assert len(u["history"]["train_loss"]) == 2
    assert set(u["metrics"]) == {"val_same", "val_other", "val_mean"}
    assert np.array_equal(emb, model.embed(small_adata))

    # scanpy works on the embedding, and the AnnData round-trips through .h5ad with every key
    sc.pp.neighbors(small_adata, use_rep="X_gexbert")
    sc.tl.umap(small_adata)
    scanpy_umap = small_adata.obsm["X_umap"].copy()
    gb.tl.umap(small_adata)
    assert small_adata.obsm["X_gexbert_umap"].shape == (small_adata.n_obs, 2)
    # input and outputs are named apart (scanpy's use_rep / neighbors_key / key_added): scanpy's own keys stay
    assert np.array_equal(small_adata.obsm["X_umap"], scanpy_umap)
    assert "neighbors" in small_adata.uns and "gexbert_neighbors" in small_adata.uns
    gb.tl.umap(small_adata, use_rep="X_gexbert", key_added="X_other_umap", neighbors_key="other_nn", n_neighbors=5)
    assert small_adata.uns["other_nn"]["params"]["n_neighbors"] == 5 and "X_other_umap" in small_adata.obsm
    small_adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert np.array_equal(back.obsm["X_gexbert"], emb)
    assert set(back.uns["gexbert"]) == {"params", "version", "history", "metrics"}
    assert np.array_equal(back.uns["gexbert"]["history"]["val_other"], u["history"]["val_other"])
    assert back.uns["gexbert"]["params"]["value_encoding"] == "interp_proj"
    for k in small_adata.obsm:
        assert k in back.obsm


def test_fit_has_no_ambiguous_copy(small_adata):
    # defect: copy=True returned the model either way; fit now always writes into adata and returns the model
    with pytest.raises(TypeError, match=r"tl.fit has no copy=.*adata.copy\(\)"):
        gb.tl.fit(small_adata, copy=True, phase1_epochs=1, progress=False, **TINY)
    a = small_adata.copy()
    model = gb.tl.fit(a, key_added="gb2", phase1_epochs=1, phase2_epochs=0, progress=False, **TINY)
    assert model.adata is a and "X_gb2" in a.obsm and "X_gb2" not in small_adata.obsm


def test_fit_refuses_zero_epochs_and_accepts_random_state_none(small_adata):
    with pytest.raises(ValueError, match="train nothing"):
        gb.tl.fit(small_adata, phase1_epochs=0, phase2_epochs=0, progress=False, **TINY)
    model = gb.tl.fit(small_adata, random_state=None, phase1_epochs=1, phase2_epochs=0, progress=False, **TINY)
    seed = small_adata.uns["gexbert"]["params"]["random_state"]
    assert seed == model.random_state and isinstance(seed, int)
    # the drawn seed repeats the run
    again = gb.GexBERT(small_adata, random_state=seed, **TINY).train(phase1_epochs=1, phase2_epochs=0, progress=False)
    assert np.array_equal(again.embed(small_adata, random_state=seed), small_adata.obsm["X_gexbert"])


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


def test_leiden_clustering_works_on_the_embedding(small_adata):
    # defect: sc.tl.leiden failed for want of igraph; scanpy[leiden] is now a dependency
    gb.tl.fit(small_adata, phase1_epochs=2, phase2_epochs=2, progress=False, **TINY)
    sc.pp.neighbors(small_adata, use_rep="X_gexbert")
    sc.tl.leiden(small_adata, flavor="igraph", n_iterations=2)
    assert small_adata.obs["leiden"].nunique() >= 2
