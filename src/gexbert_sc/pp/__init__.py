"""Preprocessing: bring an AnnData to the log scale GexBERT expects."""

from ._log_normalize import log_normalize

__all__ = ["log_normalize"]
