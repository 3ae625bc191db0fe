"""The two-phase pretraining loop (pure torch: no AnnData)."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..module import GexBERTModule, masked_mse, masked_sse
from ._sampling import sample_genes

logger = logging.getLogger("gexbert_sc")

RowFetcher = Callable[[np.ndarray], torch.Tensor]


@dataclass
class TrainPlan:
    """What one call of :func:`train_module` does.

    ``phase_epochs`` gives the maximum number of epochs of phase 1 (restore the input genes) and
    phase 2 (restore other genes); each phase stops early once its validation loss has not
    improved by ``min_delta`` for ``patience`` epochs, and the best weights of the phase are kept.
    An epoch is one pass over the training samples in random order, or, when that is fewer than
    ``min_steps_per_epoch`` batches, as many shuffled passes as make up that many batches (each
    visit of a sample draws other genes), so small cohorts still get enough optimisation steps.
    ``micro_batch`` splits each batch into passes of that many samples whose gradients are
    summed (the step is the same); None picks it with :func:`micro_batch_size`.
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
    min_steps_per_epoch: int = 25
    micro_batch: int | None = None


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


CHECKPOINT_FILE = "checkpoint.pt"


def dist_info() -> tuple[int, int]:
    """(rank, world size) of the torch.distributed process group, (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


#: On CPU, one forward/backward pass holds at most about this many values of the widest
#: activation (tokens x max(d_ff, 3 d_model)); bigger batches are split into micro-batches whose
#: gradients are accumulated. Keeping a pass's activations near the caches made the paper-preset
#: step 1.3-1.45x faster here (8.92 s in one pass vs 6.16 s in passes of 4 samples, one run of
#: benchmarks/throughput.py), while the small "cpu" preset (which fits) gained nothing from
#: splitting (micro-batches of 32/16/8/4: 0.11/0.11/0.13/0.17 s per step).
CPU_PASS_VALUES = 4_000_000


def tokens_per_pass(module: GexBERTModule, device: torch.device) -> int | None:
    """Tokens one pass should hold: on CPU, :data:`CPU_PASS_VALUES` over the widest activation
    (paper preset: 5,000 tokens; cpu preset: 20,833); None (no limit) elsewhere."""
    if device.type != "cpu":
        return None
    return max(1, CPU_PASS_VALUES // max(module.d_ff, 3 * module.d_model))


def micro_batch_size(module: GexBERTModule, tokens_per_sample: int, batch_size: int, device: torch.device) -> int:
    """Samples per forward/backward pass: the whole batch on GPU; on CPU as many as keep the widest
    activation under :data:`CPU_PASS_VALUES` values (at least 1)."""
    limit = tokens_per_pass(module, device)
    if limit is None:
        return int(batch_size)
    return int(max(1, min(batch_size, limit // max(1, tokens_per_sample))))


def train_step(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    gi: torch.Tensor,
    vals: torch.Tensor,
    gt: torch.Tensor,
    tgt: torch.Tensor,
    *,
    micro_batch: int,
    grad_clip: float = 0.0,
) -> float:
    """One optimisation step on a batch: restore ``tgt`` at genes ``gt`` from ``vals`` at ``gi``.

    The batch is run in passes of ``micro_batch`` samples; each pass's loss is its squared error
    divided by the batch's number of observed targets, so the summed gradient is that of
    :func:`masked_mse` over the whole batch. Under DDP only the last pass synchronises gradients.
    Returns the batch's masked MSE.
    """
    device = vals.device
    n_obs = (~torch.isnan(tgt)).sum().clamp(min=1)
    opt.zero_grad(set_to_none=True)
    total = torch.zeros((), device=device)
    for j in range(0, len(gi), micro_batch):
        sl = slice(j, j + micro_batch)
        last = j + micro_batch >= len(gi)
        with net.no_sync() if (hasattr(net, "no_sync") and not last) else nullcontext():
            with _autocast(device):
                pred = net(gi[sl], vals[sl], gt[sl])
            loss = masked_sse(pred, tgt[sl]) / n_obs
            loss.backward()
        total += loss.detach()
    if grad_clip:
        params = [p for g in opt.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    return float(total)


def make_optimizer(module: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, with the fused kernel where this torch has one for the parameters' device.

    The fused kernel updates each parameter in one pass instead of a dozen elementwise ops. On this
    CPU, ``opt.step()`` took 2.1-2.5 ms instead of 6.6-7.6 ms for the cpu preset, whose training step
    was 1.05-1.08x faster in two runs (``benchmarks/optimizer.py``). For the paper preset it took
    5.6 ms instead of 21 ms. It computes the same update up to rounding.
    """
    params = list(module.parameters())
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without the fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak by ``total_steps``."""
    warm = min(warmup_steps, max(1, total_steps // 10))
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, total_steps - warm)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` atomically: a temporary file in the same folder, fsync, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: no code runs)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, tampered or foreign file
        raise ValueError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "delete it to start over, or pass resume=False"
        ) from None


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
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    fingerprint: str = "",
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
    checkpoint_dir
        Write ``checkpoint.pt`` there every ``checkpoint_every`` epochs and at the end of each
        phase (atomically: temporary file, then rename).
    checkpoint_every
        Epochs between checkpoints.
    resume
        Continue from the checkpoint in ``checkpoint_dir`` if there is one: weights, optimiser,
        learning-rate schedule, early-stopping state, random generators and history are restored,
        so the result equals an uninterrupted run (on CPU).
    fingerprint
        A string identifying the data and model set-up; resuming from a checkpoint with another
        fingerprint is refused.

    Returns
    -------
    The history: one dict per epoch with ``phase``, ``epoch``, ``train_loss``, ``val_same``,
    ``val_other``, ``val_mean``, ``lr`` and ``seconds``.
    """
    history = [] if history is None else history
    rank, world = dist_info()
    net = module
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
        progress = progress and rank == 0
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    ckpt = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
    if resume and ckpt is None:
        raise ValueError("resume=True needs checkpoint_dir, the folder the interrupted run wrote checkpoints to")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_rows = np.asarray(train_rows)
    vs = ValidationSet.make(val_rows, n_genes, plan, seed + 1) if len(val_rows) else None
    opt = make_optimizer(module, plan.lr, plan.weight_decay)
    passes = max(1, math.ceil(plan.min_steps_per_epoch * plan.batch_size / max(len(train_rows), 1)))
    steps_per_epoch = max(1, math.ceil(passes * len(train_rows) / plan.batch_size))
    plan_key = json.dumps({**asdict(plan), "n_genes": n_genes, "seed": seed, "fingerprint": fingerprint},
                          sort_keys=True)

    # where we are: phase, epoch within it, early-stopping state
    st = {"phase": 1, "ep": 0, "best": math.inf, "bad": 0}
    best_state = None
    if resume and ckpt.exists():
        c = load_checkpoint(ckpt)
        if c.get("plan") != plan_key:
            raise ValueError(
                f"the checkpoint in {ckpt.parent} was written for other data or settings; "
                "use another checkpoint_dir or delete it to start over"
            )
        module.load_state_dict(c["module"])
        opt.load_state_dict(c["optimizer"])
        best_state = c["best_state"]
        st = dict(c["state"])
        rng.bit_generator.state = json.loads(c["numpy_rng"])
        gen.set_state(c["torch_rng"])
        history[:] = list(c["history"])
        logger.info("resumed from %s at epoch %d (phase %d)", ckpt, len(history), st["phase"])

    def write_checkpoint() -> None:
        if ckpt is None or rank != 0:
            return
        save_checkpoint(
            ckpt,
            {
                "plan": plan_key,
                "module": module.state_dict(),
                "optimizer": opt.state_dict(),
                "best_state": best_state,
                "state": st,
                "numpy_rng": json.dumps(rng.bit_generator.state),
                "torch_rng": gen.get_state(),
                "history": history,
            },
        )

    micro = plan.micro_batch or micro_batch_size(
        module, plan.n_input + 1 + plan.n_target, -(-plan.batch_size // world), device
    )
    total_epochs = sum(plan.phase_epochs)
    bar = tqdm(total=total_epochs, desc="GexBERT", unit="epoch", disable=not progress, leave=False)
    bar.update(min(len(history), total_epochs))
    try:
        while st["phase"] <= 2:
            phase = st["phase"]
            max_epochs = plan.phase_epochs[phase - 1]
            key = "val_same" if phase == 1 else "val_other"
            stop = st["ep"] >= max_epochs
            bar.set_description(f"GexBERT phase {phase}")
            while not stop:
                t0 = time.perf_counter()
                module.train()
                perm = np.concatenate([rng.permutation(train_rows) for _ in range(passes)])
                loss_sum, loss_n = 0.0, 0
                for i, start in enumerate(range(0, len(perm), plan.batch_size)):
                    rows = np.sort(perm[start : start + plan.batch_size])
                    # every process draws the genes of the whole batch (same generator), then keeps
                    # its share of the rows: together they compute the single-process step
                    gi, gt = sample_genes(len(rows), n_genes, plan.n_input, plan.n_target, phase, gen, device)
                    if world > 1:
                        mine = np.arange(rank, len(rows), world)
                        rows, gi, gt = rows[mine], gi[mine], gt[mine]
                    x = fetch(rows).to(device, non_blocking=True)
                    vals, tgt = x.gather(1, gi), x.gather(1, gt)
                    lr = plan.lr * _lr_factor(st["ep"] * steps_per_epoch + i, max_epochs * steps_per_epoch,
                                              plan.warmup_steps)
                    for group in opt.param_groups:
                        group["lr"] = lr
                    loss = train_step(net, opt, gi, vals, gt, tgt, micro_batch=micro, grad_clip=plan.grad_clip)
                    loss_sum += loss * len(rows)
                    loss_n += len(rows)
                if world > 1:
                    import torch.distributed as dist

                    tot = torch.tensor([loss_sum, float(loss_n)], dtype=torch.float64, device=device)
                    dist.all_reduce(tot)
                    loss_sum, loss_n = float(tot[0]), int(tot[1])
                rec = {"phase": phase, "epoch": len(history), "train_loss": loss_sum / max(loss_n, 1), "lr": lr}
                if vs is not None:
                    rec.update(evaluate(module, fetch, vs, micro if micro < plan.batch_size else max(plan.batch_size, 64), device))
                else:
                    rec.update({"val_same": math.nan, "val_other": math.nan, "val_mean": math.nan})
                rec["seconds"] = time.perf_counter() - t0
                history.append(rec)
                st["ep"] += 1
                bar.update(1)
                bar.set_postfix(train=f"{rec['train_loss']:.3f}", val=f"{rec[key]:.3f}")
                if vs is not None:
                    if rec[key] < st["best"] - plan.min_delta:
                        st["best"], st["bad"] = rec[key], 0
                        best_state = copy.deepcopy(module.state_dict())
                    else:
                        st["bad"] += 1
                        if st["bad"] >= plan.patience:
                            logger.info("phase %d stopped early after %d epochs (best %s %.4f)",
                                        phase, st["ep"], key, st["best"])
                            bar.update(max_epochs - st["ep"])
                            stop = True
                stop = stop or st["ep"] >= max_epochs
                if not stop and len(history) % checkpoint_every == 0:
                    write_checkpoint()
            # end of phase: keep its best weights, move on
            if best_state is not None:
                module.load_state_dict(best_state)
            best_state = None
            st = {"phase": phase + 1, "ep": 0, "best": math.inf, "bad": 0}
            write_checkpoint()
    finally:
        bar.close()
    return history
