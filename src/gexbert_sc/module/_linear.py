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
        # Leave-one-out in training (not saved): the fitted rows' left singular vectors and, per data row,
        # its row among them (-1: none). See :meth:`latent`.
        self.register_buffer("loadings", torch.zeros(0, self.rank), persistent=False)
        self.register_buffer("row_index", torch.zeros(0, dtype=torch.long), persistent=False)

    @property
    def lam(self) -> torch.Tensor:
        return self.log_lam.exp()

    @torch.no_grad()
    def set_factors(self, z: torch.Tensor, rows: torch.Tensor | None = None, n_rows: int = 0) -> None:
        """Set the factors from the SVD of standardised rows ``z`` (``n x n_genes``; NaN counts as 0, the mean).

        ``rows`` (long ``(n,)``) names the data rows of ``z`` among ``n_rows``: training on those rows then
        leaves each row out of the factors it is restored with (see :meth:`latent`).
        """
        z = torch.nan_to_num(z.float())
        n = max(1, z.shape[0])
        u, s, vt = torch.linalg.svd(z, full_matrices=False)
        k = min(self.rank, s.shape[0])
        f = torch.zeros_like(self.factors)
        f[:k] = (s[:k, None] * vt[:k]) / math.sqrt(n)
        self.factors.copy_(f)
        if rows is not None:
            self.loadings = torch.zeros(len(z), self.rank, device=f.device)
            self.loadings[:, :k] = u[:, :k]
            self.row_index = torch.full((int(n_rows),), -1, dtype=torch.long, device=f.device)
            self.row_index[rows.to(f.device)] = torch.arange(len(z), device=f.device)

    @torch.no_grad()
    def fit(self, z: torch.Tensor, val: torch.Tensor | None = None, lams=None, generator=None,
            refit: bool = True, rows: torch.Tensor | None = None, n_rows: int = 0) -> dict:
        """Set the factors from standardised training rows ``z`` (``n x n_genes``, NaN -> 0) and pick ``lam``.

        ``lam`` is the value of ``lams`` (default ``logspace(-1, 1.5, 11)``) with the smallest error on
        ``val`` (standardised rows held out from ``z``) when half of each row's observed genes, drawn at
        random, restore the other half; 1 without ``val``. With ``refit``, the factors are then set from
        ``z`` and ``val`` together (the penalty is in per-sample units, so it carries over). Returns
        ``{lam: mse}``. ``rows`` and ``n_rows``: the data rows of ``z`` then ``val``, as in :meth:`set_factors`
        (leave-one-out in training).
        """
        self.set_factors(z)
        scores = {}
        lams = [float(x) for x in (torch.logspace(-1, 1.5, 11) if lams is None else lams)]
        if val is None or len(val) == 0:
            self.log_lam.fill_(0.0)
            if rows is not None:
                self.set_factors(z, rows, n_rows)
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
        if refit:
            self.set_factors(torch.cat([z, val.to(z)]), rows, n_rows)
        elif rows is not None:
            self.set_factors(z, rows[: len(z)], n_rows)
        return scores

    def latent(self, genes: torch.Tensor, values: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Posterior mean of the factors, ``(B, rank)``, from ``values`` (``(B, N)``, NaN = missing) at ``genes``.

        ``rows`` (long ``(B,)``, data rows; training only): a row whose values helped set the factors is
        left out of them. With ``X = sqrt(n) U Z`` (the SVD), removing row ``i`` from the covariance gives
        ``Z^T (I - u u^T) Z`` (``u = U[i]``), i.e. the factors ``M Z`` with ``M = I - c u u^T``,
        ``c = (1 - sqrt(1 - |u|^2)) / |u|^2``. The latent is computed with ``M Z`` and returned as ``M h``,
        so that :meth:`estimate` with ``Z`` gives the leave-one-out estimate. Without it the network would
        learn to correct in-sample residuals of the linear estimate, which are smaller than on new samples.
        """
        obs = ~torch.isnan(values)
        v = torch.nan_to_num(values.float())
        zs = self.factors.float()[:, genes].permute(1, 0, 2) * obs.unsqueeze(1)  # (B, P, N)
        eye = torch.eye(self.rank, device=zs.device, dtype=zs.dtype)
        loo = None
        if rows is not None and len(self.row_index):
            idx = self.row_index[rows.to(self.row_index.device).clamp(max=len(self.row_index) - 1)]
            idx = torch.where(rows < len(self.row_index), idx, torch.full_like(idx, -1))
            u = self.loadings[idx.clamp(min=0)] * (idx >= 0).unsqueeze(1)  # (B, P); 0 for rows not in the fit
            a2 = (u * u).sum(1, keepdim=True)
            c = torch.where(a2 > 1e-12, (1 - (1 - a2).clamp(min=0).sqrt()) / a2.clamp(min=1e-12), torch.zeros_like(a2))
            loo = (u, c)
            zs = zs - (c * u).unsqueeze(2) * torch.einsum("bp,bpn->bn", u, zs).unsqueeze(1)
        if loo is None and genes.shape[0] > 1 and bool((genes == genes[:1]).all()) and bool((obs == obs[:1]).all()):
            a = zs[0] @ zs[0].T + self.lam.float() * eye  # one input set shared by every row
            rhs = zs[0] @ v.T  # (P, B)
            return torch.cholesky_solve(rhs, torch.linalg.cholesky(a)).T
        a = zs @ zs.transpose(1, 2) + self.lam.float() * eye
        rhs = (zs @ v.unsqueeze(-1))  # (B, P, 1)
        h = torch.cholesky_solve(rhs, torch.linalg.cholesky(a)).squeeze(-1)
        if loo is not None:
            u, c = loo
            h = h - c * u * (u * h).sum(1, keepdim=True)
        return h

    def estimate(self, latent: torch.Tensor, genes: torch.Tensor) -> torch.Tensor:
        """Estimates ``(B, M)`` of ``genes`` (long ``(B, M)``) from the latent ``(B, rank)``."""
        return torch.einsum("bp,pbm->bm", latent.float(), self.factors.float()[:, genes])
