"""Transfer: does fitting on another cohort too help restore a small cohort's genes? (issue 11, hypothesis 5)

A *target* cohort is split as in the imputation harness's restoration (``restoration_scenarios``: 20% of the
samples held out, a third of the genes hidden in them, or only a 64-gene panel kept). Three ways to restore
the hidden genes, on the same split, genes and panels:

- ``ridge``: ridge regression fitted on the target's training samples (``tl.restore(method="ridge")``);
- ``alone``: GexBERT fitted on the target's training samples;
- ``pooled``: GexBERT fitted on the target's training samples *and every sample of a source cohort*, with
  ``batch_key="cohort"`` (each cohort standardised on its own; genes the source never measured are gaps).

Setups (``--setups``):

- ``nki<-ovarian`` and ``ovarian<-nki``: the pooled NKI breast + ovarian cohort of the harness, on the genes
  both measured (another tissue and platform: a hard transfer);
- ``synthetic``: 150 random samples of the synthetic cohort as the target, the other 850 as the source (the
  same distribution: what transfer gives at best).

GexBERT runs with ``--variant`` (``linear_only``: the linear path alone, no network training, seconds; ``linear``:
the default model trained, minutes). Metric: RMSE of the hidden entries over that of the target's training
means (lower is better).

    python benchmarks/transfer.py --seeds 0 1 --variant linear_only

Writes ``benchmarks/results/transfer.json`` and ``.md`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from imputation import GEXBERT_VARIANTS, OUT, load_cohort, restoration_scenarios  # the harness

import gexbert_sc as gb

SETUPS = ("nki<-ovarian", "ovarian<-nki", "synthetic")
SYNTHETIC_TARGET = 150


def target_and_source(setup: str, seed: int) -> tuple[ad.AnnData, ad.AnnData]:
    """The target and source cohorts of a setup, on the same genes, with ``obs["cohort"]`` naming each."""
    if setup == "synthetic":
        a = load_cohort("synthetic")
        rng = np.random.default_rng([5, seed])
        is_target = np.zeros(a.n_obs, bool)
        is_target[rng.choice(a.n_obs, SYNTHETIC_TARGET, replace=False)] = True
        a.obs["cohort"] = np.where(is_target, "target", "source")
        return a[is_target].copy(), a[~is_target].copy()
    target, source = setup.split("<-")
    a = load_cohort("pooled")
    measured = {c: (~np.isnan(a.X[(a.obs["cohort"] == c).to_numpy()])).any(0) for c in (target, source)}
    genes = measured[target] & measured[source]
    t, s = a[(a.obs["cohort"] == target).to_numpy(), genes].copy(), a[(a.obs["cohort"] == source).to_numpy(), genes].copy()
    return t, s


def _rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    ok = ~np.isnan(truth)
    return math.sqrt(float(np.mean((pred[ok] - truth[ok]) ** 2)))


def run_setup(setup: str, seed: int, variant: str) -> list[dict]:
    """Every task of one setup and seed, restored the three ways."""
    target, source = target_and_source(setup, seed)
    tasks = restoration_scenarios(target, seed)
    train = target[tasks[0]["train"]].copy()
    kwargs = dict(GEXBERT_VARIANTS[variant])
    epochs = {k: kwargs.pop(k) for k in ("phase1_epochs", "phase2_epochs") if k in kwargs}
    fitted = {}
    for arm, data, extra in (("alone", train, {}),
                             ("pooled", ad.concat([train, source], merge="same"), {"batch_key": "cohort"})):
        t = time.perf_counter()
        model = gb.GexBERT(data, random_state=seed, **kwargs, **extra).train(progress=False, **epochs)
        fitted[arm] = (model, time.perf_counter() - t)
    rows = []
    X = np.asarray(target.X, dtype=np.float32)
    mu = np.nanmean(X[tasks[0]["train"]], 0)
    col = {g: i for i, g in enumerate(target.var_names)}
    for task in tasks:
        tcols = np.array([col[g] for g in task["targets"]])
        truth = X[np.ix_(task["test"], tcols)]
        test_in = target[task["test"]][:, list(task["inputs"])].copy()  # the targets go to .obsm
        base = _rmse(np.broadcast_to(mu[tcols], truth.shape), truth)
        preds = {}
        t = time.perf_counter()
        gb.tl.restore(test_in, method="ridge", genes=list(task["targets"]), reference=train, key_added="rest",
                      interval=None)
        preds["ridge"] = (test_in.obsm["rest"][list(task["targets"])].to_numpy(np.float32), 0.0)
        for arm, (model, secs) in fitted.items():
            gb.tl.restore(test_in, model=model, genes=list(task["targets"]), key_added="rest", interval=None)
            preds[arm] = (test_in.obsm["rest"][list(task["targets"])].to_numpy(np.float32), secs)
        for method, (pred, secs) in preds.items():
            rows.append({"setup": setup, "seed": seed, "scenario": task["scenario"], "panel": task["panel"],
                         "method": method, "variant": None if method == "ridge" else variant,
                         "rmse_ratio": _rmse(pred, truth) / base, "fit_seconds": secs,
                         "n_target_train": len(tasks[0]["train"]), "n_source": source.n_obs,
                         "n_genes": target.n_vars, "n_test": len(task["test"])})
        print(setup, seed, task["scenario"], task["panel"],
              {m: round(r["rmse_ratio"], 4) for m, r in zip(preds, rows[-len(preds):], strict=True)}, flush=True)
    return rows


def render(rows: list[dict], command: str, threads: str) -> str:
    """Markdown: mean (sd over seeds; panels averaged within a seed) per setup, scenario and method."""
    lines = ["# Transfer: fitted on the target cohort alone, or with a source cohort too", "",
             f"`{command}` (threads: {threads}; see the script's docstring). RMSE of the hidden entries of the "
             "target's held-out samples over that of the target's training means (lower is better); mean (sd) "
             "over seeds, panels averaged within a seed.", "",
             "| setup | target train / source samples | genes | scenario | ridge | alone | pooled | pooled / alone |",
             "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["setup"], r["scenario"]) for r in rows}, key=lambda k: (SETUPS.index(k[0]), k[1]))
    for setup, scen in keys:
        sub = [r for r in rows if r["setup"] == setup and r["scenario"] == scen]
        seeds = sorted({r["seed"] for r in sub})
        per = {m: np.array([np.mean([r["rmse_ratio"] for r in sub if r["method"] == m and r["seed"] == s]) for s in seeds])
               for m in ("ridge", "alone", "pooled")}
        cell = lambda v: f"{v.mean():.3f} ({v.std(ddof=1) if len(v) > 1 else 0:.3f})"
        r0 = sub[0]
        lines.append(f"| {setup} | {r0['n_target_train']} / {r0['n_source']} | {r0['n_genes']} | {scen} | "
                     f"{cell(per['ridge'])} | {cell(per['alone'])} | {cell(per['pooled'])} | "
                     f"{(per['pooled'] / per['alone']).mean():.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the setups (see the module docstring and ``--help``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setups", nargs="+", choices=SETUPS, default=list(SETUPS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--variant", choices=["linear_only", "linear", "none"], default="linear_only")
    ap.add_argument("--out", default="transfer")
    args = ap.parse_args()
    rows = []
    for setup in args.setups:
        for seed in args.seeds:
            rows += run_setup(setup, seed, args.variant)
    command = "python benchmarks/transfer.py " + " ".join(sys.argv[1:])
    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    out = OUT / args.out
    out.with_suffix(".json").write_text(json.dumps({"command": command, "threads": threads, "rows": rows}, indent=1))
    out.with_suffix(".md").write_text(render(rows, command, threads))
    print(render(rows, command, threads))


if __name__ == "__main__":
    main()
