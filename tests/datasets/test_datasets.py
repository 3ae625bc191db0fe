import anndata as ad
import numpy as np
import pandas as pd
import pytest
from sksurv.metrics import concordance_index_censored

import gexbert_sc as gb


def test_synthetic_structure_and_ground_truth():
    a = gb.datasets.synthetic(n_obs=600, n_vars=300, n_types=4, n_modules=6, module_size=20, random_state=0)
    assert a.shape == (600, 300) and a.X.dtype == np.float32
    assert list(a.obs["cancer_type"].cat.categories) == ["TA", "TB", "TC", "TD"]
    assert a.obs["os_event"].dtype == bool and (a.obs["os_time"] > 0).all()
    cens = 1 - a.obs["os_event"].mean()
    assert 0.2 < cens < 0.5
    assert (a.var["module"] >= 0).sum() == 120 and a.var["risk_gene"].sum() == 4 * 20
    assert a.uns["synthetic"]["beta"].shape == (4, 4)
    # genes of one module are co-expressed, genes of different modules are not
    X = a.X - a.X.mean(0)
    m0 = np.flatnonzero(a.var["module"] == 0)[:2]
    m1 = np.flatnonzero(a.var["module"] == 1)[0]
    c_same = abs(np.corrcoef(X[:, m0[0]], X[:, m0[1]])[0, 1])
    c_diff = abs(np.corrcoef(X[:, m0[0]], X[:, m1])[0, 1])
    assert c_same > 0.5 and c_same > c_diff + 0.2
    # cancer types have distinct profiles
    means = np.stack([a.X[(a.obs["cancer_type"] == t).to_numpy()].mean(0) for t in ["TA", "TB"]])
    assert np.abs(means[0] - means[1]).max() > 1.5
    # survival follows the true risk
    c = concordance_index_censored(a.obs["os_event"].to_numpy(), a.obs["os_time"].to_numpy(), a.obs["true_risk"].to_numpy())[0]
    assert c > 0.65


def test_synthetic_is_seeded_and_checks_arguments():
    a = gb.datasets.synthetic(n_obs=50, n_vars=100, random_state=3, n_modules=2)
    b = gb.datasets.synthetic(n_obs=50, n_vars=100, random_state=3, n_modules=2)
    assert np.array_equal(a.X, b.X)
    m = gb.datasets.synthetic(n_obs=50, n_vars=100, n_modules=2, missing_rate=0.2)
    assert 0.15 < np.isnan(m.X).mean() < 0.25
    with pytest.raises(ValueError, match="exceeds n_vars"):
        gb.datasets.synthetic(n_vars=100, n_modules=20, module_size=50)


def test_tcga_skcm_is_log_cpm_with_counts_kept():
    a = gb.datasets.tcga_skcm()
    assert a.shape == (454, 1712)
    counts = a.layers["counts"]
    assert counts.max() > 1e6 and np.allclose(counts, np.round(counts))
    cpm = counts / counts.sum(1, keepdims=True) * 1e6
    assert np.allclose(a.X, np.log1p(cpm), atol=1e-3)
    assert a.obs["os_event"].sum() == 221 and a.obs["os_time"].notna().all()
    assert set(a.obs["cancer_type"]) == {"SKCM"}


@pytest.mark.parametrize(
    "loader, shape, deaths",
    [(gb.datasets.ovarian_gse51088, (123, 7824), 93), (gb.datasets.nki_breast, (150, 912), 36)],
)
def test_microarray_cohorts(loader, shape, deaths):
    a = loader()
    assert a.shape == shape and a.var_names.is_unique
    assert np.nanmax(np.abs(a.X)) <= 2.0 and np.isnan(a.X).any()
    assert int(a.obs["os_event"].sum()) == deaths
    ok = gb.datasets.survival_complete(a)
    assert a.obs["os_time"][ok].notna().all() and ok.sum() < a.n_obs


def test_tcga_cdr_survival():
    df = gb.datasets.tcga_cdr_survival()
    assert isinstance(df, pd.DataFrame) and df.shape == (11160, 10)
    assert df["type"].nunique() == 33


def test_nki_keeps_the_most_variable_probe_of_a_symbol():
    raw, clean = gb.datasets.nki_breast(clean_symbols=False), gb.datasets.nki_breast()
    assert raw.shape == (150, 922) and "IGFBP5-2" in raw.var_names
    assert sorted(clean.var_names) == sorted(set(raw.var["gene_symbol"]))  # no "-1" suffixes left
    assert clean.uns["symbol_cleaning"] == {"dropped_multi_symbol": 0, "dropped_duplicate_probes": 10}
    assert (clean.var["n_probes"] > 1).sum() == 8 and clean.var["n_probes"].sum() == 922
    probes = raw[:, (raw.var["gene_symbol"] == "IGFBP5").to_numpy()]
    var = np.nanvar(probes.X, axis=0)
    best = probes.var["probe"].iloc[int(np.argmax(var))]
    assert clean.var.loc["IGFBP5", "probe"] == best == "L27560"
    assert sorted(clean.var.loc["IGFBP5", "other_probes"].split(";")) == sorted(set(probes.var["probe"]) - {best})
    np.testing.assert_array_equal(clean[:, "IGFBP5"].X, raw[:, probes.var_names[int(np.argmax(var))]].X)
    # symbols measured once are untouched, and nothing is lost: every probe id is in var
    np.testing.assert_array_equal(clean[:, "ESR1"].X, raw[:, "ESR1"].X)
    ids = set(clean.var["probe"]) | {p for o in clean.var["other_probes"] for p in o.split(";") if p}
    assert ids == set(raw.var["probe"])


def test_ovarian_drops_multi_symbol_probes():
    raw, clean = gb.datasets.ovarian_gse51088(clean_symbols=False), gb.datasets.ovarian_gse51088()
    assert raw.n_vars == 8211 and raw.var_names.str.contains("///").sum() == 387
    assert clean.n_vars == 8211 - 387 and not clean.var_names.str.contains("/").any()
    assert (clean.var["n_probes"] == 1).all() and (clean.var["other_probes"] == "").all()
    np.testing.assert_array_equal(clean.X, raw[:, clean.var_names].X)


def test_cleaned_cohorts_pool_on_gene_symbols():
    nki, ov = gb.datasets.nki_breast(), gb.datasets.ovarian_gse51088()
    pooled = ad.concat([nki, ov], join="outer", label="batch", keys=["nki", "ovarian"])
    shared = nki.var_names.intersection(ov.var_names)
    assert len(shared) == 427 and pooled.var_names.is_unique and pooled.obs_names.is_unique
    assert pooled.shape == (150 + 123, 912 + 7824 - 427)
    assert pooled.obs["batch"].value_counts().to_dict() == {"nki": 150, "ovarian": 123}
    # a shared gene has values from both cohorts, an NKI-only one is missing for the ovarian samples
    esr1 = pooled[:, "ESR1"].X.ravel()
    assert np.isfinite(esr1[:150]).mean() > 0.9 and np.isfinite(esr1[150:]).mean() > 0.9
    only = nki.var_names.difference(ov.var_names)[0]
    assert np.isnan(pooled[pooled.obs["batch"] == "ovarian", only].X).all()
