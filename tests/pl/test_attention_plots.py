import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import LogNorm, to_rgba
from scipy.stats import spearmanr

import gexbert_sc as gb

KEY = "gexbert_attention"


@pytest.fixture(scope="module")
def stored(trained, tmp_path_factory):
    """tl.attention + tl.gene_umap on the shared tiny model, then an h5ad round trip: the plots get no model."""
    model, adata = trained
    adata = adata.copy()
    gb.tl.attention(adata, model=model, groupby="cancer_type", progress=False)
    gb.tl.gene_umap(adata, model=model)
    path = tmp_path_factory.mktemp("att") / "a.h5ad"
    adata.write_h5ad(path)
    return ad.read_h5ad(path)


def _data_axes(fig):
    return [a for a in fig.axes if a.get_label() != "<colorbar>"]


def _grey_and_coloured(ax):
    grey, coloured = ax.collections
    return grey, coloured


def test_attention_umap_content(stored, tmp_path):
    top_n = 15
    fig = gb.pl.attention_umap(stored, top_n=top_n, return_fig=True, save=str(tmp_path / "u.png"))
    assert (tmp_path / "u.png").stat().st_size > 10_000
    axes = _data_axes(fig)
    groups = list(stored.varm[KEY].columns)
    assert len(axes) == len(groups)
    assert sorted(a.get_title().split(" ")[0] for a in axes) == sorted(groups)
    n = dict(zip(stored.uns[KEY]["groups"], stored.uns[KEY]["n_samples"], strict=True))
    for ax in axes:
        g = ax.get_title().split(" ")[0]
        assert ax.get_title() == f"{g} (n={n[g]})"
        assert ax.get_xlabel() == "gene UMAP 1" and ax.get_ylabel() == "gene UMAP 2"
        grey, coloured = _grey_and_coloured(ax)
        assert len(coloured.get_offsets()) == top_n
        assert len(grey.get_offsets()) == stored.n_vars - top_n
        assert np.allclose(grey.get_facecolors()[0], to_rgba("0.82"))
        # the coloured points are the group's top genes, coloured by their scores
        best = stored.varm[KEY][g].nlargest(top_n)
        xy = stored.varm["X_gexbert_gene_umap"][stored.var_names.get_indexer(best.index)]
        drawn = np.asarray(coloured.get_offsets(), float)
        assert np.allclose(drawn[np.lexsort(drawn.T)], xy[np.lexsort(xy.T)], atol=1e-5)
        assert np.allclose(np.sort(coloured.get_array()), np.sort(best.to_numpy()))
    cbars = [a for a in fig.axes if a.get_label() == "<colorbar>"]
    assert len(cbars) == 1 and "attention score" in cbars[0].get_ylabel()
    assert fig.get_suptitle().startswith("Most attended genes")
    (legend,) = fig.legends
    assert legend.get_title().get_text() == "points"
    assert [t.get_text() for t in legend.get_texts()][1] == "other genes"
    plt.close(fig)


def test_attention_umap_options(stored, tmp_path):
    axes = gb.pl.attention_umap(stored, groups=["TC", "TA"], top_n=10_000, cluster=False, show=False)
    assert [a.get_title().split(" ")[0] for a in axes] == ["TC", "TA"]  # the given order
    for ax in axes:  # top_n beyond the genes: all genes coloured, none grey
        grey, coloured = _grey_and_coloured(ax)
        assert len(coloured.get_offsets()) == stored.n_vars and len(grey.get_offsets()) == 0
    assert "Spearman ρ with previous panel" in axes[1].texts[0].get_text()
    assert isinstance(axes[0].collections[1].norm, LogNorm)  # skewed scores: log colour scale by default
    fig = gb.pl.attention_umap(stored, top_n=5, log_color=False, return_fig=True)
    (cbar,) = [a for a in fig.axes if a.get_label() == "<colorbar>"]
    assert "log" not in cbar.get_ylabel() and not isinstance(_data_axes(fig)[0].collections[1].norm, LogNorm)
    plt.close("all")
    parent = plt.figure(figsize=(10, 4))
    sub = parent.subfigures(1, 2)[0]
    out = gb.pl.attention_umap(stored, groups="TB", top_n=5, fig=sub, show=False)
    assert len(out) == 1 and out[0].figure is sub
    assert gb.pl.attention_umap(stored, top_n=5, show=True) is None  # shown (Agg: a no-op)
    plt.close("all")


def test_attention_umap_orders_panels_by_correlated_attention():
    # four groups: A and C share one attention profile, B and D another
    rng = np.random.default_rng(0)
    n = 300
    p, q = rng.random(n), rng.random(n)
    scores = pd.DataFrame({"A": p + 0.05 * rng.random(n), "B": q + 0.05 * rng.random(n),
                           "C": p + 0.05 * rng.random(n), "D": q + 0.05 * rng.random(n)},
                          index=[f"g{i}" for i in range(n)])
    adata = ad.AnnData(np.zeros((2, n), np.float32), var=pd.DataFrame(index=scores.index))
    adata.varm[KEY] = scores
    adata.varm["X_gexbert_gene_umap"] = rng.normal(size=(n, 2))
    axes = gb.pl.attention_umap(adata, top_n=30, show=False)
    order = [a.get_title() for a in axes]
    assert abs(order.index("A") - order.index("C")) == 1 and abs(order.index("B") - order.index("D")) == 1
    assert "clustering" in axes[0].figure.get_suptitle()
    kept = gb.pl.attention_umap(adata, top_n=30, cluster=False, show=False)
    assert [a.get_title() for a in kept] == ["A", "B", "C", "D"]
    plt.close("all")


def test_attention_vs_expression_content(stored, tmp_path):
    fig = gb.pl.attention_vs_expression(stored, "TA", return_fig=True, save=str(tmp_path / "v.png"))
    assert (tmp_path / "v.png").stat().st_size > 10_000
    axes = fig.axes
    assert len(axes) == 2
    assert [a.get_xlabel() for a in axes] == ["|mean z| within the group", "sd of z within the group"]
    assert all("attention score" in a.get_ylabel() for a in axes)
    assert [a.get_title() for a in axes] == ["attention vs |mean z|", "attention vs sd of z"]
    y = stored.varm[KEY]["TA"].to_numpy()
    for ax, x in zip(axes, (np.abs(stored.varm[KEY + "_mean_z"]["TA"]), stored.varm[KEY + "_sd_z"]["TA"]), strict=True):
        assert len(ax.collections[0].get_offsets()) == stored.n_vars
        res = spearmanr(x, y)
        text = ax.texts[0].get_text()
        assert f"Spearman ρ = {res.statistic:.2f}" in text and f"p = {res.pvalue:.1e}" in text
        assert len(ax.lines) == 1  # the binned medians
    assert "TA" in fig.get_suptitle()
    assert fig.legends[0].get_title().get_text().startswith("one point per gene")
    plt.close(fig)
    axes = gb.pl.attention_vs_expression(stored, "TB", log_y=True, show=False)
    assert axes[0].get_yscale() == "log"
    plt.close("all")


def test_attention_plots_explain_missing_keys_and_bad_input(stored, small_adata):
    with pytest.raises(KeyError, match="tl.attention"):
        gb.pl.attention_umap(small_adata)
    with pytest.raises(KeyError, match="tl.attention"):
        gb.pl.attention_vs_expression(small_adata, "TA")
    no_umap = stored.copy()
    del no_umap.varm["X_gexbert_gene_umap"]
    with pytest.raises(KeyError, match="tl.gene_umap"):
        gb.pl.attention_umap(no_umap)
    no_z = stored.copy()
    del no_z.varm[KEY + "_sd_z"]
    with pytest.raises(KeyError, match="tl.attention"):
        gb.pl.attention_vs_expression(no_z, "TA")
    with pytest.raises(KeyError, match="not in .varm"):
        gb.pl.attention_umap(stored, groups=["GBM"])
    with pytest.raises(ValueError, match="pass group="):
        gb.pl.attention_vs_expression(stored)
    with pytest.raises(ValueError, match="top_n"):
        gb.pl.attention_umap(stored, top_n=0)
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="already has axes"):
        gb.pl.attention_umap(stored, fig=fig)
    plt.close("all")
