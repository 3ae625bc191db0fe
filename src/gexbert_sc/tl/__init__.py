"""Tools: functions that compute on an AnnData and write documented keys.

:func:`score_imputation` scores imputed arrays against the hidden truth, as :func:`benchmark_impute` does.
"""

from ._anchor_genes import anchor_genes
from ._attention import attention
from ._benchmark_impute import benchmark_impute
from ._classify import classify
from ._fit import fit
from ._gene_umap import gene_umap
from ._impute import impute
from ._restore import restore
from ._score_imputation import score_imputation
from ._survival import survival
from ._umap import umap

__all__ = ["anchor_genes", "attention", "benchmark_impute", "classify", "fit", "gene_umap", "impute", "restore", "score_imputation", "survival", "umap"]
