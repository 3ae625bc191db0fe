"""User errors of the data commands: each gives its exit code and one line on stderr, and writes nothing."""

import json

import anndata as ad
import numpy as np
import pytest

from gexbert_sc.cli import main

from .conftest import copy_to, error_line, read


def _renamed_genes(cohort, tmp_path):
    a = read(cohort.full)
    a.var_names = [f"OTHER{i}" for i in range(a.n_vars)]
    a.write_h5ad(tmp_path / "other.h5ad")
    return tmp_path / "other.h5ad"


def _text_file(cohort, tmp_path):
    (tmp_path / "table.h5ad").write_text("gene\tsample1\nTP53\t1.0\n")
    return tmp_path / "table.h5ad"


def _model_reading_a_layer(cohort, tmp_path):
    """The cohort's model, its metadata saying it reads .layers['counts'] (which the cohort lacks)."""
    model = copy_to(cohort.model, tmp_path, "layer_model")
    meta = json.loads((model / "model.json").read_text())
    (model / "model.json").write_text(json.dumps({**meta, "layer": "counts"}))
    return model


def _untrained_model(cohort, tmp_path):
    model = copy_to(cohort.model, tmp_path, "untrained")
    meta = json.loads((model / "model.json").read_text())
    (model / "model.json").write_text(json.dumps({**meta, "history": [], "metrics": {}}))
    return model


def _damaged_model(cohort, tmp_path):
    model = copy_to(cohort.model, tmp_path, "damaged")
    (model / "model.json").write_text("{not json")
    return model


M = "MODEL"  # stands for the cohort's model
FULL = "FULL"  # the cohort's input


CASES = [
    # 2: bad arguments, before anything is read
    (["embed", FULL, "-m", M, "--device", "floppy"], 2, "device='floppy' is not a device"),
    (["impute", FULL, "-m", M, "--method", "mean"], 2, "--model is used by --method gexbert only"),
    (["impute", FULL, "--set", "d_modl=8"], 2, "did you mean 'd_model'"),
    (["restore", FULL, "--method", "ridge"], 2, "--method ridge learns from --reference"),
    (["restore", FULL], 2, "--method gexbert needs --model DIR"),
    (["restore", FULL, "-m", M, "--genes", ", ,"], 2, "names no gene"),
    (["survival", FULL], 2, "--features both needs --model DIR"),
    (["survival", FULL, "--features", "pca", "--min-events", "2"], 2, "--min-events (2) must be >= --n-folds"),
    (["classify", FULL, "--method", "finetune"], 2, "--method finetune needs --model DIR"),
    (["classify", FULL, "--method", "pca", "--input-genes", "0"], 2, "--input-genes must be a number >= 1"),
    (["embed", FULL, "-m", M, "-o", "{tmp}/no/such/folder/out.h5ad"], 2, "does not exist; create it first"),
    (["embed", FULL, "-m", M, "-o", "{tmp}"], 2, "is a folder; give the path of the .h5ad file"),
    # 3: files
    (["embed", "{tmp}/missing.h5ad", "-m", M], 3, "no file at"),
    (["embed", _text_file, "-m", M], 3, "cannot read"),
    (["restore", FULL, "-m", M, "--genes", "@{tmp}/genes.txt"], 3, "--genes @"),
    (["restore", FULL, "-m", M, "--reference", "{tmp}/ref.h5ad"], 3, "no file at"),
    (["info", "{tmp}/missing.h5ad"], 3, "no file at"),
    # 4: the data lack what an option names, or its values do not work
    (["survival", FULL, "--features", "pca", "--groupby", "cancer_typ"], 4, "did you mean 'cancer_type'"),
    (["survival", FULL, "--features", "pca", "--time-key", "os_tim"], 4, "--time-key 'os_tim' is not a column"),
    (["survival", FULL, "--features", "pca", "--n-pcs", "3", "--alpha", "1", "--min-events", "200",
      "--repeats", "1"], 4, "events"),
    (["classify", FULL, "--method", "pca", "--split-key", "split"], 4, "--split-key 'split' is not a column"),
    (["classify", FULL, "--method", "pca", "--input-genes", "GENE00001,NOPE"], 4, "NOPE"),
    (["attention", FULL, "-m", M, "--groupby", "type"], 4, "--groupby 'type' is not a column"),
    (["impute", FULL, "--method", "mean", "--layer", "counts"], 4, "layer 'counts' is not in adata.layers"),
    # 5: the model
    (["embed", FULL, "-m", "{tmp}/no_model"], 5, "no model folder at"),
    (["embed", FULL, "-m", _damaged_model], 5, "is not valid JSON"),
    (["embed", FULL, "-m", _untrained_model], 5, "has not been trained"),
    (["embed", _renamed_genes, "-m", M], 5, "none of the 40 genes"),
    (["attention", FULL, "-m", _model_reading_a_layer], 5, "reads .layers['counts']"),
    (["restore", FULL, "-m", M, "--genes", "GENE00001,NOPE"], 5, "not in the vocabulary of the model"),
    (["info", "{tmp}"], 5, "is not a complete GexBERT model"),
]


@pytest.mark.parametrize(("argv", "code", "message"), CASES, ids=[f"{c}-{a[0]}-{m}" for a, c, m in CASES])
def test_user_errors_give_their_exit_code_and_one_line(cohort, tmp_path, capsys, argv, code, message):
    def resolve(x):
        if callable(x):
            return str(x(cohort, tmp_path))
        return {M: str(cohort.model), FULL: str(cohort.full)}.get(x, x).replace("{tmp}", str(tmp_path))

    argv = [resolve(x) for x in argv]
    command = argv[0]
    before = sorted(p.name for p in cohort.folder.iterdir())
    rc = main(argv)
    line = error_line(capsys, command)
    assert rc == code, line
    assert message in line, line
    assert sorted(p.name for p in cohort.folder.iterdir()) == before  # no output beside the input
    assert not [p for p in tmp_path.rglob("*.h5ad") if p.name.endswith("_" + command + ".h5ad")]


def test_existing_output_needs_overwrite(cohort, tmp_path, capsys):
    out = tmp_path / "out.h5ad"
    out.write_bytes(b"precious")
    argv = ["embed", str(cohort.full), "-m", str(cohort.model), "-o", str(out), "-q"]
    assert main(argv) == 2
    assert "out.h5ad exists; pass --overwrite" in error_line(capsys, "embed")
    assert out.read_bytes() == b"precious"
    assert main([*argv, "--overwrite"]) == 0
    assert read(out).obsm["X_gexbert"].shape == (150, 32)


def test_a_failed_write_leaves_the_destination_and_no_temporary_file(cohort, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.h5ad"
    out.write_bytes(b"old")

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", full_disk)
    rc = main(["embed", str(cohort.full), "-m", str(cohort.model), "-o", str(out), "--overwrite", "-q"])
    assert rc == 3
    assert "No space left on device" in error_line(capsys, "embed")
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.h5ad"]


def test_debug_shows_the_traceback_then_the_line(cohort, tmp_path, capsys):
    for argv in (["--debug", "embed", str(cohort.full), "-m", str(tmp_path / "none")],
                 ["embed", str(cohort.full), "-m", str(tmp_path / "none"), "--debug"]):
        assert main(argv) == 5
        err = capsys.readouterr().err
        assert err.startswith("Traceback") and "FileNotFoundError" in err
        assert err.splitlines()[-1].startswith("gexbert-sc embed: error: no model folder at")


def test_bad_option_values_are_argparse_errors(cohort, capsys):
    for argv, text in ((["impute", "x.h5ad", "--interval", "1.5"], "argument --interval: expected a number between 0"),
                       (["survival", "x.h5ad", "--alpha", "-1"], "argument --alpha: expected a number > 0"),
                       (["classify", "x.h5ad", "--method", "svm"], "argument --method: invalid choice: 'svm'"),
                       (["attention", "x.h5ad"], "the following arguments are required: -m/--model")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        assert text in error_line(capsys, argv[0])


def test_warnings_are_one_line(cohort, tmp_path, capsys):
    """Genes the model does not know are left out with a warning, on one line."""
    a = read(cohort.full)
    extra = ad.AnnData(np.ones((a.n_obs, 1), np.float32), obs=a.obs, var={"gene": ["EXTRA"]})
    extra.var_names = ["EXTRA"]
    src = tmp_path / "extra.h5ad"
    ad.concat([a, extra], axis=1, merge="first").write_h5ad(src)
    assert main(["embed", str(src), "-m", str(cohort.model), "-q"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err and all(line.startswith("gexbert-sc embed: warning: ") for line in err), err
