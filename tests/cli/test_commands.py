"""``embed``, ``impute``, ``restore``, ``survival``, ``classify``, ``attention``: end to end on .h5ad files."""

import hashlib

import numpy as np
import pandas as pd
import pytest

import gexbert_sc as gb
from gexbert_sc.cli import main
from gexbert_sc.cli._keys import TEMPLATES, default_key, written_keys

from .conftest import copy_to, read

FAST_SURVIVAL = ["--input-genes", "16", "--n-anchors", "8", "--repeats", "1", "--alpha", "1", "--n-folds", "3",
                 "--min-events", "3"]


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_keys_written(adata, command: str, *, skip: tuple[str, ...] = ()) -> None:
    """Every key ``info`` says ``command`` writes (its default key, notes in ``skip`` left out) is in ``adata``."""
    for slot, name, note in TEMPLATES[command]:
        if any(s in note for s in skip) or "/" in slot:
            continue
        key = name.format(key=default_key(command))
        container = getattr(adata, slot)
        assert key in (container.columns if slot in ("obs", "var") else container), f".{slot}[{key!r}]"


# ---------------------------------------------------------------- embed
def test_embed_matches_fit_and_leaves_the_input_alone(cohort, tmp_path, capsys):
    src = copy_to(cohort.full, tmp_path)
    before = digest(src)
    assert main(["embed", str(src), "-m", str(cohort.model), "--umap"]) == 0
    out = tmp_path / "full_embed.h5ad"  # the default output, beside the input
    assert digest(src) == before
    assert "wrote " + str(out) in capsys.readouterr().out
    a, fitted = read(out), read(cohort.fit_h5ad)
    emb = a.obsm["X_gexbert"]
    assert emb.shape == (150, 32) and np.isfinite(emb).all() and emb.std() > 0
    np.testing.assert_allclose(emb, fitted.obsm["X_gexbert"], atol=1e-5)  # the model's seed, as fit embeds
    assert list(a.uns["gexbert"]["history"]["phase"]) == [1, 1, 2, 2]
    assert a.uns["gexbert"]["params"]["d_model"] == 16
    assert a.obsm["X_gexbert_umap"].shape == (150, 2) and np.isfinite(a.obsm["X_gexbert_umap"]).all()
    assert_keys_written(a, "embed")


def test_embed_options_and_quiet(cohort, tmp_path, capsys):
    out = tmp_path / "e.h5ad"
    assert main(["embed", str(cohort.full), "-m", str(cohort.model), "-o", str(out), "--key-added", "mine",
                 "--random-state", "3", "--n-input", "8", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    a = read(out)
    assert set(a.obsm) == {"X_mine"} and a.uns["mine"]["params"]["random_state"] == 3
    assert not np.allclose(a.obsm["X_mine"], read(cohort.fit_h5ad).obsm["X_gexbert"], atol=1e-3)


def test_output_named_as_the_input_updates_it_in_place(cohort, tmp_path):
    src = copy_to(cohort.full, tmp_path)
    assert main(["embed", str(src), "-m", str(cohort.model), "-o", str(src), "-q"]) == 0
    a = read(src)
    assert "X_gexbert" in a.obsm and a.shape == (150, 40)
    assert [p.name for p in tmp_path.iterdir()] == [src.name]  # no temporary file left behind


# ---------------------------------------------------------------- impute
def test_impute_fills_only_the_missing_values_with_intervals(cohort, tmp_path, capsys):
    out = tmp_path / "imp.h5ad"
    assert main(["impute", str(cohort.missing), "-m", str(cohort.model), "-o", str(out)]) == 0
    a = read(out)
    X = a.X
    nan = np.isnan(X)
    filled = a.layers["gexbert_imputed"]
    assert 500 < nan.sum() < 700
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[~nan], X[~nan])  # observed values unchanged
    lo, hi, sd = (a.layers[f"gexbert_imputed_{s}"] for s in ("lower", "upper", "sd"))
    assert (lo[nan] < filled[nan]).all() and (filled[nan] < hi[nan]).all() and (sd[nan] > 0).all()
    assert (sd[~nan] == 0).all()
    truth = read(cohort.full).X
    err = np.abs(filled[nan] - truth[nan])
    assert np.sqrt((err**2).mean()) < np.nanstd(X, axis=0).mean()  # better than a gene's spread
    assert 0.7 < ((truth[nan] >= lo[nan]) & (truth[nan] <= hi[nan])).mean() <= 1.0  # 90% intervals cover
    assert a.uns["gexbert_imputed"]["n_filled"] == nan.sum()
    assert f"filled {nan.sum()} of {nan.sum()} missing values" in capsys.readouterr().out
    assert_keys_written(a, "impute")


def test_impute_baseline_without_intervals(cohort, tmp_path):
    out = tmp_path / "mean.h5ad"
    assert main(["impute", str(cohort.missing), "--method", "mean", "--interval", "none", "-o", str(out), "-q"]) == 0
    a = read(out)
    nan = np.isnan(a.X)
    filled = a.layers["mean_imputed"]
    col_means = np.broadcast_to(np.nanmean(a.X, axis=0), a.shape)
    np.testing.assert_allclose(filled[nan], col_means[nan], rtol=1e-5)
    assert "mean_imputed_sd" not in a.layers and a.uns["mean_imputed"]["params"]["method"] == "mean"


def test_impute_groupby_calibrates_the_genes_a_group_lacks(h5ad, tmp_path, capsys):
    a = read(h5ad)
    lacks = (a.obs["cancer_type"] == a.obs["cancer_type"].iloc[0]).to_numpy()
    a.X[np.ix_(lacks, np.arange(5))] = np.nan  # one cancer type never measured genes 0-4
    a.write_h5ad(tmp_path / "gaps.h5ad")
    out = tmp_path / "filled.h5ad"
    rc = main(["impute", str(tmp_path / "gaps.h5ad"), "--method", "mean", "--groupby", "cancer_type", "-o", str(out)])
    assert rc == 0
    cal = read(out).uns["mean_imputed"]["calibration"]
    assert cal["n_block_missing"] == int(lacks.sum()) * 5 and cal["block_q"] > 0
    assert f"{int(lacks.sum()) * 5} values missing for their whole group" in capsys.readouterr().out
    assert main(["impute", str(tmp_path / "gaps.h5ad"), "--method", "mean", "--groupby", "nope",
                 "-o", str(tmp_path / "x.h5ad")]) != 0


def test_impute_trains_a_model_without_one(cohort, tmp_path):
    out = tmp_path / "here.h5ad"
    rc = main(["impute", str(cohort.missing), "-o", str(out), "--interval", "none", "-q", "--set", "d_model=16",
               "--set", "n_layers=1", "--set", "n_heads=2", "--set", "d_ff=32", "--set", "n_input=16",
               "--set", "n_target=16", "--set", "min_steps_per_epoch=2", "--phase1-epochs", "1",
               "--phase2-epochs", "1"])
    assert rc == 0
    a = read(out)
    assert np.isfinite(a.layers["gexbert_imputed"]).all()
    assert a.uns["gexbert_imputed"]["params"]["model"] == "trained here"
    assert set(a.uns["gexbert_imputed"]["metrics"]) == {"val_same", "val_other", "val_mean"}


# ---------------------------------------------------------------- restore
def test_restore_genes_from_a_file_matches_the_python_api(cohort, tmp_path):
    genes = ["GENE00001", "GENE00005", "GENE00034"]
    (tmp_path / "genes.txt").write_text("# targets\nGENE00001\nGENE00005, GENE00034\n")
    full = read(cohort.full)
    src = tmp_path / "panel.h5ad"
    full[:, [g for g in full.var_names if g != "GENE00034"]].copy().write_h5ad(src)  # lacks one target
    out = tmp_path / "r.h5ad"
    assert main(["restore", str(src), "-m", str(cohort.model), "--genes", f"@{tmp_path / 'genes.txt'}",
                 "--reference", str(cohort.full), "-o", str(out), "-q"]) == 0
    a = read(out)
    layer = a.layers["gexbert_restored"]
    cols = [list(a.var_names).index(g) for g in genes[:2]]
    assert np.isfinite(layer[:, cols]).all() and np.isnan(np.delete(layer, cols, axis=1)).all()
    absent = a.obsm["gexbert_restored"]
    assert list(absent.columns) == ["GENE00034"] and np.isfinite(absent.to_numpy()).all()
    assert {"gexbert_restored_sd", "gexbert_restored_lower", "gexbert_restored_upper"} <= set(a.layers)
    assert (a.obsm["gexbert_restored_sd"].to_numpy() > 0).all()
    # the same call in Python gives the same numbers
    model = gb.GexBERT.load(cohort.model)
    b = read(src)
    gb.tl.restore(b, model=model, genes=genes, reference=read(cohort.full))
    np.testing.assert_allclose(layer[:, cols], b.layers["gexbert_restored"][:, cols], rtol=1e-5)
    np.testing.assert_allclose(absent.to_numpy(), b.obsm["gexbert_restored"].to_numpy(), rtol=1e-5)
    # a restored gene follows the truth
    truth = full[:, "GENE00034"].X.ravel()
    assert np.corrcoef(truth, absent["GENE00034"].to_numpy())[0, 1] > 0.3


def test_restore_ridge_with_a_reference(cohort, tmp_path):
    out = tmp_path / "ridge.h5ad"
    full = read(cohort.full)
    src = tmp_path / "panel.h5ad"
    full[:, full.var_names[:30]].copy().write_h5ad(src)
    assert main(["restore", str(src), "--method", "ridge", "--reference", str(cohort.full), "-o", str(out),
                 "-q"]) == 0
    r = read(out).obsm["ridge_restored"]
    assert list(r.columns) == list(full.var_names[30:])  # default: the reference's genes the input lacks
    truth = full[:, full.var_names[30:]].X
    rmse = np.sqrt(((r.to_numpy() - truth) ** 2).mean(axis=0))
    assert (rmse < truth.std(axis=0)).mean() >= 0.5  # ridge beats the mean on most genes


# ---------------------------------------------------------------- survival
def test_survival_with_the_model(cohort, tmp_path, capsys):
    out = tmp_path / "s.h5ad"
    assert main(["survival", str(cohort.full), "-m", str(cohort.model), "--groupby", "cancer_type",
                 "--time-unit", "days", "-o", str(out), *FAST_SURVIVAL]) == 0
    a = read(out)
    res = a.uns["gexbert_survival"]
    c = res["c_index"].to_numpy(dtype=float)
    assert c.shape == (2, 1) and ((c > 0.5) & (c <= 1)).all()  # the planted risk modules predict
    risk = a.obs["gexbert_survival_risk"]
    assert risk.notna().all() and risk.std() > 0
    p = res["params"]
    assert (p["features"], p["groupby"], p["n_anchors"], p["time_unit"]) == ("both", "cancer_type", 8, "days")
    assert res["input_genes"].shape == (1, 16)
    assert "C-index (both)" in capsys.readouterr().out
    assert_keys_written(a, "survival")


def test_survival_baseline_on_named_genes(cohort, tmp_path):
    out = tmp_path / "s.h5ad"
    genes = ",".join(f"GENE{i:05d}" for i in range(12))
    assert main(["survival", str(cohort.full), "--features", "original", "--input-genes", genes, "--repeats", "1",
                 "--alpha", "1", "--n-folds", "3", "--min-events", "3", "-o", str(out), "-q"]) == 0
    res = read(out).uns["gexbert_survival"]
    assert list(res["input_genes"][0]) == genes.split(",")
    assert 0 < res["mean"] < 1 and list(res["c_index"].index) == ["all"]


# ---------------------------------------------------------------- classify
def test_classify_probe_by_cross_validation(cohort, tmp_path, capsys):
    out = tmp_path / "c.h5ad"
    assert main(["classify", str(cohort.full), "-m", str(cohort.model), "--input-genes", "16", "-o", str(out)]) == 0
    a = read(out)
    res = a.uns["gexbert_classify"]
    assert res["accuracy"] > 0.7 and res["n_predicted"] == 150  # two classes: chance 0.5
    assert set(a.obs["gexbert_classify_pred"].cat.categories) == {"TA", "TB"}
    proba = a.obsm["gexbert_classify_proba"]
    np.testing.assert_allclose(proba.to_numpy().sum(axis=1), 1.0, rtol=1e-5)
    assert "probe: accuracy" in capsys.readouterr().out
    assert_keys_written(a, "classify")


def test_classify_baseline_with_a_split(cohort, tmp_path):
    a = read(cohort.full)
    a.obs["split"] = np.where(np.arange(a.n_obs) % 3 == 0, "test", "train")
    src = tmp_path / "split.h5ad"
    a.write_h5ad(src)
    assert main(["classify", str(src), "--method", "pca", "--n-pcs", "5", "--input-genes", "40",
                 "--split-key", "split", "-q"]) == 0
    b = read(tmp_path / "split_classify.h5ad")
    pred = b.obs["gexbert_classify_pred"]
    test = (b.obs["split"] == "test").to_numpy()
    assert pred[test].notna().all() and pred[~test].isna().all()
    assert b.uns["gexbert_classify"]["n_predicted"] == test.sum() and b.uns["gexbert_classify"]["accuracy"] > 0.7


# ---------------------------------------------------------------- attention
def test_attention_scores_per_group(cohort, tmp_path, capsys):
    out = tmp_path / "att.h5ad"
    assert main(["attention", str(cohort.full), "-m", str(cohort.model), "--groupby", "cancer_type",
                 "--n-top", "5", "-o", str(out)]) == 0
    a = read(out)
    score = a.var["gexbert_attention"].to_numpy()
    assert np.isfinite(score).all() and (score > 0).all()
    assert 0.5 / 17 < score.mean() < 2 / 17  # uniform attention over 16 genes and the cls token: 1/17
    assert (a.var["gexbert_attention_n"] > 0).all()
    per_group = a.varm["gexbert_attention"]
    assert list(per_group.columns) == ["TA", "TB"] and np.isfinite(np.asarray(per_group, dtype=float)).all()
    assert len(a.uns["gexbert_attention"]["names"]) == 5
    top = a.var["gexbert_attention"].idxmax()
    assert f"highest overall attention: {top}" in capsys.readouterr().out
    assert_keys_written(a, "attention")


# ---------------------------------------------------------------- the options mirror the Python API
@pytest.mark.parametrize("command", ["impute", "restore", "survival", "classify", "attention"])
def test_option_defaults_are_the_functions_defaults(command):
    """Every option named after a parameter of the tl function has that parameter's default."""
    import inspect

    from gexbert_sc.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices[command]
    params = inspect.signature(getattr(gb.tl, command)).parameters
    checked = 0
    for action in sub._actions:
        name = action.dest
        # --device: the CLI resolves "auto" once for every command; the tl functions default to the model's device
        if name in params and name not in ("layer", "key_added", "model", "progress", "device"):
            default = params[name].default
            cli_default = int(action.default) if name == "input_genes" else action.default
            assert cli_default == default, f"{command} --{name.replace('_', '-')}: {cli_default!r} != {default!r}"
            checked += 1
    assert checked >= 3
    if "method" in params or "features" in params:
        from gexbert_sc.cli import _classify, _impute, _restore, _survival

        choices = {"impute": _impute.METHODS, "restore": _restore.METHODS, "survival": _survival.FEATURES,
                   "classify": _classify.METHODS}[command]
        doc = inspect.getdoc(getattr(gb.tl, command))
        assert all(f'"{c}"' in doc for c in choices)


def test_written_keys_name_the_key_added(cohort):
    assert written_keys("impute", method="knn")[0] == ".layers['knn_imputed']  (the completed matrix)"
    assert written_keys("classify", "cls")[:2] == [".obs['cls_pred']  (predicted class)",
                                                    ".obsm['cls_proba']  (class probabilities)"]
    assert pd.Series(TEMPLATES).index.tolist() == ["embed", "impute", "restore", "survival", "classify", "attention"]
