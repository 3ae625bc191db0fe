"""The AnnData-facing GexBERT model class, its configuration and gene alignment (public)."""

from ._alignment import GeneAlignment
from ._config import PRESETS, GexBERTConfig, resolve_config
from ._gexbert import GexBERT
from ._standardizer import Standardizer

__all__ = ["GeneAlignment", "GexBERT", "GexBERTConfig", "PRESETS", "Standardizer", "resolve_config"]
