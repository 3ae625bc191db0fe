"""Plotting, scanpy-style: every function takes ``ax=``, ``show=``, ``return_fig=`` and ``save=``."""

from ._history import history
from ._umap import umap

__all__ = ["history", "umap"]
