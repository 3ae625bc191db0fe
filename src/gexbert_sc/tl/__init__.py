"""Tools: functions that compute on an AnnData and write documented keys."""

from ._fit import fit
from ._umap import umap

__all__ = ["fit", "umap"]
