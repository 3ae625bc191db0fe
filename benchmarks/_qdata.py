"""Cohort loaders and splits for benchmarks/quality.py (simple functions, to be swapped for the shared harness)."""

from __future__ import annotations

import numpy as np

import gexbert_sc as gb

N_TOP = 2000


def _dense(X):
    return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)


def _top_var_z(X: np.ndarray, n_top: int = N_TOP) -> np.ndarray:
    X = X[:, np.isfinite(X).all(0)]
    idx = np.sort(np.argsort(-X.var(0))[:n_top])
    X = X[:, idx]
    sd = X.std(0)
    return ((X - X.mean(0)) / np.where(sd > 1e-8, sd, 1.0)).astype(np.float32)


def load(name: str, seed: int = 0) -> np.ndarray:
    """Samples x genes, top 2,000 variable genes, z-scored within the cohort."""
    if name == "ovarian":
        return _top_var_z(_dense(gb.datasets.ovarian_gse51088().X))
    if name == "nki":
        return _top_var_z(_dense(gb.datasets.nki_breast().X))
    if name == "skcm":
        a = gb.datasets.tcga_skcm()
        if "log1p" not in a.uns:
            gb.pp.log_normalize(a)
        return _top_var_z(_dense(a.X))
    if name == "synthetic":
        a = gb.datasets.synthetic(n_obs=300, random_state=seed)
        return _top_var_z(_dense(a.X))
    raise ValueError(name)


def split_a(n: int, g: int, seed: int):
    """20% held-out samples; a third of the genes hidden in them (the same genes for every held-out sample)."""
    rng = np.random.default_rng(1000 + seed)
    perm = rng.permutation(n)
    test = np.sort(perm[: int(round(0.2 * n))])
    train = np.sort(perm[int(round(0.2 * n)):])
    gperm = rng.permutation(g)
    hidden = np.sort(gperm[: g // 3])
    inputs = np.sort(gperm[g // 3:])
    return train, test, inputs, hidden


def split_b(g: int, seed: int, panel: int):
    """A 64-gene random panel in, every other gene out (the held-out samples are those of :func:`split_a`)."""
    rng = np.random.default_rng(2000 + 17 * seed + panel)
    gperm = rng.permutation(g)
    return np.sort(gperm[:64]), np.sort(gperm[64:])
