"""Batched, chunked inference with a trained network: embeddings, restored genes, filled missing values."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from gexbert_sc.module import GexBERTModule
from gexbert_sc.train import autocast, micro_batch_size, observed_first_subsets, tokens_per_pass

from ._reader import RowReader
from ._standardizer import BoundStandardizer

#: At most this many input subsets by default (the gain of more is small and the cost linear:
#: benchmarks/results/throughput.md).
MAX_DEFAULT_REPEATS = 4
#: Rows per pass of the linear path at inference hold at most about this many factor values (rank x genes).
CPU_LINEAR_VALUES = 16_000_000


def default_repeats(n_genes: int, n_input: int) -> int:
    """Enough input subsets to cover the vocabulary, at most :data:`MAX_DEFAULT_REPEATS`."""
    return int(min(MAX_DEFAULT_REPEATS, max(1, math.ceil(n_genes / n_input))))


@dataclass
class EncodedBatch:
    """One batch of rows: their summary embedding and, when asked for, restored genes (standardised)."""

    rows: np.ndarray
    embedding: torch.Tensor
    restored: torch.Tensor | None
    #: With a linear path that has a gap penalty and rows with gap entries: the gap entries ``(B, n_genes)`` and
    #: their latent ``(B, rank)`` (see :meth:`~gexbert_sc.module.GaussianLinearPath.gap_latent`).
    gaps: tuple[torch.Tensor, torch.Tensor] | None = None


def encode_rows(module: GexBERTModule, genes: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``module.encode_summary`` in passes of cache-sized row chunks on CPU; float32 ``(B, d_model)``.

    The linear path's latent is not computed here: :func:`encode_batches` computes it once from every
    observed gene, not from each input subset.
    """
    step = micro_batch_size(module, genes.shape[1] + 1, len(genes), genes.device)
    return torch.cat([module.encode_summary(genes[i : i + step], values[i : i + step]).float()
                      for i in range(0, len(genes), step)])


def linear_latent(module: GexBERTModule, z: torch.Tensor) -> torch.Tensor:
    """The linear path's latent from every gene of the standardised rows ``z`` (``(B, G)``, NaN = missing), in row chunks that bound memory."""
    G = z.shape[1]
    rank = module.linear.rank
    step = max(1, CPU_LINEAR_VALUES // max(1, rank * G))
    genes = torch.arange(G, device=z.device)
    return torch.cat([module.encode_linear(genes.expand(len(z[i : i + step]), -1), z[i : i + step])
                      for i in range(0, len(z), step)])


def decode_batch(module: GexBERTModule, batch: EncodedBatch, genes: torch.Tensor) -> torch.Tensor:
    """:func:`decode` of ``batch``; at its gap entries the linear estimate is the one at the gap penalty."""
    out = decode(module, batch.embedding, genes)
    if batch.gaps is not None:
        gaps, latent = batch.gaps
        g = genes.expand(len(out), -1)
        shift = module.linear.estimate(latent - batch.embedding[:, module.d_model :].float(), g)
        out = torch.where(gaps.gather(1, g), out + shift, out)
    return out


def decode(module: GexBERTModule, emb: torch.Tensor, genes: torch.Tensor) -> torch.Tensor:
    """Decode ``genes`` (long ``(M,)`` shared by all rows, or ``(B, M)`` per row) from ``emb`` ``(B, d)`` in chunks of a bounded number of tokens, so memory stays bounded and the cost per gene flat."""
    B = emb.shape[0]
    chunk = max(1, (tokens_per_pass(module, emb.device) or 1 << 15) // max(B, 1))
    out = torch.empty(B, genes.shape[-1], device=emb.device)
    for g0 in range(0, genes.shape[-1], chunk):
        g = genes[..., g0 : g0 + chunk].expand(B, -1)
        with autocast(emb.device):
            out[:, g0 : g0 + chunk] = module.decode(emb, g).float()
    return out


@torch.no_grad()
def encode_batches(
    module: GexBERTModule,
    reader: RowReader,
    scaler: BoundStandardizer,
    *,
    n_input: int,
    n_repeats: int,
    batch_size: int,
    random_state: int,
    device: torch.device,
    decode_genes: np.ndarray | None = None,
) -> Iterator[EncodedBatch]:
    """Encode every row, batch by batch.

    Each row is encoded from ``n_repeats`` seeded random subsets of ``n_input`` of its observed genes
    (walking through one random order of them, so together they cover as many observed genes as
    ``n_repeats * n_input`` allows); the embedding is the mean of the subsets' summaries. ``decode_genes``
    are restored by decoding that embedding once. Rows are grouped by ``scaler.codes`` for the linear path's
    gap entries (genes the row's batch never measured in training).
    """
    module.to(device).eval()
    gen = torch.Generator().manual_seed(int(random_state))
    gdec = None if decode_genes is None else torch.as_tensor(decode_genes, dtype=torch.long, device=device)
    for start in range(0, reader.n_obs, batch_size):
        rows = np.arange(start, min(start + batch_size, reader.n_obs))
        z = torch.from_numpy(scaler.transform(reader(rows), rows))
        subsets = observed_first_subsets(~torch.isnan(z), n_input, n_repeats, gen).to(device)
        z = z.to(device)
        with autocast(device):
            emb = sum(encode_rows(module, s, z.gather(1, s)) for s in subsets) / len(subsets)
        gaps = None
        if module.linear is not None:  # the linear path reads every observed gene, not the subsets
            emb = torch.cat([emb, linear_latent(module, z)], dim=1)
            gaps = module.linear.gap_latent(z, torch.from_numpy(scaler.codes[rows]).to(device))
        batch = EncodedBatch(rows, emb, None, gaps)
        if gdec is not None:
            batch.restored = decode_batch(module, batch, gdec)
        yield batch


def fill_missing(module: GexBERTModule, batch: EncodedBatch, x: np.ndarray, scaler: BoundStandardizer) -> np.ndarray:
    """Fill the NaN entries of the raw rows ``x`` of ``batch`` (in place) with values decoded from its embedding, in input units. Only the missing entries are decoded: each row's missing genes, padded to the batch's largest count, so the cost grows with the number of missing values."""
    miss = np.isnan(x)
    if not miss.any():
        return x
    counts = miss.sum(1)
    width = int(counts.max())
    order = np.argsort(~miss, axis=1, kind="stable")[:, :width]  # each row's missing genes first
    genes = torch.as_tensor(order, dtype=torch.long, device=batch.embedding.device)
    z = decode_batch(module, batch, genes).cpu().numpy()
    filled = scaler.inverse(z, batch.rows, order)
    r_idx, k_idx = np.nonzero(np.arange(width)[None, :] < counts[:, None])
    x[r_idx, order[r_idx, k_idx]] = filled[r_idx, k_idx]
    return x
