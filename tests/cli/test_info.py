"""``info``: a saved model's settings, genes, training and keys; an .h5ad's gexbert keys."""


import gexbert_sc as gb
from gexbert_sc.cli import main
from gexbert_sc.cli._keys import TEMPLATES


def test_info_on_a_model(cohort, capsys):
    assert main(["info", str(cohort.model), "--n-genes", "3"]) == 0
    text = capsys.readouterr().out
    model = gb.GexBERT.load(cohort.model)
    assert f"model: {cohort.model}\n" in text
    assert "genes: 40 (GENE00000, GENE00001, GENE00002, ...)\n" in text
    assert "trained: yes, 4 epochs (phase 1: 2, phase 2: 2)" in text
    best2 = min(h["val_other"] for h in model.history if h["phase"] == 2)
    assert f"best validation MSE, phase 2 (restore other genes): {best2:.4f}" in text
    assert f"val_mean {model.metrics['val_mean']:.4f}" in text
    assert "  d_model = 16\n" in text and "  n_input = 16\n" in text
    for command in TEMPLATES:
        assert f"\n  {command}:\n" in text
    for key in (".obsm['X_gexbert']", ".layers['gexbert_imputed']", ".obs['gexbert_survival_risk']",
                ".obsm['gexbert_classify_proba']", ".varm['gexbert_attention']", ".obsm['gexbert_restored']"):
        assert f"    {key}  (" in text, key


def test_info_on_an_untrained_model(cohort, tmp_path, capsys):
    a = gb.datasets.synthetic(n_obs=40, n_vars=20, n_types=2, n_modules=1, module_size=5, random_state=0)
    gb.GexBERT(a, d_model=16, n_layers=1, n_heads=2, d_ff=32).save(tmp_path / "m")
    assert main(["info", str(tmp_path / "m")]) == 0
    assert "trained: no (no training history; train it with 'gexbert-sc fit')" in capsys.readouterr().out


def test_info_on_an_h5ad_lists_the_keys_and_their_writers(cohort, tmp_path, capsys):
    out = tmp_path / "both.h5ad"
    assert main(["embed", str(cohort.missing), "-m", str(cohort.model), "-o", str(out), "-q"]) == 0
    assert main(["impute", str(out), "--method", "knn", "--interval", "none", "-o", str(out), "-q"]) == 0
    assert main(["info", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{out}: 150 samples x 40 genes"
    assert "  .obsm['X_gexbert'] (150, 32)  (fit or embed)" in lines
    assert "  .layers['knn_imputed'] (150, 40)  (impute)" in lines
    assert "  .uns['gexbert']  (fit or embed)" in lines
    assert main(["info", str(cohort.full)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "no gexbert keys (run embed, impute, ... on it)"
