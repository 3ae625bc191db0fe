"""Training batches: rows read on the host (pinned on CUDA, one batch ahead), genes sampled on the device."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ._sampling import phase_sizes, sample_observed_genes


@dataclass
class HostBatch:
    """One batch as read on the host, rows reordered so that those with enough observed genes come first.

    ``x``: float ``(b, G)`` standardised values, NaN where missing (pinned when the device is CUDA);
    ``rows``: the data rows of ``x``'s rows, long ``(b,)``; ``pos``: each row's position in the whole
    (sorted) batch, for drawing its random keys (None when it is ``arange(b)``); ``n_dense``: rows with at
    least ``n_in`` observed genes (they need no attention mask); ``observed``: ``~isnan(x)`` when the
    device is the CPU (reused there), else None; ``n_batch``: rows of the whole batch (all processes).
    """

    x: torch.Tensor
    rows: torch.Tensor
    pos: torch.Tensor | None
    n_dense: int
    n_in: int
    n_batch: int
    observed: torch.Tensor | None


@dataclass
class DeviceBatch:
    """A batch on the device, ready for :func:`~gexbert_sc.train.run_step`."""

    gi: torch.Tensor
    vals: torch.Tensor
    gt: torch.Tensor
    tgt: torch.Tensor
    rows: torch.Tensor
    n_dense: int


def read_batch(
    fetch: Callable[[np.ndarray], torch.Tensor],
    rows: np.ndarray,
    n_in: int,
    *,
    rank: int = 0,
    world: int = 1,
    pin: bool = False,
    keep_observed: bool = True,
) -> HostBatch:
    """Read this process's share of a batch's ``rows`` (every ``world``-th from ``rank``) and order it.

    Rows with at least ``n_in`` observed genes come first (stable), so that a step can run them without
    an attention mask and the others (if any) in passes of their own. With ``pin`` the tensors are copied
    to page-locked memory, so that their host-to-device copies are asynchronous.
    """
    pos = np.arange(rank, len(rows), world) if world > 1 else np.arange(len(rows))
    x = fetch(rows[pos])
    observed = ~torch.isnan(x)
    short = (observed.sum(1) < n_in).numpy()
    n_short = int(short.sum())
    reorder = bool(short[: len(pos) - n_short].any())  # some short row comes before a dense one
    if reorder:
        order = np.argsort(short, kind="stable")
        pos, x, observed = pos[order], x[torch.from_numpy(order)], observed[torch.from_numpy(order)]
    identity = world == 1 and not reorder
    rows_t = torch.as_tensor(rows[pos], dtype=torch.long)
    pos_t = None if identity else torch.as_tensor(pos, dtype=torch.long)
    if pin:
        x, rows_t = x.pin_memory(), rows_t.pin_memory()
        pos_t = None if pos_t is None else pos_t.pin_memory()
    return HostBatch(x=x, rows=rows_t, pos=pos_t, n_dense=len(pos) - n_short, n_in=n_in, n_batch=len(rows),
                     observed=observed if keep_observed else None)


def to_device(
    hb: HostBatch, phase: int, n_target: int, generator: torch.Generator, device: torch.device
) -> DeviceBatch:
    """Copy ``hb`` to ``device`` (asynchronously where pinned) and sample its genes there.

    Random keys are drawn for the whole batch with ``generator`` (a generator on ``device``), so that
    every DDP process draws the same ones and each uses its rows'; the genes are then picked by
    :func:`~gexbert_sc.train.sample_observed_genes`.
    """
    x = hb.x.to(device, non_blocking=True)
    observed = hb.observed if hb.observed is not None and hb.observed.device == x.device else ~torch.isnan(x)
    keys = torch.rand(hb.n_batch, x.shape[1], generator=generator, device=device)
    if hb.pos is not None:
        keys = keys[hb.pos.to(device, non_blocking=True)]
    gi, gt = sample_observed_genes(observed, hb.n_in, n_target, phase, keys=keys)
    return DeviceBatch(gi=gi, vals=x.gather(1, gi), gt=gt, tgt=x.gather(1, gt),
                       rows=hb.rows.to(device, non_blocking=True), n_dense=hb.n_dense)


def effective_input_size(n_genes: int, n_in: int, n_target: int, phase: int) -> int:
    """The input size a batch really gets for a drawn ``n_in`` (small vocabularies cut it, :func:`phase_sizes`)."""
    return phase_sizes(n_genes, n_in, n_target, phase)[0]


def host_batches(
    read: Callable[[np.ndarray, int], HostBatch], specs: list[tuple[np.ndarray, int]], prefetch: bool
) -> Iterator[HostBatch]:
    """``read(rows, n_in)`` for each spec in order.

    With ``prefetch`` the next batch is read in a background thread while the caller works on the current one
    (one batch ahead, so at most two are held).
    """
    if not prefetch or len(specs) < 2:
        for rows, n_in in specs:
            yield read(rows, n_in)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gexbert-prefetch") as pool:
        ahead = pool.submit(read, *specs[0])
        for i in range(len(specs)):
            hb = ahead.result()
            if i + 1 < len(specs):
                ahead = pool.submit(read, *specs[i + 1])
            yield hb
