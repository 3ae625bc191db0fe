import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

import gexbert_sc as gb

TINY = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "n_levels": 16, "n_input": 32, "n_target": 32, "batch_size": 16,
        "linear_rank": 16}


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture
def small_adata():
    """A small synthetic cohort: 120 samples x 60 genes, 3 types."""
    return gb.datasets.synthetic(n_obs=120, n_vars=60, n_types=3, n_modules=4, module_size=10, random_state=1)


@pytest.fixture(scope="session")
def trained():
    """A tiny model trained briefly on a small synthetic cohort (shared, do not modify)."""
    adata = gb.datasets.synthetic(n_obs=150, n_vars=80, n_types=3, n_modules=4, module_size=12, random_state=2)
    model = gb.GexBERT(adata, random_state=0, **TINY).train(phase1_epochs=2, phase2_epochs=2, progress=False)
    return model, adata


def tiny_model(adata, **kw):
    return gb.GexBERT(adata, random_state=0, **{**TINY, **kw})


def assert_finite(x):
    assert np.isfinite(x).all()


def low_rank_matrix(n, p, *, rank=3, noise=0.1, rate=0.2, seed=0):
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
