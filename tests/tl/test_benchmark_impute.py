import anndata as ad
import numpy as np
import pandas as pd
import pytest

import gexbert_sc as gb
from tests.conftest import TINY


def test_benchmark_scores_every_method_on_the_same_masks(small_adata, tmp_path):
    gb.tl.benchmark_impute(small_adata, methods=["gexbert", "mean", "knn", "softimpute"],
                           mechanisms=["mcar", "gene_block"], rates=[0.1, 0.3], groupby="cancer_type",
                           fit_kwargs=dict(TINY, phase1_epochs=1, phase2_epochs=1), progress=False)
    df = small_adata.uns["gexbert_benchmark_impute"]["results"]
    assert len(df) == 4 * 2 * 2
    assert np.allclose(df.loc[df["method"] == "mean", "rmse_ratio"], 1.0)
    # same masks for all methods: the hidden counts agree within each scenario
    assert (df.groupby(["mechanism", "rate"], observed=True)["n_hidden"].nunique() == 1).all()
    knn = df[(df["method"] == "knn") & (df["mechanism"] == "mcar")]["rmse_ratio"]
    assert (knn < 1.0).all()
    assert df["coverage"].between(0.5, 1.0).all()
    small_adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert isinstance(back.uns["gexbert_benchmark_impute"]["results"], pd.DataFrame)
    assert list(small_adata.layers) == []  # the user's AnnData only gains the results


def test_benchmark_errors(small_adata):
    with pytest.raises(ValueError, match="needs|pass groupby="):
        gb.tl.benchmark_impute(small_adata, mechanisms=["gene_block"])
    with pytest.raises(ValueError, match="unknown method"):
        gb.tl.benchmark_impute(small_adata, methods=["magic"])
    with pytest.raises(ValueError, match="unknown mechanism"):
        gb.tl.benchmark_impute(small_adata, mechanisms=["mnar"])
