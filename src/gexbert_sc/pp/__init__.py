"""Preprocessing: bring an AnnData to the log scale GexBERT expects, or hide values to benchmark imputation."""

from ._log_normalize import log_normalize
from ._simulate_missing import simulate_missing

__all__ = ["log_normalize", "simulate_missing"]
