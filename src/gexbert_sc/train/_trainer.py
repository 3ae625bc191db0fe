"""The two-phase pretraining loop (pure torch: no AnnData)."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..module import GexBERTModule, masked_mse
from ._sampling import sample_genes

logger = logging.getLogger("gexbert_sc")

RowFetcher = Callable[[np.ndarray], torch.Tensor]


@dataclass
class TrainPlan:
    """What one call of :func:`train_module` does.

    ``phase_epochs`` gives the maximum number of epochs of phase 1 (restore the input genes) and
    phase 2 (restore other genes); each phase stops early once its validation loss has not
    improved by ``min_delta`` for ``patience`` epochs, and the best weights of the phase are kept.
    """

    n_input: int
    n_target: int
    batch_size: int
    lr: float
    weight_decay: float
    phase_epochs: tuple[int, int]
    patience: int
    min_delta: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float = 1.0


@dataclass
class ValidationSet:
    """Fixed rows and gene subsets on which the validation losses are computed."""

    rows: np.ndarray
    inputs: dict[int, torch.Tensor] = field(default_factory=dict)
    targets: dict[int, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def make(cls, rows: np.ndarray, n_genes: int, plan: TrainPlan, seed: int) -> ValidationSet:
        g = torch.Generator().manual_seed(seed)
        vs = cls(rows=np.asarray(rows))
        for phase in (1, 2):
            vs.inputs[phase], vs.targets[phase] = sample_genes(
                len(rows), n_genes, plan.n_input, plan.n_target, phase, g
            )
        return vs


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def evaluate(
    module: GexBERTModule, fetch: RowFetcher, vs: ValidationSet, batch_size: int, device: torch.device
) -> dict[str, float]:
    """Validation MSE of restoring the input genes (``val_same``) and other genes (``val_other``),
    and the MSE of predicting the training mean (0 in standardised units) for the other genes
    (``val_mean``)."""
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
            vals = x.gather(1, gi)
            tgt = x.gather(1, gt)
            with _autocast(device):
                pred = module(gi, vals, gt)
            obs = ~torch.isnan(tgt)
            n = int(obs.sum())
            sums[phase] += float(masked_mse(pred, tgt)) * n
            counts[phase] += n
            if phase == 2:
                sums["mean"] += float(torch.nan_to_num(tgt).pow(2).sum())
    module.train(was_training)
    c1, c2 = max(counts[1], 1), max(counts[2], 1)
    return {"val_same": sums[1] / c1, "val_other": sums[2] / c2, "val_mean": sums["mean"] / c2}


def train_module(
    module: GexBERTModule,
    fetch: RowFetcher,
    n_genes: int,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    plan: TrainPlan,
    *,
    device: torch.device,
    seed: int = 0,
    progress: bool = True,
    history: list[dict] | None = None,
) -> list[dict]:
    """Pretrain ``module`` in the paper's two phases with AdamW.

    Parameters
    ----------
    module
        The network, already on ``device``.
    fetch
        ``fetch(rows)`` returns the standardised values of those rows, float ``(len(rows), n_genes)``,
        NaN where missing.
    n_genes
        Vocabulary size.
    train_rows, val_rows
        Row indices for training and for validation (validation may be empty: then each phase runs
        its full number of epochs and no early stopping happens).
    plan
        Sizes, optimiser settings and epoch budget.
    device
        Where to compute.
    seed
        Seeds the shuffling and gene sampling.
    progress
        Show a tqdm progress bar.
    history
        A list to append one record per epoch to (a new one if None).

    Returns
    -------
    The history: one dict per epoch with ``phase``, ``epoch``, ``train_loss``, ``val_same``,
    ``val_other``, ``val_mean``, ``lr`` and ``seconds``.
    """
    history = [] if history is None else history
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_rows = np.asarray(train_rows)
    vs = ValidationSet.make(val_rows, n_genes, plan, seed + 1) if len(val_rows) else None
    opt = torch.optim.AdamW(module.parameters(), lr=plan.lr, weight_decay=plan.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_rows) / plan.batch_size))
    total_epochs = sum(plan.phase_epochs)
    bar = tqdm(total=total_epochs, desc="GexBERT", unit="epoch", disable=not progress, leave=False)
    epoch_global = len(history)
    try:
        for phase, max_epochs in zip((1, 2), plan.phase_epochs):
            if max_epochs <= 0:
                continue
            total_steps = max_epochs * steps_per_epoch
            warm = min(plan.warmup_steps, max(1, total_steps // 10))

            def lr_at(step: int, total_steps=total_steps, warm=warm) -> float:
                if step < warm:
                    return (step + 1) / warm
                t = (step - warm) / max(1, total_steps - warm)
                return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
            key = "val_same" if phase == 1 else "val_other"
            best, best_state, bad = math.inf, None, 0
            bar.set_description(f"GexBERT phase {phase}")
            for ep in range(max_epochs):
                t0 = time.perf_counter()
                module.train()
                perm = rng.permutation(train_rows)
                loss_sum, loss_n = 0.0, 0
                for start in range(0, len(perm), plan.batch_size):
                    rows = np.sort(perm[start : start + plan.batch_size])
                    x = fetch(rows).to(device, non_blocking=True)
                    gi, gt = sample_genes(len(rows), n_genes, plan.n_input, plan.n_target, phase, gen, device)
                    vals, tgt = x.gather(1, gi), x.gather(1, gt)
                    with _autocast(device):
                        pred = module(gi, vals, gt)
                    loss = masked_mse(pred, tgt)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if plan.grad_clip:
                        torch.nn.utils.clip_grad_norm_(module.parameters(), plan.grad_clip)
                    opt.step()
                    sched.step()
                    loss_sum += float(loss.detach()) * len(rows)
                    loss_n += len(rows)
                rec = {
                    "phase": phase,
                    "epoch": epoch_global,
                    "train_loss": loss_sum / max(loss_n, 1),
                    "lr": opt.param_groups[0]["lr"],
                }
                if vs is not None:
                    rec.update(evaluate(module, fetch, vs, max(plan.batch_size, 64), device))
                else:
                    rec.update({"val_same": math.nan, "val_other": math.nan, "val_mean": math.nan})
                rec["seconds"] = time.perf_counter() - t0
                history.append(rec)
                epoch_global += 1
                bar.update(1)
                bar.set_postfix(train=f"{rec['train_loss']:.3f}", val=f"{rec[key]:.3f}")
                if vs is None:
                    continue
                if rec[key] < best - plan.min_delta:
                    best, bad = rec[key], 0
                    best_state = copy.deepcopy(module.state_dict())
                else:
                    bad += 1
                    if bad >= plan.patience:
                        logger.info("phase %d stopped early after %d epochs (best %s %.4f)", phase, ep + 1, key, best)
                        bar.update(max_epochs - ep - 1)
                        break
            if best_state is not None:
                module.load_state_dict(best_state)
    finally:
        bar.close()
    return history
