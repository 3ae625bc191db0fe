import anndata as ad
import matplotlib.pyplot as plt
import pytest

import gexbert_sc as gb


@pytest.fixture
def benched(small_adata):
    gb.tl.benchmark_impute(small_adata, methods=["mean", "knn"], mechanisms=["mcar", "low_value"], rates=[0.1, 0.2],
                           progress=False)
    return small_adata


def test_benchmark_plot_has_a_panel_per_mechanism_and_labels(benched, tmp_path):
    fig = gb.pl.benchmark_impute(benched, return_fig=True, save=str(tmp_path / "b.png"))
    axes = [a for a in fig.axes if a.get_title()]
    assert [a.get_title().split(" ")[0] for a in axes] == ["mcar", "low_value"]
    assert axes[0].get_ylabel() == "RMSE / mean-filling RMSE" and axes[0].get_xlabel() == "fraction hidden"
    leg = axes[-1].get_legend()
    assert leg.get_title().get_text() == "method" and [t.get_text() for t in leg.get_texts()] == ["mean", "knn"]
    assert (tmp_path / "b.png").stat().st_size > 1000
    plt.close("all")


def test_plots_work_after_h5ad_round_trip_and_name_missing_tools(benched, small_adata, tmp_path):
    gb.pp.simulate_missing(benched, rate=0.2)
    gb.tl.impute(benched, method="knn")
    benched.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    axes = gb.pl.imputation(back, key="knn_imputed", show=False)
    assert len(axes) == 2 and axes[0].get_xlabel().startswith("true value") and axes[1].get_title()
    assert "knn" in axes[0].get_title()
    ax = gb.pl.benchmark_impute(back, metric="coverage", show=False)
    assert len(ax) == 2
    plt.close("all")
    fresh = ad.AnnData(back.X.copy())
    with pytest.raises(KeyError, match="tl.benchmark_impute"):
        gb.pl.benchmark_impute(fresh)
    with pytest.raises(KeyError, match="tl.impute"):
        gb.pl.imputation(fresh)
