"""The GexBERT network: tokens, encoder, decoder and head (pure torch, no AnnData)."""

from __future__ import annotations

import torch
from torch import nn

from ._layers import DecoderLayer, EncoderLayer
from ._linear import LINEAR_PATHS, GaussianLinearPath
from ._tokens import ValueTokenizer


class GexBERTModule(nn.Module):
    """Transformer autoencoder of bulk gene expression.

    Parameters
    ----------
    n_genes
        Size of the gene vocabulary.
    d_model, n_layers, n_heads
        Width, depth (of the encoder and of the decoder) and number of attention heads.
    d_ff
        Width of the feed-forward blocks.
    n_levels
        Number of value levels.
    value_encoding
        ``"interp_proj"``, ``"interp"`` or ``"binned"``, see :class:`ValueTokenizer`.
    dropout
        Dropout rate in attention and feed-forward blocks.
    summary_readout
        Add a per-gene linear readout of the summary, ``<readout[gene], summary>``, to the
        decoder's output (beyond the paper). It gives the encoder a gradient from the first step;
        without it the encoder-decoder pair stalls at predicting the mean for hundreds of steps.
    activation
        Feed-forward activation, ``"gelu"`` or ``"relu"``.
    linear_path
        ``"none"``, ``"fixed"`` or ``"learned"`` (beyond the paper): add a
        :class:`GaussianLinearPath` estimate (ridge-like, from every input gene) to the network's
        output, so the network learns a correction of a linear estimate. Its factors are set by
        ``self.linear.fit`` from training data (the AnnData layer does it); ``"learned"`` trains them
        with the network. The head starts at zero, so an untrained network outputs the linear estimate.
    linear_rank
        Number of factors of the linear path.
    scaffold_epochs
        With ``summary_readout=False``, a value above 0 adds the readout as a temporary *scaffold*: its term
        is multiplied by ``readout_scale`` (a buffer, 1 at the start), which the trainer lowers to 0 over
        training (:func:`~gexbert_sc.train.scaffold_factor`). At 0 the output is exactly that of the network
        without a readout, whose decoder alone otherwise stalls at the mean for thousands of steps.
    gene_init_sd
        Standard deviation of the gene embeddings at initialisation (see :class:`ValueTokenizer`).
    """

    def __init__(
        self,
        n_genes: int,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        d_ff: int = 128,
        n_levels: int = 64,
        value_encoding: str = "interp_proj",
        dropout: float = 0.0,
        summary_readout: bool = True,
        activation: str = "gelu",
        linear_path: str = "none",
        linear_rank: int = 256,
        scaffold_epochs: int = 0,
        gene_init_sd: float = 0.02,
    ):
        super().__init__()
        if linear_path not in LINEAR_PATHS:
            raise ValueError(f"linear_path must be one of {LINEAR_PATHS}, got {linear_path!r}")
        self.d_model, self.d_ff = d_model, d_ff
        self.tokens = ValueTokenizer(n_genes, d_model, n_levels, value_encoding, gene_init_sd)
        self.cls = nn.Parameter(torch.randn(d_model) * 0.02)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff, dropout, activation) for _ in range(n_layers))
        self.decoder = nn.ModuleList(DecoderLayer(d_model, n_heads, d_ff, dropout, activation) for _ in range(n_layers))
        self.dec_norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 1)
        self.readout = None
        if summary_readout or scaffold_epochs > 0:
            self.readout = nn.Embedding(n_genes, d_model)
            nn.init.zeros_(self.readout.weight)
        if scaffold_epochs > 0 and not summary_readout:
            self.register_buffer("readout_scale", torch.ones(()))
        self.linear = None
        if linear_path != "none":
            self.linear = GaussianLinearPath(n_genes, linear_rank, learn=linear_path == "learned")
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    #: Settings :meth:`from_config` reads from a config (any object with these attributes).
    CONFIG_FIELDS = ("d_model", "n_layers", "n_heads", "d_ff", "n_levels", "value_encoding", "dropout",
                     "summary_readout", "activation", "linear_path", "linear_rank", "scaffold_epochs",
                     "gene_init_sd")

    @classmethod
    def from_config(cls, config, n_genes: int) -> GexBERTModule:
        """Build the network for ``n_genes`` from a config's :data:`CONFIG_FIELDS` (e.g. a :class:`~gexbert_sc.GexBERTConfig`; this package's only place that maps settings to the network)."""
        return cls(n_genes=n_genes, **{name: getattr(config, name) for name in cls.CONFIG_FIELDS})

    @property
    def is_scaffolded(self) -> bool:
        """Whether the readout is a temporary scaffold (``scaffold_epochs`` without ``summary_readout``)."""
        return hasattr(self, "readout_scale")

    @torch.no_grad()
    def set_readout_scale(self, value: float) -> None:
        """Set the scaffold readout's weight (1: full, 0: the network without a readout); no-op without a scaffold.

        Below 1 the readout's own weights get no gradient (they are frozen while the scaffold fades), so they
        cannot grow to make up for the falling weight; the summary still gets the term's gradient.
        """
        if self.is_scaffolded:
            self.readout_scale.fill_(float(value))

    @property
    def state_dim(self) -> int:
        """Width of :meth:`encode`'s output: ``d_model``, plus ``linear_rank`` with a linear path."""
        return self.d_model + (0 if self.linear is None else self.linear.rank)

    def encode(self, genes: torch.Tensor, values: torch.Tensor, rows: torch.Tensor | None = None,
               key_mask: bool | None = None) -> torch.Tensor:
        """The encoded state ``(B, state_dim)``: the summary (cls) embedding (first ``d_model`` columns), then, with a linear path, its latent (:meth:`encode_linear`) from the same genes; ``key_mask`` as in :meth:`encode_summary`."""
        s = self.encode_summary(genes, values, key_mask)
        if self.linear is None:
            return s
        return torch.cat([s, self.encode_linear(genes, values, rows).to(s.dtype)], dim=1)

    def encode_linear(self, genes: torch.Tensor, values: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The linear path's latent ``(B, linear_rank)`` (computed in float32, also under autocast); ``rows``: the samples' data rows, for the leave-one-out of training (:meth:`GaussianLinearPath.latent`)."""
        with torch.autocast(genes.device.type, enabled=False):
            return self.linear.latent(genes, values.float(), rows)

    def encode_summary(self, genes: torch.Tensor, values: torch.Tensor, key_mask: bool | None = None) -> torch.Tensor:
        """Summary (cls) embedding, ``(B, d_model)``.

        ``genes``: long ``(B, N)`` vocabulary indices; ``values``: float ``(B, N)`` standardised
        values, NaN where missing. Missing genes are masked out of attention. The summary is the
        cls position's residual stream, with no final LayerNorm (one stalled training here). The
        last layer computes the cls position only.

        ``key_mask``: None (default) looks for missing values and builds the attention mask only where
        there are some (a device-to-host synchronisation); False promises that no input value is missing
        and runs attention without a mask (the fused kernels); True always builds the mask from the NaNs.
        The trainer knows which case a batch is from its observed-gene counts, so it passes False or True.
        """
        x, keep = self._encoder_input(genes, values, key_mask)
        last = len(self.encoder) - 1
        for i, layer in enumerate(self.encoder):
            # only the summary position of the last layer is used: its other N-1 positions (their
            # attention queries, output projection and feed-forward) are not computed
            x = layer(x, keep, first_only=i == last)
        return x[:, 0]

    def _encoder_input(
        self, genes: torch.Tensor, values: torch.Tensor, key_mask: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens with the cls token in front ``(B, N + 1, D)``, and the key mask (None when nothing is missing, or when ``key_mask`` is False)."""
        x = self.tokens(genes, values)
        x = torch.cat([self.cls.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)
        if key_mask is False:
            return x, None
        missing = torch.isnan(values)
        if key_mask is None and not bool(missing.any()):
            return x, None
        return x, torch.cat([torch.ones_like(missing[:, :1]), ~missing], dim=1)

    def cls_attention(self, genes: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Summary embedding and the summary (cls) query's attention over the input genes, per layer and head.

        An inspection path beside :meth:`encode_summary` (which keeps the fused attention kernel): in every
        encoder layer the cls row's attention probabilities, ``softmax(q_cls . k / sqrt(head_dim))``
        over the cls token and the ``N`` input genes with missing genes masked out, are computed
        explicitly and the cls row's attention output is formed from them (see
        :meth:`EncoderLayer.forward`), so the summary equals :meth:`encode_summary`'s. Needs eval mode when
        the network has dropout.

        Parameters
        ----------
        genes
            Long ``(B, N)`` vocabulary indices.
        values
            Float ``(B, N)`` standardised values, NaN where missing.

        Returns
        -------
        summary
            ``(B, d_model)``, as :meth:`encode_summary` (the linear path, if any, is not involved).
        attention
            Float32 ``(B, n_layers, n_heads, N)``: the weight of each input gene in the cls row (the
            cls token's weight on itself, ``1 - attention.sum(-1)``, is left out); 0 for missing genes.
        """
        x, keep = self._encoder_input(genes, values)
        last = len(self.encoder) - 1
        probs = []
        for i, layer in enumerate(self.encoder):
            x, p = layer(x, keep, first_only=i == last, return_cls_attention=True)
            probs.append(p[:, :, 1:])
        return x[:, 0], torch.stack(probs, dim=1)

    def decode(self, summary: torch.Tensor, genes: torch.Tensor) -> torch.Tensor:
        """Restored standardised values ``(B, M)`` of ``genes`` (long ``(B, M)``) from the state :meth:`encode` returns."""
        state, summary = summary, summary[:, : self.d_model]
        g = self.tokens.query(genes)
        s = summary
        for layer in self.decoder:
            s, g = layer(s, g)
        out = self.head(self.dec_norm(g)).squeeze(-1)
        if self.readout is not None:
            r = self.readout(genes).to(summary.dtype)
            if self.is_scaffolded:  # below full weight the readout's weights get no gradient: frozen
                r = r.detach() + (r - r.detach()) * (self.readout_scale >= 1).to(r.dtype)
            term = torch.einsum("bd,bmd->bm", summary, r)
            out = out + (term * self.readout_scale.to(term.dtype) if self.is_scaffolded else term)
        if self.linear is not None:
            with torch.autocast(genes.device.type, enabled=False):
                out = out.float() + self.linear.estimate(state[:, self.d_model :], genes)
        return out

    def forward(self, genes: torch.Tensor, values: torch.Tensor, targets: torch.Tensor,
                rows: torch.Tensor | None = None, key_mask: bool | None = None) -> torch.Tensor:
        """Encode ``(genes, values)`` and restore the genes ``targets``; ``rows`` (training only): the samples' data rows, left out of the linear path's factors; ``key_mask``: see :meth:`encode_summary`."""
        return self.decode(self.encode(genes, values, rows, key_mask), targets)


def masked_sse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors over the entries where ``target`` is observed (not NaN)."""
    obs = ~torch.isnan(target)
    diff = torch.where(obs, pred.float() - torch.nan_to_num(target.float()), torch.zeros((), device=pred.device))
    return (diff * diff).sum()


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries where ``target`` is observed (not NaN)."""
    return masked_sse(pred, target) / (~torch.isnan(target)).sum().clamp(min=1)
