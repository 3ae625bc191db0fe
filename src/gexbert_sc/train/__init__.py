"""Training loop: gene sampling, the two pretraining phases, validation and early stopping."""

from ._sampling import observed_first_subsets, phase_sizes, sample_genes
from ._trainer import TrainPlan, ValidationSet, evaluate, load_checkpoint, save_checkpoint, train_module

__all__ = [
    "TrainPlan",
    "ValidationSet",
    "evaluate",
    "train_module",
    "save_checkpoint",
    "load_checkpoint",
    "sample_genes",
    "phase_sizes",
    "observed_first_subsets",
]
