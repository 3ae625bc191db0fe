"""Restoration quality of GexBERT variants against linear and neighbour baselines (issue 11).

Tasks, on the same splits for every method (20% of the samples held out; models and ridge are fitted
on the other 80%):

- ``a``: a third of the genes (the same third for every held-out sample) hidden in the held-out samples,
  restored from the other two thirds;
- ``b``: a 64-gene random panel in, every other gene out (3 panels per seed).

Metric: RMSE over the hidden entries divided by the RMSE of the training-sample column mean (lower is
better). Baselines: mean; KNN (sklearn KNNImputer, k=10, transductive on train + held-out rows);
SoftImpute (``gb.tl.impute(method="softimpute")``, transductive); ridge (RidgeCV on standardised
inputs, alphas logspace(-2, 5, 15), fitted on the training samples). Cohorts: the top 2,000 variable
genes z-scored within the cohort (``benchmarks/_qdata.py``).

    PYTHONPATH=src python benchmarks/quality.py --cohorts ovarian skcm nki synthetic --seeds 0 1 \
        --variants cpu linear_fixed --out benchmarks/results/quality
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _qdata import load, split_a, split_b

import gexbert_sc as gb

#: GexBERT variants: config overrides of the "cpu" preset as it stood before this work.
VARIANTS = {
    "cpu": {"linear_path": "none", "n_input_min": None},
    "linear_only": {"linear_path": "fixed", "phase1_epochs": 0, "phase2_epochs": 0},  # no network training
    "linear_fixed": {"linear_path": "fixed"},
    "linear_learned": {"linear_path": "learned"},
    "linear_fixed_nmin32": {"linear_path": "fixed", "n_input_min": 32},
    "nmin32": {"linear_path": "none", "n_input_min": 32},
    "wide128": {"linear_path": "none", "d_model": 128, "d_ff": 256},
}


def rel_rmse(pred, Y, mu):
    """RMSE of ``pred`` over the RMSE of the training mean ``mu``."""
    return float(np.sqrt(((pred - Y) ** 2).mean()) / np.sqrt(((Y - mu) ** 2).mean()))


def baselines(X, tr, te, S, T, seed, softimpute=True):
    """Mean, KNN, SoftImpute and ridge on one split."""
    from sklearn.impute import KNNImputer
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mu = X[tr].mean(0)
    Y = X[te][:, T]
    out = {"mean": (rel_rmse(np.broadcast_to(mu[T], Y.shape), Y, mu[T]), 0.0)}
    M = np.concatenate([X[tr], X[te]]).astype(np.float64)
    M[len(tr):, T] = np.nan
    t = time.perf_counter()
    knn = KNNImputer(n_neighbors=10).fit_transform(M)[len(tr):, T]
    out["knn"] = (rel_rmse(knn, Y, mu[T]), time.perf_counter() - t)
    t = time.perf_counter()
    if not softimpute:
        out["softimpute"] = (np.nan, np.nan)
    A = ad.AnnData(M.astype(np.float32)) if softimpute else None
    if softimpute:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gb.tl.impute(A, method="softimpute", random_state=seed)
        si = np.asarray(A.layers["softimpute_imputed"])[len(tr):, T]
        out["softimpute"] = (rel_rmse(si, Y, mu[T]), time.perf_counter() - t)
    t = time.perf_counter()
    r = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 15))).fit(X[tr][:, S], X[tr][:, T])
    out["ridge"] = (rel_rmse(r.predict(X[te][:, S]), Y, mu[T]), time.perf_counter() - t)
    return out


def train_gexbert(X, tr, seed, overrides, epochs=None):
    """A GexBERT variant trained on the training rows."""
    A = ad.AnnData(X[tr])
    A.var_names = [f"g{i}" for i in range(X.shape[1])]
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if epochs is not None and overrides.get("phase2_epochs", 1):
            overrides = {**overrides, "phase1_epochs": epochs[0], "phase2_epochs": epochs[1]}
        m = gb.GexBERT(A, random_state=seed, **overrides)
        if overrides.get("phase1_epochs", 1) or overrides.get("phase2_epochs", 1):
            m.train(progress=False)
    return m, A.var_names, time.perf_counter() - t


def restore(m, names, X, te, S, T):
    """The model's restoration of genes ``T`` from genes ``S`` in the held-out rows."""
    B = ad.AnnData(X[te][:, S])
    B.var_names = names[S]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.restore(B, genes=names[T])


def run(cohorts, seeds, variants, n_panels, out, epochs=None, skip_baselines=False, softimpute_panels=True):
    """Run every cohort, seed and variant; append the rows to the CSV."""
    rows = []
    for cohort in cohorts:
        for seed in seeds:
            X = load(cohort, seed)
            tr, te, S, T = split_a(*X.shape, seed)
            tasks = [("a", S, T)] + [(f"b{p}", *split_b(X.shape[1], seed, p)) for p in range(n_panels)]
            mu = X[tr].mean(0)
            for task, s, t in [] if skip_baselines else tasks:
                for method, (v, sec) in baselines(X, tr, te, s, t, seed, task == "a" or softimpute_panels).items():
                    if np.isnan(v):
                        continue
                    rows.append({"cohort": cohort, "seed": seed, "task": task, "method": method, "rel_rmse": v, "seconds": sec})
                    print(rows[-1], flush=True)
            for name in variants:
                m, names, sec = train_gexbert(X, tr, seed, VARIANTS[name], epochs)
                for task, s, t in tasks:
                    v = rel_rmse(restore(m, names, X, te, s, t), X[te][:, t], mu[t])
                    rows.append({"cohort": cohort, "seed": seed, "task": task, "method": name, "rel_rmse": v, "seconds": sec,
                                     "epochs": len(m.history)})
                    print(rows[-1], flush=True)
            pd.DataFrame(rows).to_csv(f"{out}.csv", index=False)
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> str:
    """The Markdown table of mean and sd per cohort, task and method."""
    df = df.assign(task=df.task.str[0])  # b0..b2 -> b (3 panels x seeds pooled)
    g = df.groupby(["cohort", "task", "method"])
    s = g.rel_rmse.agg(["mean", "std", "count"]).join(g.seconds.mean())
    lines = []
    for (cohort, task), sub in s.groupby(level=[0, 1]):
        cells = "; ".join(f"{m} {r['mean']:.3f} ± {0 if np.isnan(r['std']) else r['std']:.3f}"
                          + (f" ({r['seconds']:.0f} s)" if r["seconds"] >= 1 else "")
                          for (_, _, m), r in sub.sort_values("mean").iterrows())
        lines.append(f"| {cohort} | {task} | {cells} |")
    return "| cohort | task | method: rel. RMSE mean ± sd (train s), best first |\n|---|---|---|\n" + "\n".join(lines)


def main():
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cohorts", nargs="+", default=["ovarian", "skcm", "nki", "synthetic"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--variants", nargs="+", default=["cpu", "linear_fixed"])
    ap.add_argument("--panels", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", nargs=2, type=int, default=None, metavar=("PHASE1", "PHASE2"),
                    help="override both phases' maximum epochs of every trained variant (default: the preset's)")
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument("--no-softimpute-panels", action="store_true", help="SoftImpute on task a only (it is slow)")
    ap.add_argument("--out", default="benchmarks/results/quality")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    df = run(a.cohorts, a.seeds, a.variants, a.panels, a.out, a.epochs, a.skip_baselines, not a.no_softimpute_panels)
    md = table(df)
    Path(f"{a.out}.md").write_text(md + f"\n\nwall time {time.perf_counter() - t0:.0f} s\n")
    print(md)


if __name__ == "__main__":
    main()
