"""The linear path: a Gaussian-conditional (ridge-like) estimate of the target genes from the input genes (pure torch)."""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager

import torch
from torch import nn

from ._gaps import GapPenaltyMixin

logger = logging.getLogger(__name__)

LINEAR_PATHS = ("none", "fixed", "learned")
#: Most EM iterations of :meth:`GaussianLinearPath.fit` when the training rows have missing values (it stops
#: earlier when the validation error stops falling).
EM_ITERATIONS = 50
#: Without validation rows, EM runs this many iterations.
EM_ITERATIONS_NO_VAL = 10
#: EM iterations after which the penalty is picked again on the validation rows (and once more at the end).
EM_REPICK = (2, 5)
#: EM stops when the validation error has not fallen by this fraction for :data:`EM_PATIENCE` iterations.
EM_TOL = 1e-5
EM_PATIENCE = 3
#: Rows per chunk when every gene of many rows is estimated hold at most about this many factor values.
FILL_VALUES = 16_000_000
#: The penalty is picked on at most this many validation rows (a seeded random subset).
PICK_ROWS = 256
#: Input sizes (numbers of observed input genes) the penalty is picked for, besides half the genes; a
#: sample's penalty is interpolated between them on the log scale by its number of observed inputs.
PICK_SIZES = (16, 64, 256)


class GaussianLinearPath(GapPenaltyMixin, nn.Module):
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
    only on ``h`` and its own factors, never on which other genes are estimated. Where the training
    rows themselves have missing values, :meth:`fit` runs a few EM iterations: fill the missing values
    with their conditional means, set the factors from the filled rows, repeat (setting missing values
    to the mean instead shrinks every covariance and biases the estimates toward the mean).

    Rows may come in groups (batches: cohorts, platforms; integer ``codes``). A gene that a group never
    measured but another did is estimated, in that group's rows, from a covariance that only the other
    groups' rows show, which holds there less well: those *gap* entries get their own, picked penalty
    (:meth:`fit` with ``codes``; :meth:`gaps`, :meth:`gap_latent`).

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
        # The penalty by input size (saved; empty: ``lam`` for every size): log sizes and log penalties.
        self.register_buffer("lam_log_sizes", torch.zeros(0))
        self.register_buffer("lam_log_values", torch.zeros(0))
        # The factors of the training rows alone, before :meth:`fit` refits them with the validation rows (not
        # saved; empty: none): see :meth:`held_out`.
        self.register_buffer("train_factors", torch.zeros(0, n_genes), persistent=False)
        # Which group measured which gene in the fitted rows (saved; empty: no gap penalty), and the log of the
        # penalty of gap entries (saved; empty: none).
        self.register_buffer("group_measured", torch.zeros(0, n_genes, dtype=torch.bool))
        self.register_buffer("log_lam_gap", torch.zeros(0))

    @property
    def lam(self) -> torch.Tensor:
        return self.log_lam.exp()

    @property
    def can_hold_out(self) -> bool:
        """Whether :meth:`held_out` can restore the validation rows from factors that never saw them.

        Only for fixed factors fitted in this session (the training-only factors are not saved; learned factors
        move away from them in training).
        """
        return len(self.train_factors) > 0 and not self.factors.requires_grad

    @contextmanager
    def held_out(self):
        """Within the block, the factors are those of the training rows alone.

        They were set before :meth:`fit` refitted them on the training and validation rows, so estimates of the
        validation rows are held-out ones, whatever the rank (the rank-one leave-one-out of :meth:`latent` is
        exact only at full rank: with more fitted rows than the rank, the kept directions were chosen with the
        left-out row, and validation residuals came out 12% too small on SKCM).
        """
        if not self.can_hold_out:
            raise ValueError("no training-only factors: the linear path was not fitted with validation rows in this "
                             "session (they are not saved)")
        kept = self.factors.detach().clone()
        with torch.no_grad():
            self.factors.copy_(self.train_factors)
        try:
            yield
        finally:
            with torch.no_grad():
                self.factors.copy_(kept)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the sizes of the penalty table and the gap buffers come from the saved model; models saved before them
        # have none
        empty = {"lam_log_sizes": torch.zeros(0), "lam_log_values": torch.zeros(0), "log_lam_gap": torch.zeros(0),
                 "group_measured": torch.zeros(0, self.factors.shape[1], dtype=torch.bool)}
        for name, none in empty.items():
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key]))
            else:
                state_dict[key] = none
                setattr(self, name, none.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def row_lam(self, n_inputs: torch.Tensor) -> torch.Tensor:
        """The penalty of samples with ``n_inputs`` observed input genes, ``(B,)`` float32.

        Interpolated on the log scale in the table :meth:`fit` picked (constant beyond its ends); ``lam``
        for every sample where there is no table (a learned penalty, or a model saved before the table).
        """
        lam = self.lam.float()
        if len(self.lam_log_sizes) == 0 or self.log_lam.requires_grad:
            return lam.expand(len(n_inputs))
        x = torch.log(n_inputs.float().clamp(min=1))
        xs, ys = self.lam_log_sizes.float(), self.lam_log_values.float()
        j = torch.searchsorted(xs, x.contiguous()).clamp(1, len(xs) - 1) if len(xs) > 1 else None
        if j is None:
            return ys[0].exp().expand(len(n_inputs))
        x0, x1, y0, y1 = xs[j - 1], xs[j], ys[j - 1], ys[j]
        t = ((x - x0) / (x1 - x0).clamp(min=1e-12)).clamp(0, 1)
        return (y0 + t * (y1 - y0)).exp()

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
            refit: bool = True, rows: torch.Tensor | None = None, n_rows: int = 0,
            em_iterations: int = EM_ITERATIONS, codes: torch.Tensor | None = None,
            val_codes: torch.Tensor | None = None) -> dict:
        """Set the factors from standardised training rows ``z`` (``n x n_genes``) and pick ``lam``.

        ``lam`` is the value of ``lams`` (default ``logspace(-1, 1.5, 11)``) with the smallest error on
        ``val`` (standardised rows held out from ``z``) when half of each row's observed genes, drawn at
        random, restore the other half; 1 without ``val``. Where ``z`` has missing values (NaN), EM
        iterations fill them with their conditional means and set the factors from the filled rows,
        picking ``lam`` again after iterations :data:`EM_REPICK` and at the end. With ``val``, the
        iterations go on (at most ``em_iterations``) while the validation error keeps falling (by
        :data:`EM_TOL` within :data:`EM_PATIENCE` iterations), and the factors of the iteration with the
        smallest validation error are kept: whole genes missing in a group of rows converge slowly
        (tens of iterations), scattered missing values within about ten. Without ``val``,
        :data:`EM_ITERATIONS_NO_VAL` iterations. With
        ``refit``, the factors are then set from ``z`` and ``val`` together (``val``'s missing values
        filled likewise; the penalty is in per-sample units, so it carries over). Returns ``{lam: mse}``
        of the last pick. ``rows`` and ``n_rows``: the data rows of ``z`` then ``val``, as in
        :meth:`set_factors` (leave-one-out in training).

        ``codes`` and ``val_codes`` (long, one group code per row of ``z`` and ``val``): where some group never
        measured a gene that another group did (a gap), the penalty of those entries is picked apart
        (:meth:`_pick_gap`): a first EM runs with :data:`GAP_PICK_FRACTION` of the measured (group, gene) blocks
        hidden, picking the gap penalty among :data:`GAP_LAMS` on the hidden blocks of the validation rows;
        the EM on all data then goes on from its factors with that penalty for the gap entries. Without gaps,
        or without ``val``, nothing changes.
        """
        lams = [float(x) for x in (torch.logspace(-1, 1.5, 11) if lams is None else lams)]
        has_val = val is not None and len(val) > 0
        z = z.float()
        val = val.float() if has_val else None
        if codes is not None and has_val and val_codes is None:
            raise ValueError("fit: codes given for the training rows but not for the validation rows (val_codes)")
        self.lam_log_sizes, self.lam_log_values = torch.zeros(0), torch.zeros(0)
        self.group_measured = torch.zeros(0, z.shape[1], dtype=torch.bool, device=self.factors.device)
        self.log_lam_gap = torch.zeros(0, device=self.factors.device)
        self.log_lam.fill_(0.0)
        em = int(em_iterations) > 0 and bool(torch.isnan(z).any())
        if codes is not None and has_val and em:
            self._pick_gap(z, val, codes, val_codes, lams, generator, int(em_iterations))
        self.set_factors(z)
        scores = self._pick_lam(val, lams, generator) if has_val else {}
        filled = z
        if em:
            filled = self._em(z, val, lams, generator, int(em_iterations), codes)
            if has_val:
                scores = self._pick_lam(val, lams, generator)
        if has_val:
            self._pick_table(val, lams, generator)
        if refit and has_val:
            self.train_factors = self.factors.detach().clone()
            self.set_factors(torch.cat([filled, self.fill(val, val_codes).to(filled)]), rows, n_rows)
        elif rows is not None:
            self.set_factors(filled, rows[: len(z)], n_rows)
        return scores

    def _em(self, z: torch.Tensor, val: torch.Tensor | None, lams: list[float], generator, most: int,
            codes: torch.Tensor | None = None, gap_truth: tuple | None = None) -> torch.Tensor:
        """EM iterations on ``z`` (see :meth:`fit`); returns the filled rows whose factors are set.

        ``gap_truth`` (``(values, truth)`` of validation rows; :meth:`_pick_gap`): the gap penalty is
        picked again with ``lam``.
        """
        if val is None:
            for _ in range(min(most, EM_ITERATIONS_NO_VAL)):
                filled = self.fill(z, codes)
                self.set_factors(filled)
            return filled
        split_seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        best, best_filled, stale = math.inf, None, 0
        for it in range(1, most + 1):
            filled = self.fill(z, codes)
            self.set_factors(filled)
            if it in EM_REPICK:
                self._pick_lam(val, lams, generator)
                if gap_truth is not None:
                    self._pick_gap_lam(*gap_truth)
            if it < EM_REPICK[-1]:
                continue
            # the same split of the validation rows every time, at the penalty fixed since the last pick
            err = self._pick_lam(val, [float(self.lam)], torch.Generator().manual_seed(split_seed))[float(self.lam)]
            if err < best * (1 - EM_TOL):
                best, best_filled, stale = err, filled, 0
            else:
                stale += 1
                if stale >= EM_PATIENCE:
                    break
        if best_filled is not None and best_filled is not filled:
            self.set_factors(best_filled)
            filled = best_filled
        logger.debug("linear path: %d EM iterations, validation MSE %.4f", it, best)
        return filled

    def _pick_table(self, val: torch.Tensor, lams: list[float], generator) -> None:
        """Pick the penalty for each of :data:`PICK_SIZES` inputs (and half the genes) and keep the table."""
        G = val.shape[1]
        half = G // 2
        sizes = sorted({min(s, half) for s in PICK_SIZES} | {half})
        if half < 1:
            return
        lam_half = float(self.log_lam)
        values = []
        for n in sizes:
            scores = self._pick_lam(val, lams, generator, n_inputs=n)
            values.append(math.log(min(scores, key=scores.get)))
        self.log_lam.fill_(lam_half)
        self.lam_log_sizes = torch.log(torch.tensor(sizes, dtype=torch.float32)).to(self.factors.device)
        self.lam_log_values = torch.tensor(values, dtype=torch.float32).to(self.factors.device)

    def _pick_lam(self, val: torch.Tensor, lams: list[float], generator, n_inputs: int | None = None) -> dict:
        """Set ``lam`` to the value of ``lams`` that best restores half of ``val``'s genes from the other half.

        With ``n_inputs``, only that many of the other half's genes are inputs. At most :data:`PICK_ROWS` rows
        of ``val`` (seeded), in row chunks of bounded memory; each chunk's systems are built once for all penalties.
        """
        if len(val) > PICK_ROWS:
            val = val[torch.randperm(len(val), generator=generator)[:PICK_ROWS]]
        G = val.shape[1]
        order = torch.rand(val.shape, generator=generator).argsort(1)
        n_in = G // 2 if n_inputs is None else min(int(n_inputs), G // 2)
        gi, gt = order[:, :n_in], order[:, G // 2 :]
        sse, n = self._sse_by_penalty(gi, val.gather(1, gi), gt, val.gather(1, gt), lams)
        scores = {lam: v / max(1, n) for lam, v in sse.items()}
        self.log_lam.fill_(math.log(min(scores, key=scores.get)))
        return scores

    def _sse_by_penalty(self, gi: torch.Tensor, xi: torch.Tensor, gt: torch.Tensor, xt: torch.Tensor,
                        lams) -> tuple[dict, int]:
        """Squared error of estimating ``xt`` at genes ``gt`` from ``xi`` at genes ``gi``, for each penalty of ``lams``.

        All four are ``(B, .)``; NaN in ``xi`` is missing, in ``xt`` not scored. Returns the sums by penalty and
        the number of scored values. In row chunks of bounded memory, each chunk's systems built once for all
        penalties.
        """
        step = max(1, FILL_VALUES // max(1, self.rank * self.factors.shape[1]))
        factors = self.factors.float()
        eye = torch.eye(self.rank, dtype=factors.dtype, device=factors.device)
        obs = ~torch.isnan(xt)
        sse = dict.fromkeys(lams, 0.0)
        for i in range(0, len(xi), step):
            x = xi[i : i + step]
            zs = factors[:, gi[i : i + step]].permute(1, 0, 2) * (~torch.isnan(x)).unsqueeze(1)  # (B, P, N)
            gram, rhs = zs @ zs.transpose(1, 2), zs @ torch.nan_to_num(x).unsqueeze(-1)
            zt = factors[:, gt[i : i + step]].permute(1, 0, 2)  # (B, P, M)
            t, o = torch.nan_to_num(xt[i : i + step]), obs[i : i + step]
            for lam in lams:
                h = torch.cholesky_solve(rhs, torch.linalg.cholesky(gram + lam * eye)).squeeze(-1)
                sse[lam] += float(((torch.einsum("bp,bpm->bm", h, zt) - t) ** 2)[o].sum())
        return sse, int(obs.sum())

    @torch.no_grad()
    def fill(self, z: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
        """``z`` (``(n, n_genes)``, standardised) with its NaN entries replaced by their conditional means, in row chunks.

        ``codes`` (the rows' groups): gap entries (:meth:`gaps`) are estimated at the gap penalty.
        """
        miss = torch.isnan(z)
        if not bool(miss.any()):
            return z
        G = z.shape[1]
        genes = torch.arange(G, device=z.device)
        step = max(1, FILL_VALUES // max(1, self.rank * G))
        out = z.clone()
        for i in range(0, len(z), step):
            zi = z[i : i + step]
            est = self.latent(genes.expand(len(zi), -1), zi) @ self.factors.float()
            gap = self.gap_latent(zi, None if codes is None else codes[i : i + step])
            if gap is not None:
                est = torch.where(gap[0], gap[1] @ self.factors.float(), est)
            out[i : i + step] = torch.where(miss[i : i + step], est, zi)
        return out

    def latent(self, genes: torch.Tensor, values: torch.Tensor, rows: torch.Tensor | None = None,
               lam: float | None = None) -> torch.Tensor:
        """Posterior mean of the factors, ``(B, rank)``, from ``values`` (``(B, N)``, NaN = missing) at ``genes``.

        ``lam``: this penalty for every row instead of :meth:`row_lam`'s.

        ``rows`` (long ``(B,)``, data rows; training only): a row whose values helped set the factors is
        left out of them. With ``X = sqrt(n) U Z`` (the SVD), removing row ``i`` from the covariance gives
        ``Z^T (I - u u^T) Z`` (``u = U[i]``), i.e. the factors ``M Z`` with ``M = I - c u u^T``,
        ``c = (1 - sqrt(1 - |u|^2)) / |u|^2``. The latent is computed with ``M Z`` and returned as ``M h``,
        so that :meth:`estimate` with ``Z`` gives the leave-one-out estimate. Without it the network would
        learn to correct in-sample residuals of the linear estimate, which are smaller than on new samples.
        """
        obs = ~torch.isnan(values)
        v = torch.nan_to_num(values.float())
        loo_rows = rows is not None and len(self.row_index) > 0
        if not loo_rows and len(genes) > 0 and bool((genes == genes[:1]).all()):
            return self._latent_shared_genes(genes[0], obs, v, lam)
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
        a = zs @ zs.transpose(1, 2) + self._penalty(obs.sum(1), lam)[:, None, None] * eye
        rhs = (zs @ v.unsqueeze(-1))  # (B, P, 1)
        h = torch.cholesky_solve(rhs, torch.linalg.cholesky(a)).squeeze(-1)
        if loo is not None:
            u, c = loo
            h = h - c * u * (u * h).sum(1, keepdim=True)
        return h

    def _penalty(self, n_obs: torch.Tensor, lam: float | None) -> torch.Tensor:
        """Each row's penalty: :meth:`row_lam`, or ``lam`` for every row."""
        if lam is None:
            return self.row_lam(n_obs)
        return torch.full((len(n_obs),), float(lam), device=n_obs.device)

    def _latent_shared_genes(self, genes: torch.Tensor, obs: torch.Tensor, v: torch.Tensor,
                             lam: float | None = None) -> torch.Tensor:
        """:meth:`latent` where every row has the same ``genes`` (``(N,)``) and only the observed ones differ.

        The system ``Z_S Z_S^T`` of a row is built from the smaller side: the observed genes' factors, or
        all genes' ``Z Z^T`` (once per batch) minus the missing genes' part, each row's genes padded to the
        batch's largest count, so memory grows with ``B x rank x min(observed, missing)``, not
        ``B x rank x N``; rows that observe the same genes share one factorisation.
        """
        zg = self.factors.float()[:, genes]  # (P, N)
        eye = torch.eye(self.rank, device=zg.device, dtype=zg.dtype)
        rhs = v @ zg.T  # (B, P): missing values are 0 in v
        if bool((obs == obs[:1]).all()):
            zo = zg[:, obs[0]]
            pen = self._penalty(obs[:1].sum(1), lam)[0]
            return torch.cholesky_solve(rhs.T, torch.linalg.cholesky(zo @ zo.T + pen * eye)).T
        miss = ~obs
        n_miss, n_obs = miss.sum(1), obs.sum(1)
        complement = int(n_miss.max()) <= int(n_obs.max())
        side, counts = (miss, n_miss) if complement else (obs, n_obs)
        width = int(counts.max())
        idx = torch.argsort((~side).to(torch.int8), dim=1, stable=True)[:, :width]  # each row's side genes first
        valid = torch.arange(width, device=zg.device)[None, :] < counts[:, None]
        zp = zg[:, idx].permute(1, 0, 2) * valid.unsqueeze(1)  # (B, P, width)
        part = zp @ zp.transpose(1, 2)
        a = (zg @ zg.T - part if complement else part) + self._penalty(n_obs, lam)[:, None, None] * eye
        return torch.cholesky_solve(rhs.unsqueeze(-1), torch.linalg.cholesky(a)).squeeze(-1)

    def estimate(self, latent: torch.Tensor, genes: torch.Tensor) -> torch.Tensor:
        """Estimates ``(B, M)`` of ``genes`` (long ``(B, M)``) from the latent ``(B, rank)``."""
        return torch.einsum("bp,pbm->bm", latent.float(), self.factors.float()[:, genes])
