"""Do the default model's embeddings separate the cancer types? Leiden on the summary, the linear latent and both.

Trains the default ``"cpu"`` preset (linear path on) for 1 + 1 epochs on the synthetic cohort (1,000 x 2,000,
5 types, seed 0), embeds every sample (``model.embed``: the summary, ``d_model`` columns, then the linear latent),
builds scanpy neighbours and Leiden clusters (igraph, seed 0) on each part and prints the adjusted Rand index
with the cancer types. Writes benchmarks/results/embedding_ari.md.

Usage: python benchmarks/embedding_ari.py
"""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import scanpy as sc
import torch
from sklearn.metrics import adjusted_rand_score

import gexbert_sc as gb

OUT = Path(__file__).parent / "results" / "embedding_ari.md"


def ari(obs, E: np.ndarray) -> float:
    """Adjusted Rand index of Leiden clusters on ``E`` with ``obs["cancer_type"]``."""
    b = ad.AnnData(np.zeros((len(E), 1), np.float32), obs=obs.copy())
    b.obsm["E"] = E
    sc.pp.neighbors(b, use_rep="E", random_state=0)
    sc.tl.leiden(b, random_state=0, flavor="igraph", n_iterations=2)
    return float(adjusted_rand_score(obs["cancer_type"], b.obs["leiden"]))


def main() -> None:
    """Run it (see the module docstring)."""
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    a = gb.datasets.synthetic(n_obs=1000, n_vars=2000, random_state=0)
    model = gb.tl.fit(a, phase1_epochs=1, phase2_epochs=1, progress=False)
    E, d = a.obsm["X_gexbert"], model.config.d_model
    rows = [("summary (cls)", E[:, :d]), ("linear latent", E[:, d:]), ("both (`X_gexbert`)", E)]
    lines = ["# Leiden on the default model's embeddings: adjusted Rand index with the cancer types", "",
             "`python benchmarks/embedding_ari.py` (synthetic 1,000 x 2,000, 5 types; `\"cpu\"` preset with its "
             "linear path, 1 + 1 epochs; scanpy neighbours + Leiden, seed 0)", "",
             "| embedding | columns | ARI |", "|---|---|---|"]
    for name, part in rows:
        lines.append(f"| {name} | {part.shape[1]} | {ari(a.obs, part):.3f} |")
        print(lines[-1], flush=True)
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
