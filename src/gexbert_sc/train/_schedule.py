"""The learning-rate schedule and early stopping of one training phase."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up over ``min(warmup_steps, total_steps // 10)`` steps, then cosine decay to 10% of the peak at ``total_steps``."""
    warm = min(warmup_steps, max(1, total_steps // 10))
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, total_steps - warm)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def scaffold_factor(epoch: int, scaffold_epochs: int) -> float:
    """Weight of the scaffold readout in training epoch ``epoch`` (0-based, counted over both phases): 1 for the first ``scaffold_epochs`` epochs, then falling linearly to 0 at epoch ``4 * scaffold_epochs``; 0 without a scaffold."""
    if scaffold_epochs <= 0:
        return 0.0
    return min(1.0, max(0.0, (4 * scaffold_epochs - epoch) / (3 * scaffold_epochs)))


@dataclass
class EarlyStopping:
    """Tracks one phase's validation loss: the best value, its weights, and epochs without improvement."""

    patience: int
    min_delta: float = 1e-4
    best: float = math.inf
    bad: int = 0
    best_state: dict | None = field(default=None, repr=False)

    def update(self, value: float, module: torch.nn.Module) -> bool:
        """Record an epoch's validation loss; True when the phase should stop."""
        if value < self.best - self.min_delta:
            self.best, self.bad = value, 0
            self.best_state = copy.deepcopy(module.state_dict())
            return False
        self.bad += 1
        return self.bad >= self.patience

    def state(self) -> dict:
        """The counters, for a checkpoint (the best weights are saved beside them)."""
        return {"best": self.best, "bad": self.bad}
