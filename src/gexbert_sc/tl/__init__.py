"""Tools: functions that compute on an AnnData and write documented keys."""

from ._anchor_genes import anchor_genes
from ._fit import fit
from ._impute import impute
from ._umap import umap

__all__ = ["anchor_genes", "fit", "impute", "umap"]
