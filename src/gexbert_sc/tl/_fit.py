"""``tl.fit``: train GexBERT on an AnnData and write the sample embeddings."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from anndata import AnnData

from gexbert_sc import __version__
from gexbert_sc._validate import check_anndata
from gexbert_sc.model import GexBERT, GexBERTConfig

logger = logging.getLogger("gexbert_sc")


def fit(
    adata: AnnData,
    *,
    layer: str | None = None,
    config: str | dict | GexBERTConfig = "cpu",
    batch_key: str | None = None,
    phase1_epochs: int | None = None,
    phase2_epochs: int | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    checkpoint_dir: str | None = None,
    resume: bool = False,
    random_state: int | None = 0,
    key_added: str = "gexbert",
    **config_overrides: Any,
) -> GexBERT:
    """Pretrain GexBERT on ``adata`` and embed its samples.

    Parameters
    ----------
    adata
        Samples x genes, log-scale values, NaN where missing.
    layer
        Train on this layer instead of ``adata.X``.
    config
        ``"cpu"`` (default), ``"paper"``, a dict or a :class:`~gexbert_sc.GexBERTConfig`.
    batch_key
        ``adata.obs`` column whose groups are standardised separately (pooled cohorts).
    phase1_epochs, phase2_epochs
        Override the epoch budget of the two pretraining phases.
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    progress
        Show a progress bar.
    checkpoint_dir
        Write a training checkpoint there after every epoch (see :meth:`GexBERT.train`).
    resume
        Continue an interrupted run from the checkpoint in ``checkpoint_dir``.
    random_state
        Seeds everything; the same value gives the same model and embeddings on CPU. None draws a seed
        (logged; ``model.random_state`` and ``.uns[key_added]["params"]["random_state"]`` keep it).
    key_added
        Results go to ``.obsm["X_" + key_added]`` and ``.uns[key_added]``.
    **config_overrides
        Settings of :class:`~gexbert_sc.GexBERTConfig`, e.g. ``d_model=128``.

    Returns
    -------
    The trained :class:`~gexbert_sc.GexBERT` (``model.adata`` is ``adata``). Unlike other tools, ``fit``
    has no ``copy=``: it always writes into ``adata`` and returns the model; pass ``adata.copy()`` to keep
    the original untouched. Adds to ``adata``:

    ``.obsm["X_" + key_added]``
        Embedding of each sample (:meth:`GexBERT.embed <gexbert_sc.GexBERT.embed>`): the summary (cls)
        embedding, ``d_model`` columns, then with a linear path (the default) its latent, ``linear_rank``
        columns.
    ``.uns[key_added]``
        ``params`` (settings), ``version``, ``history`` (per-epoch losses, one array per column)
        and ``metrics`` (final validation MSEs in standardised units: ``val_same``, ``val_other``
        and ``val_mean``, the MSE of predicting the training mean).

    Examples
    --------
    >>> import gexbert_sc as gb, scanpy as sc
    >>> adata = gb.datasets.synthetic()
    >>> model = gb.tl.fit(adata)
    >>> sc.pp.neighbors(adata, use_rep="X_gexbert")
    """
    check_anndata(adata)
    if not isinstance(key_added, str) or not key_added:
        raise ValueError("key_added must be a non-empty string")
    if "copy" in config_overrides:
        raise TypeError("tl.fit has no copy=: it always writes into adata and returns the model; "
                        "pass adata.copy() to keep the original untouched")
    if phase1_epochs == 0 and phase2_epochs == 0:
        raise ValueError("phase1_epochs=0 and phase2_epochs=0 train nothing, and an untrained model's embeddings are "
                         "random; give at least one epoch (or set up a model without training: GexBERT(adata))")
    model = GexBERT(
        adata, layer=layer, config=config, batch_key=batch_key, random_state=random_state, **config_overrides
    )
    model.train(
        phase1_epochs=phase1_epochs,
        phase2_epochs=phase2_epochs,
        device=device,
        progress=progress,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
    )
    emb = model.embed(adata, random_state=model.random_state)
    obsm_key = f"X_{key_added}"
    adata.obsm[obsm_key] = emb
    adata.uns[key_added] = {
        "params": {
            **model.config.to_dict(),
            "layer": "X" if layer is None else layer,
            "batch_key": "" if batch_key is None else batch_key,
            "random_state": int(model.random_state),
            "device": str(model.device),
        },
        "version": __version__,
        "history": history_arrays(model.history),
        "metrics": {k: float(v) for k, v in model.metrics.items()},
    }
    logger.info("added .obsm[%r] (%d x %d) and .uns[%r]", obsm_key, *emb.shape, key_added)
    return model


def history_arrays(history: list[dict]) -> dict[str, np.ndarray]:
    """Per-epoch records as one array per column (h5ad-writable)."""
    if not history:
        return {}
    return {k: np.asarray([float(h[k]) for h in history]) for k in history[0]}
