"""gexbert_sc: GexBERT, a transformer autoencoder of bulk gene expression, as a scverse plugin."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gexbert_sc")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from . import datasets, pl, pp, tl  # noqa: E402
from .model import GexBERT, GexBERTConfig  # noqa: E402

__all__ = ["GexBERT", "GexBERTConfig", "datasets", "pl", "pp", "tl", "__version__"]
