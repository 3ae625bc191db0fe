"""Random gene subsets for training and inference."""

from __future__ import annotations

import math

import torch


def phase_sizes(n_genes: int, n_input: int, n_target: int, phase: int) -> tuple[int, int]:
    """Input and target set sizes for a vocabulary of ``n_genes``.

    Phase 1 restores the input genes themselves. Phase 2 restores other genes, disjoint from the
    inputs; where the vocabulary is too small for both sets, the inputs are cut to at most half
    the vocabulary and the targets take what remains (up to ``n_target``).
    """
    n_in = min(n_input, n_genes)
    if phase == 1:
        return n_in, n_in
    if n_in + n_target > n_genes:
        n_in = min(n_in, max(1, n_genes // 2))
    return n_in, max(1, min(n_target, n_genes - n_in))


def draw_input_size(n_min: int | None, n_max: int, generator: torch.Generator) -> int:
    """A batch's number of input genes: ``n_max`` when ``n_min`` is None, else log-uniform over ``[n_min, n_max]`` (rounded)."""
    if n_min is None or n_min >= n_max:
        return int(n_max)
    u = float(torch.rand((), generator=generator))
    return int(min(n_max, max(n_min, round(math.exp(math.log(n_min) + u * (math.log(n_max) - math.log(n_min)))))))


def sample_genes(
    n_rows: int,
    n_genes: int,
    n_input: int,
    n_target: int,
    phase: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, a random input set and a target set of vocabulary indices.

    Returns long tensors ``(n_rows, n_in)`` and ``(n_rows, n_tgt)`` (sizes from :func:`phase_sizes`).
    In phase 1 the targets are the inputs; in phase 2 they are disjoint from them.
    """
    n_in, n_tgt = phase_sizes(n_genes, n_input, n_target, phase)
    keys = torch.rand(n_rows, n_genes, generator=generator)
    k = n_in if phase == 1 else n_in + n_tgt
    idx = keys.topk(k, dim=1, sorted=False).indices.to(device)
    inputs = idx[:, :n_in]
    targets = inputs if phase == 1 else idx[:, n_in:]
    return inputs, targets


def sample_observed_genes(
    observed: torch.Tensor,
    n_input: int,
    n_target: int,
    phase: int,
    generator: torch.Generator | None = None,
    keys: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, input genes drawn among its observed genes, and a disjoint target set, on ``observed``'s device.

    Parameters
    ----------
    observed
        Boolean ``(B, G)``: True where a row's value is observed.
    n_input, n_target, phase
        Set sizes and phase, as in :func:`sample_genes` (sizes from :func:`phase_sizes`).
    generator
        Draws the random keys (a generator on ``observed``'s device); unused when ``keys`` is given.
    keys
        Uniform random keys ``(B, G)`` in ``[0, 1)`` to rank the genes by, on ``observed``'s device
        (under DDP every process draws the whole batch's keys and passes its own rows').

    Returns
    -------
    inputs, targets
        Long ``(B, n_in)`` and ``(B, n_tgt)``. Every gene is ranked by its key, missing genes below all
        observed ones, and the top ``n_in`` are the inputs: a uniform random subset of the observed
        genes where a row has at least ``n_in`` of them (then no attention mask is needed), all its
        observed genes and random missing ones otherwise. In phase 1 the targets are the inputs; in
        phase 2 they are the next ``n_tgt`` genes of the ranking (observed ones first, disjoint from the
        inputs); the loss counts observed targets only.
    """
    B, G = observed.shape
    n_in, n_tgt = phase_sizes(G, n_input, n_target, phase)
    if keys is None:
        keys = torch.rand(B, G, generator=generator, device=observed.device)
    keys = keys - (~observed).to(keys.dtype)  # missing genes rank in [-1, 0), below every observed one
    if phase == 1:
        inputs = keys.topk(n_in, dim=1, sorted=False).indices
        return inputs, inputs
    idx = keys.topk(n_in + n_tgt, dim=1, sorted=True).indices
    return idx[:, :n_in], idx[:, n_in:]


def observed_first_subsets(
    observed: torch.Tensor, n_input: int, n_repeats: int, generator: torch.Generator
) -> torch.Tensor:
    """Seeded random input sets that favour observed genes, for inference.

    ``observed`` is a boolean ``(B, G)`` mask. Each of ``n_repeats`` draws takes, per row, a
    random ``min(n_input, G)`` genes among the observed ones (missing genes only fill up rows with
    fewer observed genes than ``n_input``; they are masked out of attention anyway). Successive
    draws walk through one random order of the observed genes, so together they cover as many
    observed genes as ``n_repeats * n_input`` allows. Returns long ``(n_repeats, B, n_in)``.
    """
    B, G = observed.shape
    n_in = min(n_input, G)
    keys = torch.rand(B, G, generator=generator) + (~observed.cpu()).float() * 2.0
    order = keys.argsort(dim=1)
    n_obs = observed.sum(1).clamp(min=1).cpu()
    out = []
    for r in range(n_repeats):
        pos = (torch.arange(n_in) + r * n_in)[None, :] % torch.maximum(n_obs, torch.tensor(n_in))[:, None]
        out.append(order.gather(1, pos))
    return torch.stack(out)
