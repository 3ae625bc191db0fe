"""``tl.anchor_genes``: the genes whose expression alone best predicts survival, per group."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from tqdm.auto import tqdm

from gexbert_sc._validate import (
    check_anndata,
    check_layer,
    check_matrix_values,
    check_obs_key,
    check_unique_genes,
    obs_labels,
)
from gexbert_sc._validate import (
    check_int as _check_int,
)

from ._cox import cv_concordance
from ._survival_data import groups_with_few_events, survival_arrays

logger = logging.getLogger("gexbert_sc")



def _dense_rows(X, rows: np.ndarray) -> np.ndarray:
    sub = X[rows]
    if sp.issparse(sub):
        sub = sub.toarray()
    return np.array(sub, dtype=np.float64)  # a copy, safe to fill in place


def _fill_nan_with_mean(Xg: np.ndarray) -> np.ndarray:
    """Fill each column's NaNs with the column mean in place; return the mask of all-NaN columns."""
    nan = np.isnan(Xg)
    if not nan.any():
        return np.zeros(Xg.shape[1], dtype=bool)
    n_obs = (~nan).sum(axis=0)
    mean = np.where(n_obs > 0, np.where(nan, 0.0, Xg).sum(axis=0) / np.maximum(n_obs, 1), 0.0)
    Xg[nan] = np.broadcast_to(mean, Xg.shape)[nan]
    return n_obs == 0


def anchor_genes(
    adata: AnnData,
    *,
    time_key: str,
    event_key: str,
    groupby: str | None = None,
    n_genes: int = 512,
    n_folds: int = 5,
    layer: str | None = None,
    min_events: int = 10,
    random_state: int = 0,
    key_added: str = "gexbert_anchors",
    progress: bool = True,
    copy: bool = False,
) -> AnnData | None:
    """Choose anchor genes: the genes whose expression alone best predicts survival, per group.

    As in the GexBERT paper, every gene is scored, within each group (e.g. cancer type), by the
    cross-validated concordance index (Harrell's C) of a univariate Cox proportional-hazards model of
    that gene alone (:func:`~gexbert_sc.tl._cox.cv_concordance`: Breslow ties, folds stratified by
    event, all genes fitted at once). The ``n_genes`` best genes of a group are its anchors.

    Parameters
    ----------
    adata
        Samples x genes, log-scale expression. NaN values of a gene are filled with that gene's
        mean within the group before scoring; a gene with no value in a group gets no score there.
    time_key
        ``adata.obs`` column with the survival or censoring time (positive numbers).
    event_key
        ``adata.obs`` column with 1 / True for an observed event (e.g. death), 0 / False for a
        censored sample. Samples missing the time or the event are dropped with a warning.
    groupby
        ``adata.obs`` column of groups scored separately (e.g. cancer type); None scores all
        samples together as one group named ``"all"``. Samples without a group are dropped with a
        warning.
    n_genes
        Anchors kept per group (the paper uses 512), fewer if fewer genes have a score.
    n_folds
        Cross-validation folds.
    layer
        Layer to read instead of ``adata.X``.
    min_events
        Groups with fewer events are skipped with a warning naming them (their scores are NaN).
        Must be at least ``n_folds`` so that every fold can hold an event.
    random_state
        Seeds the fold assignment.
    key_added
        Key of the results in ``.varm`` and ``.uns``.
    progress
        Show a progress bar over the groups.
    copy
        Return a modified copy instead of working in place.

    Returns
    -------
    The copy if ``copy``, else None. Adds

    ``.varm[key_added]``
        :class:`pandas.DataFrame`, genes x groups: the cross-validated C-index of each gene in each
        group (mean over the held-out folds; 0.5 is chance, values below 0.5 mean the direction
        learnt on the training folds reversed on the held-out ones).
    ``.uns[key_added]``
        ``{"params": {...}, "anchors": {group: gene names, best first}, "n_samples": {group: int},
        "n_events": {group: int}}``; ``"anchors"`` lists only the groups that were scored. Ties in
        the score keep the order of ``adata.var_names``. Unset parameters are stored as ``""``.

    """
    check_anndata(adata)
    n_genes = _check_int(n_genes, "n_genes", 1)
    n_folds = _check_int(n_folds, "n_folds", 2)
    min_events = _check_int(min_events, "min_events", 1)
    random_state = _check_int(random_state, "random_state", 0)
    if min_events < n_folds:
        raise ValueError(
            f"min_events ({min_events}) must be >= n_folds ({n_folds}) so that every held-out fold can hold an "
            f"event; raise min_events or lower n_folds"
        )
    if not isinstance(key_added, str) or not key_added or "/" in key_added:
        raise ValueError(f"key_added must be a non-empty string without '/', got {key_added!r}")
    check_layer(adata, layer)
    check_unique_genes(adata)
    X = adata.layers[layer] if layer is not None else adata.X
    where = f"adata.layers[{layer!r}]" if layer is not None else "adata.X"
    if X is None:
        raise ValueError("adata.X is empty; pass layer= naming the layer with the expression values")
    check_matrix_values(X, where)

    time, event, keep = survival_arrays(adata, time_key, event_key)
    if groupby is None:
        labels = pd.Series("all", index=adata.obs_names, dtype=object)
    else:
        check_obs_key(adata, groupby, "groupby")
        labels = obs_labels(adata, groupby)
    labels = labels.to_numpy(dtype=object)
    no_group = pd.isna(labels) & keep
    if no_group.any():
        warnings.warn(
            f"dropping {int(no_group.sum())} sample(s) without a group in adata.obs[{groupby!r}]",
            UserWarning,
            stacklevel=2,
        )
    kept_labels = labels[keep]
    has_group = ~pd.isna(kept_labels)
    rows_all = np.flatnonzero(keep)[has_group]
    time, event, kept_labels = time[has_group], event[has_group], kept_labels[has_group]
    if groupby is not None and isinstance(adata.obs[groupby].dtype, pd.CategoricalDtype):
        present = set(kept_labels)
        groups = [str(c) for c in adata.obs[groupby].cat.categories if str(c) in present]
    else:
        groups = sorted(set(kept_labels))
    bad_names = [g for g in groups if "/" in g]
    if bad_names:
        raise ValueError(
            f"group names cannot contain '/' (they become keys of the .h5ad file): {bad_names[:5]}; rename them, "
            f"e.g. adata.obs[{groupby!r}] = adata.obs[{groupby!r}].astype(str).str.replace('/', '_')"
        )
    few = groups_with_few_events(event, kept_labels, min_events)
    if few:
        warnings.warn(
            f"skipping {len(few)} group(s) with fewer than {min_events} events (their scores are NaN): "
            + ", ".join(f"{g!r} ({n} events)" for g, n in few.items()),
            UserWarning,
            stacklevel=2,
        )

    if copy:
        adata = adata.copy()
        X = adata.layers[layer] if layer is not None else adata.X
    var_names = np.asarray(adata.var_names, dtype=object)
    scores = pd.DataFrame(np.nan, index=adata.var_names.copy(), columns=pd.Index(groups, dtype=object))
    anchors: dict[str, np.ndarray] = {}
    n_samples: dict[str, int] = {}
    n_events: dict[str, int] = {}
    for grp in tqdm(groups, desc="anchor genes", unit="group", disable=not progress):
        in_grp = kept_labels == grp
        n_samples[grp] = int(in_grp.sum())
        n_events[grp] = int(event[in_grp].sum())
        if grp in few:
            continue
        Xg = _dense_rows(X, rows_all[in_grp])
        empty = _fill_nan_with_mean(Xg)
        c = cv_concordance(Xg, time[in_grp], event[in_grp], n_folds=n_folds, random_state=random_state)
        c[empty] = np.nan
        scores[grp] = c
        scored = np.flatnonzero(~np.isnan(c))
        best = scored[np.argsort(-c[scored], kind="stable")][:n_genes]
        anchors[grp] = var_names[best].astype(str)

    adata.varm[key_added] = scores
    adata.uns[key_added] = {
        "params": {
            "time_key": time_key,
            "event_key": event_key,
            "groupby": "" if groupby is None else groupby,
            "n_genes": n_genes,
            "n_folds": n_folds,
            "layer": "" if layer is None else layer,
            "min_events": min_events,
            "random_state": random_state,
            "progress": bool(progress),
            "method": "univariate Cox PH (Breslow ties), cross-validated Harrell's C-index",
        },
        "anchors": anchors,
        "n_samples": n_samples,
        "n_events": n_events,
    }
    logger.info(
        "added .varm[%r] (genes x %d group(s): cross-validated C-index) and .uns[%r] (anchors of %d group(s), "
        "up to %d genes each; params)",
        key_added,
        len(groups),
        key_added,
        len(anchors),
        n_genes,
    )
    return adata if copy else None
