"""Survival times and events read from ``adata.obs``, checked up front with errors that name the fix."""

from __future__ import annotations

import difflib
import numbers
import warnings
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData


def _check_key(adata: AnnData, key, what: str, holds: str) -> None:
    if not isinstance(key, str) or key not in adata.obs.columns:
        cols = [str(c) for c in adata.obs.columns]
        close = difflib.get_close_matches(str(key), cols, n=3)
        hint = f" Close matches: {close}." if close else ""
        raise KeyError(
            f"{what}={key!r} is not a column of adata.obs (columns: {cols}).{hint} "
            f"Pass the name of the adata.obs column that holds {holds}."
        )


def _examples(values, k: int = 5) -> str:
    vals = list(dict.fromkeys(values))  # unique, in order
    shown = ", ".join(repr(v) for v in vals[:k])
    return shown + (f" and {len(vals) - k} more" if len(vals) > k else "")


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)


def _times(col: pd.Series, key: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(col.dtype):
        raise TypeError(
            f"adata.obs[{key!r}] holds booleans, not survival times; pass the column with the times "
            "(e.g. days from diagnosis to event or last follow-up) as time_key"
        )
    if pd.api.types.is_numeric_dtype(col.dtype) and not isinstance(col.dtype, pd.CategoricalDtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    values = col.astype(object)
    bad = values.notna() & ~values.map(_is_real)
    if bad.any():
        raise TypeError(
            f"adata.obs[{key!r}] must hold numbers (survival times), but holds "
            f"{_examples(values[bad])}; convert it, e.g. "
            f"adata.obs[{key!r}] = pd.to_numeric(adata.obs[{key!r}], errors='coerce') "
            "(values that are not numbers become NaN and those samples are dropped)"
        )
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _events(col: pd.Series, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Event indicator (bool) and its missing-value mask."""
    values = col.astype(object)
    missing = values.isna().to_numpy()

    def ok(v) -> bool:
        return isinstance(v, bool | np.bool_) or (_is_real(v) and v in (0, 1))

    bad = ~missing & ~values.map(ok).to_numpy(dtype=bool)
    if bad.any():
        raise ValueError(
            f"adata.obs[{key!r}] must be 1/True (event observed, e.g. death) or 0/False (censored), "
            f"but holds {_examples(values[bad])}; recode it, e.g. "
            f"adata.obs[{key!r}] = adata.obs[{key!r}].map({{'Dead': 1, 'Alive': 0}})"
        )
    event = np.zeros(len(values), dtype=bool)
    event[~missing] = [bool(v) for v in values[~missing]]
    return event, missing


def survival_arrays(adata: AnnData, time_key: str, event_key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read and check the survival time and event columns of ``adata.obs``.

    Parameters
    ----------
    adata
        The samples (rows) to read.
    time_key
        ``adata.obs`` column with the survival or censoring time of each sample: positive numbers.
    event_key
        ``adata.obs`` column with 1 / True where the event was observed and 0 / False where the
        sample was censored.

    Returns
    -------
    time
        Times of the kept samples, float64.
    event
        Events of the kept samples, bool.
    keep
        Mask over ``adata.obs_names`` of the kept samples: those with both a time and an event.
        Samples missing either (NaN / None) are dropped with a warning that counts them.

    Raises
    ------
    KeyError
        A key is not an ``adata.obs`` column (close matches are listed).
    TypeError
        The times are not numbers.
    ValueError
        Times that are infinite, zero or negative; events other than 0/1 or bool (the offending
        values are named); no sample left.

    """
    _check_key(adata, time_key, "time_key", "the survival times")
    _check_key(adata, event_key, "event_key", "the event indicator (1 = event, 0 = censored)")
    time = _times(adata.obs[time_key], time_key)
    event, no_event = _events(adata.obs[event_key], event_key)
    no_time = np.isnan(time)
    if np.isinf(time).any():
        raise ValueError(
            f"adata.obs[{time_key!r}] holds {int(np.isinf(time).sum())} infinite time(s); "
            "use the last follow-up time of those samples (and event 0) or set them to NaN to drop them"
        )
    nonpos = ~no_time & (time <= 0)
    if nonpos.any():
        names = adata.obs_names[nonpos]
        raise ValueError(
            f"adata.obs[{time_key!r}] must be > 0, but {int(nonpos.sum())} sample(s) have zero or negative "
            f"times (e.g. {_examples(names)} with {_examples(time[nonpos])}); drop those samples, or, if a "
            "time of 0 means an event or censoring on the first day, add a small offset such as 0.5"
        )
    keep = ~(no_time | no_event)
    n_drop = int((~keep).sum())
    if n_drop:
        if not keep.any():
            raise ValueError(
                f"every sample misses its time (adata.obs[{time_key!r}]) or event (adata.obs[{event_key!r}]); "
                "nothing is left to score"
            )
        warnings.warn(
            f"dropping {n_drop} of {len(keep)} sample(s) without a survival time or event "
            f"({int(no_time.sum())} missing adata.obs[{time_key!r}], {int(no_event.sum())} missing "
            f"adata.obs[{event_key!r}])",
            UserWarning,
            stacklevel=3,
        )
    return time[keep], event[keep], keep


def groups_with_few_events(
    event: np.ndarray, groups: Sequence[Hashable] | np.ndarray, min_events: int
) -> dict[Hashable, int]:
    """The groups with fewer than ``min_events`` events, to skip.

    Parameters
    ----------
    event
        Event indicator of each sample (bool).
    groups
        Group label of each sample, same length as ``event``.
    min_events
        Smallest number of events a group must have.

    Returns
    -------
    ``{group: number of events}`` for each group below ``min_events``, in order of first appearance.

    """
    event = np.asarray(event, dtype=bool)
    labels = pd.Series(np.asarray(groups, dtype=object))
    if len(labels) != len(event):
        raise ValueError(f"event ({len(event)}) and groups ({len(labels)}) must have the same length")
    counts = pd.Series(event).groupby(labels, sort=False).sum()
    return {g: int(c) for g, c in counts.items() if c < min_events}
