"""Bad input gets an error that names the problem and the fix, before training, and leaves the AnnData unchanged."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import gexbert_sc as gb

from .conftest import TINY


def _adata(n_obs=40, n_vars=12, seed=0):
    rng = np.random.default_rng(seed)
    a = ad.AnnData(rng.normal(size=(n_obs, n_vars)).astype(np.float32))
    a.var_names = [f"G{i}" for i in range(n_vars)]
    a.obs_names = [f"S{i}" for i in range(n_obs)]
    a.obs["cohort"] = pd.Categorical(rng.choice(["A", "B"], n_obs))
    a.layers["logged"] = a.X.copy()
    return a


def _snapshot(a):
    return (a.X.copy() if not sp.issparse(a.X) else a.X.copy(), a.obs.copy(), a.var.copy(), set(a.obsm), set(a.uns),
            set(a.layers))


def _unchanged(a, snap):
    X, obs, var, obsm, uns, layers = snap
    Xa = a.X.toarray() if sp.issparse(a.X) else a.X
    Xs = X.toarray() if sp.issparse(X) else X
    assert np.array_equal(Xa, Xs, equal_nan=True) or (Xa.dtype.kind not in "fc")
    assert a.obs.equals(obs) and a.var.equals(var)
    assert set(a.obsm) == obsm and set(a.uns) == uns and set(a.layers) == layers


def _fit(a, **kw):
    return gb.tl.fit(a, progress=False, phase1_epochs=1, phase2_epochs=1, **{**TINY, **kw})


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


@case
def inf_values():
    a = _adata()
    a.X[3, 4] = np.inf
    return a, {}, ValueError, r"1 infinite value\(s\).*replace them with NaN"


@case
def non_numeric():
    a = _adata()
    a.layers["text"] = np.full(a.shape, "x", dtype=object)
    return a, {"layer": "text"}, TypeError, r"must be numeric.*astype\(np.float32\)"


@case
def raw_counts():
    a = _adata()
    a.X = np.random.default_rng(0).poisson(50, a.shape).astype(np.float32) * 100
    return a, {}, ValueError, r"looks like raw counts.*pp.log_normalize"


@case
def duplicated_genes():
    a = _adata()
    a.var_names = ["G0"] * 2 + [f"G{i}" for i in range(2, 12)]
    return a, {}, ValueError, r"1 duplicated gene name.*var_names_make_unique"


@case
def missing_layer():
    return _adata(), {"layer": "loged"}, KeyError, r"layer 'loged' is not in adata.layers.*Close matches: \['logged'\]"


@case
def missing_obs_key():
    return _adata(), {"batch_key": "cohrt"}, KeyError, r"batch_key 'cohrt'.*Close matches: \['cohort'\]"


@case
def too_few_samples():
    # defect: 3 samples used to train a model on 2 of them without a word
    return _adata(n_obs=3), {}, ValueError, r"adata has 3 sample\(s\); a GexBERT model needs at least 20"


@case
def no_validation_sample():
    return _adata(n_obs=25), {"val_fraction": 0.01}, ValueError, r"val_fraction=0.01 leaves no validation sample"


@case
def huge_values():
    # defect: 1e30 was accepted silently and corrupted the gene's standardisation
    a = _adata()
    a.X[4, 3] = 1e30
    return a, {}, ValueError, r"far outside any log-expression range.*\['G3'\].*\['S4'\].*take logs first"


@case
def all_nan_gene():
    a = _adata()
    a.X[:, 5] = np.nan
    return a, {}, ValueError, r"1 gene\(s\) have no observed value.*\['G5'\].*drop them"


@case
def all_nan_sample():
    a = _adata()
    a.X[7, :] = np.nan
    return a, {}, ValueError, r"1 sample\(s\) have no observed value.*\['S7'\]"


@case
def constant_gene():
    a = _adata()
    a.X[:, 2] = 3.0
    return a, {}, ValueError, r"1 gene\(s\) are constant.*\['G2'\].*nanstd"


@case
def n_levels_out_of_range():
    return _adata(), {"n_levels": 1}, ValueError, r"n_levels must be an integer in \[2, 4096\]"


@case
def bad_size():
    return _adata(), {"n_input": 0}, ValueError, r"config.n_input must be a positive integer"


@case
def heads_do_not_divide():
    return _adata(), {"d_model": 18, "n_heads": 4}, ValueError, r"divisible by config.n_heads.*try n_heads="


@case
def unknown_setting():
    return _adata(), {"n_layer": 2}, TypeError, r"did you mean 'n_layers'"


@case
def one_gene():
    return _adata(n_vars=1), {}, ValueError, r"needs at least 2"


@pytest.mark.parametrize("make", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_refused_before_training(make):
    a, kw, exc, pattern = make()
    snap = _snapshot(a)
    with pytest.raises(exc, match=pattern):
        _fit(a, **kw)
    _unchanged(a, snap)


def test_negative_values_and_log_ratios_are_fine():
    a = _adata()
    a.X = a.X - 5  # all negative
    _fit(a)
    assert np.isfinite(a.obsm["X_gexbert"]).all()


def test_sparse_input_is_accepted():
    a = _adata()
    dense = a.X.copy()
    dense[np.abs(dense) < 0.5] = 0
    a.X = sp.csr_matrix(dense)
    m = _fit(a)
    b = ad.AnnData(dense, obs=a.obs.copy(), var=a.var.copy())
    m2 = _fit(b)
    assert np.allclose(a.obsm["X_gexbert"], b.obsm["X_gexbert"], atol=1e-5)
    assert np.allclose(m.restore(a, genes=["G1"]), m2.restore(b, genes=["G1"]), atol=1e-5)


def test_inf_in_new_data_for_a_trained_model(trained):
    model, adata = trained
    other = adata.copy()
    other.X[0, 0] = -np.inf
    with pytest.raises(ValueError, match="infinite"):
        model.embed(other)
