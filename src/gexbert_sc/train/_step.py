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


def step_passes(n_rows: int, micro_batch: int, n_dense: int | None = None) -> list[tuple[slice, bool | None]]:
    """The passes of a step: row slices of at most ``micro_batch`` rows, each with the ``key_mask`` it runs with.

    With ``n_dense`` (rows ``[0, n_dense)`` have no missing input, the rest may have some), the dense rows
    run without an attention mask (``False``) and the others with one (``True``), never mixed in one pass;
    without it every pass looks for missing inputs itself (``None``).
    """
    if n_dense is None:
        return [(slice(j, j + micro_batch), None) for j in range(0, n_rows, micro_batch)]
    dense = [(slice(j, min(j + micro_batch, n_dense)), False) for j in range(0, n_dense, micro_batch)]
    return dense + [(slice(j, min(j + micro_batch, n_rows)), True) for j in range(n_dense, n_rows, micro_batch)]


def run_step(
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
    n_dense: int | None = None,
) -> torch.Tensor:
    """:func:`train_step`, returning the batch's masked MSE as a 0-d tensor on the device (no device-to-host synchronisation)."""
    device = vals.device
    n_obs = (~torch.isnan(tgt)).sum().clamp(min=1)
    opt.zero_grad(set_to_none=True)
    total = torch.zeros((), device=device)
    passes = step_passes(len(gi), micro_batch, n_dense)
    for i, (sl, key_mask) in enumerate(passes):
        last = i == len(passes) - 1
        extra = () if rows is None else (rows[sl],)
        kw = {} if key_mask is None else {"key_mask": key_mask}
        with net.no_sync() if (hasattr(net, "no_sync") and not last) else nullcontext():
            with autocast(device):
                pred = net(gi[sl], vals[sl], gt[sl], *extra, **kw)
            loss = masked_sse(pred, tgt[sl]) / n_obs
            loss.backward()
        total += loss.detach()
    if grad_clip:
        params = [p for g in opt.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    return total


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
    n_dense: int | None = None,
) -> float:
    """One optimisation step on a batch: restore ``tgt`` at genes ``gt`` from ``vals`` at ``gi``.

    The batch is run in passes of ``micro_batch`` samples; each pass's loss is its squared error divided by
    the batch's number of observed targets, so the summed gradient is that of
    :func:`~gexbert_sc.module.masked_mse` over the whole batch. Under DDP only the last pass synchronises
    gradients. ``rows`` (the samples' data rows) go to the network, whose linear path leaves each one out of
    its factors. ``n_dense``: the first ``n_dense`` rows have no missing input genes and run without an
    attention mask, the others in passes of their own with one (see :func:`step_passes`). Returns the
    batch's masked MSE.
    """
    return float(run_step(net, opt, gi, vals, gt, tgt, micro_batch=micro_batch, grad_clip=grad_clip, rows=rows,
                          n_dense=n_dense))


def make_optimizer(module: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, with the fused kernel where this torch has one for the parameters' device (the same update up to rounding, fewer passes over memory; ``benchmarks/optimizer.py`` measures it)."""
    params = list(module.parameters())
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without the fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
