import matplotlib.pyplot as plt
import pytest

import gexbert_sc as gb
from tests.conftest import TINY


@pytest.fixture
def fitted(small_adata):
    gb.tl.fit(small_adata, phase1_epochs=2, phase2_epochs=2, progress=False, **TINY)
    gb.tl.umap(small_adata)
    return small_adata


def test_history_from_adata_and_model(fitted, trained, tmp_path):
    ax = gb.pl.history(fitted, show=False)
    labels = [line.get_label() for line in ax.get_lines()]
    assert "validation: restore other genes" in labels and len(ax.get_lines()[0].get_xdata()) == 4
    fig = gb.pl.history(trained[0], return_fig=True, save=str(tmp_path / "h.png"))
    assert (tmp_path / "h.png").stat().st_size > 1000
    plt.close("all")
    fig2, ax2 = plt.subplots()
    assert gb.pl.history(fitted, ax=ax2, show=False) is ax2
    plt.close(fig)


def test_umap_plot(fitted):
    ax = gb.pl.umap(fitted, color="cancer_type", show=False)
    assert len(ax.collections) >= 1
    fig = gb.pl.umap(fitted, return_fig=True)
    assert fig.axes
    with pytest.raises(KeyError, match="neither an .obs column"):
        gb.pl.umap(fitted, color="nope")
    # defect: the default colour was "cancer_type", which failed on data without that column
    del fitted.obs["cancer_type"]
    ax = gb.pl.umap(fitted, show=False)
    assert len(ax.collections) >= 1
    plt.close("all")


def test_plots_explain_missing_keys(small_adata):
    with pytest.raises(KeyError, match="tl.fit"):
        gb.pl.history(small_adata)
    with pytest.raises(KeyError, match="tl.umap"):
        gb.pl.umap(small_adata)


def test_history_title_legend_and_integer_epochs(trained):
    from matplotlib.ticker import MaxNLocator

    ax = gb.pl.history(trained[0], show=False)
    assert ax.get_title() == "GexBERT training history"
    assert ax.get_legend().get_title().get_text() == "curves and training phase"
    assert isinstance(ax.xaxis.get_major_locator(), MaxNLocator)
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "MSE (standardised units)"
    assert gb.pl.history(trained[0], title=None, show=False).get_title() == ""
    plt.close("all")
