import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
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


def _with_layout(adata, seed=0):
    layout = np.random.default_rng(seed).normal(size=(adata.n_obs, 2))
    adata.obsm["X_gexbert_umap"] = layout
    return layout


def _points(ax, layout):
    """(row of the layout, RGBA colour) of every point drawn on ``ax``."""
    off = ax.collections[0].get_offsets()
    where = {tuple(np.round(p, 6)): i for i, p in enumerate(layout)}
    rows = np.array([where[tuple(np.round(p, 6))] for p in np.asarray(off)])
    return rows, ax.collections[0].get_facecolors()


def test_umap_plot_several_colours(small_adata):
    """A list of colours gives one panel each in a new figure; ax= with several colours is refused."""
    layout = _with_layout(small_adata)
    axes = gb.pl.umap(small_adata, color=["cancer_type", "os_time"], show=False)
    assert isinstance(axes, list) and len(axes) == 2 and axes[0].figure is axes[1].figure
    assert [a.get_title() for a in axes] == ["cancer_type", "os_time"]
    assert axes[0].figure.get_suptitle() == f"GexBERT sample embeddings (n={small_adata.n_obs})"
    for a in axes:  # every sample drawn at its layout position in each panel
        rows, _ = _points(a, layout)
        assert sorted(rows) == list(range(small_adata.n_obs))
    rows, colours = _points(axes[0], layout)  # one colour per cancer type
    types = small_adata.obs["cancer_type"].to_numpy()[rows]
    for t in np.unique(types):
        assert len(np.unique(colours[types == t], axis=0)) == 1
    assert len(np.unique(colours, axis=0)) == len(np.unique(types))
    fig = gb.pl.umap(small_adata, color=["cancer_type", "os_time", "os_event"], ncols=2, title="t", return_fig=True)
    assert fig.get_suptitle() == "t" and {a.get_title() for a in fig.axes} >= {"cancer_type", "os_time", "os_event"}
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="ax= holds one panel, but color= names 2"):
        gb.pl.umap(small_adata, color=["cancer_type", "os_time"], ax=ax)
    assert gb.pl.umap(small_adata, color=["cancer_type"], ax=ax, show=False) is ax  # one colour: ax is fine
    plt.close("all")


@pytest.mark.parametrize("dtype", ["boolean", "bool"])
def test_umap_plot_boolean_obs_column_as_categories(small_adata, dtype):
    """os_event as the datasets return it (nullable boolean, with NA) or as numpy bool: two colours and grey NA."""
    layout = _with_layout(small_adata)
    n = small_adata.n_obs
    event = np.arange(n) % 3 == 0
    if dtype == "boolean":
        small_adata.obs["os_event"] = pd.array([None if i % 10 == 5 else e for i, e in enumerate(event)], "boolean")
    else:
        small_adata.obs["os_event"] = event
    before_obs, before_uns = small_adata.obs.copy(), set(small_adata.uns)
    ax = gb.pl.umap(small_adata, color="os_event", show=False)
    labels = ax.get_legend_handles_labels()[1]
    assert labels[:2] == ["False", "True"] and (("NA" in labels) == (dtype == "boolean"))
    rows, colours = _points(ax, layout)
    assert sorted(rows) == list(range(n))
    value = small_adata.obs["os_event"].astype("boolean")
    na = value.isna().to_numpy()[rows]
    true = value.fillna(False).to_numpy(bool)[rows]
    false = ~na & ~true
    for group in (true, false):
        assert len(np.unique(colours[group], axis=0)) == 1
    assert not np.allclose(colours[true][0], colours[false][0])
    if na.any():
        assert np.allclose(colours[na], matplotlib.colors.to_rgba("lightgray"))
    # the user's AnnData is unchanged: same column dtype and values, no colours stored for the stand-in column
    pd.testing.assert_frame_equal(small_adata.obs, before_obs)
    assert set(small_adata.uns) == before_uns
    plt.close("all")
