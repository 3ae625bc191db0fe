"""The linear path's own penalty for genes a group of samples never measured (a mixin of :class:`~gexbert_sc.module.GaussianLinearPath`; pure torch)."""

from __future__ import annotations

import logging
import math

import torch

logger = logging.getLogger(__name__)

#: Penalties tried for the entries of genes a sample's group never measured (see :meth:`GaussianLinearPath.fit`).
GAP_LAMS = tuple(float(x) for x in torch.logspace(-1, 2, 13))
#: Fraction of the measured (group, gene) blocks, of genes more than one group measures, hidden to pick that penalty
#: (at most one block per gene, at least :data:`GAP_MIN_BLOCKS`).
GAP_PICK_FRACTION = 0.2
GAP_MIN_BLOCKS = 10


class GapPenaltyMixin:
    """Gap entries of :class:`~gexbert_sc.module.GaussianLinearPath`: picking their penalty, finding them, estimating them.

    Reads the path's ``factors``, ``rank``, ``log_lam``, ``group_measured`` and ``log_lam_gap`` and its fitting
    helpers (``set_factors``, ``_pick_lam``, ``_em``, ``_sse_by_penalty``, ``latent``).
    """

    @staticmethod
    def _measured(z: torch.Tensor, codes: torch.Tensor, n_groups: int) -> torch.Tensor:
        """``(n_groups, n_genes)`` bool: group ``g`` has an observed value of the gene among the rows ``z``."""
        counts = torch.zeros(n_groups, z.shape[1], device=z.device)
        counts.index_add_(0, codes.to(z.device).long(), (~torch.isnan(z)).float())
        return counts > 0

    def _pick_gap(self, z: torch.Tensor, val: torch.Tensor, codes: torch.Tensor, val_codes: torch.Tensor,
                  lams: list[float], generator, most: int) -> None:
        """Pick the gap penalty in an EM with blocks hidden (see :meth:`fit`, which then starts again from ``z``).

        Sets :attr:`group_measured` and :attr:`log_lam_gap`, or leaves them empty where there are no gaps or no
        block can be hidden and scored.
        """
        codes, val_codes = codes.long().to(z.device), val_codes.long().to(z.device)
        n_groups = int(max(int(codes.max()), int(val_codes.max()) if len(val_codes) else 0)) + 1
        measured = self._measured(z, codes, n_groups)
        self.set_factors(z)
        if not bool((~measured & measured.any(0)).any()):
            return  # every group measured every gene some group did: no gap entries
        # blocks to hide: measured by the group in its training rows, scored on its validation rows, and measured by
        # another group too (so that the hidden gene stays measured); at most one per gene
        scored = self._measured(val, val_codes, n_groups) & measured & (measured.sum(0) >= 2)
        genes = torch.nonzero(scored.any(0)).squeeze(1)
        if len(genes) == 0:
            return
        want = max(GAP_MIN_BLOCKS, round(GAP_PICK_FRACTION * int(scored.sum())))
        genes = genes[torch.randperm(len(genes), generator=generator)[:want]]
        pick = torch.rand(len(genes), n_groups, generator=generator) * scored[:, genes].T.float().cpu()
        groups = pick.argmax(1).to(z.device)  # a random group among those that qualify, per gene
        hide = torch.zeros(n_groups, z.shape[1], dtype=torch.bool, device=z.device)
        hide[groups, genes] = True
        z_h = z.masked_fill(hide[codes], float("nan"))
        val_hide = hide[val_codes] & ~torch.isnan(val)
        val_h = val.masked_fill(val_hide, float("nan"))
        truth = val.masked_fill(~val_hide, float("nan"))
        self.group_measured = measured & ~hide
        self.set_factors(z_h)
        self._pick_lam(val_h, lams, generator)
        self.log_lam_gap = self.log_lam.detach().clone().reshape(1)
        self._em(z_h, val_h, lams, generator, most, codes, gap_truth=(val_h, truth))
        self._pick_gap_lam(val_h, truth)
        self.group_measured = measured
        logger.debug("linear path: gap penalty %.3g picked on %d hidden (group, gene) blocks",
                     float(self.log_lam_gap.exp()), len(genes))

    def _pick_gap_lam(self, values: torch.Tensor, truth: torch.Tensor) -> dict:
        """Set the gap penalty to the value of :data:`GAP_LAMS` that best estimates ``truth`` (NaN: not scored) from ``values``."""
        rows = torch.nonzero(~torch.isnan(truth).all(1)).squeeze(1)
        genes = torch.arange(values.shape[1], device=values.device).expand(len(rows), -1)
        sse, n = self._sse_by_penalty(genes, values[rows], genes, truth[rows], GAP_LAMS)
        scores = {lam: v / max(1, n) for lam, v in sse.items()}
        self.log_lam_gap = torch.tensor([math.log(min(scores, key=scores.get))], device=self.factors.device)
        return scores

    @property
    def lam_gap(self) -> float | None:
        """The penalty of gap entries (see :meth:`fit`), None where there is none."""
        return float(self.log_lam_gap.exp()[0]) if len(self.log_lam_gap) else None

    def gaps(self, missing: torch.Tensor, codes: torch.Tensor | None) -> torch.Tensor | None:
        """Which missing entries (``(B, n_genes)`` bool) are gaps: genes the row's group (``codes``, ``(B,)``) never measured in the fitted rows but another group did.

        None without a gap penalty or ``codes``; codes of groups the fit did not see have no gaps.
        """
        if codes is None or self.lam_gap is None:
            return None
        codes = codes.long().to(missing.device)
        known = (codes >= 0) & (codes < len(self.group_measured))
        gap = ~self.group_measured & self.group_measured.any(0)
        return missing & gap[codes.clamp(0, len(gap) - 1)] & known.unsqueeze(1)

    def gap_latent(self, z: torch.Tensor, codes: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The gap entries of rows ``z`` (every gene, NaN = missing) and their latent at the gap penalty.

        Returns ``(gaps, latent)`` (``(B, n_genes)`` bool, ``(B, rank)``; :meth:`estimate` of the latent at a
        gap entry replaces the estimate of :meth:`latent`'s), or None where no row has a gap entry.
        """
        gaps = self.gaps(torch.isnan(z), codes)
        if gaps is None or not bool(gaps.any()):
            return None
        genes = torch.arange(z.shape[1], device=z.device)
        return gaps, self.latent(genes.expand(len(z), -1), z, lam=self.lam_gap)
