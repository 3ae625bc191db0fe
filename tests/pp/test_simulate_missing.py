"""pp.simulate_missing: hide known values, keep the truth and a mask of what was removed."""

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import gexbert_sc as gb
from gexbert_sc.pp import simulate_missing


def _adata(n_obs=200, n_vars=40, nan_rate=0.05, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=5.0, size=(n_obs, n_vars)).astype(np.float32)
    X[rng.random(X.shape) < nan_rate] = np.nan
    obs = pd.DataFrame(
        {"batch": pd.Categorical(np.repeat(["a", "b", "c", "d"], n_obs // 4))}, index=[f"s{i}" for i in range(n_obs)]
    )
    var = pd.DataFrame(index=[f"g{j}" for j in range(n_vars)])
    return ad.AnnData(X, obs=obs, var=var)


def test_registered():
    assert gb.pp.simulate_missing is simulate_missing
    assert "simulate_missing" in gb.pp.__all__


def test_mcar(caplog):
    adata = _adata()
    X0 = adata.X.copy()
    observed = ~np.isnan(X0)
    with caplog.at_level(logging.INFO, logger="gexbert_sc"):
        assert simulate_missing(adata, rate=0.2, random_state=1) is None
    mask = adata.layers["simulated_mask"]
    truth = adata.layers["simulated_truth"]
    assert mask.dtype == bool and truth.dtype == np.float32
    assert np.array_equal(truth, X0, equal_nan=True)
    assert abs(mask.sum() / observed.sum() - 0.2) < 0.02
    assert not mask[~observed].any()  # NaN before: never in the mask
    assert np.isnan(adata.X[mask]).all()
    assert np.array_equal(np.isnan(adata.X), ~observed | mask)  # nothing else removed
    assert np.array_equal(adata.X[~mask & observed], X0[~mask & observed])
    uns = adata.uns["simulated"]
    assert uns["params"] == {"rate": 0.2, "mechanism": "mcar", "groupby": "", "layer": "", "random_state": 1,
                             "keep_measurable": True}
    assert uns["n_removed"] == mask.sum() and uns["n_observed_before"] == observed.sum()
    assert "simulated_mask" in caplog.text and "simulated_truth" in caplog.text


def test_reproducible_and_rate_zero():
    a, b = _adata(), _adata()
    simulate_missing(a, rate=0.3, random_state=7)
    simulate_missing(b, rate=0.3, random_state=7)
    assert np.array_equal(a.layers["simulated_mask"], b.layers["simulated_mask"])
    c = _adata()
    simulate_missing(c, rate=0.0)
    assert not c.layers["simulated_mask"].any()


def test_gene_block():
    adata = _adata(nan_rate=0.0)
    simulate_missing(adata, rate=0.25, mechanism="gene_block", groupby="batch", random_state=3)
    mask = adata.layers["simulated_mask"]
    groups = adata.obs["batch"].to_numpy()
    gene_sets = {}
    for g in np.unique(groups):
        m = mask[groups == g]
        # whole genes: every sample of the group loses the same genes
        assert (m.all(axis=0) | ~m.any(axis=0)).all()
        gene_sets[g] = frozenset(np.flatnonzero(m.all(axis=0)))
        assert len(gene_sets[g]) == 10  # round(0.25 * 40)
    assert len(set(gene_sets.values())) > 1  # each group has its own genes
    assert adata.uns["simulated"]["params"]["groupby"] == "batch"


def test_gene_block_keeps_prior_nan_out_of_mask():
    adata = _adata(nan_rate=0.1)
    before = np.isnan(adata.X)
    simulate_missing(adata, rate=0.5, mechanism="gene_block", groupby="batch")
    assert not adata.layers["simulated_mask"][before].any()
    assert np.array_equal(np.isnan(adata.X), before | adata.layers["simulated_mask"])


def test_gene_block_never_empties_a_gene():
    """Two groups losing 80% of the genes each must share some: those keep their values, unscored."""
    adata = _adata(n_obs=40, n_vars=40, nan_rate=0.0)
    adata.obs["two"] = pd.Categorical(np.repeat(["a", "b"], 20))
    raw = simulate_missing(adata, rate=0.8, mechanism="gene_block", groupby="two", random_state=0,
                           keep_measurable=False, copy=True)
    emptied = np.isnan(raw.X).all(axis=0)
    assert emptied.sum() >= 20  # 32 of 40 genes per group: at least 24 in both
    simulate_missing(adata, rate=0.8, mechanism="gene_block", groupby="two", random_state=0)
    mask = adata.layers["simulated_mask"]
    assert not np.isnan(adata.X).all(axis=0).any()  # every gene keeps an observed value
    assert not mask[:, emptied].any() and np.array_equal(adata.X[:, emptied], raw.layers["simulated_truth"][:, emptied])
    assert np.array_equal(mask[:, ~emptied], raw.layers["simulated_mask"][:, ~emptied])  # the rest as before
    assert adata.uns["simulated"]["n_kept_genes"] == int(emptied.sum())
    assert raw.uns["simulated"]["n_kept_genes"] == 0


def test_mcar_never_empties_a_sample():
    adata = _adata(n_obs=52, n_vars=3, nan_rate=0.0)
    simulate_missing(adata, rate=0.9, random_state=0)
    assert (~np.isnan(adata.X)).any(axis=1).all()
    assert adata.uns["simulated"]["n_kept_samples"] > 0


def test_low_value():
    adata = _adata(n_obs=400, nan_rate=0.0, seed=2)
    X0 = adata.X.copy()
    simulate_missing(adata, rate=0.2, mechanism="low_value", random_state=0)
    mask = adata.layers["simulated_mask"]
    assert abs(mask.mean() - 0.2) < 0.02
    z = (X0 - X0.mean(axis=0)) / X0.std(axis=0)
    assert z[mask].mean() < -0.3 and z[~mask].mean() > 0.05  # removed values are low ones
    assert X0[mask].mean() < X0[~mask].mean() - 0.4
    # monotone: the lowest fifth of z-scores is removed far more often than the highest fifth
    lo, hi = z < np.quantile(z, 0.2), z > np.quantile(z, 0.8)
    assert mask[lo].mean() > 2.5 * mask[hi].mean()


def test_sparse_layer_and_copy(tmp_path):
    rng = np.random.default_rng(0)
    counts = sp.random(50, 20, density=0.5, format="csr", random_state=0, dtype=np.float64) * 10
    adata = ad.AnnData(X=np.ones((50, 20), dtype=np.float32), layers={"counts": counts})
    out = simulate_missing(
        adata, rate=0.3, layer="counts", key_added="sim", copy=True, random_state=int(rng.integers(100))
    )
    assert sp.issparse(adata.layers["counts"]) and "sim_mask" not in adata.layers  # original untouched
    L = out.layers["counts"]
    assert isinstance(L, np.ndarray) and L.dtype == np.float32
    assert np.array_equal(out.layers["sim_truth"], counts.toarray().astype(np.float32))
    assert np.isnan(L[out.layers["sim_mask"]]).all()
    assert np.array_equal(out.X, np.ones((50, 20)))  # .X not touched when layer is given
    assert out.uns["sim"]["params"]["layer"] == "counts"
    out.write_h5ad(tmp_path / "sim.h5ad")  # no None in .uns: writable
    back = ad.read_h5ad(tmp_path / "sim.h5ad")
    assert back.uns["sim"]["params"]["groupby"] == ""
    assert np.array_equal(back.layers["sim_mask"], out.layers["sim_mask"])


def test_existing_keys_refused_unless_overwrite():
    adata = _adata()
    simulate_missing(adata, rate=0.1)
    X1 = adata.X.copy()
    with pytest.raises(ValueError, match=r"\.layers\['simulated_truth'\].*already exist.*overwrite=True"):
        simulate_missing(adata, rate=0.1)
    assert np.array_equal(adata.X, X1, equal_nan=True)  # refused before changing anything
    simulate_missing(adata, rate=0.1, overwrite=True, random_state=5)
    # second call: already-removed entries are NaN before it, so not in the new mask
    assert not adata.layers["simulated_mask"][np.isnan(X1)].any()


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"rate": 1.0}, ValueError, r"rate must be a number in \[0, 1\)"),
        ({"rate": -0.1}, ValueError, r"rate must be a number in \[0, 1\)"),
        ({"rate": 0.1, "mechanism": "mcr"}, ValueError, r"choose one of \['mcar', 'gene_block', 'low_value'\]"),
        ({"rate": 0.1, "mechanism": "gene_block"}, ValueError, r"needs groupby=.*\['batch'\]"),
        ({"rate": 0.1, "groupby": "batch"}, ValueError, r"only used by mechanism='gene_block'"),
        ({"rate": 0.1, "mechanism": "gene_block", "groupby": "bach"}, KeyError, r"Close matches: \['batch'\]"),
        ({"rate": 0.1, "layer": "count"}, KeyError, r"layer 'count' is not in adata.layers.*Close matches: \['counts'"),
        ({"rate": 0.1, "key_added": ""}, ValueError, r"key_added must be a non-empty string"),
        ({"rate": 0.1, "random_state": 1.5}, TypeError, r"random_state must be an int or None"),
        ({"rate": 0.1, "layer": "counts", "key_added": "counts"}, ValueError, r"already exist"),
    ],
)
def test_bad_inputs(kwargs, err, match):
    adata = _adata()
    adata.layers["counts"] = adata.X.copy()
    adata.layers["counts_mask"] = adata.X.copy()
    with pytest.raises(err, match=match):
        simulate_missing(adata, **kwargs)
    assert "simulated_mask" not in adata.layers


def test_bad_data():
    with pytest.raises(TypeError, match="expected an AnnData"):
        simulate_missing(np.ones((3, 3)), rate=0.1)
    adata = _adata()
    adata.X[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"1 infinite value\(s\)"):
        simulate_missing(adata, rate=0.1)
    adata = _adata()
    adata.obs["batch"] = adata.obs["batch"].astype(object)
    adata.obs.iloc[0, 0] = None
    with pytest.raises(ValueError, match=r"has 1 missing value\(s\); give those samples a group label"):
        simulate_missing(adata, rate=0.1, mechanism="gene_block", groupby="batch")
