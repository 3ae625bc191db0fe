"""Encoder and decoder layers (pure torch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("gelu", "relu")


class FeedForward(nn.Module):
    """Position-wise feed-forward block (pre-norm; GELU or ReLU)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float, activation: str = "gelu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.dropout = dropout
        self.activation = activation
        self._act = F.gelu if activation == "gelu" else F.relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc2(self._act(self.fc1(self.norm(x))))
        if self.dropout and self.training:
            h = F.dropout(h, self.dropout, True)
        return h


class EncoderLayer(nn.Module):
    """Pre-norm self-attention layer with a fused QKV projection and SDPA.

    ``keep`` is a boolean ``(B, N)`` mask, True where a token may be attended to
    (missing genes are False, so they contribute nothing to any other token).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, activation: str = "gelu"):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff = FeedForward(d_model, d_ff, dropout, activation)
        self.dropout = dropout

    def forward(
        self,
        x: torch.Tensor,
        keep: torch.Tensor | None = None,
        first_only: bool = False,
        return_cls_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, N, D)`` -> ``(B, N, D)``; with ``first_only`` only position 0 is computed, ``(B, 1, D)`` (it still attends to every kept token): the last encoder layer needs nothing else, since the summary is position 0.

        With ``return_cls_attention`` (an inspection path, not used in training) it also returns the
        attention probabilities of the summary (position 0) query over all ``N`` keys, float32
        ``(B, n_heads, N)``: ``softmax(q_0 . k_j / sqrt(head_dim))`` with masked keys at 0. The
        summary row's attention output is then computed from these probabilities (``p @ v``), the
        other rows with the usual fused kernel, so the returned ``x`` equals the normal forward.
        """
        B, N, D = x.shape
        H = self.n_heads
        hd = D // H
        qkv = self.qkv(self.norm(x)).view(B, N, 3, H, hd)
        # Zero-padding q, k and v to a head dimension that is a multiple of 8 leaves every dot
        # product, and so the result, unchanged (the pad columns of the output are dropped; the
        # scale stays hd ** -0.5). On CPU the attention kernel is faster so (SIMD width, measured in
        # benchmarks/results/speed_on_cpu.md); on CUDA the kernels that take a mask (memory-efficient,
        # cuDNN) need it, else a masked batch falls back to the math kernel. Unmasked CUDA attention
        # (flash) pads internally, so it is left alone there.
        pad = (-hd) % 8 if (x.device.type == "cpu" or keep is not None) else 0
        if pad:
            qkv = F.pad(qkv, (0, pad))
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if first_only:
            q, x = q[:, :, :1], x[:, :1]
        mask = None if keep is None else keep[:, None, None, :]
        drop = self.dropout if self.training else 0.0
        if return_cls_attention:
            if drop:
                raise RuntimeError("the attention path has no attention dropout; call module.eval() first")
            p = self._cls_probabilities(q[:, :, :1], k, keep, hd)  # (B, H, N), float32
            a0 = torch.einsum("bhn,bhnd->bhd", p.to(v.dtype), v).unsqueeze(2)  # (B, H, 1, hd + pad)
            if q.shape[2] > 1:
                rest = F.scaled_dot_product_attention(q[:, :, 1:], k, v, attn_mask=mask, scale=hd**-0.5)
                a = torch.cat([a0, rest], dim=2)
            else:
                a = a0
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, scale=hd**-0.5)
        if pad:
            a = a[..., :hd]
        a = self.out(a.transpose(1, 2).reshape(B, x.shape[1], D))
        if self.dropout and self.training:
            a = F.dropout(a, self.dropout, True)
        x = x + a
        x = x + self.ff(x)
        return (x, p) if return_cls_attention else x

    @staticmethod
    def _cls_probabilities(q0: torch.Tensor, k: torch.Tensor, keep: torch.Tensor | None, hd: int) -> torch.Tensor:
        """Softmax of the summary query ``q0`` ``(B, H, 1, e)`` against the keys ``k`` ``(B, H, N, e)`` (e may include the zero pad), scaled by ``hd ** -0.5``, masked keys excluded; float32 ``(B, H, N)``."""
        scores = torch.einsum("bhd,bhnd->bhn", q0[:, :, 0].float(), k.float()) * hd**-0.5
        if keep is not None:
            scores = scores.masked_fill(~keep[:, None, :], float("-inf"))
        return torch.softmax(scores, dim=-1)


class DecoderLayer(nn.Module):
    """Decoder layer in which every token attends only to the summary position.

    The paper's decoder has the encoder's layer structure, except that the genes to restore do
    not attend to each other: each attends only to the summary (cls) position, and so does the
    summary itself. Attention over a single key gives that key's value with weight exactly 1,
    whatever the query, so the query and key projections cancel and the attention output is
    ``out(value(norm(summary)))``, one vector per sample, added to every token. It is computed
    once per sample: no N x N matrix, cost linear in the number of genes restored, and a gene's
    output cannot depend on which other genes are restored.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, activation: str = "gelu"):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff = FeedForward(d_model, d_ff, dropout, activation)
        self.dropout = dropout

    def forward(self, summary: torch.Tensor, genes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.out(self.value(self.norm(summary)))  # (B, D)
        if self.dropout and self.training:
            a = F.dropout(a, self.dropout, True)
        summary = summary + a
        genes = genes + a.unsqueeze(1)
        return summary + self.ff(summary), genes + self.ff(genes)
