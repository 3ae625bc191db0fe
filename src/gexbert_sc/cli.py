"""Command line: ``gexbert-sc demo`` trains a small GexBERT on a bundled dataset and writes the results."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

DATASETS = ("synthetic", "tcga_skcm", "ovarian_gse51088", "nki_breast")


def _load(name: str):
    from . import datasets

    return getattr(datasets, name)()


def demo(args: argparse.Namespace) -> int:
    """Train on a bundled dataset; write .h5ad, UMAP and loss-curve PNGs, the model; print a summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import pl, tl

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    adata = _load(args.dataset)
    print(f"GexBERT demo on {args.dataset}: {adata.n_obs} samples x {adata.n_vars} genes", flush=True)
    t0 = time.perf_counter()
    model = tl.fit(
        adata,
        phase1_epochs=args.phase1_epochs,
        phase2_epochs=args.phase2_epochs,
        random_state=args.seed,
        device=args.device,
        progress=not args.no_progress,
    )
    t_train = time.perf_counter() - t0
    tl.umap(adata, random_state=args.seed)
    # colour by cancer type; a single-type cohort is coloured by another label it has
    color = next((c for c in ("cancer_type", "sample_type", "histological_type", "er")
                  if c in adata.obs and adata.obs[c].nunique() > 1), None)
    fig = pl.umap(adata, color=color, return_fig=True)
    fig.savefig(out / "umap_samples.png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    fig = pl.history(adata, return_fig=True)
    fig.savefig(out / "training_history.png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    adata.write_h5ad(out / "adata_gexbert.h5ad", compression="gzip")
    model.save(out / "model", overwrite=True)
    m = model.metrics
    n_p1 = sum(1 for h in model.history if h["phase"] == 1)
    n_p2 = len(model.history) - n_p1
    lines = [
        "",
        f"trained {len(model.history)} epochs (phase 1: {n_p1}, phase 2: {n_p2}) in {t_train:.0f} s on {model.device}",
        "validation MSE, standardised units (lower is better):",
        f"  restore genes not in the input : {m['val_other']:.3f}",
        f"  restore the input genes        : {m['val_same']:.3f}",
        f"  predict the training mean      : {m['val_mean']:.3f}   (baseline)",
        f"  -> restoration error is {m['val_other'] / m['val_mean']:.0%} of the baseline's",
        f"wrote {out / 'adata_gexbert.h5ad'} (.obsm['X_gexbert'], .obsm['X_gexbert_umap'], .uns['gexbert'])",
        f"      {out / 'umap_samples.png'} (coloured by {color}), {out / 'training_history.png'}, {out / 'model'}/",
        f"total {time.perf_counter() - t_all:.0f} s",
    ]
    print("\n".join(lines))
    return 0


def _config_from_args(preset: str, settings: list[str]):
    """The preset with ``KEY=VALUE`` overrides; a VALUE is read as JSON (numbers, true/false), else as text."""
    import json

    from .model import resolve_config

    overrides = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r} (e.g. --set activation=relu)")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return resolve_config(preset, **overrides)


def fit(args: argparse.Namespace) -> int:
    """Train on an .h5ad file; rank 0 writes the model and the AnnData with the embeddings."""
    import os

    import anndata as ad

    from . import tl

    path = Path(args.input)
    if not path.is_file():
        print(f"gexbert-sc fit: no file at {path}", file=sys.stderr)
        return 2
    try:
        config = _config_from_args(args.config, args.set or [])
    except (TypeError, ValueError) as e:
        print(f"gexbert-sc fit: {e}", file=sys.stderr)
        return 2
    adata = ad.read_h5ad(path, backed="r" if args.backed else None)
    setup = dict(layer=args.layer, config=config, batch_key=args.batch_key, random_state=args.seed)
    training = dict(phase1_epochs=args.phase1_epochs, phase2_epochs=args.phase2_epochs, device=args.device,
                    progress=not args.no_progress, checkpoint_dir=args.checkpoint_dir, resume=args.resume)
    if args.backed:  # a backed AnnData cannot take new keys: train, then write the embedding beside it
        from .model import GexBERT

        model = GexBERT(adata, **setup).train(**training)
    else:
        model = tl.fit(adata, **setup, **training)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model", overwrite=True)
    if args.backed:
        import numpy as np

        np.save(out / "X_gexbert.npy", model.embed(adata))
        written = out / "X_gexbert.npy"
    else:
        adata.write_h5ad(out / "adata_gexbert.h5ad", compression="gzip")
        written = out / "adata_gexbert.h5ad"
    m = model.metrics
    if m:
        print(f"validation MSE (standardised): other genes {m['val_other']:.3f}, input genes {m['val_same']:.3f}, "
              f"training mean {m['val_mean']:.3f}")
    print(f"wrote {out / 'model'}/ and {written}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gexbert-sc`` console script."""
    parser = argparse.ArgumentParser(prog="gexbert-sc", description="GexBERT for bulk gene expression")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train a small GexBERT on a bundled dataset and write the results")
    p.add_argument("--dataset", choices=DATASETS, default="synthetic", help="bundled dataset (default: synthetic)")
    p.add_argument("--out", default="gexbert_demo", help="output folder (default: gexbert_demo)")
    p.add_argument("--phase1-epochs", type=int, default=None, help="override phase-1 epochs")
    p.add_argument("--phase2-epochs", type=int, default=None, help="override phase-2 epochs")
    p.add_argument("--seed", type=int, default=0, help="random_state (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log what is added where")
    f = sub.add_parser("fit", help="train on an .h5ad file (works under torchrun for multi-GPU / multi-process)")
    f.add_argument("input", help="samples x genes .h5ad, log-scale values")
    f.add_argument("--out", default="gexbert_fit", help="output folder (default: gexbert_fit)")
    f.add_argument("--config", default="cpu", help="preset: cpu or paper (default: cpu)")
    f.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config setting, e.g. --set activation=relu --set batch_size=64 (repeatable)")
    f.add_argument("--layer", default=None, help="layer to train on instead of .X")
    f.add_argument("--batch-key", default=None, help="obs column whose groups are standardised separately")
    f.add_argument("--phase1-epochs", type=int, default=None)
    f.add_argument("--phase2-epochs", type=int, default=None)
    f.add_argument("--device", default="auto")
    f.add_argument("--backed", action="store_true", help="stream .X from disk instead of loading it")
    f.add_argument("--checkpoint-dir", default=None, help="write a checkpoint there after every epoch")
    f.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--no-progress", action="store_true")
    f.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if args.command == "demo":
        return demo(args)
    if args.command == "fit":
        return fit(args)
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
