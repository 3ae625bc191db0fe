import anndata as ad

from gexbert_sc.cli import main


def test_demo_writes_results_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--phase1-epochs", "1", "--phase2-epochs", "1", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "restore genes not in the input" in text and "predict the training mean" in text
    for f in ["adata_gexbert.h5ad", "umap_samples.png", "training_history.png", "model/model.safetensors"]:
        assert (out / f).stat().st_size > 0, f
    a = ad.read_h5ad(out / "adata_gexbert.h5ad")
    assert a.obsm["X_gexbert"].shape[0] == 1000 and "gexbert" in a.uns


def test_fit_command_in_memory_and_backed(tmp_path, capsys):
    import numpy as np

    import gexbert_sc as gb

    a = gb.datasets.synthetic(n_obs=100, n_vars=40, n_types=2, n_modules=2, module_size=10, random_state=0)
    a.write_h5ad(tmp_path / "in.h5ad")
    args = ["--phase1-epochs", "1", "--phase2-epochs", "1", "--no-progress"]
    assert main(["fit", str(tmp_path / "in.h5ad"), "--out", str(tmp_path / "o1"), *args]) == 0
    assert "validation MSE" in capsys.readouterr().out
    out1 = ad.read_h5ad(tmp_path / "o1" / "adata_gexbert.h5ad")
    assert out1.obsm["X_gexbert"].shape == (100, 64)
    assert main(["fit", str(tmp_path / "in.h5ad"), "--out", str(tmp_path / "o2"), "--backed", *args]) == 0
    emb = np.load(tmp_path / "o2" / "X_gexbert.npy")
    assert np.allclose(emb, out1.obsm["X_gexbert"], atol=1e-4)
    assert main(["fit", str(tmp_path / "missing.h5ad")]) == 2


def test_fit_command_config_overrides(tmp_path, capsys):
    import gexbert_sc as gb

    a = gb.datasets.synthetic(n_obs=60, n_vars=30, n_types=2, n_modules=2, module_size=8, random_state=0)
    a.write_h5ad(tmp_path / "in.h5ad")
    args = ["--phase1-epochs", "1", "--phase2-epochs", "1", "--no-progress"]
    sets = ["--set", "activation=relu", "--set", "d_model=16", "--set", "summary_readout=false"]
    assert main(["fit", str(tmp_path / "in.h5ad"), "--out", str(tmp_path / "o"), *sets, *args]) == 0
    model = gb.GexBERT.load(tmp_path / "o" / "model")
    c = model.config
    assert (c.activation, c.d_model, c.summary_readout) == ("relu", 16, False)
    capsys.readouterr()
    assert main(["fit", str(tmp_path / "in.h5ad"), "--set", "actvation=relu", *args]) == 2
    assert "did you mean 'activation'" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "in.h5ad"), "--set", "activation", *args]) == 2
    assert "--set takes KEY=VALUE" in capsys.readouterr().err
