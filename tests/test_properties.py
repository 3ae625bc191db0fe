"""Property-based tests: random shapes, NaN patterns and dtypes through fit/embed/restore on tiny models."""

import anndata as ad
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gexbert_sc as gb

from .conftest import TINY


@st.composite
def cohorts(draw):
    n_obs = draw(st.integers(20, 40))
    n_vars = draw(st.integers(2, 30))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int32, np.int64]))
    nan_rate = draw(st.sampled_from([0.0, 0.1, 0.4])) if dtype in (np.float32, np.float64) else 0.0
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = rng.normal(0, draw(st.sampled_from([0.01, 1.0, 50.0])), (n_obs, n_vars))
    if np.issubdtype(dtype, np.integer):
        X = np.round(X * 3)
    X[rng.random(X.shape) < nan_rate] = np.nan
    # every sample and gene keeps at least one observed value, and no gene is constant
    X[np.arange(n_obs), rng.integers(0, n_vars, n_obs)] = rng.normal(size=n_obs)
    X[:2, :] = rng.normal(size=(2, n_vars)) + np.arange(2)[:, None] * 10
    a = ad.AnnData(X.astype(dtype))
    a.var_names = [f"g{i}" for i in range(n_vars)]
    a.obs_names = [f"s{i}" for i in range(n_obs)]
    return a


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(adata=cohorts(), n_input=st.integers(1, 40), seed=st.integers(0, 3))
def test_fit_embed_restore_are_finite_and_add_only_documented_keys(adata, n_input, seed):
    X_before = np.array(adata.X, copy=True)
    model = gb.tl.fit(
        adata, progress=False, phase1_epochs=1, phase2_epochs=1, random_state=seed,
        **{**TINY, "n_input": n_input, "n_target": n_input, "min_steps_per_epoch": 1},
    )
    assert set(adata.obsm) == {"X_gexbert"} and set(adata.uns) == {"gexbert"}
    assert not adata.layers and not adata.varm and list(adata.obs.columns) == []
    assert np.array_equal(np.asarray(adata.X), X_before, equal_nan=True)
    emb = adata.obsm["X_gexbert"]
    assert emb.shape == (adata.n_obs, TINY["d_model"] + TINY["linear_rank"]) and np.isfinite(emb).all()
    r = model.restore(adata)
    assert r.shape == adata.shape and np.isfinite(r).all()
    hist = adata.uns["gexbert"]["history"]
    assert np.isfinite(hist["train_loss"]).all()
