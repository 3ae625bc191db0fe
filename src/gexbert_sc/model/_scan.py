"""One streaming pass over a matrix: the value checks and the training rows' per-batch moments."""

from __future__ import annotations

import warnings

import numpy as np

from gexbert_sc._validate import check_matrix_values, check_not_counts, check_observed, check_value_range

from ._reader import RowReader
from ._standardizer import GroupMoments


def scan(reader: RowReader, codes: np.ndarray, n_groups: int, train_rows: np.ndarray, where: str,
         var_names, obs_names, *, allow_empty_genes: bool = False) -> GroupMoments:
    """Check every value of the matrix and accumulate the moments of ``train_rows``, chunk by chunk.

    Works on backed AnnData without loading the matrix whole. Raises the errors of
    :mod:`gexbert_sc._validate` (infinite values, raw counts, values far outside a log scale,
    empty genes or samples, constant genes), each naming the genes or samples concerned.
    """
    G = len(reader.alignment.genes)
    is_train = np.zeros(reader.n_obs, dtype=bool)
    is_train[train_rows] = True
    moments = GroupMoments(n_groups, G)
    n_per_gene = np.zeros(G, dtype=np.int64)
    n_per_sample = np.zeros(reader.n_obs, dtype=np.int64)
    gmin, gmax = np.full(G, np.inf), np.full(G, -np.inf)
    sample_absmax = np.zeros(reader.n_obs)
    nonneg_int, vmax = True, -np.inf
    for rows, x in reader.chunks():
        check_matrix_values(x, where)
        obs = ~np.isnan(x)
        n_per_gene += obs.sum(0)
        n_per_sample[rows] = obs.sum(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gmin = np.fmin(gmin, np.nanmin(x, 0))
            gmax = np.fmax(gmax, np.nanmax(x, 0))
            sample_absmax[rows] = np.nan_to_num(np.nanmax(np.abs(x), 1))
        if obs.any():
            v = x[obs]
            vmax = max(vmax, float(v.max()))
            nonneg_int = nonneg_int and bool(v.min() >= 0) and bool(np.all(v == np.round(v)))
        tr = is_train[rows]
        if tr.any():
            moments.add(x if tr.all() else x[tr], codes[rows][tr])
    check_not_counts(nonneg_int, vmax, where)
    gene_absmax = np.fmax(np.abs(np.where(np.isfinite(gmin), gmin, 0)), np.abs(np.where(np.isfinite(gmax), gmax, 0)))
    check_value_range(gene_absmax, sample_absmax, var_names, obs_names, where)
    check_observed(n_per_gene, n_per_sample, gmin, gmax, var_names, obs_names, where,
                   allow_empty_genes=allow_empty_genes)
    return moments
