"""``demo`` and ``fit``: the commands that train, and their user errors."""

import anndata as ad
import numpy as np
import pytest

import gexbert_sc as gb
from gexbert_sc.cli import main

from .conftest import QUICK, error_line


def test_demo_writes_results_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), *QUICK])
    assert rc == 0
    text = capsys.readouterr().out
    assert "restore genes not in the input" in text and "predict the training mean" in text
    for f in ["adata_gexbert.h5ad", "umap_samples.png", "training_history.png", "model/model.safetensors"]:
        assert (out / f).stat().st_size > 0, f
    a = ad.read_h5ad(out / "adata_gexbert.h5ad")
    assert a.obsm["X_gexbert"].shape == (1000, 32) and "gexbert" in a.uns
    assert gb.GexBERT.load(out / "model").config.d_model == 16


def test_fit_command_in_memory_and_backed(tmp_path, capsys):
    a = gb.datasets.synthetic(n_obs=100, n_vars=40, n_types=2, n_modules=2, module_size=10, random_state=0)
    a.write_h5ad(tmp_path / "in.h5ad")
    args = QUICK
    assert main(["fit", str(tmp_path / "in.h5ad"), "--out", str(tmp_path / "o1"), *args]) == 0
    assert "validation MSE" in capsys.readouterr().out
    out1 = ad.read_h5ad(tmp_path / "o1" / "adata_gexbert.h5ad")
    assert out1.obsm["X_gexbert"].shape == (100, 32)
    assert main(["fit", str(tmp_path / "in.h5ad"), "--out", str(tmp_path / "o2"), "--backed", *args]) == 0
    emb = np.load(tmp_path / "o2" / "X_gexbert.npy")
    assert np.allclose(emb, out1.obsm["X_gexbert"], atol=1e-4)
    capsys.readouterr()
    assert main(["fit", str(tmp_path / "missing.h5ad"), "--out", str(tmp_path / "o3")]) == 3
    assert error_line(capsys, "fit").endswith(f"no file at {tmp_path / 'missing.h5ad'}")
    assert not (tmp_path / "o3").exists()  # a mistyped input leaves no empty output folder


def test_fit_command_config_overrides(h5ad, tmp_path, capsys):
    args = ["--phase1-epochs", "1", "--phase2-epochs", "1", "--no-progress"]
    sets = ["--set", "activation=relu", "--set", "d_model=16", "--set", "summary_readout=false", "--set", "n_layers=1",
            "--set", "n_input=16", "--set", "n_target=16", "--set", "min_steps_per_epoch=2"]
    assert main(["fit", str(h5ad), "--out", str(tmp_path / "o"), *sets, *args]) == 0
    model = gb.GexBERT.load(tmp_path / "o" / "model")
    c = model.config
    assert (c.activation, c.d_model, c.summary_readout) == ("relu", 16, False)
    capsys.readouterr()
    assert main(["fit", str(h5ad), "--set", "actvation=relu", *args]) == 2
    assert "did you mean 'activation'" in error_line(capsys, "fit")
    assert main(["fit", str(h5ad), "--set", "activation", *args]) == 2
    assert "--set takes KEY=VALUE" in error_line(capsys, "fit")


# ---------------------------------------------------------------- user errors: one line, an exit code
def _counts_file(tmp_path):
    """Raw counts (non-negative integers up to 5,000) in an .h5ad; 120 samples, so no small-data warning."""
    a = gb.datasets.synthetic(n_obs=120, n_vars=30, n_types=2, n_modules=2, module_size=8, random_state=0)
    a.X = np.random.default_rng(0).poisson(200, size=a.shape).astype(np.float32)
    a.X[0, 0] = 5000
    a.write_h5ad(tmp_path / "counts.h5ad")
    return tmp_path / "counts.h5ad"


def _text_file(tmp_path):
    (tmp_path / "table.h5ad").write_text("gene\tsample1\nTP53\t1.0\n")
    return tmp_path / "table.h5ad"


@pytest.mark.parametrize(
    ("make_input", "options", "code", "message"),
    [
        (None, ["--layer", "nope"], 4, "layer 'nope' is not in adata.layers"),
        (None, ["--batch-key", "bach"], 4, "batch_key 'bach' is not a column of adata.obs"),
        (_counts_file, [], 4, "looks like raw counts"),
        (_text_file, [], 3, "cannot read"),
        (_text_file, ["--backed"], 3, "cannot read"),
        (None, ["--resume"], 2, "--resume needs --checkpoint-dir"),
        (None, ["--phase1-epochs", "0", "--phase2-epochs", "0"], 2, "train nothing"),
        (None, ["--config", "nope"], 2, "unknown config preset 'nope'"),
        (None, ["--device", "floppy"], 2, "device='floppy' is not a device"),
    ],
    ids=["layer", "batch-key", "raw-counts", "not-h5ad", "not-h5ad-backed", "resume", "no-epochs", "preset", "device"],
)
def test_fit_user_errors_print_one_line(h5ad, tmp_path, capsys, make_input, options, code, message):
    path = h5ad if make_input is None else make_input(tmp_path)
    rc = main(["fit", str(path), "--out", str(tmp_path / "out"), *QUICK, *options])
    line = error_line(capsys, "fit")
    assert rc == code, line
    assert message in line
    assert 'error: "' not in line  # a KeyError's message without the quotes its str() adds


def test_device_without_cuda_is_refused_before_reading_data(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    # the input does not exist: the device error comes first, before any data is read or --out is made
    assert main(["fit", str(tmp_path / "missing.h5ad"), "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
    assert "torch sees no CUDA device" in error_line(capsys, "fit")
    assert main(["demo", "--out", str(tmp_path / "d"), "--device", "cuda"]) == 2
    assert "torch sees no CUDA device" in error_line(capsys, "demo")
    assert not (tmp_path / "o").exists() and not (tmp_path / "d").exists()


def test_out_is_checked_before_training(h5ad, tmp_path, capsys):
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    assert main(["fit", str(h5ad), "--out", str(not_a_folder), *QUICK]) == 2
    assert "is not a folder" in error_line(capsys, "fit")
    assert main(["fit", str(h5ad), "--out", str(not_a_folder / "sub"), *QUICK]) == 2
    assert "is not a writable folder" in error_line(capsys, "fit")
    (tmp_path / "demo" / "model").mkdir(parents=True)
    assert main(["demo", "--out", str(tmp_path / "demo"), *QUICK]) == 2  # refused before the data are loaded
    assert "model exists; pass --overwrite" in error_line(capsys, "demo")


def test_existing_model_needs_overwrite(h5ad, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["fit", str(h5ad), "--out", str(out), *QUICK]) == 0
    weights = out / "model" / "model.safetensors"
    before = weights.read_bytes()
    capsys.readouterr()
    assert main(["fit", str(h5ad), "--out", str(out), *QUICK, "--seed", "1"]) == 2
    assert "model exists; pass --overwrite" in error_line(capsys, "fit")
    assert weights.read_bytes() == before
    assert main(["fit", str(h5ad), "--out", str(out), *QUICK, "--seed", "1", "--overwrite"]) == 0
    assert weights.read_bytes() != before


def test_damaged_checkpoint_exits_5(h5ad, tmp_path, capsys):
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "checkpoint.pt").write_bytes(b"not a checkpoint")
    rc = main(["fit", str(h5ad), "--out", str(tmp_path / "o"), *QUICK, "--checkpoint-dir", str(ck), "--resume"])
    assert rc == 5
    line = error_line(capsys, "fit")
    assert "checkpoint" in line and "cannot be read" in line


def test_unusable_checkpoints_exit_5(h5ad, tmp_path, capsys):
    """Exit 5 comes from the public CheckpointError: a checkpoint of other settings or with a part missing."""
    from gexbert_sc.train import load_checkpoint, save_checkpoint

    ck = tmp_path / "ck"
    fit = ["fit", str(h5ad), *QUICK, "--checkpoint-dir", str(ck)]
    assert main([*fit, "--out", str(tmp_path / "o1")]) == 0
    capsys.readouterr()
    assert main([*fit, "--out", str(tmp_path / "o2"), "--seed", "1", "--resume"]) == 5
    assert "was written for other data or settings" in error_line(capsys, "fit")
    payload = load_checkpoint(ck / "checkpoint.pt")
    del payload["history"]
    save_checkpoint(ck / "checkpoint.pt", payload)
    assert main([*fit, "--out", str(tmp_path / "o3"), "--resume"]) == 5
    assert "is damaged (KeyError: 'history')" in error_line(capsys, "fit")


def test_unexpected_errors_keep_their_traceback(h5ad, tmp_path, monkeypatch, capsys):
    """An exception outside the user-error checks is a bug: main() lets it propagate (exit 1, traceback)."""

    def broken_save(self, *args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(gb.GexBERT, "save", broken_save)
    with pytest.raises(ValueError, match="a bug"):
        main(["fit", str(h5ad), "--out", str(tmp_path / "o"), *QUICK])


def test_interrupt_exits_130(h5ad, tmp_path, monkeypatch, capsys):
    import gexbert_sc.cli._io as cli_io

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_io, "read_h5ad", interrupt)
    assert main(["fit", str(h5ad), "--out", str(tmp_path / "o")]) == 130
    assert capsys.readouterr().err == "gexbert-sc fit: interrupted\n"


def test_argument_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["fit", "in.h5ad", "--seed", "-1"])
    assert e.value.code == 2
    assert "argument --seed/--random-state: expected an integer >= 0" in error_line(capsys, "fit")
