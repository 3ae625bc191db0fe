"""Training: gene sampling, the two pretraining phases, validation, early stopping, checkpoints, DDP.

Public for developers who build on the network; users train through :meth:`gexbert_sc.GexBERT.train`.
Resuming from a checkpoint that is damaged or was written for other data or settings raises
:class:`CheckpointError` (a :class:`ValueError`).
"""

from ._checkpoint import CHECKPOINT_FILE, CheckpointError, load_checkpoint, save_checkpoint
from ._distributed import dist_info, init_distributed, resolve_device
from ._sampling import draw_input_size, observed_first_subsets, phase_sizes, sample_genes, sample_observed_genes
from ._schedule import EarlyStopping, lr_factor, scaffold_factor
from ._seeding import check_random_state, derive_seed
from ._step import autocast, make_optimizer, micro_batch_size, run_step, step_passes, tokens_per_pass, train_step
from ._trainer import Trainer, TrainPlan
from ._validation import ValidationSet, evaluate

__all__ = [
    "CHECKPOINT_FILE",
    "CheckpointError",
    "EarlyStopping",
    "TrainPlan",
    "Trainer",
    "ValidationSet",
    "autocast",
    "check_random_state",
    "derive_seed",
    "dist_info",
    "draw_input_size",
    "evaluate",
    "init_distributed",
    "load_checkpoint",
    "lr_factor",
    "scaffold_factor",
    "make_optimizer",
    "micro_batch_size",
    "observed_first_subsets",
    "phase_sizes",
    "resolve_device",
    "run_step",
    "sample_genes",
    "sample_observed_genes",
    "save_checkpoint",
    "step_passes",
    "tokens_per_pass",
    "train_step",
]
