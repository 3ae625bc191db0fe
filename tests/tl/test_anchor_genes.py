import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import gexbert_sc as gb
from gexbert_sc.tl._survival_data import groups_with_few_events, survival_arrays

KEY = "gexbert_anchors"


def _cohort(n=300, n_genes=400, n_planted=10, effect=0.5, seed=0, groups=None):
    """Samples x genes with survival driven by a few planted genes: hazard exp(x @ b), ~30% censored."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_genes))
    planted = rng.choice(n_genes, min(n_planted, n_genes), replace=False)
    b = np.zeros(n_genes)
    b[planted] = rng.choice([-1.0, 1.0], len(planted)) * effect
    t_event = rng.exponential(1 / np.exp(X @ b))
    t_censor = rng.exponential(3.0, n)
    obs = pd.DataFrame(
        {"os_time": np.minimum(t_event, t_censor), "os_event": (t_event <= t_censor).astype(int)},
        index=[f"s{i}" for i in range(n)],
    )
    if groups is not None:
        obs["type"] = pd.Categorical(groups)
    var = pd.DataFrame(index=[f"g{j}" for j in range(n_genes)])
    return ad.AnnData(X.astype(np.float32), obs=obs, var=var), var.index[planted]


def test_anchors_recover_planted_genes():
    """The top anchors of a simulated cohort are mostly the genes that drive the hazard."""
    adata, planted = _cohort()
    assert 0.2 < 1 - adata.obs["os_event"].mean() < 0.45  # censoring
    gb.tl.anchor_genes(adata, time_key="os_time", event_key="os_event", n_genes=20)
    top = adata.uns[KEY]["anchors"]["all"]
    assert len(top) == 20
    recall = len(set(top) & set(planted)) / len(planted)
    assert recall >= 0.7  # chance: 20 / 400 = 0.05
    scores = adata.varm[KEY]
    assert list(scores.columns) == ["all"] and (scores.index == adata.var_names).all()
    assert scores.loc[top[0], "all"] == scores["all"].max()
    assert np.all(np.diff(scores.loc[top, "all"].to_numpy()) <= 0)  # best first


def test_groups_skipping_copy_nan_fill_and_h5ad_round_trip(tmp_path):
    """Groups, skipped groups, NaN filling, copy=True and the .h5ad round trip."""
    groups = np.array(["A"] * 150 + ["B"] * 130 + ["C"] * 20)
    adata, _ = _cohort(n=300, n_genes=50, groups=groups, seed=1)
    adata.obs.loc[adata.obs["type"] == "C", "os_event"] = 0
    adata.obs.iloc[:3, adata.obs.columns.get_loc("os_event")] = 1  # group C has 0, the others keep theirs
    adata.X[:10, 0] = np.nan  # some missing values of g0 in group A
    adata.X[adata.obs["type"] == "B", 1] = np.nan  # g1 has no value in group B
    before = adata.copy()
    with pytest.warns(UserWarning, match=r"skipping 1 group.*'C' \(0 events\)"):
        out = gb.tl.anchor_genes(
            adata, time_key="os_time", event_key="os_event", groupby="type", n_genes=100, copy=True
        )
    assert KEY not in adata.uns and KEY not in adata.varm  # copy=True leaves the input alone
    assert np.array_equal(adata.X, before.X, equal_nan=True)
    scores = out.varm[KEY]
    assert list(scores.columns) == ["A", "B", "C"]
    assert scores["C"].isna().all() and not scores["A"].isna().any()
    assert np.isnan(scores.loc["g1", "B"]) and not np.isnan(scores.loc["g1", "A"])
    anchors = out.uns[KEY]["anchors"]
    assert set(anchors) == {"A", "B"}
    assert len(anchors["A"]) == 50 and len(anchors["B"]) == 49  # capped at the genes with a score
    assert "g1" not in anchors["B"]
    assert out.uns[KEY]["n_events"]["C"] == 0 and out.uns[KEY]["n_samples"]["A"] == 150

    path = tmp_path / "anchors.h5ad"
    out.write_h5ad(path)
    back = ad.read_h5ad(path)
    pd.testing.assert_frame_equal(back.varm[KEY], scores, check_dtype=False, check_index_type=False)
    for grp, genes in anchors.items():
        assert list(back.uns[KEY]["anchors"][grp]) == list(genes)
    params = back.uns[KEY]["params"]
    assert params["groupby"] == "type" and params["layer"] == "" and params["n_genes"] == 100


def test_anchor_genes_layer_and_in_place():
    """A layer is read instead of .X and the result is written in place."""
    adata, _ = _cohort(n=80, n_genes=12, seed=2)
    adata.layers["expr"] = adata.X.copy()
    adata.X = np.zeros_like(adata.X)
    assert gb.tl.anchor_genes(adata, time_key="os_time", event_key="os_event", layer="expr", key_added="s") is None
    assert adata.varm["s"]["all"].std() > 0 and adata.uns["s"]["params"]["layer"] == "expr"


def test_anchor_genes_progress_bar_can_be_hidden(capsys, tmp_path):
    """progress=False hides the bar over the groups (shown by default) and is recorded in the params."""
    adata, planted = _cohort(n=80, n_genes=12, n_planted=2, effect=1.0, seed=3)
    capsys.readouterr()
    gb.tl.anchor_genes(adata, time_key="os_time", event_key="os_event", n_genes=3, key_added="shown")
    assert "anchor genes" in capsys.readouterr().err
    gb.tl.anchor_genes(adata, time_key="os_time", event_key="os_event", n_genes=3, key_added="quiet", progress=False)
    assert "anchor genes" not in capsys.readouterr().err
    # the bar changes nothing else
    pd.testing.assert_frame_equal(adata.varm["quiet"], adata.varm["shown"])
    assert list(adata.uns["quiet"]["anchors"]["all"]) == list(adata.uns["shown"]["anchors"]["all"])
    assert adata.varm["quiet"].loc[planted, "all"].min() > adata.varm["quiet"]["all"].median()
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert not back.uns["quiet"]["params"]["progress"] and back.uns["shown"]["params"]["progress"]


def test_survival_arrays_checks_and_drops():
    """Bad survival columns raise errors naming the fix; missing values are dropped with a warning."""
    adata, _ = _cohort(n=30, n_genes=3)
    with pytest.raises(KeyError, match=r"time_key='os_tme'.*Close matches: \['os_time'\]"):
        survival_arrays(adata, "os_tme", "os_event")
    with pytest.raises(KeyError, match="event_key='dead'"):
        survival_arrays(adata, "os_time", "dead")

    bad = adata.obs.copy()
    adata.obs["os_time"] = adata.obs["os_time"].astype(object)
    adata.obs.iloc[2, 0] = "12 days"
    with pytest.raises(TypeError, match="must hold numbers.*'12 days'.*pd.to_numeric"):
        survival_arrays(adata, "os_time", "os_event")
    adata.obs = bad.copy()
    adata.obs.iloc[[1, 4], 0] = [0.0, -3.0]
    with pytest.raises(ValueError, match=r"must be > 0.*2 sample\(s\).*'s1', 's4'"):
        survival_arrays(adata, "os_time", "os_event")
    adata.obs = bad.copy()
    adata.obs["os_event"] = ["Dead", "Alive"] * 15
    with pytest.raises(ValueError, match=r"1/True.*'Dead', 'Alive'.*map"):
        survival_arrays(adata, "os_time", "os_event")
    adata.obs["os_event"] = [0, 1, 2] * 10
    with pytest.raises(ValueError, match="holds 2;"):
        survival_arrays(adata, "os_time", "os_event")
    adata.obs = bad.copy()
    adata.obs.iloc[[0, 5], 0] = np.nan
    adata.obs["os_event"] = adata.obs["os_event"].astype(float)
    adata.obs.iloc[7, 1] = np.nan
    with pytest.warns(UserWarning, match=r"dropping 3 of 30 sample\(s\).*2 missing.*1 missing"):
        time, event, keep = survival_arrays(adata, "os_time", "os_event")
    assert keep.sum() == 27 and time.dtype == np.float64 and event.dtype == bool and len(time) == 27
    adata.obs = bad.copy()
    adata.obs["os_event"] = adata.obs["os_event"].astype(bool)
    time, event, keep = survival_arrays(adata, "os_time", "os_event")
    assert keep.all() and event.sum() == bad["os_event"].sum()

    assert groups_with_few_events([1, 1, 0, 1, 0], ["a", "a", "b", "b", "c"], 2) == {"b": 1, "c": 0}


def test_anchor_genes_bad_parameters():
    """Bad parameters raise before any work; clean input warns about nothing."""
    adata, _ = _cohort(n=40, n_genes=5)
    kw = {"time_key": "os_time", "event_key": "os_event"}
    with pytest.raises(ValueError, match="min_events .* must be >= n_folds"):
        gb.tl.anchor_genes(adata, min_events=3, **kw)
    with pytest.raises(ValueError, match="n_genes must be an integer"):
        gb.tl.anchor_genes(adata, n_genes=0, **kw)
    with pytest.raises(KeyError, match="groupby 'typ'"):
        gb.tl.anchor_genes(adata, groupby="typ", **kw)
    with pytest.raises(KeyError, match="layer 'nope'"):
        gb.tl.anchor_genes(adata, layer="nope", **kw)
    adata.obs["kind"] = ["x/y"] * 40
    with pytest.raises(ValueError, match="cannot contain '/'"):
        gb.tl.anchor_genes(adata, groupby="kind", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about on clean input
        gb.tl.anchor_genes(adata, **kw)
