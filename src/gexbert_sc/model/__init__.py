"""The AnnData-facing GexBERT model class and its configuration."""

from ._config import PRESETS, GexBERTConfig, resolve_config
from ._gexbert import GexBERT

__all__ = ["GexBERT", "GexBERTConfig", "PRESETS", "resolve_config"]
