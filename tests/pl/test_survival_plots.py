import matplotlib.pyplot as plt
import pytest

import gexbert_sc as gb


@pytest.fixture(scope="module")
def scored(trained):
    """Survival and classification keys written without a model (fast), on a copy of the shared data."""
    _, adata = trained
    adata = adata.copy()
    gb.tl.survival(adata, features="original", input_genes=30, groupby="cancer_type", repeats=1, alpha=1.0,
                   time_unit="days", progress=False)
    gb.tl.classify(adata, groupby="cancer_type", method="pca", input_genes=30, n_pcs=10, progress=False)
    return adata


def test_survival_plot(scored, tmp_path):
    ax = gb.pl.survival(scored, group="TB", show=False)
    assert len([ln for ln in ax.get_lines() if ln.get_label().startswith(("low", "high"))]) == 2
    assert "log-rank p = " in ax.get_title() and ax.get_title().startswith("TB")
    assert ax.get_xlabel() == "time (days)" and ax.get_ylabel() == "survival probability"
    assert ax.get_legend().get_title().get_text().startswith("risk group (median split")
    table = [a for a in ax.figure.axes if a is not ax][0]
    numbers = [int(t.get_text()) for t in table.texts]
    n_tb = int((scored.obs["cancer_type"] == "TB").sum())
    assert max(numbers) == (n_tb + 1) // 2  # at time 0 everyone in each half is at risk
    assert table.get_title(loc="left").startswith("number at risk")
    fig = gb.pl.survival(scored, group="TA", split="tertiles", return_fig=True, save=str(tmp_path / "km.png"))
    assert (tmp_path / "km.png").stat().st_size > 1000
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert any(lb.startswith("intermediate risk") for lb in labels)
    _, ax2 = plt.subplots()
    assert gb.pl.survival(scored, group="TC", ax=ax2, show=False) is ax2
    with pytest.raises(ValueError, match="pass group="):
        gb.pl.survival(scored)
    with pytest.raises(KeyError, match="scored groups"):
        gb.pl.survival(scored, group="TZ")
    with pytest.raises(ValueError, match="split must be"):
        gb.pl.survival(scored, group="TA", split="quartiles")
    plt.close("all")


def test_classification_plot(scored, tmp_path):
    ax_cm, ax_rec = gb.pl.classification(scored, show=False)
    assert ax_cm.get_xlabel() == "predicted class" and ax_cm.get_ylabel() == "true class (cancer_type)"
    assert "accuracy" in ax_cm.get_title() and "recall" in ax_rec.get_xlabel()
    assert ax_rec.get_ylabel() == "true class" and ax_rec.get_legend() is not None
    cbar = [a for a in ax_cm.figure.axes if a not in (ax_cm, ax_rec)][0]
    assert cbar.get_ylabel() == "fraction of the true class (row-normalised)"
    assert sum(int(t.get_text()) for t in ax_cm.texts) == scored.n_obs  # annotated counts
    assert len(ax_rec.patches) == 3
    fig = gb.pl.classification(scored, return_fig=True, save=str(tmp_path / "cm.png"))
    assert (tmp_path / "cm.png").stat().st_size > 1000 and len(fig.axes) == 3
    _, one = plt.subplots()
    assert gb.pl.classification(scored, ax=one, show=False) is one
    plt.close("all")


def test_plots_name_the_tool_to_run(small_adata):
    with pytest.raises(KeyError, match="tl.survival"):
        gb.pl.survival(small_adata, group="TA")
    with pytest.raises(KeyError, match="tl.classify"):
        gb.pl.classification(small_adata)
