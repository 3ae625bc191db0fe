"""Where the value levels sit on the standardised scale (the paper leaves the cut open)."""

from __future__ import annotations

import numpy as np

from ._config import GexBERTConfig

#: At most this many values are used to place quantile levels.
MAX_CUT_VALUES = 2_000_000


def level_cuts(z: np.ndarray, config: GexBERTConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges (``n_levels - 1``) and level centres (``n_levels``) on the standardised scale.

    ``"uniform"``: centres evenly over ``[-clip, clip]``. ``"quantile"``: the centres are the
    ``(j + 0.5) / L`` quantiles of the standardised training values ``z`` (a seeded subsample of at
    most :data:`MAX_CUT_VALUES`). Edges lie halfway between neighbouring centres; centres are made
    strictly increasing where quantiles tie.
    """
    L = config.n_levels
    v = z[np.isfinite(z)].ravel()
    if config.level_cut == "uniform" or len(v) < L:
        centres = np.linspace(-config.clip, config.clip, L)
    else:
        if len(v) > MAX_CUT_VALUES:
            v = np.random.default_rng(seed).choice(v, MAX_CUT_VALUES, replace=False)
        centres = np.quantile(v, (np.arange(L) + 0.5) / L)
    centres = np.maximum.accumulate(centres.astype(np.float64))
    centres = centres + np.arange(L) * 1e-6
    edges = (centres[1:] + centres[:-1]) / 2
    return edges.astype(np.float32), centres.astype(np.float32)
