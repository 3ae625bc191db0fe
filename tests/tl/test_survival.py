import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import gexbert_sc as gb
import gexbert_sc.tl._survival as surv_mod

KEY = "gexbert_survival"
FAST = {"alpha": 1.0, "progress": False}  # a fixed penalty: no inner search, for the tests of plumbing


@pytest.fixture(scope="module")
def both_run(trained):
    """tl.survival with the restored anchors and the input genes ("both"), one repeat, on a copy."""
    model, adata = trained
    adata = adata.copy()
    gb.tl.survival(adata, model=model, features="both", input_genes=32, groupby="cancer_type", repeats=1,
                   n_anchors=16, time_unit="days", progress=False)
    return adata


def test_c_index_above_chance_and_h5ad_round_trip(both_run, tmp_path):
    adata = both_run
    res = adata.uns[KEY]
    c = res["c_index"]
    assert list(c.index) == ["TA", "TB", "TC"] and list(c.columns) == ["0"]
    assert res["mean"] > 0.65  # chance 0.5; the planted risk modules are among the genes
    assert np.isfinite(res["integrated_brier"].to_numpy()).all()
    assert 0 < res["integrated_brier_mean"] < 0.25  # 0.25: a constant 0.5 prediction
    risk = adata.obs[KEY + "_risk"]
    assert risk.notna().all() and risk.std() > 0
    assert res["input_genes"].shape == (1, 32)
    assert res["groups"]["scored"].all() and (res["groups"]["n_events"] >= 10).all()
    assert res["params"]["alpha"] == "cv" and res["params"]["groupby"] == "cancer_type"
    assert all(v is not None for v in res["params"].values())
    adata.write_h5ad(tmp_path / "s.h5ad")
    back = ad.read_h5ad(tmp_path / "s.h5ad")
    pd.testing.assert_frame_equal(back.uns[KEY]["c_index"], c, check_dtype=False, check_index_type=False)
    np.testing.assert_allclose(back.obs[KEY + "_risk"], risk)
    assert back.uns[KEY]["params"]["time_unit"] == "days"
    assert back.uns[KEY]["mean"] == pytest.approx(res["mean"])


def test_restored_anchors_and_original_on_the_same_genes(trained, both_run):
    """Same seed, same input genes whatever the features; "both" >= "original" on this seeded run.

    With the tiny test model (80 genes), 3 repeats: "both" beat "original" at 16 and 32 input genes
    (0.743 vs 0.720, 0.781 vs 0.752) but NOT at 64 (0.773 vs 0.787), where the inputs are 80% of all
    genes and the restored anchors add nothing; so the comparison is asserted at 32 genes only.
    """
    model, adata = trained
    a = adata.copy()
    gb.tl.survival(a, model=model, features="restored", input_genes=32, groupby="cancer_type", repeats=1,
                   n_anchors=16, progress=False, key_added="r")
    gb.tl.survival(a, model=model, features="original", input_genes=32, groupby="cancer_type", repeats=1,
                   progress=False, key_added="o")
    assert (a.uns["r"]["input_genes"] == both_run.uns[KEY]["input_genes"]).all()
    assert (a.uns["o"]["input_genes"] == both_run.uns[KEY]["input_genes"]).all()
    assert a.uns["r"]["mean"] > 0.55  # restored anchors alone: above chance
    assert both_run.uns[KEY]["mean"] >= a.uns["o"]["mean"]  # 0.773 vs 0.756 when written


@pytest.fixture(scope="module")
def panel_cohort():
    """600 genes (8 modules of 20, 4 drive risk), so that 64 input genes are a small panel, and a tiny model
    with the linear path (``linear_path="fixed"``) trained on it."""
    adata = gb.datasets.synthetic(n_obs=240, n_vars=600, n_types=3, n_modules=8, module_size=20, random_state=2)
    tiny = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "n_levels": 16, "batch_size": 16,
            "n_input": 64, "n_target": 64, "linear_path": "fixed", "linear_rank": 64}
    model = gb.GexBERT(adata, random_state=0, **tiny).train(phase1_epochs=5, phase2_epochs=5, progress=False)
    return model, adata


def test_both_at_least_original_from_a_64_gene_panel(panel_cohort):
    """The paper's claim on a seeded run: restored anchors added to 64 input genes predict at least as well.

    With the linear path the restored anchors alone beat the 64 genes (0.729 vs 0.676 over 3 seeds when
    written) and "both" reaches 0.726. Without it (the default ``linear_path="none"``), the same tiny
    model's restored anchors scored 0.55-0.57 and "both" fell below "original" on all 3 seeds: the
    default network does not restore the risk genes well enough at this size (see issue 13's note).
    """
    model, adata = panel_cohort
    a = adata.copy()
    kw = {"model": model, "input_genes": 64, "groupby": "cancer_type", "repeats": 3, "n_anchors": 64,
          "progress": False}
    gb.tl.survival(a, features="original", key_added="o", **kw)
    gb.tl.survival(a, features="both", key_added="b", **kw)
    assert (a.uns["o"]["input_genes"] == a.uns["b"]["input_genes"]).all()
    assert a.uns["b"]["mean"] >= a.uns["o"]["mean"] + 0.02


def test_anchors_chosen_on_training_folds_only_and_model_sees_only_inputs(trained, monkeypatch):
    model, adata = trained
    adata = adata.copy()
    calls, seen = [], []
    real_screen, real_restore = surv_mod.cv_concordance, type(model).restore

    def screen(X, time, event, **kw):
        calls.append(np.array(X))
        return real_screen(X, time, event, **kw)

    def restore(self, sub, *args, **kw):
        seen.append((list(sub.var_names), list(sub.obs_names)))
        return real_restore(self, sub, *args, **kw)

    monkeypatch.setattr(surv_mod, "cv_concordance", screen)
    monkeypatch.setattr(type(model), "restore", restore)
    gb.tl.survival(adata, model=model, features="restored", input_genes=16, groupby="cancer_type", repeats=1,
                   n_anchors=8, n_folds=4, **FAST)
    assert len(calls) == 3 * 4  # a screen per group and training fold
    # every row passed to the screen is a sample's row; find which sample
    X = np.asarray(adata.X, dtype=np.float64)
    index = {X[i].tobytes(): i for i in range(adata.n_obs)}
    groups = adata.obs["cancer_type"].to_numpy()
    for g_i, grp in enumerate(["TA", "TB", "TC"]):
        members = set(np.flatnonzero(groups == grp))
        used = [{index[row.tobytes()] for row in c} for c in calls[4 * g_i : 4 * g_i + 4]]
        held_out = [members - u for u in used]
        assert all(u <= members for u in used)  # training rows of this group only
        assert all(len(h) >= len(members) // 4 for h in held_out)  # a fold is held out of each screen
        assert set().union(*held_out) == members  # every sample is held out of one screen...
        assert sum(len(h) for h in held_out) == len(members)  # ...and of exactly one
    inputs = set(adata.uns[KEY]["input_genes"][0])
    assert len(seen) == 3 and all(set(v) == inputs for v, _ in seen)  # the model sees only the input genes


def test_no_model_features_copy_and_gene_list(trained):
    _, adata = trained
    genes = list(adata.var_names[:20])
    out = gb.tl.survival(adata, features="pca", input_genes=genes, groupby="cancer_type", repeats=2, n_pcs=5,
                         copy=True, **FAST)
    assert KEY not in adata.uns and KEY + "_risk" not in adata.obs  # copy=True left the input alone
    res = out.uns[KEY]
    assert res["c_index"].shape == (3, 2) and (res["input_genes"] == np.array([genes, genes])).all()
    assert res["params"]["input_genes_given"] and res["params"]["n_pcs"] == 5
    assert res["alpha"].to_numpy().ravel().tolist() == [1.0] * 6
    one = gb.tl.survival(adata, features="original", input_genes=20, repeats=1, copy=True, **FAST)
    assert list(one.uns[KEY]["c_index"].index) == ["all"] and one.uns[KEY]["params"]["groupby"] == ""


def _cohort(n=60, seed=0):
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame({"t": rng.uniform(1, 100, n), "e": rng.random(n) < 0.6,
                        "grp": np.repeat(["a", "b"], n // 2)}, index=[f"s{i}" for i in range(n)])
    return ad.AnnData(rng.normal(size=(n, 10)).astype(np.float32), obs=obs,
                      var=pd.DataFrame(index=[f"g{j}" for j in range(10)]))


def test_input_errors_and_warnings(trained):
    kw = {"time_key": "t", "event_key": "e", "input_genes": 5, **FAST}
    a = _cohort()
    with pytest.raises(ValueError, match="needs a trained GexBERT"):
        gb.tl.survival(a, features="restored", **kw)
    with pytest.raises(ValueError, match="features must be one of"):
        gb.tl.survival(a, features="genes", **kw)
    with pytest.raises(TypeError, match="model must be a trained GexBERT"):
        gb.tl.survival(a, model="model", features="both", **kw)
    with pytest.raises(KeyError, match="time_key='time'"):
        gb.tl.survival(a, features="original", **{**kw, "time_key": "time"})
    with pytest.raises(KeyError, match="groupby 'type'"):
        gb.tl.survival(a, features="original", groupby="type", **kw)
    with pytest.raises(ValueError, match="input_genes=50 but 10 gene"):
        gb.tl.survival(a, features="original", **{**kw, "input_genes": 50})
    with pytest.raises(KeyError, match="nope"):
        gb.tl.survival(a, features="original", **{**kw, "input_genes": ["g0", "nope"]})
    with pytest.raises(ValueError, match="min_events"):
        gb.tl.survival(a, features="original", min_events=3, **kw)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        gb.tl.survival(a, features="original", **{**kw, "alpha": 0.0})
    with pytest.raises(ValueError, match="key_added"):
        gb.tl.survival(a, features="original", key_added="a/b", **kw)
    b = a.copy()
    b.obs["t"] = ["x"] * b.n_obs
    with pytest.raises(TypeError, match="must hold numbers"):
        gb.tl.survival(b, features="original", **kw)
    b = a.copy()
    b.obs["e"] = np.where(b.obs["e"], "dead", "alive")
    with pytest.raises(ValueError, match="must be 1/True"):
        gb.tl.survival(b, features="original", **kw)
    b = a.copy()
    b.obs.iloc[0, 0] = 0.0
    with pytest.raises(ValueError, match="must be > 0"):
        gb.tl.survival(b, features="original", **kw)
    # a group without events is skipped (named), samples without survival data are dropped (counted)
    b = a.copy()
    b.obs.loc[b.obs["grp"] == "b", "e"] = False
    b.obs["t"] = b.obs["t"].astype(float)
    b.obs.iloc[:2, 0] = np.nan
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        gb.tl.survival(b, features="original", groupby="grp", **kw)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "skipping 1 group(s) with fewer than 10 events: 'b' (0 events)" in msgs
    assert "dropping 2 of 60 sample(s)" in msgs
    assert list(b.uns[KEY]["c_index"].index) == ["a"]
    assert b.obs[KEY + "_risk"].isna().sum() == 32  # group b and the 2 dropped samples
    b = b[b.obs["t"].notna()].copy()
    b.obs["e"] = False
    with pytest.warns(UserWarning, match="skipping 2 group"), pytest.raises(ValueError, match="no group has 10"):
        gb.tl.survival(b, features="original", groupby="grp", **kw)
