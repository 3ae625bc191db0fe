"""Tools: functions that compute on an AnnData and write documented keys."""

from ._fit import fit
from ._impute import impute
from ._umap import umap

__all__ = ["fit", "impute", "umap"]
