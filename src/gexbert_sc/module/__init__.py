"""Pure-torch building blocks of GexBERT. Nothing here knows about AnnData."""

from ._gexbert import GexBERTModule, masked_mse, masked_sse
from ._layers import ACTIVATIONS, DecoderLayer, EncoderLayer, FeedForward
from ._linear import LINEAR_PATHS, GaussianLinearPath
from ._tokens import VALUE_ENCODINGS, ValueTokenizer

__all__ = [
    "GexBERTModule",
    "masked_mse",
    "masked_sse",
    "EncoderLayer",
    "DecoderLayer",
    "FeedForward",
    "ValueTokenizer",
    "GaussianLinearPath",
    "LINEAR_PATHS",
    "ACTIVATIONS",
    "VALUE_ENCODINGS",
]
