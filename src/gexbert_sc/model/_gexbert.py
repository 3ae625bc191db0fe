"""GexBERT: the AnnData-facing model class (set up, train, embed, restore, impute, save/load)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from typing import Any

import numpy as np
import torch
from anndata import AnnData

from gexbert_sc._validate import (
    check_anndata,
    check_dtype,
    check_layer,
    check_matrix_values,
    check_obs_key,
    check_unique_genes,
)
from gexbert_sc.module import GexBERTModule
from gexbert_sc.train import (
    Trainer,
    TrainPlan,
    ValidationSet,
    check_random_state,
    derive_seed,
    evaluate,
    init_distributed,
    resolve_device,
)

from ._alignment import GeneAlignment
from ._config import GexBERTConfig, resolve_config
from ._io import as_numpy, read_model, split_tensors, write_model
from ._levels import level_cuts
from ._predict import PredictMixin
from ._reader import RowReader, matrix_of, rows_per_chunk, where_of
from ._scan import scan
from ._split import check_sample_count, split_rows
from ._standardizer import ALL, GroupMoments, Standardizer, batch_labels

logger = logging.getLogger("gexbert_sc")

#: What a model saved before a setting existed was trained with (its model.json lacks the key).
PRE_SETTING_DEFAULTS = {"activation": "gelu", "linear_path": "none", "n_input_min": None}
#: The linear path's factors come from at most this many training rows (a random subset).
LINEAR_FIT_ROWS = 4096


class GexBERT(PredictMixin):
    """GexBERT transformer autoencoder of bulk gene expression, set up on an AnnData.

    The gene vocabulary is ``adata.var_names``. Each gene is standardised to mean 0 and sd 1 with
    statistics of the training samples (over all samples, or within each batch of
    ``adata.obs[batch_key]``, as pooled cohorts from different platforms need); outputs are put back
    into the input's units. Samples are split once (seeded by ``random_state``) into training and
    validation samples.

    Parameters
    ----------
    adata
        Samples x genes, values on a log scale (log counts, log ratios, z-scores), NaN where missing.
        At least 20 samples (a useful model needs a few hundred).
    layer
        Read this layer instead of ``adata.X``.
    config
        ``"cpu"`` (default; small, trains in minutes on 2 cores), ``"paper"`` (d 200, 8 layers, 8 heads,
        512 genes, 64 levels), a dict of settings or a :class:`GexBERTConfig`.
    batch_key
        Column of ``adata.obs`` whose groups (cohorts, platforms) are standardised separately. With a
        linear path, genes that a batch never measured but another did get their own penalty in that
        batch's samples (picked on (batch, gene) blocks hidden on purpose), since their covariance with
        the batch's measured genes is seen only in the other batches.
    random_state
        Seeds the split, the weights, the gene sampling and the inference subsets; None draws a seed
        (logged, and kept in ``model.random_state``).
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
        random_state: int | None = 0,
        **config_overrides: Any,
    ):
        check_anndata(adata)
        check_layer(adata, layer)
        check_obs_key(adata, batch_key, "batch_key")
        check_unique_genes(adata)
        check_dtype(matrix_of(adata, layer), where_of(layer))  # the values are checked in the set-up scan
        self.config = resolve_config(config, n_obs=adata.n_obs, **config_overrides)
        self.random_state = check_random_state(random_state)
        if adata.n_vars < 2:
            raise ValueError(f"adata has {adata.n_vars} gene(s); GexBERT needs at least 2")
        check_sample_count(adata.n_obs)
        self.layer, self.batch_key = layer, batch_key
        self.genes = np.asarray(adata.var_names.astype(str))
        self.history: list[dict] = []
        self.metrics: dict[str, float] = {}
        self.device = torch.device("cpu")
        self.adata = None
        labels = batch_labels(adata, batch_key)
        batches = [ALL] if labels is None else sorted(set(labels))
        codes = np.zeros(adata.n_obs, dtype=np.int64) if labels is None else np.searchsorted(batches, labels)
        moments = self._attach(adata, codes=codes, n_groups=len(batches))
        self.standardizer = Standardizer.from_moments(batches, moments)
        torch.manual_seed(self.random_state)
        self.module = GexBERTModule.from_config(self.config, len(self.genes))
        self._set_level_cuts(adata)
        self._fit_linear_path(adata)
        logger.info("set up GexBERT on %d samples x %d genes (%d training, %d validation)",
                    adata.n_obs, adata.n_vars, len(self._train_rows), len(self._val_rows))

    # ------------------------------------------------------------------ data
    def _attach(self, adata: AnnData, *, codes=None, n_groups: int = 1, allow_absent: bool = False) -> GroupMoments:
        """Make ``adata`` the training data: split its rows, check every value in one streaming pass, and return the moments of the training rows (per batch ``codes``)."""
        self._train_rows, self._val_rows = split_rows(adata.n_obs, self.config.val_fraction, self.random_state)
        align = self.align(adata)
        codes = np.zeros(adata.n_obs, dtype=np.int64) if codes is None else codes
        moments = scan(RowReader(adata, self.layer, align), codes, n_groups, self._train_rows, where_of(self.layer),
                       self.genes, adata.obs_names, allow_empty_genes=allow_absent)
        self.adata = adata
        return moments

    def _set_level_cuts(self, adata: AnnData) -> None:
        """Place the value levels on the standardised values of a subsample of training rows."""
        tr = self._train_rows
        sub = np.sort(np.random.default_rng(self.random_state).choice(
            tr, min(len(tr), rows_per_chunk(len(self.genes))), replace=False))
        reader = RowReader(adata, self.layer, self.align(adata))
        z = self.standardizer.for_data(reader, batch_labels(adata, self.batch_key)).transform(reader(sub), sub)
        edges, centres = level_cuts(z, self.config, self.random_state)
        self.module.tokens.set_cuts(torch.from_numpy(edges), torch.from_numpy(centres))

    def _fit_linear_path(self, adata: AnnData) -> None:
        """Set the linear path's factors from the standardised training rows and pick its penalty on the validation rows."""
        if self.module.linear is None:
            return
        reader = RowReader(adata, self.layer, self.align(adata))
        scaler = self.standardizer.for_data(reader, batch_labels(adata, self.batch_key))

        def rows(r):
            r = np.sort(np.asarray(r))
            return torch.from_numpy(np.concatenate(
                [scaler.transform(reader(c), c) for c in np.array_split(r, max(1, -(-len(r) // 4096)))]
                if len(r) else [np.zeros((0, len(self.genes)), np.float32)]))

        gen = torch.Generator().manual_seed(derive_seed(self.random_state, "linear_path"))
        train = self._train_rows
        if len(train) > LINEAR_FIT_ROWS:  # the covariance of a few thousand rows is plenty for its top factors
            train = np.random.default_rng(self.random_state).choice(train, LINEAR_FIT_ROWS, replace=False)
        val = np.sort(self._val_rows[:LINEAR_FIT_ROWS])
        fit_rows = torch.from_numpy(np.concatenate([np.sort(train), val]))  # the data rows of the fitted rows
        codes = {} if self.batch_key is None else {  # genes a batch never measured get their own penalty
            "codes": torch.from_numpy(scaler.codes[np.sort(train)]), "val_codes": torch.from_numpy(scaler.codes[val])}
        scores = self.module.linear.fit(rows(train), rows(val), generator=gen, rows=fit_rows, n_rows=adata.n_obs,
                                        **codes)
        if scores:
            logger.info("linear path: penalty %.3g (validation MSE %.4f)", float(self.module.linear.lam.detach()),
                        min(scores.values()))
        if self.module.linear.lam_gap is not None:
            logger.info("linear path: penalty %.3g for genes a batch never measured", self.module.linear.lam_gap)

    def refit_linear_path(self, adata: AnnData) -> None:
        """Fit the linear path again on ``adata``: the same samples as the model's, with more of their values known.

        For a model trained on a copy of its data with some values hidden (e.g. to calibrate intervals on
        them, as :func:`~gexbert_sc.tl.impute` does): the factors and penalties are set again from the
        training and validation samples' values in ``adata``, as at set-up; the network, the split and the
        standardisation stay. The network learned a correction of the former linear estimate, which changes
        little when a few percent more values are known. Only for a fixed linear path (``"none"``: nothing
        to do; ``"learned"``: its factors were trained with the network and are kept).

        Parameters
        ----------
        adata
            The model's samples (the same ``obs_names``, in the same order), genes aligned by name.
        """
        if self.module.linear is None or self.config.linear_path != "fixed":
            return
        if self.adata is None or self._train_rows is None:
            raise ValueError("refit_linear_path needs the AnnData the model was set up on (its split); a loaded model "
                             "has none attached: load it with GexBERT.load(path, adata)")
        if adata.n_obs != self.adata.n_obs or not adata.obs_names.equals(self.adata.obs_names):
            raise ValueError(f"refit_linear_path needs the model's own samples ({self.adata.n_obs}, in the same order); "
                             f"got {adata.n_obs} with other obs_names: to restore new samples, call restore/impute")
        self._check_compatible(adata)
        self._fit_linear_path(adata)

    def align(self, adata: AnnData) -> GeneAlignment:
        """How ``adata``'s genes map onto the model's vocabulary (by name)."""
        return GeneAlignment.of(self.genes, adata.var_names)

    def _check_compatible(self, adata: AnnData, *, warn: bool = True) -> GeneAlignment:
        check_anndata(adata)
        check_layer(adata, self.layer)
        check_unique_genes(adata)
        if self.batch_key is not None:
            check_obs_key(adata, self.batch_key, "batch_key (the model's)")
        X = matrix_of(adata, self.layer)
        if getattr(adata, "isbacked", False) or adata is self.adata:
            check_dtype(X)  # values: checked chunk by chunk as they are read, or at set-up
        else:
            check_matrix_values(X, where_of(self.layer))
        align = self.align(adata)
        if align.n_known == 0:
            raise ValueError(
                f"none of the {adata.n_vars} genes of this AnnData is in the model's vocabulary of {len(self.genes)} "
                f"genes (e.g. {self.genes[:3].tolist()}); check that var_names hold the same kind of gene identifiers"
            )
        if warn and (align.n_unknown or align.n_absent):
            warnings.warn(align.describe(), UserWarning, stacklevel=3)
        return align

    def _data(self, adata: AnnData | None) -> AnnData:
        if adata is None:
            if self.adata is None:
                raise ValueError("this model has no AnnData attached; pass adata=, or load it with GexBERT.load(path, adata)")
            return self.adata
        return adata

    def _scaled_reader(self, adata: AnnData, align: GeneAlignment):
        reader = RowReader(adata, self.layer, align)
        return reader, self.standardizer.for_data(reader, batch_labels(adata, self.batch_key))

    def standardize(self, adata: AnnData | None = None) -> np.ndarray:
        """Standardised values of ``adata`` (the attached AnnData if None), ``(n_obs, n_genes)`` float32 in the vocabulary's order, NaN where missing or absent: the units the network works in."""
        adata = self._data(adata)
        reader, scaler = self._scaled_reader(adata, self._check_compatible(adata, warn=adata is not self.adata))
        rows = np.arange(adata.n_obs)
        return scaler.transform(reader(rows), rows).astype(np.float32)

    @property
    def training_rows(self) -> np.ndarray | None:
        """Rows of the attached AnnData that the model trains on (None until a loaded model trains)."""
        return None if self._train_rows is None else self._train_rows.copy()

    @property
    def validation_rows(self) -> np.ndarray | None:
        """Rows of the attached AnnData held out to watch the validation loss and stop early."""
        return None if self._val_rows is None else self._val_rows.copy()

    @property
    def is_trained(self) -> bool:
        """Whether the model has trained for at least one epoch."""
        return bool(self.history)

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

        Phase 1 restores the same genes that went in; phase 2 restores other random genes of the same
        sample. Each phase stops early when its validation MSE stops improving (``config.patience``) and
        keeps its best weights. On CUDA, bf16 autocast is used.

        Parameters
        ----------
        phase1_epochs, phase2_epochs
            Override the maximum epochs of each phase from the config.
        device
            ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a torch device.
        progress
            Show a tqdm progress bar.
        checkpoint_dir
            Folder for ``checkpoint.pt``, written atomically every ``checkpoint_every`` epochs and at the end
            of each phase.
        checkpoint_every
            Epochs between checkpoints.
        resume
            Continue from the checkpoint in ``checkpoint_dir`` (if there is one). Build the model with the
            same AnnData, settings and ``random_state`` as the interrupted run; the result then equals an
            uninterrupted run on CPU.

        Notes
        -----
        **Training again.** A model that has trained (in this session, or saved and loaded with
        ``GexBERT.load(path, adata)``) trains on from its current weights: the history and epoch numbers
        continue, the optimiser and learning-rate schedule start afresh (warm-up, then cosine), and the gene
        draws differ from the earlier epochs'. If the model has already reached phase 2, only phase 2 runs
        unless ``phase1_epochs`` is given. A loaded model splits the attached AnnData into training and
        validation samples with its ``random_state`` and ``config.val_fraction``. It keeps its saved
        standardisation (per-gene mean and sd), so embeddings and restored values stay in the same units as
        before training on; batches it has not seen get their own statistics, as at inference.

        **Several processes.** Launched by ``torchrun`` (``WORLD_SIZE`` > 1), training is data-parallel
        (DDP): the process group is set up here (NCCL on CUDA, one GPU per process by ``LOCAL_RANK``; gloo
        on CPU), each process computes its share of every batch, and gradients are averaged, which matches
        single-process training up to floating-point summation order. Only rank 0 writes checkpoints.

        Returns
        -------
        The model itself; ``history`` holds one record per epoch and ``metrics`` the final validation
        MSEs (``val_same``, ``val_other``) and the MSE of predicting the training mean (``val_mean``), in
        standardised units.
        """
        if self.adata is None:
            raise ValueError("this model has no data to train on; load it with its data: GexBERT.load(path, adata)")
        p1, p2 = self._phase_epochs(phase1_epochs, phase2_epochs)
        if self._train_rows is None:  # a loaded model trains on: split and check the attached data
            check_sample_count(self.adata.n_obs)
            self._attach(self.adata, allow_absent=True)
        self.device = init_distributed(resolve_device(device))
        self.module.to(self.device)
        reader, scaler = self._scaled_reader(self.adata, self.align(self.adata))

        def fetch(rows: np.ndarray) -> torch.Tensor:  # rows batch by batch: backed data is streamed
            return torch.from_numpy(scaler.transform(reader(rows), rows))

        plan = TrainPlan.from_config(self.config, (p1, p2))
        Trainer(self.module, fetch, len(self.genes), plan, device=self.device, random_state=self.random_state,
                progress=progress, history=self.history, checkpoint_dir=checkpoint_dir,
                checkpoint_every=checkpoint_every, fingerprint=self._fingerprint(scaler)).fit(
            self._train_rows, self._val_rows, resume=resume)
        if len(self._val_rows):
            vs = ValidationSet.make(self._val_rows, len(self.genes), plan.n_input, plan.n_target, self.random_state)
            self.metrics = evaluate(self.module, fetch, vs, 64, self.device)
            logger.info("validation MSE: restore input genes %.4f, restore other genes %.4f, predict training mean "
                        "%.4f", self.metrics["val_same"], self.metrics["val_other"], self.metrics["val_mean"])
        self.module.eval()
        return self

    def _phase_epochs(self, phase1_epochs, phase2_epochs) -> tuple[int, int]:
        reached_phase2 = any(h["phase"] == 2 for h in self.history)
        p1 = (0 if reached_phase2 else self.config.phase1_epochs) if phase1_epochs is None else phase1_epochs
        p2 = self.config.phase2_epochs if phase2_epochs is None else phase2_epochs
        for name, v in (("phase1_epochs", p1), ("phase2_epochs", p2)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        return int(p1), int(p2)

    def _fingerprint(self, scaler) -> str:
        """Identifies the settings, vocabulary, split and standardisation (for resuming checkpoints)."""
        h = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())  # settings, e.g. activation
        for part in (self.genes.astype("U").tobytes(), self._train_rows.tobytes(), self._val_rows.tobytes(),
                     np.ascontiguousarray(scaler.mean).tobytes(), np.ascontiguousarray(scaler.sd).tobytes()):
            h.update(part)
        return h.hexdigest()

    # ------------------------------------------------------------------ persistence
    def save(self, dir_path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save weights (safetensors) and everything else needed to use the model (JSON).

        The folder is written beside its destination under a temporary name and renamed into place, so an
        interrupted save never leaves a half-written model; with ``overwrite=True`` an existing model is
        replaced only once the new one is complete. Files get the user's umask permissions.

        Parameters
        ----------
        dir_path
            Target folder.
        overwrite
            Replace an existing folder.
        """
        tensors = {f"module.{k}": v for k, v in self.module.state_dict().items()}
        tensors["standardize.mean"] = torch.from_numpy(np.ascontiguousarray(self.standardizer.mean))
        tensors["standardize.sd"] = torch.from_numpy(np.ascontiguousarray(self.standardizer.sd))
        meta = {"config": self.config.to_dict(), "genes": self.genes.tolist(), "layer": self.layer,
                "batch_key": self.batch_key, "batches": list(self.standardizer.batches),
                "random_state": self.random_state, "history": self.history, "metrics": self.metrics}
        dest = write_model(dir_path, tensors, meta, overwrite=overwrite)
        logger.info("saved GexBERT to %s", dest)

    @classmethod
    def load(
        cls, dir_path: str | os.PathLike, adata: AnnData | None = None, *, device: str | torch.device = "cpu"
    ) -> GexBERT:
        """Load a model saved with :meth:`save` (no pickle is ever read).

        Parameters
        ----------
        dir_path
            Folder written by :meth:`save`.
        adata
            AnnData to attach: the default data of :meth:`embed`, :meth:`restore` and :meth:`impute`, and what
            :meth:`train` trains on. Genes are aligned by name: genes the model does not know are left out
            with a warning that counts them; known genes the AnnData lacks are treated as missing.
        device
            Where to put the weights.

        Returns
        -------
        The model, ready to use or to train on (see :meth:`train`, Notes).
        """
        tensors, meta = read_model(dir_path)
        self = cls.__new__(cls)
        # models saved before the activation setting existed used GELU
        self.config = resolve_config(GexBERTConfig(), **{**PRE_SETTING_DEFAULTS, **meta["config"]})
        self.genes = np.asarray(meta["genes"], dtype=str)
        self.layer, self.batch_key = meta["layer"], meta["batch_key"]
        self.random_state = int(meta["random_state"])
        self.history = list(meta.get("history", []))
        self.metrics = dict(meta.get("metrics", {}))
        try:
            self.standardizer = Standardizer(list(meta["batches"]), as_numpy(tensors["standardize.mean"]),
                                             as_numpy(tensors["standardize.sd"]))
        except KeyError:
            raise ValueError(f"{dir_path} lacks the standardisation statistics; save the model again") from None
        expect = (len(self.standardizer.batches), len(self.genes))
        if self.standardizer.mean.shape != expect or self.standardizer.sd.shape != expect:
            raise ValueError(f"standardisation statistics of shape {self.standardizer.mean.shape} do not match "
                             f"{expect} in {dir_path}")
        self.module = GexBERTModule.from_config(self.config, len(self.genes))
        try:
            self.module.load_state_dict(split_tensors(tensors, "module"), strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise ValueError(f"the weights in {dir_path} do not match its config ({first}); the model is damaged or "
                             "mixed up") from None
        self.device = resolve_device(device)
        self.module.to(self.device).eval()
        self.adata = None
        self._train_rows = self._val_rows = None  # split (and checked) when it trains on
        if adata is not None:
            self._check_compatible(adata, warn=True)
            self.adata = adata
        logger.info("loaded GexBERT from %s (%d genes)", dir_path, len(self.genes))
        return self

    def __repr__(self) -> str:
        c = self.config
        trained = f"trained {len(self.history)} epochs" if self.history else "untrained"
        return (f"GexBERT({len(self.genes)} genes, d_model={c.d_model}, n_layers={c.n_layers}, n_heads={c.n_heads}, "
                f"value_encoding={c.value_encoding!r}, {trained})")
