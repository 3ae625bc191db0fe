"""The fixed validation set of a run and the validation losses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from gexbert_sc.module import GexBERTModule, masked_mse

from ._sampling import sample_genes
from ._seeding import derive_seed
from ._step import autocast

RowFetcher = Callable[[np.ndarray], torch.Tensor]


@dataclass
class ValidationSet:
    """Fixed rows and gene subsets (per phase) on which the validation losses are computed."""

    rows: np.ndarray
    inputs: dict[int, torch.Tensor] = field(default_factory=dict)
    targets: dict[int, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def make(cls, rows: np.ndarray, n_genes: int, n_input: int, n_target: int, random_state: int) -> ValidationSet:
        """The validation set of a run seeded with ``random_state`` (its ``"validation"`` stream)."""
        g = torch.Generator().manual_seed(derive_seed(random_state, "validation"))
        vs = cls(rows=np.asarray(rows))
        for phase in (1, 2):
            vs.inputs[phase], vs.targets[phase] = sample_genes(len(rows), n_genes, n_input, n_target, phase, g)
        return vs


@torch.no_grad()
def evaluate(
    module: GexBERTModule, fetch: RowFetcher, vs: ValidationSet, batch_size: int, device: torch.device
) -> dict[str, float]:
    """Validation MSE of restoring the input genes (``val_same``) and other genes (``val_other``), and the MSE of predicting the training mean (0 in standardised units) for the other genes (``val_mean``)."""
    was_training = module.training
    module.eval()
    sums = {1: 0.0, 2: 0.0, "mean": 0.0}
    counts = {1: 0, 2: 0}
    for start in range(0, len(vs.rows), batch_size):
        sl = slice(start, start + batch_size)
        x = fetch(vs.rows[sl]).to(device)
        for phase in (1, 2):
            gi = vs.inputs[phase][sl].to(device)
            gt = vs.targets[phase][sl].to(device)
            tgt = x.gather(1, gt)
            with autocast(device):
                pred = module(gi, x.gather(1, gi), gt, torch.as_tensor(vs.rows[sl], device=device))
            n = int((~torch.isnan(tgt)).sum())
            sums[phase] += float(masked_mse(pred, tgt)) * n
            counts[phase] += n
            if phase == 2:
                sums["mean"] += float(torch.nan_to_num(tgt).pow(2).sum())
    module.train(was_training)
    c1, c2 = max(counts[1], 1), max(counts[2], 1)
    return {"val_same": sums[1] / c1, "val_other": sums[2] / c2, "val_mean": sums["mean"] / c2}
