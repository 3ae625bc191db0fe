"""Plotting, scanpy-style: every function takes ``ax=`` (multi-panel ones ``fig=``), ``show=``, ``return_fig=`` and ``save=``."""

from ._attention_umap import attention_umap
from ._attention_vs_expression import attention_vs_expression
from ._benchmark_impute import benchmark_impute
from ._classification import classification
from ._history import history
from ._imputation import imputation
from ._survival import survival
from ._umap import umap

__all__ = ["attention_umap", "attention_vs_expression", "benchmark_impute", "classification", "history", "imputation", "survival", "umap"]
