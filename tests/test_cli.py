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
