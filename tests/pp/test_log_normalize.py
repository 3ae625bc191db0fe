import anndata as ad
import numpy as np
import pytest

import gexbert_sc as gb


def _counts(seed=0):
    rng = np.random.default_rng(seed)
    return ad.AnnData(rng.poisson(20, (30, 15)).astype(np.float32))


def test_log_normalize_keeps_counts_and_gives_log_cpm():
    a = _counts()
    raw = a.X.copy()
    gb.pp.log_normalize(a)
    assert np.array_equal(a.layers["counts"], raw)
    want = np.log1p(raw / raw.sum(1, keepdims=True) * 1e6)
    assert np.allclose(a.X, want, rtol=1e-5)


def test_running_twice_is_refused_and_keeps_the_counts():
    # defect: a second call overwrote layers["counts"] with log values
    a = _counts()
    raw = a.X.copy()
    gb.pp.log_normalize(a)
    logged = a.X.copy()
    with pytest.raises(ValueError, match=r"log-transformed already.*adata.X = adata.layers\['counts'\]"):
        gb.pp.log_normalize(a)
    assert np.array_equal(a.layers["counts"], raw) and np.array_equal(a.X, logged)


def test_existing_counts_layer_is_not_overwritten():
    a = _counts()
    a.layers["counts"] = np.ones(a.shape, np.float32)
    with pytest.raises(ValueError, match=r"\.layers\['counts'\] exists already"):
        gb.pp.log_normalize(a)
    assert (a.layers["counts"] == 1).all()


def test_log_ratios_are_refused_not_turned_into_nan():
    # defect: negative values silently became NaN (62% of the matrix)
    a = ad.AnnData(np.random.default_rng(0).normal(size=(30, 15)).astype(np.float32))
    before = a.X.copy()
    with pytest.raises(ValueError, match=r"negative value\(s\).*look log-scaled already.*skip log_normalize"):
        gb.pp.log_normalize(a)
    assert np.array_equal(a.X, before) and "counts" not in a.layers


def test_copy_leaves_the_input_alone():
    a = _counts()
    raw = a.X.copy()
    b = gb.pp.log_normalize(a, copy=True)
    assert np.array_equal(a.X, raw) and "counts" not in a.layers
    assert np.array_equal(b.layers["counts"], raw)
