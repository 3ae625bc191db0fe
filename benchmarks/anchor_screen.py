"""Speed of the anchor-gene screen: cross-validated C-index of univariate Cox models for every gene.

1. ``gexbert_sc.tl.anchor_genes`` (one group, all genes at once: a univariate Cox model of each gene fitted on the
   training folds and Harrell's C of its held-out risks, mean over the folds) on a synthetic 1,000 samples x
   20,000 genes matrix, 5 folds stratified by event.
2. The gene-by-gene loop it replaces, on the first 50 genes with the same folds: scikit-survival's
   ``CoxPHSurvivalAnalysis(alpha=l2, ties="breslow")`` fitted on each training fold and
   ``concordance_index_censored`` on the held-out fold; its time is extrapolated linearly to 20,000
   genes, and its C-indices are compared with ``anchor_genes``'s for the same genes.

Data: standard normal expression; hazard exp(x @ b) with 20 genes having |b| = 0.3; exponential
event and censoring times (about 30% censored), times rounded to whole days (so there are ties).

Usage: python benchmarks/anchor_screen.py [--n-samples 1000] [--n-genes 20000] [--n-loop 50]
Writes benchmarks/results/anchor_screen.json and anchor_screen.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import sklearn
import sksurv
from sklearn.model_selection import StratifiedKFold
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored

from gexbert_sc.tl import anchor_genes  # imported here: the timing must not include importing gexbert_sc.tl

OUT = Path(__file__).parent / "results"
L2 = 1e-3  # the ridge penalty of tl.anchor_genes's Cox fits


def cpu_name() -> str:
    """The CPU model, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def synthetic(n: int, g: int, seed: int = 0):
    """Expression, times (whole days) and events of the synthetic cohort described above."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, g))
    b = np.zeros(g)
    b[rng.choice(g, 20, replace=False)] = rng.choice([-0.3, 0.3], 20)
    t_event = rng.exponential(365 / np.exp(X @ b))
    t_censor = rng.exponential(3 * 365, n)
    time_ = np.ceil(np.minimum(t_event, t_censor))
    return X, time_, t_event <= t_censor


def sksurv_loop(X, time_, event, folds):
    """Mean held-out C-index of each column, one scikit-survival Cox fit per gene and fold."""
    out = np.zeros((len(folds), X.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f, (train, test) in enumerate(folds):
            y = np.array(list(zip(event[train], time_[train], strict=True)), dtype=[("e", bool), ("t", float)])
            for j in range(X.shape[1]):
                coef = CoxPHSurvivalAnalysis(alpha=L2, ties="breslow").fit(X[train, j : j + 1], y).coef_[0]
                out[f, j] = concordance_index_censored(event[test], time_[test], X[test, j] * coef)[0]
    return out.mean(axis=0)


def main() -> None:
    """Run the timings and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-samples", type=int, default=1000)
    ap.add_argument("--n-genes", type=int, default=20000)
    ap.add_argument("--n-loop", type=int, default=50)
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    command = "python benchmarks/anchor_screen.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v != ap.get_default(k)
    )

    load_before = os.getloadavg()[0]
    X, time_, event = synthetic(args.n_samples, args.n_genes)
    folds = list(StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0).split(X, event))
    adata = ad.AnnData(X, obs=pd.DataFrame({"time": time_, "event": event}, index=[f"s{i}" for i in range(len(X))]),
                       var=pd.DataFrame(index=[f"g{j}" for j in range(X.shape[1])]))

    # the screen: tl.anchor_genes splits the samples into the same folds (StratifiedKFold by event, random_state)
    t0 = time.perf_counter()
    anchor_genes(adata, time_key="time", event_key="event", n_folds=args.folds, random_state=0, progress=False)
    t_cv = time.perf_counter() - t0
    c_all = adata.varm["gexbert_anchors"]["all"].to_numpy()

    t0 = time.perf_counter()
    c_loop = sksurv_loop(X[:, : args.n_loop], time_, event, folds)
    t_loop = time.perf_counter() - t0
    t_loop_all = t_loop * args.n_genes / args.n_loop

    res = {
        "command": command,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads_env": {
            k: os.environ.get(k, "") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        },
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scikit-survival": sksurv.__version__,
        "scikit-learn": sklearn.__version__,
        "n_samples": args.n_samples,
        "n_genes": args.n_genes,
        "n_folds": args.folds,
        "censored_fraction": round(float(1 - event.mean()), 3),
        "distinct_times": len(np.unique(time_)),
        "l2": L2,
        "anchor_genes_s": round(t_cv, 2),
        "sksurv_loop_genes": args.n_loop,
        "sksurv_loop_s": round(t_loop, 2),
        "sksurv_loop_extrapolated_s": round(t_loop_all, 1),
        "speedup": round(t_loop_all / t_cv, 1),
        "max_abs_diff_vs_sksurv_loop": float(np.max(np.abs(c_all[: args.n_loop] - c_loop))),
        "cv_c_index_quantiles_5_50_95": [round(float(q), 4) for q in np.quantile(c_all, [0.05, 0.5, 0.95])],
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "anchor_screen.json").write_text(json.dumps(res, indent=2) + "\n")
    md = f"""# Anchor-gene screen: cross-validated C-index of univariate Cox models

`{command}` — {res["cpu"]}, {res["cpu_count"]} CPUs, numpy {res["numpy"]}, scikit-survival {res["scikit-survival"]}, {res["date"]}

Synthetic {args.n_samples:,} samples x {args.n_genes:,} genes, {args.folds} folds stratified by event, \
{res["censored_fraction"]:.0%} censored, {res["distinct_times"]} distinct times (ties), l2 = {L2:g}.

| what | seconds |
|---|---|
| `tl.anchor_genes`, all {args.n_genes:,} genes, {args.folds} folds | **{res["anchor_genes_s"]}** |
| scikit-survival loop, {args.n_loop} genes x {args.folds} folds | {res["sksurv_loop_s"]} |
| scikit-survival loop, extrapolated to {args.n_genes:,} genes | {res["sksurv_loop_extrapolated_s"]} |

Speed-up: **{res["speedup"]}x**. Largest |difference| between the two C-indices on the {args.n_loop} genes \
both scored: {res["max_abs_diff_vs_sksurv_loop"]:.1e}. Machine load \
(1-minute load average) before / after: {res["load_average_1min_before"]} / {res["load_average_1min_after"]} \
on {res["cpu_count"]} CPUs; numpy runs these steps on one core.
"""
    (OUT / "anchor_screen.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
