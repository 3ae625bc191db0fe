"""One optimisation step: micro-batching, mixed precision, the optimiser."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from gexbert_sc.module import GexBERTModule, masked_sse

#: On CPU, one forward/backward pass holds at most about this many values of the widest activation
#: (tokens x max(d_ff, 3 d_model)); bigger batches are split into micro-batches whose gradients are
#: accumulated, which keeps a pass's activations near the caches (measurements in
#: benchmarks/results/throughput.md).
CPU_PASS_VALUES = 4_000_000


def autocast(device: torch.device):
    """bf16 autocast on CUDA, nothing elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def tokens_per_pass(module: GexBERTModule, device: torch.device) -> int | None:
    """Tokens one pass should hold: on CPU, :data:`CPU_PASS_VALUES` over the widest activation; None (no limit) elsewhere."""
    if device.type != "cpu":
        return None
    return max(1, CPU_PASS_VALUES // max(module.d_ff, 3 * module.d_model))


def micro_batch_size(module: GexBERTModule, tokens_per_sample: int, batch_size: int, device: torch.device) -> int:
    """Samples per forward/backward pass: the whole batch on GPU; on CPU as many as keep the widest activation under :data:`CPU_PASS_VALUES` values (at least 1)."""
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
    rows: torch.Tensor | None = None,
) -> float:
    """One optimisation step on a batch: restore ``tgt`` at genes ``gt`` from ``vals`` at ``gi``.

    The batch is run in passes of ``micro_batch`` samples; each pass's loss is its squared error divided by
    the batch's number of observed targets, so the summed gradient is that of
    :func:`~gexbert_sc.module.masked_mse` over the whole batch. Under DDP only the last pass synchronises
    gradients. ``rows`` (the samples' data rows) go to the network, whose linear path leaves each one out of
    its factors. Returns the batch's masked MSE.
    """
    device = vals.device
    n_obs = (~torch.isnan(tgt)).sum().clamp(min=1)
    opt.zero_grad(set_to_none=True)
    total = torch.zeros((), device=device)
    for j in range(0, len(gi), micro_batch):
        sl = slice(j, j + micro_batch)
        last = j + micro_batch >= len(gi)
        with net.no_sync() if (hasattr(net, "no_sync") and not last) else nullcontext():
            with autocast(device):
                pred = net(gi[sl], vals[sl], gt[sl]) if rows is None else net(gi[sl], vals[sl], gt[sl], rows[sl])
            loss = masked_sse(pred, tgt[sl]) / n_obs
            loss.backward()
        total += loss.detach()
    if grad_clip:
        params = [p for g in opt.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    return float(total)


def make_optimizer(module: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, with the fused kernel where this torch has one for the parameters' device (the same update up to rounding, fewer passes over memory; ``benchmarks/optimizer.py`` measures it)."""
    params = list(module.parameters())
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without the fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
