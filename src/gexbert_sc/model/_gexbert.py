"""GexBERT: the AnnData-facing model class (setup, train, embed, restore, save/load)."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from anndata import AnnData

from .. import __version__
from .._validate import (
    check_anndata,
    check_dtype,
    check_layer,
    check_matrix_values,
    check_not_counts,
    check_obs_key,
    check_observed,
    check_unique_genes,
    obs_labels,
)
from ..module import GexBERTModule
from ..train import (
    TrainPlan,
    ValidationSet,
    evaluate,
    micro_batch_size,
    observed_first_subsets,
    tokens_per_pass,
    train_module,
)
from ._config import GexBERTConfig, resolve_config

logger = logging.getLogger("gexbert_sc")

FORMAT = "gexbert_sc.model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
_ALL = "__all__"
_CHUNK_VALUES = 250_000  # values read per chunk when scanning a matrix


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` gives CUDA when available, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch sees no CUDA device; use device='cpu' or 'auto'")
    return dev


def _init_distributed(device: torch.device) -> torch.device:
    """Join the torch.distributed group that torchrun describes in the environment (if any)."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        logger.info("joined process group: rank %d of %d", dist.get_rank(), dist.get_world_size())
    return device


class GexBERT:
    """GexBERT transformer autoencoder of bulk gene expression, set up on an AnnData.

    The gene vocabulary is ``adata.var_names``. Each gene is standardised to mean 0 and sd 1 with
    statistics of the training samples (over all samples, or within each batch of
    ``adata.obs[batch_key]``, as pooled cohorts from different platforms need); outputs are put
    back into the input's units. Samples are split once (seeded by ``random_state``) into
    training and validation samples.

    Parameters
    ----------
    adata
        Samples x genes, values on a log scale (log counts, log ratios, z-scores), NaN where missing.
    layer
        Read this layer instead of ``adata.X``.
    config
        ``"cpu"`` (default; small, trains in minutes on 2 cores), ``"paper"`` (d 200, 8 layers,
        8 heads, 512 genes, 64 levels), a dict of settings or a :class:`GexBERTConfig`.
    batch_key
        Column of ``adata.obs`` whose groups (cohorts, platforms) are standardised separately.
    random_state
        Seeds the split, the weights, the gene sampling and the inference subsets.
    **config_overrides
        Settings of :class:`GexBERTConfig` that override the preset, e.g. ``n_input=128``.

    Examples
    --------
    >>> import gexbert_sc as gb
    >>> adata = gb.datasets.synthetic()
    >>> model = gb.GexBERT(adata).train()
    >>> emb = model.embed(adata)
    """

    def __init__(
        self,
        adata: AnnData,
        *,
        layer: str | None = None,
        config: str | dict | GexBERTConfig = "cpu",
        batch_key: str | None = None,
        random_state: int = 0,
        **config_overrides: Any,
    ):
        check_anndata(adata)
        check_layer(adata, layer)
        check_obs_key(adata, batch_key, "batch_key")
        check_unique_genes(adata)
        self.config = resolve_config(config, **config_overrides)
        where = f"adata.layers[{layer!r}]" if layer else "adata.X"
        check_dtype(adata.layers[layer] if layer is not None else adata.X, where)  # values: checked in _scan
        n_obs, n_vars = adata.shape
        if n_vars < 2:
            raise ValueError(f"adata has {n_vars} gene(s); GexBERT needs at least 2")
        n_val = int(round(self.config.val_fraction * n_obs))
        if self.config.val_fraction > 0 and n_val < 1:
            raise ValueError(
                f"adata has {n_obs} samples: val_fraction={self.config.val_fraction} leaves no validation sample; "
                "add samples, raise val_fraction, or set val_fraction=0 (then no early stopping)"
            )
        if n_obs - n_val < 2:
            raise ValueError(
                f"adata has {n_obs} sample(s): too few to train with val_fraction={self.config.val_fraction} "
                "(at least 2 training samples are needed); add samples or lower val_fraction"
            )
        self.layer = layer
        self.batch_key = batch_key
        self.random_state = int(random_state)
        self.genes = np.asarray(adata.var_names.astype(str))
        self.adata = adata
        self.history: list[dict] = []
        self.metrics: dict[str, float] = {}

        perm = np.random.default_rng(self.random_state).permutation(n_obs)
        self._val_rows = np.sort(perm[:n_val])
        self._train_rows = np.sort(perm[n_val:])

        if batch_key is None:
            self.batches = [_ALL]
            codes = np.zeros(n_obs, dtype=int)
        else:
            labels = obs_labels(adata, batch_key)
            if labels.isna().any():
                raise ValueError(f"adata.obs[{batch_key!r}] has {int(labels.isna().sum())} missing value(s); fill them")
            self.batches = sorted(labels.unique())
            codes = np.searchsorted(self.batches, labels.to_numpy())
        # one streaming pass over the rows: checks and per-batch statistics of the training rows
        self._mean, self._sd, pooled = self._scan(adata, codes, where)
        bad = np.isnan(self._mean)
        if bad.any():  # a gene with no training value in some batch: fall back on the pooled statistics
            self._mean = np.where(bad, np.nan_to_num(pooled[0], nan=0.0), self._mean)
            self._sd = np.where(bad, np.nan_to_num(pooled[1], nan=1.0), self._sd)
        # level cuts from the standardised values of a subsample of training rows (~1e6 values)
        tr = self._train_rows
        n_sub = min(len(tr), max(16, _CHUNK_VALUES // n_vars))
        sub = np.sort(np.random.default_rng(self.random_state).choice(tr, n_sub, replace=False))
        z_train = (self._aligned(adata, sub) - self._mean[codes[sub]]) / self._sd[codes[sub]]

        torch.manual_seed(self.random_state)
        self.module = self._build_module()
        edges, centres = _level_cuts(z_train, self.config, self.random_state)
        del z_train
        self.module.tokens.set_cuts(torch.from_numpy(edges), torch.from_numpy(centres))
        self.device = torch.device("cpu")
        logger.info(
            "set up GexBERT on %d samples x %d genes (%d training, %d validation)", n_obs, n_vars, len(tr), n_val
        )

    # ------------------------------------------------------------------ setup helpers
    def _scan(self, adata: AnnData, codes: np.ndarray, where: str):
        """Check the values and compute per-batch mean and sd of the training rows, chunk by chunk
        (works on backed AnnData without loading .X whole)."""
        n_obs, G = adata.n_obs, len(self.genes)
        n_groups = len(self.batches)
        is_train = np.zeros(n_obs, dtype=bool)
        is_train[self._train_rows] = True
        moments = _GroupMoments(n_groups, G)
        n_per_gene = np.zeros(G, dtype=np.int64)
        n_per_sample = np.zeros(n_obs, dtype=np.int64)
        gmin = np.full(G, np.inf)
        gmax = np.full(G, -np.inf)
        nonneg_int, vmax = True, -np.inf
        cols = self._alignment(adata)
        for rows in _chunks(np.arange(n_obs), max(16, _CHUNK_VALUES // max(G, 1))):
            x = self._aligned(adata, rows, cols)
            check_matrix_values(x, where)
            obs = ~np.isnan(x)
            n_per_gene += obs.sum(0)
            n_per_sample[rows] = obs.sum(1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                gmin = np.fmin(gmin, np.nanmin(x, 0))
                gmax = np.fmax(gmax, np.nanmax(x, 0))
            if obs.any():
                v = x[obs]
                vmax = max(vmax, float(v.max()))
                nonneg_int = nonneg_int and bool(v.min() >= 0) and bool(np.all(v == np.round(v)))
            tr = is_train[rows]
            if tr.any():
                moments.add(x if tr.all() else x[tr], codes[rows][tr])
        check_not_counts(nonneg_int, vmax, where)
        check_observed(n_per_gene, n_per_sample, gmin, gmax, adata.var_names, adata.obs_names, where)

        return (*moments.stats(), moments.pooled())

    def _build_module(self) -> GexBERTModule:
        c = self.config
        return GexBERTModule(
            n_genes=len(self.genes),
            d_model=c.d_model,
            n_layers=c.n_layers,
            n_heads=c.n_heads,
            d_ff=c.d_ff,
            n_levels=c.n_levels,
            value_encoding=c.value_encoding,
            dropout=c.dropout,
            summary_readout=c.summary_readout,
            activation=c.activation,
        )

    def _alignment(self, adata: AnnData) -> np.ndarray:
        """For each vocabulary gene, its column in ``adata`` (-1 where ``adata`` lacks it)."""
        idx = adata.var_names.get_indexer(self.genes)
        return idx

    def _check_compatible(self, adata: AnnData, *, warn: bool = True) -> np.ndarray:
        check_anndata(adata)
        check_layer(adata, self.layer)
        check_unique_genes(adata)
        if self.batch_key is not None:
            check_obs_key(adata, self.batch_key, "batch_key (the model's)")
        X = adata.layers[self.layer] if self.layer is not None else adata.X
        if getattr(adata, "isbacked", False) or adata is self.adata:
            check_dtype(X)  # values: checked chunk by chunk as they are read, or at setup
        else:
            check_matrix_values(X, f"adata.layers[{self.layer!r}]" if self.layer else "adata.X")
        cols = self._alignment(adata)
        n_known = int((cols >= 0).sum())
        if n_known == 0:
            raise ValueError(
                f"none of the {adata.n_vars} genes of this AnnData is in the model's vocabulary of {len(self.genes)} "
                f"genes (e.g. {self.genes[:3].tolist()}); check that var_names hold the same kind of gene identifiers"
            )
        if warn:
            n_unknown = adata.n_vars - n_known
            n_absent = len(self.genes) - n_known
            if n_unknown or n_absent:
                warnings.warn(
                    f"{n_unknown} of the AnnData's {adata.n_vars} genes are not in the model's vocabulary and are "
                    f"left out; {n_absent} of the model's {len(self.genes)} genes are absent from the AnnData and "
                    "are treated as missing",
                    UserWarning,
                    stacklevel=3,
                )
        return cols

    def _aligned(self, adata: AnnData, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """Raw values of ``rows``, one column per vocabulary gene (NaN where absent), float32."""
        if cols is None:
            cols = self._alignment(adata)
        X = adata.layers[self.layer] if self.layer is not None else adata.X
        rows = np.asarray(rows)
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1):
            block = X[int(rows[0]) : int(rows[-1]) + 1]  # contiguous: a slice (fast on backed data)
        elif len(rows) > 1 and not np.all(np.diff(rows) > 0):
            # backed (h5py) reads need strictly increasing rows: read each once, then expand
            uniq, inverse = np.unique(rows, return_inverse=True)
            block = X[uniq]
            block = (block.toarray() if sp.issparse(block) else np.asarray(block))[inverse]
        else:
            block = X[rows]
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        block = block.astype(np.float32, copy=False)
        if len(cols) == block.shape[1] and np.array_equal(cols, np.arange(len(cols))):
            # same genes, same order: no reindexing, but never hand out a view of the user's matrix
            shared = isinstance(X, np.ndarray) and np.shares_memory(block, X)
            return block.copy() if shared or not block.flags.writeable else block
        out = np.full((len(rows), len(self.genes)), np.nan, dtype=np.float32)
        have = cols >= 0
        out[:, have] = block[:, cols[have]]
        return out

    def _batch_codes(self, adata: AnnData, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-row index into (mean, sd) tables for ``adata``; unseen batches get their own statistics."""
        if self.batch_key is None:
            return np.zeros(adata.n_obs, dtype=int), self._mean, self._sd
        labels = obs_labels(adata, self.batch_key)
        if labels.isna().any():
            raise ValueError(f"adata.obs[{self.batch_key!r}] has missing values; fill them")
        labels = labels.to_numpy()
        known = {b: i for i, b in enumerate(self.batches)}
        new = sorted(set(labels) - set(known))
        mean, sd = self._mean, self._sd
        if new:
            logger.info("batches %s are new to the model: they are standardised with their own statistics", new)
            rows = np.flatnonzero(np.isin(labels, new))
            codes_new = np.searchsorted(new, labels[rows])
            moments = _GroupMoments(len(new), len(self.genes))
            for pos in _chunks(np.arange(len(rows)), max(16, _CHUNK_VALUES // max(len(self.genes), 1))):
                moments.add(self._aligned(adata, rows[pos], cols), codes_new[pos])
            m, s = moments.stats()
            m = np.where(np.isnan(m), self._mean.mean(0), m)
            s = np.where(np.isnan(s), self._sd.mean(0), s)
            mean, sd = np.vstack([mean, m]), np.vstack([sd, s])
            known.update({b: len(self.batches) + i for i, b in enumerate(new)})
        return np.array([known[b] for b in labels]), mean, sd

    def _standardizer(self, adata: AnnData, cols: np.ndarray):
        codes, mean, sd = self._batch_codes(adata, cols)

        def fetch(rows: np.ndarray) -> np.ndarray:
            c = codes[rows]
            return (self._aligned(adata, rows, cols) - mean[c]) / sd[c]

        return fetch, codes, mean, sd

    # ------------------------------------------------------------------ training
    def train(
        self,
        *,
        phase1_epochs: int | None = None,
        phase2_epochs: int | None = None,
        device: str | torch.device = "auto",
        progress: bool = True,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
    ) -> GexBERT:
        """Pretrain in the paper's two phases, watching the validation loss.

        Phase 1 restores the same genes that went in; phase 2 restores other random genes of the
        same sample. Each phase stops early when its validation MSE stops improving
        (``config.patience``) and keeps its best weights. On CUDA, bf16 autocast is used.

        Parameters
        ----------
        phase1_epochs, phase2_epochs
            Override the maximum epochs of each phase from the config.
        device
            ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or a torch device.
        progress
            Show a tqdm progress bar.
        checkpoint_dir
            Folder for ``checkpoint.pt``, written atomically every ``checkpoint_every`` epochs and
            at the end of each phase.
        checkpoint_every
            Epochs between checkpoints.
        resume
            Continue from the checkpoint in ``checkpoint_dir`` (if there is one). Build the model
            with the same AnnData, settings and ``random_state`` as the interrupted run; the
            result then equals an uninterrupted run on CPU.

        Notes
        -----
        Launched by ``torchrun`` (``WORLD_SIZE`` > 1), training is data-parallel (DDP): the process
        group is set up here (NCCL on CUDA, one GPU per process by ``LOCAL_RANK``; gloo on CPU),
        each process computes its share of every batch, and gradients are averaged, which matches
        single-process training up to floating-point summation order. Every process ends with the
        same weights; only rank 0 writes checkpoints.

        Returns
        -------
        The model itself; ``history`` holds one record per epoch and ``metrics`` the final
        validation MSEs (``val_same``, ``val_other``) and the MSE of predicting the training mean
        (``val_mean``), in standardised units.
        """
        c = self.config
        p1 = c.phase1_epochs if phase1_epochs is None else int(phase1_epochs)
        p2 = c.phase2_epochs if phase2_epochs is None else int(phase2_epochs)
        if p1 < 0 or p2 < 0:
            raise ValueError("phase1_epochs and phase2_epochs must be >= 0")
        self.device = _init_distributed(resolve_device(device))
        self.module.to(self.device)
        cols = self._alignment(self.adata)
        fetch_np, *_ = self._standardizer(self.adata, cols)

        def fetch(rows: np.ndarray) -> torch.Tensor:
            # rows are read batch by batch (sorted): a backed AnnData is streamed, never loaded whole
            return torch.from_numpy(fetch_np(np.asarray(rows)))

        plan = self._plan((p1, p2))
        train_module(
            self.module,
            fetch,
            len(self.genes),
            self._train_rows,
            self._val_rows,
            plan,
            device=self.device,
            seed=self.random_state,
            progress=progress,
            history=self.history,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            resume=resume,
            fingerprint=self._fingerprint(),
        )
        if len(self._val_rows):
            vs = ValidationSet.make(self._val_rows, len(self.genes), plan, self.random_state + 1)
            self.metrics = evaluate(self.module, fetch, vs, 64, self.device)
            logger.info(
                "validation MSE: restore input genes %.4f, restore other genes %.4f, predict training mean %.4f",
                self.metrics["val_same"],
                self.metrics["val_other"],
                self.metrics["val_mean"],
            )
        self.module.eval()
        return self

    def _fingerprint(self) -> str:
        """Identifies the vocabulary, split and standardisation (for resuming checkpoints)."""
        import hashlib

        h = hashlib.sha256()
        for part in (self.genes.astype("U").tobytes(), self._train_rows.tobytes(), self._val_rows.tobytes(),
                     np.ascontiguousarray(self._mean).tobytes(), np.ascontiguousarray(self._sd).tobytes()):
            h.update(part)
        return h.hexdigest()

    def _plan(self, phase_epochs: tuple[int, int]) -> TrainPlan:
        c = self.config
        return TrainPlan(
            n_input=c.n_input,
            n_target=c.n_target,
            batch_size=c.batch_size,
            lr=c.lr,
            weight_decay=c.weight_decay,
            phase_epochs=phase_epochs,
            patience=c.patience,
            min_steps_per_epoch=c.min_steps_per_epoch,
        )

    # ------------------------------------------------------------------ inference
    #: At most this many input subsets by default. Filling 30% of a 1,000 x 2,000 matrix (cpu
    #: preset): RMSE 0.8004 with 1 subset, 0.7950 with 4 and 0.7947 with 8, at a cost linear in
    #: the subsets (encoding dominates): 4 keeps nearly all of the gain for half the time of 8.
    MAX_DEFAULT_REPEATS = 4

    def _default_repeats(self, n_input: int) -> int:
        return int(min(self.MAX_DEFAULT_REPEATS, max(1, math.ceil(len(self.genes) / n_input))))

    @torch.no_grad()
    def _encode(self, adata, n_input, n_repeats, batch_size, random_state, device, decode_genes=None):
        """Yield ``(rows, embedding (B, d), restored (B, M) or None, codes, mean, sd)`` batch by batch.

        The embedding is the mean of the ``R`` subsets' summaries; genes are restored by decoding
        it once (on the 1,000 x 2,000 fill benchmark this gives the same RMSE, 0.7947, as averaging
        the R subsets' decodings, at 1/R of the decoding cost)."""
        adata = self.adata if adata is None else adata
        cols = self._check_compatible(adata, warn=adata is not self.adata)
        n_input = self.config.n_input if n_input is None else int(n_input)
        if n_input < 1:
            raise ValueError(f"n_input must be >= 1, got {n_input}")
        n_repeats = self._default_repeats(n_input) if n_repeats is None else int(n_repeats)
        if n_repeats < 1:
            raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
        dev = self.device if device is None else resolve_device(device)
        self.module.to(dev).eval()
        fetch, codes, mean, sd = self._standardizer(adata, cols)
        gen = torch.Generator().manual_seed(int(random_state))
        gdec = None if decode_genes is None else torch.as_tensor(decode_genes, dtype=torch.long, device=dev)
        for start in range(0, adata.n_obs, batch_size):
            rows = np.arange(start, min(start + batch_size, adata.n_obs))
            z = torch.from_numpy(fetch(rows))
            subsets = observed_first_subsets(~torch.isnan(z), n_input, n_repeats, gen).to(dev)
            z = z.to(dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                emb = sum(self._encode_rows(s, z.gather(1, s)) for s in subsets) / len(subsets)
                restored = None if gdec is None else self._decode(emb, gdec)
            yield rows, emb, restored, codes, mean, sd

    def _encode_rows(self, genes: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """``module.encode`` in passes of cache-sized row chunks on CPU (paper preset, 128 rows:
        about 1.45x faster in chunks of 4 here); float32 ``(B, d)``."""
        step = micro_batch_size(self.module, genes.shape[1] + 1, len(genes), genes.device)
        return torch.cat([self.module.encode(genes[i : i + step], values[i : i + step]).float()
                          for i in range(0, len(genes), step)])

    def _decode(self, emb: torch.Tensor, genes: torch.Tensor) -> torch.Tensor:
        """Decode ``genes`` (long ``(M,)`` shared by all rows, or ``(B, M)`` per row) from ``emb``
        ``(B, d)`` in chunks of a bounded number of tokens, so the cost per gene stays flat: on CPU
        :func:`~gexbert_sc.train.tokens_per_pass` (paper preset: about 2,100 us per gene for 64
        samples in chunks of 4,096 tokens vs 3,000 us in chunks of 32,768), 32,768 elsewhere."""
        B = emb.shape[0]
        chunk = max(1, (tokens_per_pass(self.module, emb.device) or 1 << 15) // max(B, 1))
        out = torch.empty(B, genes.shape[-1], device=emb.device)
        for g0 in range(0, genes.shape[-1], chunk):
            g = genes[..., g0 : g0 + chunk].expand(B, -1)
            out[:, g0 : g0 + chunk] = self.module.decode(emb, g).float()
        return out

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
        """Summary (cls) embeddings of the samples.

        Each sample is encoded from ``n_input`` of its observed genes; with more observed genes
        than that, ``n_repeats`` seeded random subsets (walking through one random order of the
        observed genes) are encoded and their summaries averaged.

        Parameters
        ----------
        adata
            Samples to embed (genes aligned by name); the training AnnData if None.
        n_input
            Genes per encoding (default: ``config.n_input``).
        n_repeats
            Subsets averaged (default: enough to cover the vocabulary, at most 4). The cost is
            linear in it.
        batch_size
            Samples per forward pass.
        random_state
            Seeds the subsets.
        device
            Where to compute (default: where the model is).

        Returns
        -------
        ``(n_obs, d_model)`` float32 array.
        """
        parts = [
            s.cpu().numpy()
            for _, s, *_ in self._encode(adata, n_input, n_repeats, batch_size, random_state, device)
        ]
        d = self.config.d_model
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, d), np.float32)

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
    ) -> np.ndarray:
        """Restore (predict) the values of ``genes`` from each sample's observed genes.

        Each sample is embedded from its observed (non-NaN) genes as in :meth:`embed`, and the
        requested genes are decoded from that embedding.

        Parameters
        ----------
        adata
            Samples (genes aligned by name); the training AnnData if None.
        genes
            Names of vocabulary genes to restore (need not be in ``adata``); all vocabulary genes
            if None.
        n_input, n_repeats, batch_size, random_state, device
            As in :meth:`embed`.
        standardized
            Return standardised values instead of the input's units.

        Returns
        -------
        ``(n_obs, len(genes))`` float32 array, in the units of the input (each gene's training mean
        and sd, per batch with ``batch_key``) unless ``standardized``.
        """
        gidx = self._gene_indices(genes)
        parts = []
        for rows, _, rest, codes, mean, sd in self._encode(
            adata, n_input, n_repeats, batch_size, random_state, device, decode_genes=gidx
        ):
            r = rest.cpu().numpy()
            if not standardized:
                c = codes[rows]
                r = r * sd[c][:, gidx] + mean[c][:, gidx]
            parts.append(r.astype(np.float32))
        return np.concatenate(parts) if parts else np.zeros((0, len(gidx)), np.float32)

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

        Only the missing entries are decoded (per batch, each sample's missing genes, padded to the
        batch's largest count), so the cost grows with the number of missing values, not with
        samples x genes.

        Parameters
        ----------
        adata
            Samples with NaN where missing (genes aligned by name); the training AnnData if None.
        n_input, n_repeats, batch_size, random_state, device
            As in :meth:`embed`.

        Returns
        -------
        ``(n_obs, n_genes_of_the_model)`` float32 array in the input's units, columns in the order of
        ``model.genes``; vocabulary genes the AnnData lacks are restored for every sample.
        """
        a = self.adata if adata is None else adata
        out = np.empty((a.n_obs, len(self.genes)), dtype=np.float32)  # filled batch by batch, no copies
        cols = self._alignment(a)
        for rows, emb, _, codes, mean, sd in self._encode(
            adata, n_input, n_repeats, batch_size, random_state, device
        ):
            x = self._aligned(a, rows, cols)
            miss = np.isnan(x)
            if miss.any():
                counts = miss.sum(1)
                width = int(counts.max())
                # each row's missing genes first; the padding (observed genes) is decoded and discarded
                order = np.argsort(~miss, axis=1, kind="stable")[:, :width]
                genes = torch.as_tensor(order, dtype=torch.long, device=emb.device)
                with torch.autocast(emb.device.type, dtype=torch.bfloat16, enabled=emb.device.type == "cuda"):
                    z = self._decode(emb, genes).cpu().numpy()
                c = codes[rows]
                filled = z * sd[c[:, None], order] + mean[c[:, None], order]
                r_idx, k_idx = np.nonzero(np.arange(width)[None, :] < counts[:, None])
                x[r_idx, order[r_idx, k_idx]] = filled[r_idx, k_idx]
            out[rows] = x
        return out

    def _gene_indices(self, genes) -> np.ndarray:
        if genes is None:
            return np.arange(len(self.genes))
        if isinstance(genes, str):
            genes = [genes]
        genes = np.asarray(list(genes), dtype=str)
        lookup = {g: i for i, g in enumerate(self.genes)}
        unknown = [g for g in genes if g not in lookup]
        if unknown:
            raise KeyError(
                f"{len(unknown)} requested gene(s) are not in the model's vocabulary, e.g. {unknown[:5]}; "
                "the model can only restore genes it was trained on (see model.genes)"
            )
        return np.array([lookup[g] for g in genes], dtype=np.int64)

    # ------------------------------------------------------------------ persistence
    def save(self, dir_path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save weights (safetensors) and everything else needed to use the model (JSON).

        The directory is written next to its destination under a temporary name and then
        renamed into place, so an interrupted save never leaves a half-written model; with
        ``overwrite=True`` an existing model is replaced only once the new one is complete.

        Parameters
        ----------
        dir_path
            Target directory.
        overwrite
            Replace an existing directory.
        """
        from safetensors.torch import save_file

        dest = Path(dir_path)
        if dest.exists() and not overwrite:
            raise FileExistsError(f"{dest} exists; pass overwrite=True to replace it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        try:
            tensors = {f"module.{k}": v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}
            tensors["standardize.mean"] = torch.from_numpy(np.ascontiguousarray(self._mean, dtype=np.float32))
            tensors["standardize.sd"] = torch.from_numpy(np.ascontiguousarray(self._sd, dtype=np.float32))
            save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
            meta = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "package_version": __version__,
                "config": self.config.to_dict(),
                "genes": self.genes.tolist(),
                "layer": self.layer,
                "batch_key": self.batch_key,
                "batches": list(self.batches),
                "random_state": self.random_state,
                "history": self.history,
                "metrics": self.metrics,
            }
            with open(tmp / META_FILE, "w") as fh:
                json.dump(meta, fh)
                fh.flush()
                os.fsync(fh.fileno())
            if dest.exists():
                old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
                os.replace(dest, old)
                os.replace(tmp, dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        logger.info("saved GexBERT to %s", dest)

    @classmethod
    def load(
        cls, dir_path: str | os.PathLike, adata: AnnData | None = None, *, device: str | torch.device = "cpu"
    ) -> GexBERT:
        """Load a model saved with :meth:`save` (no pickle is ever read).

        Parameters
        ----------
        dir_path
            Directory written by :meth:`save`.
        adata
            AnnData to attach. Genes are aligned by name: genes the model does not know are left
            out with a warning that counts them; known genes the AnnData lacks are treated as
            missing.
        device
            Where to put the weights.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        d = Path(dir_path)
        if not d.is_dir():
            raise FileNotFoundError(f"no model directory at {d}")
        missing = [f for f in (META_FILE, WEIGHTS_FILE) if not (d / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{d} is not a complete GexBERT model: missing {missing}; save it again")
        try:
            meta = json.loads((d / META_FILE).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{d / META_FILE} is not valid JSON ({e}); the model is damaged, save it again") from None
        if meta.get("format") != FORMAT:
            raise ValueError(f"{d} does not hold a gexbert_sc model (format {meta.get('format')!r})")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{d} was saved in model format {meta.get('format_version')} (package {meta.get('package_version')}); "
                f"this gexbert_sc ({__version__}) reads format {FORMAT_VERSION}"
            )
        try:
            tensors = load_file(str(d / WEIGHTS_FILE))
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{d / WEIGHTS_FILE} cannot be read ({e}); the file is damaged, save the model again") from None

        self = cls.__new__(cls)
        # models saved before the activation setting existed used GELU
        self.config = resolve_config(GexBERTConfig(), **{"activation": "gelu", **meta["config"]})
        self.genes = np.asarray(meta["genes"], dtype=str)
        self.layer = meta["layer"]
        self.batch_key = meta["batch_key"]
        self.batches = list(meta["batches"])
        self.random_state = int(meta["random_state"])
        self.history = list(meta.get("history", []))
        self.metrics = dict(meta.get("metrics", {}))
        self._train_rows = self._val_rows = np.zeros(0, dtype=int)
        try:
            self._mean = tensors.pop("standardize.mean").numpy().astype(np.float32)
            self._sd = tensors.pop("standardize.sd").numpy().astype(np.float32)
        except KeyError:
            raise ValueError(f"{d / WEIGHTS_FILE} lacks the standardisation statistics; save the model again") from None
        expect = (len(self.batches), len(self.genes))
        if self._mean.shape != expect or self._sd.shape != expect:
            raise ValueError(f"standardisation statistics of shape {self._mean.shape} do not match {expect} in {d}")
        self.module = self._build_module()
        state = {k.removeprefix("module."): v for k, v in tensors.items()}
        try:
            self.module.load_state_dict(state, strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise ValueError(f"the weights in {d} do not match its config ({first}); the model is damaged or mixed up") from None
        self.device = resolve_device(device)
        self.module.to(self.device).eval()
        self.adata = None
        if adata is not None:
            self._check_compatible(adata, warn=True)
            self.adata = adata
        logger.info("loaded GexBERT from %s (%d genes)", d, len(self.genes))
        return self

    def __repr__(self) -> str:
        c = self.config
        trained = f"trained {len(self.history)} epochs" if self.history else "untrained"
        return (
            f"GexBERT({len(self.genes)} genes, d_model={c.d_model}, n_layers={c.n_layers}, n_heads={c.n_heads}, "
            f"value_encoding={c.value_encoding!r}, {trained})"
        )


def _chunks(rows: np.ndarray, size: int):
    """Consecutive slices of ``rows`` of at most ``size``."""
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


class _GroupMoments:
    """Per-group, per-gene count, sum and sum of squares of observed values, fed chunk by chunk."""

    def __init__(self, n_groups: int, n_genes: int):
        self.n = np.zeros((n_groups, n_genes))
        self.s1 = np.zeros((n_groups, n_genes))
        self.s2 = np.zeros((n_groups, n_genes))

    def add(self, x: np.ndarray, codes: np.ndarray) -> None:
        """Add the rows ``x`` (NaN = missing), row ``i`` belonging to group ``codes[i]``."""
        for g in np.unique(codes):
            m = codes == g
            xm = x if m.all() else x[m]
            self.n[g] += (~np.isnan(xm)).sum(0)
            xm = np.nan_to_num(xm).astype(np.float64)
            self.s1[g] += xm.sum(0)
            self.s2[g] += np.einsum("ij,ij->j", xm, xm)

    @staticmethod
    def _finish(n, s1, s2) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s1 / n
            sd = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
        sd = np.where(np.isfinite(sd) & (sd > 1e-6), sd, 1.0)  # constant or single value: sd 1
        return np.where(n > 0, mean, np.nan).astype(np.float32), np.where(n > 0, sd, np.nan).astype(np.float32)

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-group mean and sd, NaN where a group has no value of a gene."""
        return self._finish(self.n, self.s1, self.s2)

    def pooled(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd over all groups together."""
        return self._finish(self.n.sum(0), self.s1.sum(0), self.s2.sum(0))


def _level_cuts(z: np.ndarray, config: GexBERTConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges (``n_levels - 1``) and level centres (``n_levels``) on the standardised scale."""
    L = config.n_levels
    if config.level_cut == "uniform":
        centres = np.linspace(-config.clip, config.clip, L)
    else:
        v = z[np.isfinite(z)].ravel()
        if len(v) > 2_000_000:
            v = np.random.default_rng(seed).choice(v, 2_000_000, replace=False)
        if len(v) < L:
            centres = np.linspace(-config.clip, config.clip, L)
        else:
            centres = np.quantile(v, (np.arange(L) + 0.5) / L)
    centres = np.maximum.accumulate(centres.astype(np.float64))
    centres = centres + np.arange(L) * 1e-6  # strictly increasing even where quantiles tie
    edges = (centres[1:] + centres[:-1]) / 2
    return edges.astype(np.float32), centres.astype(np.float32)
