"""The linear path: a Gaussian-conditional (ridge-like) estimate of the target genes from the input genes (pure torch)."""

from __future__ import annotations

import math

import torch
from torch import nn

LINEAR_PATHS = ("none", "fixed", "learned")


class GaussianLinearPath(nn.Module):
    """Linear estimate of any genes from any observed genes under a low-rank Gaussian model.

    The genes are modelled as Gaussian with covariance ``Z^T Z + lam * I``, where the factors ``Z``
    (``rank x n_genes``) are set from the SVD of the standardised training samples
    (:meth:`fit`: ``Z = S V^T / sqrt(n)``, so ``Z^T Z`` is the training covariance up to the rank).
    For a sample with observed genes ``S`` (values ``x_S``) the latent
    ``h = (Z_S Z_S^T + lam I)^{-1} Z_S x_S`` (``rank`` values) is the posterior mean of the factors,
    and gene ``t`` is estimated as ``<Z[:, t], h>``: the conditional mean ``E[x_t | x_S]``. With the
    full rank this is kernel ridge regression of the targets on the inputs with penalty ``n * lam``
    (the same as ridge on the inputs), for every input set at once, without refitting.

    Missing inputs (NaN) get zero weight, which equals leaving them out; a gene's estimate depends
    only on ``h`` and its own factors, never on which other genes are estimated.

    ``learn`` makes ``Z`` and ``lam`` trainable (jointly with the network); otherwise they stay as
    :meth:`fit` set them.
    """

    def __init__(self, n_genes: int, rank: int, learn: bool = False):
        super().__init__()
        self.rank = int(rank)
        self.factors = nn.Parameter(torch.zeros(self.rank, n_genes), requires_grad=learn)
        self.log_lam = nn.Parameter(torch.zeros(()), requires_grad=learn)

    @property
    def lam(self) -> torch.Tensor:
        return self.log_lam.exp()

    @torch.no_grad()
    def fit(self, z: torch.Tensor, val: torch.Tensor | None = None, lams=None, generator=None) -> dict:
        """Set the factors from standardised training rows ``z`` (``n x n_genes``, NaN -> 0) and pick ``lam``.

        ``lam`` is the value of ``lams`` (default ``logspace(-1, 1.5, 11)``) with the smallest error on
        ``val`` (standardised rows held out from ``z``) when half of each row's observed genes, drawn at
        random, restore the other half; 1 without ``val``. Returns ``{lam: mse}``.
        """
        z = torch.nan_to_num(z.float())
        n = max(1, z.shape[0])
        _, s, vt = torch.linalg.svd(z, full_matrices=False)
        k = min(self.rank, s.shape[0])
        f = torch.zeros_like(self.factors)
        f[:k] = (s[:k, None] * vt[:k]) / math.sqrt(n)
        self.factors.copy_(f)
        scores = {}
        lams = [float(x) for x in (torch.logspace(-1, 1.5, 11) if lams is None else lams)]
        if val is None or len(val) == 0:
            self.log_lam.fill_(0.0)
            return scores
        val = val.float()
        G = val.shape[1]
        keys = torch.rand(val.shape, generator=generator)
        order = keys.argsort(1)
        gi, gt = order[:, : G // 2], order[:, G // 2 :]
        xi, xt = val.gather(1, gi), val.gather(1, gt)
        for lam in lams:
            self.log_lam.fill_(math.log(lam))
            pred = self.estimate(self.latent(gi, xi), gt)
            obs = ~torch.isnan(xt)
            scores[lam] = float(((pred - torch.nan_to_num(xt)) ** 2)[obs].mean())
        self.log_lam.fill_(math.log(min(scores, key=scores.get)))
        return scores

    def latent(self, genes: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Posterior mean of the factors, ``(B, rank)``, from ``values`` (``(B, N)``, NaN = missing) at ``genes``."""
        obs = ~torch.isnan(values)
        v = torch.nan_to_num(values.float())
        zs = self.factors.float()[:, genes].permute(1, 0, 2) * obs.unsqueeze(1)  # (B, P, N)
        eye = torch.eye(self.rank, device=zs.device, dtype=zs.dtype)
        if genes.shape[0] > 1 and bool((genes == genes[:1]).all()) and bool((obs == obs[:1]).all()):
            a = zs[0] @ zs[0].T + self.lam.float() * eye  # one input set shared by every row
            rhs = zs[0] @ v.T  # (P, B)
            return torch.cholesky_solve(rhs, torch.linalg.cholesky(a)).T
        a = zs @ zs.transpose(1, 2) + self.lam.float() * eye
        rhs = (zs @ v.unsqueeze(-1))  # (B, P, 1)
        return torch.cholesky_solve(rhs, torch.linalg.cholesky(a)).squeeze(-1)

    def estimate(self, latent: torch.Tensor, genes: torch.Tensor) -> torch.Tensor:
        """Estimates ``(B, M)`` of ``genes`` (long ``(B, M)``) from the latent ``(B, rank)``."""
        return torch.einsum("bp,pbm->bm", latent.float(), self.factors.float()[:, genes])
