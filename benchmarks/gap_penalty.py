"""The linear path's penalty for genes a cohort never measured, at module level (issue 11, session 7).

On the pooled NKI + ovarian cohort (``load_cohort("pooled")`` of the imputation harness: z-scores within each
cohort, NKI lacks 1,088 of the 2,000 genes), entries are hidden with ``gb.pp.simulate_missing`` (MCAR, or
``gene_block`` by cohort), the rows split 80/20 (seeded), and ``gb.module.GaussianLinearPath`` (rank 256) is
fitted on the training rows with the validation rows for its penalties, without and with the rows' cohort
codes (with them, gap entries get their own penalty, picked on hidden (cohort, gene) blocks). Metric: RMSE
of the filled hidden entries over that of the observed gene means. No network is trained: this isolates the
linear path, the part of the default model that imputes.

    python benchmarks/gap_penalty.py --seeds 0 1 --scenarios gene_block:0.2 mcar:0.1 mcar:0.3 mcar:0.5

Writes ``benchmarks/results/gap_penalty.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from imputation import OUT, load_cohort  # the harness's cohorts

import gexbert_sc as gb


def run_one(mechanism: str, rate: float, seed: int, rank: int = 256) -> list[dict]:
    """Default fit against the fit with cohort codes, on one mask and split."""
    a = load_cohort("pooled")
    gb.pp.simulate_missing(a, rate=rate, mechanism=mechanism, groupby="cohort" if mechanism == "gene_block" else None,
                           random_state=seed)
    X = np.asarray(a.X, dtype=np.float32)
    truth, mask = a.layers["simulated_truth"], a.layers["simulated_mask"].astype(bool)
    codes = torch.from_numpy(np.searchsorted(sorted(set(a.obs["cohort"])), a.obs["cohort"].to_numpy()))
    mu = np.nanmean(X, 0)
    base = math.sqrt(np.mean((truth[mask] - mu[np.nonzero(mask)[1]]) ** 2))
    perm = np.random.default_rng(seed).permutation(len(X))
    val, tr = np.sort(perm[: len(X) // 5]), np.sort(perm[len(X) // 5 :])
    rows = []
    for with_codes in (False, True):
        t = time.perf_counter()
        lp = gb.module.GaussianLinearPath(X.shape[1], rank)
        kw = {"codes": codes[tr], "val_codes": codes[val]} if with_codes else {}
        lp.fit(torch.from_numpy(X[tr]), torch.from_numpy(X[val]), generator=torch.Generator().manual_seed(0), **kw)
        F = lp.fill(torch.from_numpy(X), codes if with_codes else None).numpy()
        rows.append({"mechanism": mechanism, "rate": rate, "seed": seed,
                     "fit": "gap penalty" if with_codes else "one penalty",
                     "rmse_ratio": math.sqrt(np.mean((F[mask] - truth[mask]) ** 2)) / base,
                     "lam": float(lp.lam), "lam_gap": lp.lam_gap, "seconds": time.perf_counter() - t})
    return rows


def main() -> None:
    """Run the comparison (see the module docstring and ``--help``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--scenarios", nargs="+", default=["gene_block:0.2", "mcar:0.1", "mcar:0.3", "mcar:0.5"])
    ap.add_argument("--out", type=Path, default=OUT / "gap_penalty")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for sc in args.scenarios:
        mech, rate = sc.split(":")
        for seed in args.seeds:
            rows += run_one(mech, float(rate), seed)
            print(rows[-2], rows[-1], flush=True)
    args.out.with_suffix(".json").write_text(json.dumps({"command": "python benchmarks/gap_penalty.py " + " ".join(sys.argv[1:]),
                                                         "threads": os.environ.get("OMP_NUM_THREADS", "unset"), "rows": rows}, indent=1))
    lines = ["# The linear path's gap penalty on the pooled cohort (module level)", "",
             f"`python benchmarks/gap_penalty.py {' '.join(sys.argv[1:])}` (see the script's docstring: linear path only, no "
             "network; pooled NKI + ovarian; RMSE of the hidden entries / the observed gene means'; lower is better).", "",
             "| scenario | seed | one penalty | gap penalty | penalty / gap penalty | seconds (one / gap) |", "|---|---|---|---|---|---|"]
    for i in range(0, len(rows), 2):
        one, gap = rows[i], rows[i + 1]
        lines.append(f"| {one['mechanism']} {one['rate']:.0%} | {one['seed']} | {one['rmse_ratio']:.4f} | **{gap['rmse_ratio']:.4f}** | "
                     f"{gap['lam']:.3g} / {gap['lam_gap']:.3g} | {one['seconds']:.0f} / {gap['seconds']:.0f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
