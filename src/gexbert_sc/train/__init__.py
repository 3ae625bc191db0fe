"""Training loop: gene sampling, the two pretraining phases, validation and early stopping."""

from ._sampling import observed_first_subsets, phase_sizes, sample_genes
from ._trainer import (
    TrainPlan,
    ValidationSet,
    evaluate,
    load_checkpoint,
    make_optimizer,
    micro_batch_size,
    save_checkpoint,
    train_module,
    tokens_per_pass,
    train_step,
)

__all__ = [
    "TrainPlan",
    "ValidationSet",
    "evaluate",
    "train_module",
    "train_step",
    "make_optimizer",
    "micro_batch_size",
    "tokens_per_pass",
    "save_checkpoint",
    "load_checkpoint",
    "sample_genes",
    "phase_sizes",
    "observed_first_subsets",
]
