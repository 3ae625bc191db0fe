"""Token construction: gene embedding + value-level embedding (pure torch)."""

from __future__ import annotations

import torch
from torch import nn

VALUE_ENCODINGS = ("interp_proj", "interp", "binned")


class ValueTokenizer(nn.Module):
    """Turn (gene index, standardised value) pairs into tokens.

    A token is ``gene_embedding[gene] + level_embedding(value)``. Two value encodings:

    ``"binned"`` (the paper's)
        The value falls into one of ``n_levels`` bins cut by ``n_levels - 1`` inner ``edges``;
        the token uses that bin's embedding.
    ``"interp"``
        Each level has a ``centre``; a value between two neighbouring centres gets the linear
        interpolation of their two embeddings, so the token varies continuously with the
        value and no resolution is lost inside a bin. Values beyond the outer centres are
        clamped to the outer level.
    ``"interp_proj"`` (the package's default)
        ``"interp"`` plus a learned per-gene projection of the continuous value,
        ``value * gene_value[gene]`` (value clipped to +-5 sd). This gives the encoder a direct
        linear path from the values to the summary; without it a small model trained for
        minutes on CPU stalls at predicting the mean (see docs/design.md).

    Missing values (NaN) get a learnable ``missing`` level embedding; the caller masks them out
    of attention. Genes to be restored get the learnable ``mask`` level embedding.

    Parameters
    ----------
    n_genes
        Size of the gene vocabulary.
    d_model
        Embedding dimension.
    n_levels
        Number of value levels.
    value_encoding
        ``"interp_proj"``, ``"interp"`` or ``"binned"``.
    gene_init_sd
        Standard deviation of the gene embeddings at initialisation (level embeddings start at 1).
    """

    def __init__(
        self,
        n_genes: int,
        d_model: int,
        n_levels: int = 64,
        value_encoding: str = "interp_proj",
        gene_init_sd: float = 0.02,
    ):
        super().__init__()
        if value_encoding not in VALUE_ENCODINGS:
            raise ValueError(f"value_encoding must be one of {VALUE_ENCODINGS}, got {value_encoding!r}")
        self.n_levels = int(n_levels)
        self.max_abs = 5.0
        self.value_encoding = value_encoding
        self.gene = nn.Embedding(n_genes, d_model)
        self.level = nn.Embedding(n_levels, d_model)
        self.missing = nn.Parameter(torch.zeros(d_model))
        self.mask = nn.Parameter(torch.zeros(d_model))
        self.gene_value = nn.Embedding(n_genes, d_model) if value_encoding == "interp_proj" else None
        # Cut points, fitted on training data by the model class and stored with the weights.
        self.register_buffer("edges", torch.linspace(-2.5, 2.5, n_levels - 1))
        self.register_buffer("centres", torch.linspace(-2.5, 2.5, n_levels))
        # Small gene embeddings at the start (the default) keep the random choice of input genes from
        # drowning the value signal in the summary; level embeddings start at unit scale. The paper's
        # decoder needs larger ones (docs/design.md, "Beyond the paper", item 7).
        nn.init.normal_(self.gene.weight, std=gene_init_sd)
        nn.init.normal_(self.level.weight, std=1.0)
        nn.init.normal_(self.missing, std=1.0)
        nn.init.normal_(self.mask, std=1.0)
        if self.gene_value is not None:
            nn.init.normal_(self.gene_value.weight, std=1.0)

    @torch.no_grad()
    def set_cuts(self, edges: torch.Tensor, centres: torch.Tensor) -> None:
        """Set the bin edges (``n_levels - 1``) and level centres (``n_levels``), both increasing."""
        self.edges.copy_(edges.to(self.edges))
        self.centres.copy_(centres.to(self.centres))

    def level_embedding(self, values: torch.Tensor) -> torch.Tensor:
        """Level embedding of standardised values; NaN gives the missing embedding."""
        missing = torch.isnan(values)
        v = torch.nan_to_num(values, nan=0.0).float()
        if self.value_encoding == "binned":
            emb = self.level(torch.bucketize(v, self.edges))
        else:
            c = self.centres
            lo = (torch.bucketize(v, c) - 1).clamp(0, self.n_levels - 2)
            c_lo, c_hi = c[lo], c[lo + 1]
            w = ((v - c_lo) / (c_hi - c_lo)).clamp(0.0, 1.0).unsqueeze(-1)
            e_lo, e_hi = self.level(lo), self.level(lo + 1)
            emb = e_lo + w * (e_hi - e_lo)
        return torch.where(missing.unsqueeze(-1), self.missing.to(emb.dtype), emb)

    def forward(self, genes: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Input tokens for ``genes`` (long, ``(B, N)``) with ``values`` (float, ``(B, N)``)."""
        tok = self.gene(genes) + self.level_embedding(values)
        if self.gene_value is not None:
            v = torch.nan_to_num(values, nan=0.0).clamp(-self.max_abs, self.max_abs).unsqueeze(-1)
            tok = tok + v * self.gene_value(genes)
        return tok

    def query(self, genes: torch.Tensor) -> torch.Tensor:
        """Decoder tokens for genes to restore: gene embedding + the mask level."""
        return self.gene(genes) + self.mask
