"""What a trained GexBERT computes for samples: embeddings, restored genes, filled missing values (a mixin of :class:`~gexbert_sc.GexBERT`)."""

from __future__ import annotations

import warnings
from contextlib import nullcontext

import numpy as np
import torch
from anndata import AnnData

from gexbert_sc.train import resolve_device

from ._alignment import vocabulary_indices
from ._inference import default_repeats, encode_batches, fill_missing


class PredictMixin:
    """Inference methods of :class:`~gexbert_sc.GexBERT`.

    They read the model's ``module``, ``genes``, ``config``, ``device``, ``adata`` and its data helpers
    (``_data``, ``_check_compatible``, ``_scaled_reader``).
    """

    def _batches(self, adata, n_input, n_repeats, batch_size, random_state, device, decode_genes=None):
        """Check the inputs, then encode ``adata`` batch by batch (see :func:`encode_batches`)."""
        adata = self._data(adata)
        align = self._check_compatible(adata, warn=adata is not self.adata)
        if not self.is_trained:
            what = ("its outputs are random" if self.module.linear is None else
                    "its restored and imputed values are the linear path's estimates alone (the network's "
                    "correction starts at zero), and the summary part of its embeddings is random")
            warnings.warn(f"this GexBERT has not been trained: {what}. Call model.train() first, or load a trained "
                          "model with GexBERT.load(path, adata)", UserWarning, stacklevel=3)
        n_input = self.config.n_input if n_input is None else int(n_input)
        if n_input < 1:
            raise ValueError(f"n_input must be >= 1, got {n_input}")
        n_repeats = default_repeats(len(self.genes), n_input) if n_repeats is None else int(n_repeats)
        if n_repeats < 1:
            raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        dev = self.device if device is None else resolve_device(device)
        reader, scaler = self._scaled_reader(adata, align)
        batches = encode_batches(self.module, reader, scaler, n_input=n_input, n_repeats=n_repeats,
                                 batch_size=int(batch_size), random_state=random_state, device=dev,
                                 decode_genes=decode_genes)
        return adata, reader, scaler, batches

    def embed(
        self,
        adata: AnnData | None = None,
        *,
        n_input: int | None = None,
        n_repeats: int | None = None,
        batch_size: int = 128,
        random_state: int = 0,
        device: str | torch.device | None = None,
    ) -> np.ndarray:
        """Embeddings of the samples: the encoder's state, from which the decoder restores every gene.

        The summary (cls) embedding (``d_model`` columns): each sample is encoded from ``n_input`` of its
        observed genes; with more observed genes than that, ``n_repeats`` seeded random subsets (walking
        through one random order of the observed genes) are encoded and their summaries averaged. With a
        linear path (``config.linear_path`` not ``"none"``) the linear latent follows (``linear_rank``
        columns): the posterior mean of the factors given every observed gene. With the linear path the
        network only learns a correction, so the summary alone carries little (leiden on the synthetic
        default: adjusted Rand index with the cancer types 0.045 for the summary, 1.000 for the whole state).

        Parameters
        ----------
        adata
            Samples to embed (genes aligned by name); the attached AnnData if None.
        n_input
            Genes per encoding (default: ``config.n_input``).
        n_repeats
            Subsets averaged (default: enough to cover the vocabulary, at most 4). The cost is linear in it.
        batch_size
            Samples per forward pass.
        random_state
            Seeds the subsets.
        device
            Where to compute (default: where the model is).

        Returns
        -------
        ``(n_obs, module.state_dim)`` float32 array: ``d_model`` columns, plus ``linear_rank`` with a linear path.
        """
        *_, batches = self._batches(adata, n_input, n_repeats, batch_size, random_state, device)
        parts = [b.embedding.cpu().numpy() for b in batches]
        width = self.module.state_dim
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, width), np.float32)

    def restore(
        self,
        adata: AnnData | None = None,
        genes: list[str] | np.ndarray | None = None,
        *,
        n_input: int | None = None,
        n_repeats: int | None = None,
        standardized: bool = False,
        batch_size: int = 128,
        random_state: int = 0,
        device: str | torch.device | None = None,
        leave_out: bool = False,
    ) -> np.ndarray:
        """Restore (predict) the values of ``genes`` from each sample's observed genes.

        Each sample is embedded from its observed (non-NaN) genes as in :meth:`embed`, and the requested
        genes are decoded from that embedding.

        Parameters
        ----------
        adata
            Samples (genes aligned by name); the attached AnnData if None.
        genes
            Names of vocabulary genes to restore (need not be in ``adata``); all vocabulary genes if None.
        n_input, n_repeats, batch_size, random_state, device
            As in :meth:`embed`.
        standardized
            Return standardised values instead of the input's units.
        leave_out
            Restore with the linear path's factors as fitted on the training samples alone, before the
            validation samples were added to them: held-out predictions of the model's validation samples,
            which the network never trained on either (e.g. to calibrate intervals). Only in the session the
            model was set up in (those factors are not saved).

        Returns
        -------
        ``(n_obs, len(genes))`` float32 array, in the units of the input (each gene's training mean and sd,
        per batch with ``batch_key``) unless ``standardized``.
        """
        gidx = np.arange(len(self.genes)) if genes is None else vocabulary_indices(self.genes, genes)
        if leave_out and not self.can_leave_out:
            raise ValueError("leave_out=True needs the linear path's factors as fitted on the training samples in "
                             "this session (they are not saved): calibrate on samples the model never saw instead")
        with self.module.linear.held_out() if leave_out else nullcontext():
            _, _, scaler, batches = self._batches(adata, n_input, n_repeats, batch_size, random_state, device, gidx)
            parts = []
            for b in batches:
                r = b.restored.cpu().numpy()
                parts.append((r if standardized else scaler.inverse(r, b.rows, gidx)).astype(np.float32))
        return np.concatenate(parts) if parts else np.zeros((0, len(gidx)), np.float32)

    @property
    def can_leave_out(self) -> bool:
        """Whether :meth:`restore` can use the training samples' factors (``leave_out=True``): a fixed linear path fitted with validation samples in this session."""
        linear = self.module.linear
        return linear is not None and linear.can_hold_out

    @torch.no_grad()
    def impute(
        self,
        adata: AnnData | None = None,
        *,
        n_input: int | None = None,
        n_repeats: int | None = None,
        batch_size: int = 128,
        random_state: int = 0,
        device: str | torch.device | None = None,
    ) -> np.ndarray:
        """Fill the missing (NaN) entries of ``adata``'s vocabulary genes; observed values are kept.

        Only the missing entries are decoded, so the cost grows with the number of missing values, not with
        samples x genes.

        Parameters
        ----------
        adata
            Samples with NaN where missing (genes aligned by name); the attached AnnData if None.
        n_input, n_repeats, batch_size, random_state, device
            As in :meth:`embed`.

        Returns
        -------
        ``(n_obs, n_genes_of_the_model)`` float32 array in the input's units, columns in the order of
        ``model.genes``; vocabulary genes the AnnData lacks are restored for every sample.
        """
        a, reader, scaler, batches = self._batches(adata, n_input, n_repeats, batch_size, random_state, device)
        out = np.empty((a.n_obs, len(self.genes)), dtype=np.float32)  # filled batch by batch, no copies
        for b in batches:
            out[b.rows] = fill_missing(self.module, b, reader(b.rows), scaler)
        return out

