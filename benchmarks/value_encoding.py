"""Compare value encodings on the bundled real cohorts (and the synthetic default).

For each cohort and each variant, train the "cpu" preset with its default epoch budget and record
the validation MSE of restoring genes that were not in the input (``val_other``, phase-2 task), of
restoring the input genes (``val_same``), and of predicting the training mean (``val_mean``), all
in standardised units. As a classic reference, scikit-learn's KNNImputer fills the same target
genes of the same validation samples from the same input genes (training samples as neighbours).

Variants:
  interp_proj  interpolated levels + per-gene value projection, summary readout (package default)
  interp       interpolated levels, summary readout
  binned       the paper's hard 64-level bins, summary readout
  paper        the paper's bins and decoder (no summary readout)
  interp_proj_relu  interp_proj with ReLU instead of GELU in the feed-forward blocks

Usage: python benchmarks/value_encoding.py [--seeds 0 1] [--cohorts ...] [--variants ...]
Writes benchmarks/results/value_encoding.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.impute import KNNImputer

import gexbert_sc as gb
from gexbert_sc.train import ValidationSet

VARIANTS = {
    "interp_proj": {"value_encoding": "interp_proj", "summary_readout": True},
    "interp": {"value_encoding": "interp", "summary_readout": True},
    "binned": {"value_encoding": "binned", "summary_readout": True},
    "paper": {"value_encoding": "binned", "summary_readout": False},
    "interp_proj_relu": {"value_encoding": "interp_proj", "summary_readout": True, "activation": "relu"},
}
COHORTS = ["ovarian_gse51088", "nki_breast", "tcga_skcm", "synthetic"]


def knn_mse(model: gb.GexBERT, adata, k: int = 10) -> float:
    """KNNImputer on the phase-2 validation task, standardised units."""
    Z = model.standardize(adata)
    c = model.config
    vs = ValidationSet.make(model.validation_rows, len(model.genes), c.n_input, c.n_target, model.random_state)
    gi, gt = vs.inputs[2].numpy(), vs.targets[2].numpy()
    V = np.full((len(vs.rows), Z.shape[1]), np.nan, np.float32)
    rows = np.arange(len(vs.rows))[:, None]
    V[rows, gi] = Z[vs.rows][rows, gi]
    imp = KNNImputer(n_neighbors=k, keep_empty_features=True).fit(Z[model.training_rows])
    filled = imp.transform(V)
    truth = Z[vs.rows][rows, gt]
    pred = filled[rows, gt]
    ok = np.isfinite(truth)
    return float(np.mean((pred[ok] - truth[ok]) ** 2))


def main() -> None:
    """Train each variant on each cohort and write the results."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--cohorts", nargs="+", default=COHORTS)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "value_encoding"))
    ap.add_argument("--append", action="store_true", help="add to the runs already in the output JSON")
    ap.add_argument("--title", default="Value encodings on real cohorts", help="heading of the Markdown table")
    args = ap.parse_args()
    rows = []
    if args.append and Path(args.out + ".json").exists():
        rows = json.loads(Path(args.out + ".json").read_text())["runs"]
    for cohort in args.cohorts:
        adata = getattr(gb.datasets, cohort)()
        for seed in args.seeds:
            knn = None
            for name in args.variants:
                t0 = time.perf_counter()
                model = gb.GexBERT(adata, random_state=seed, **VARIANTS[name]).train(progress=False)
                secs = time.perf_counter() - t0
                if knn is None:
                    knn = knn_mse(model, adata)
                rec = dict(cohort=cohort, shape=list(adata.shape), seed=seed, variant=name, seconds=round(secs, 1),
                           epochs=len(model.history), knn_val_other=knn, **model.metrics)
                rows.append(rec)
                print(json.dumps(rec), flush=True)
                write(rows, args)


def write(rows: list[dict], args) -> None:
    """JSON of every run and a Markdown table of means over seeds."""
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
                "command": "python benchmarks/value_encoding.py " + shlex.join(sys.argv[1:])}
    Path(args.out + ".json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1))
    # Markdown: mean over seeds
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"# {getattr(args, 'title', 'Value encodings on real cohorts')}\n\n`{meta['command']}` (torch {meta['torch']}, {meta['threads']} threads;"
             " runs may come from several invocations with --append)\n",
             "MSE in standardised units on the validation samples, mean over seeds "
             f"{seeds}. `val_other`: restore genes not in the input; `val_same`: restore the input genes; "
             "`mean`: predict the training mean; `KNN`: KNNImputer(10) from the same input genes.\n",
             "| cohort | variant | val_other | val_other / mean | val_same | KNN val_other | mean | epochs | s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for cohort in dict.fromkeys(r["cohort"] for r in rows):
        for name in dict.fromkeys(r["variant"] for r in rows):
            rs = [r for r in rows if r["cohort"] == cohort and r["variant"] == name]
            if not rs:
                continue
            def f(k, rs=rs):
                return np.mean([r[k] for r in rs])

            lines.append(f"| {cohort} | {name} | {f('val_other'):.3f} | {f('val_other') / f('val_mean'):.2f} | "
                         f"{f('val_same'):.3f} | {f('knn_val_other'):.3f} | {f('val_mean'):.3f} | {f('epochs'):.0f} | {f('seconds'):.0f} |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
