import numpy as np
import pytest

import gexbert_sc as gb


def test_impute_fills_only_missing_and_matches_restore(trained):
    model, adata = trained
    a = adata.copy()
    rng = np.random.default_rng(0)
    mask = rng.random(a.shape) < 0.3
    a.X[mask] = np.nan
    before = a.X.copy()
    gb.tl.impute(a, model)
    filled = a.layers["gexbert_imputed"]
    assert np.array_equal(a.X, before, equal_nan=True)  # .X untouched
    assert not np.isnan(filled).any()
    assert np.array_equal(filled[~mask], before[~mask])  # observed values kept
    # the filled values are what restore() gives for those genes (decoding is independent per gene)
    full = model.restore(a)
    assert np.allclose(filled[mask], full[mask], atol=1e-4)
    # better than filling with the gene means
    truth = adata.X[mask]
    col_mean = np.nanmean(before, 0)
    mean_fill = np.broadcast_to(col_mean, a.shape)[mask]
    assert np.mean((filled[mask] - truth) ** 2) < np.mean((mean_fill - truth) ** 2)


def test_impute_checks_model(small_adata):
    with pytest.raises(TypeError, match="trained GexBERT"):
        gb.tl.impute(small_adata, model="nope")
