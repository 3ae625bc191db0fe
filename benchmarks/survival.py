"""Survival from a few input genes (the paper's evaluation 2) with ``gexbert_sc.tl.survival``.

For each cohort a GexBERT ("cpu" preset) is pretrained on all its samples (no survival data), then for
every number of input genes k and repeat r, ``tl.survival`` fits a ridge Cox model per group (5-fold CV
stratified by event, penalty chosen by inner 3-fold CV) on the same k random genes (seeded by r) as:
``original`` (the input genes), ``restored`` (the 512 anchors restored from them, the anchors chosen on
each training fold), ``both``, ``embedding`` (the summary embedding) and ``pca`` (PCA-200 of the input
genes, capped by k and the training samples). Harrell's C of the pooled out-of-fold risks per group,
averaged over the groups.

Cohorts (``gb.datasets``; time ``os_time`` in days, event ``os_event``, groups ``cancer_type``):
  synthetic         1,000 samples x 2,000 genes, 5 types (one Cox model per type)
  tcga_skcm         454 melanoma samples x 1,712 genes, RNA-seq
  ovarian_gse51088  123 ovarian tumours x 8,211 genes, microarray
  nki_breast        150 breast tumours x 922 probes (overall survival known for 129)

The paper's numbers (mean over 14 TCGA cancer types, a model pretrained on 11,014 samples x 20,311 genes
for 11,500 epochs) stand beside ours for reference only.

Usage: python benchmarks/survival.py [--genes 64 256] [--repeats 2] [--cohorts ...] [--features ...]
       [--epochs 4 8] [--n-anchors 512] [--model-dir DIR]
Writes benchmarks/results/survival.json and survival.md (survival<suffix>.json/.md with --suffix).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import gexbert_sc as gb

OUT = Path(__file__).parent / "results"
FEATURES = ["original", "restored", "both", "embedding", "pca"]
COHORTS = ["synthetic", "tcga_skcm", "ovarian_gse51088", "nki_breast"]
#: The paper's mean C-index over 14 cancer types (sd over repeats): PCA and the summary embedding.
PAPER_EMB = {
    64: {"pca": None, "embedding": (0.606, 0.011)},
    128: {"pca": None, "embedding": (0.614, 0.012)},
    256: {"pca": (0.559, 0.013), "embedding": (0.618, 0.006)},
    512: {"pca": (0.568, 0.011), "embedding": (0.625, 0.008)},
    1024: {"pca": (0.564, 0.009), "embedding": (0.625, 0.007)},
}
#: What the paper says in words about the gene-based models (its exact numbers are only in a figure).
PAPER_GENES = {
    64: {"original": "0.608", "restored": "+1.7% over original", "both": "> original"},
    128: {"original": "-", "restored": "+1.4% over original", "both": "> original"},
    256: {"original": "-", "restored": "+1.3% over original", "both": "> original"},
    512: {"original": "-", "restored": "< original", "both": "> original"},
    1024: {"original": "0.647", "restored": "< original", "both": "> original"},
}


def cohort(name: str):
    """The AnnData of a cohort."""
    if name == "synthetic":
        return gb.datasets.synthetic(random_state=0)
    return getattr(gb.datasets, name)()


def pretrained(name: str, adata, epochs, model_dir: Path | None) -> gb.GexBERT:
    """A "cpu" preset GexBERT pretrained on ``adata`` (seed 0), loaded from ``model_dir`` when saved there before."""
    path = None if model_dir is None else model_dir / f"{name}-{epochs[0]}-{epochs[1]}"
    if path is not None and (path / "model.json").exists():
        return gb.GexBERT.load(path, adata)
    model = gb.GexBERT(adata, random_state=0).train(phase1_epochs=epochs[0], phase2_epochs=epochs[1], progress=False)
    if path is not None:
        model.save(path, overwrite=True)
    return model


def fmt(mean, sd) -> str:
    """``mean ± sd`` with three decimals, ``-`` when missing."""
    return "-" if mean is None or not np.isfinite(mean) else f"{mean:.3f} ± {sd:.3f}"


def main(argv=None) -> None:
    """Run the benchmark and write the results."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--genes", type=int, nargs="+", default=[64, 256], help="input gene counts (paper: 64..1024)")
    p.add_argument("--repeats", type=int, default=2, help="repeats with other random genes and folds (paper: 10)")
    p.add_argument("--cohorts", nargs="+", default=COHORTS, choices=COHORTS)
    p.add_argument("--features", nargs="+", default=FEATURES, choices=FEATURES)
    p.add_argument("--epochs", type=int, nargs=2, default=[4, 8], metavar=("PHASE1", "PHASE2"),
                   help="pretraining epochs of the two phases (the cpu preset: 15 25)")
    p.add_argument("--n-anchors", type=int, default=512)
    p.add_argument("--suffix", default="", help="write results/survival<suffix>.json and .md, e.g. .full_pretraining")
    p.add_argument("--model-dir", type=Path, default=None,
                   help="reuse pretrained models saved there (same cohort and epochs), save new ones there")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on the shared 2-core machine 2 threads ran 4-8x slower)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=r"training on \d+ samples")
    warnings.filterwarnings("ignore", message=r"dropping \d+ of \d+ sample")
    command = "python benchmarks/survival.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    rows, models = [], {}
    t_all = time.time()
    for name in args.cohorts:
        adata = cohort(name)
        t0 = time.time()
        model = pretrained(name, adata, args.epochs, args.model_dir)
        ev = adata.obs["os_event"]
        models[name] = {"seconds": round(time.time() - t0, 1), "epochs": len(model.history),
                        "val_other": float(model.history[-1]["val_other"]),
                        "val_mean": float(model.history[-1]["val_mean"]), "n_obs": adata.n_obs, "n_vars": adata.n_vars,
                        "n_survival": int(ev.notna().sum()), "n_events": int(ev.fillna(False).astype(bool).sum()),
                        "n_groups": int(adata.obs["cancer_type"].nunique())}
        print(f"{name}: pretrained in {models[name]['seconds']} s, val_other {models[name]['val_other']:.3f}", flush=True)
        for k in args.genes:
            if k > adata.n_vars:
                continue
            for feat in args.features:
                t1 = time.time()
                gb.tl.survival(adata, model=model, features=feat, input_genes=k, groupby="cancer_type",
                               time_key="os_time", event_key="os_event", repeats=args.repeats, random_state=0,
                               n_anchors=args.n_anchors, time_unit="days", progress=False, key_added="bench")
                u = adata.uns["bench"]
                per_repeat = u["c_index"].mean(axis=0).to_numpy()
                rows.append({"cohort": name, "genes": k, "features": feat, "c_index": u["mean"], "sd": u["sd"],
                             "per_repeat": per_repeat.tolist(), "integrated_brier": u["integrated_brier_mean"],
                             "seconds": round(time.time() - t1, 1)})
                print(f"  k={k} {feat}: C {u['mean']:.3f} ± {u['sd']:.3f}, IBS {u['integrated_brier_mean']:.3f} "
                      f"({rows[-1]['seconds']} s)", flush=True)
    total = round(time.time() - t_all, 1)
    meta = {"command": command, "torch": torch.__version__, "threads": args.threads, "machine": platform.machine(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "total_seconds": total, "models": models,
            "pretraining_epochs": args.epochs, "repeats": args.repeats, "n_anchors": args.n_anchors}
    OUT.mkdir(exist_ok=True)
    (OUT / f"survival{args.suffix}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    write_markdown(meta, rows, args)
    print(f"wrote {OUT / f'survival{args.suffix}.md'} ({total} s)")


def write_markdown(meta, rows, args) -> None:
    """Write ``survival.md``: the tables beside the paper's numbers."""
    import pandas as pd

    df = pd.DataFrame(rows)
    lines = [
        "# Survival from a few input genes (paper evaluation 2)",
        "",
        f"`{meta['command']}` — torch {meta['torch']}, {meta['threads']} threads, {meta['date']}, "
        f"{meta['total_seconds']:.0f} s in all.",
        "",
        "Harrell's C-index of the pooled out-of-fold Cox risks (5-fold CV stratified by event, ridge penalty chosen "
        "by inner 3-fold CV), mean over the cohort's groups; ± the sd over "
        f"{meta['repeats']} repeats (other random input genes and folds; the same genes and folds for every feature "
        "set of a repeat). IBS: integrated Brier score of the out-of-fold survival curves (lower is better; 0.25 "
        f"for a constant 0.5). GexBERT: the \"cpu\" preset pretrained on each cohort for {meta['pretraining_epochs'][0]} "
        f"+ {meta['pretraining_epochs'][1]} epochs on all its samples, without survival data; {meta['n_anchors']} "
        "anchors (capped by the cohort's genes), chosen on each training fold.",
        "",
        "The paper column is the mean over 14 TCGA cancer types with a model pretrained on the whole pan-cancer "
        "cohort: for reference, not comparable number for number. The paper gives the gene-based results in words "
        "and a figure only.",
        "",
    ]
    for name in args.cohorts:
        if name not in meta["models"]:
            continue
        m = meta["models"][name]
        sub = df[df["cohort"] == name]
        lines += [f"## {name}", "",
                  f"{m['n_obs']} samples x {m['n_vars']} genes, {m['n_survival']} with survival, {m['n_events']} events, "
                  f"{m['n_groups']} group(s); pretraining {m['seconds']:.0f} s ({m['epochs']} epochs, validation MSE "
                  f"restoring other genes {m['val_other']:.3f} vs {m['val_mean']:.3f} for the mean).", ""]

        def cell(k, feat, col="c_index", sub=sub):
            r = sub[(sub["genes"] == k) & (sub["features"] == feat)]
            if not len(r):
                return "-"
            r = r.iloc[0]
            return fmt(r["c_index"], r["sd"]) if col == "c_index" else f"{r[col]:.3f}"

        ks = [k for k in args.genes if k in set(sub["genes"])]
        emb = [f for f in ("pca", "embedding") if f in args.features]
        if emb:
            lines += ["**Summary embedding vs PCA**", "",
                      "| input genes | " + " | ".join(f"{f} (ours) | {f} (paper)" for f in emb) + " |",
                      "|---|" + "---|" * (2 * len(emb))]
            for k in ks:
                cells = []
                for f in emb:
                    pp = PAPER_EMB.get(k, {}).get(f)
                    cells += [cell(k, f), "-" if pp is None else fmt(*pp)]
                lines.append(f"| {k} | " + " | ".join(cells) + " |")
            lines.append("")
        gene = [f for f in ("original", "restored", "both") if f in args.features]
        if gene:
            lines += ["**Original vs restored anchors vs both**", "",
                      "| input genes | " + " | ".join(f"{f} (ours) | {f} (paper)" for f in gene) + " |",
                      "|---|" + "---|" * (2 * len(gene))]
            for k in ks:
                cells = []
                for f in gene:
                    cells += [cell(k, f), PAPER_GENES.get(k, {}).get(f, "-")]
                lines.append(f"| {k} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += ["**Integrated Brier score and seconds per run (all repeats)**", "",
                  "| input genes | " + " | ".join(args.features) + " |", "|---|" + "---|" * len(args.features)]
        for k in ks:
            cells = []
            for f in args.features:
                r = sub[(sub["genes"] == k) & (sub["features"] == f)]
                cells.append("-" if not len(r) else f"{r.iloc[0]['integrated_brier']:.3f} ({r.iloc[0]['seconds']:.0f} s)")
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines.append("")
    (OUT / f"survival{args.suffix}.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
