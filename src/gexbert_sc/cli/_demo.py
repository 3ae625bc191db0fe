"""``gexbert-sc demo``: train on a bundled dataset; write the .h5ad, UMAP and loss-curve PNGs and the model."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ._errors import EXIT_INPUT_FILE, EXIT_USAGE, errors_mean
from ._parser import new_command, non_negative_int
from ._training import check_training_args, config_from_args, prepare_out, training_errors

DATASETS = ("synthetic", "tcga_skcm", "ovarian_gse51088", "nki_breast")


def add_training_options(p: argparse.ArgumentParser, *, default_out: str) -> None:
    """The options ``demo`` and ``fit`` share."""
    p.add_argument("--out", default=default_out, help=f"output folder, created if absent (default: {default_out})")
    p.add_argument("--overwrite", action="store_true", help="replace the model in --out/model if there is one")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config setting, e.g. --set activation=relu --set batch_size=64 (repeatable)")
    p.add_argument("--phase1-epochs", type=non_negative_int, default=None, metavar="N",
                   help="override the phase-1 epochs")
    p.add_argument("--phase2-epochs", type=non_negative_int, default=None, metavar="N",
                   help="override the phase-2 epochs")
    p.add_argument("--seed", "--random-state", dest="seed", type=non_negative_int, default=0,
                   help="random_state (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("-q", "--quiet", action="store_true", help="hide the progress bar and the summary")
    p.add_argument("-v", "--verbose", action="store_true", help="log what is added where")


def add_parser(sub) -> None:
    """Add ``demo`` to the subcommands."""
    p = new_command(sub, "demo", "train a small GexBERT on a bundled dataset and write the results",
                    "Train a small GexBERT on a bundled dataset (cpu preset) and write the results.")
    p.add_argument("--dataset", choices=DATASETS, default="synthetic", help="bundled dataset (default: synthetic)")
    add_training_options(p, default_out="gexbert_demo")
    p.set_defaults(run=run)


def _load(name: str):
    """The bundled dataset ``name``."""
    from gexbert_sc import datasets

    return getattr(datasets, name)()


def run(args: argparse.Namespace) -> int:
    """Train on a bundled dataset; write the .h5ad, UMAP and loss-curve PNGs and the model; print a summary.

    Parameters
    ----------
    args
        The parsed ``demo`` options.

    Returns
    -------
    int
        0 on success; user errors are raised, tagged with their exit code (see :func:`~gexbert_sc.cli.main`).
    """
    from gexbert_sc import tl

    out = Path(args.out)
    t_all = time.perf_counter()
    with errors_mean(EXIT_USAGE):
        config = config_from_args("cpu", args.set or [])
        check_training_args(args)
        prepare_out(out, overwrite=args.overwrite)
    with errors_mean(EXIT_INPUT_FILE, (OSError,)):
        adata = _load(args.dataset)
    say = (lambda *a, **k: None) if args.quiet else print
    say(f"GexBERT demo on {args.dataset}: {adata.n_obs} samples x {adata.n_vars} genes", flush=True)
    t0 = time.perf_counter()
    with training_errors():
        model = tl.fit(adata, config=config, phase1_epochs=args.phase1_epochs, phase2_epochs=args.phase2_epochs,
                       random_state=args.seed, device=args.device, progress=not (args.no_progress or args.quiet))
    t_train = time.perf_counter() - t0
    tl.umap(adata, random_state=args.seed)
    color = _write_results(adata, model, out)
    say(_summary(model, out, color, t_train, time.perf_counter() - t_all))
    return 0


def _write_results(adata, model, out: Path) -> str | None:
    """Write the UMAP and history PNGs, the .h5ad and the model; return the column the UMAP is coloured by."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gexbert_sc import pl

    # colour by cancer type; a single-type cohort is coloured by another label it has
    color = next((c for c in ("cancer_type", "sample_type", "histological_type", "er")
                  if c in adata.obs and adata.obs[c].nunique() > 1), None)
    with errors_mean(EXIT_INPUT_FILE, (OSError,)):
        fig = pl.umap(adata, color=color, return_fig=True)
        fig.savefig(out / "umap_samples.png", dpi=150, bbox_inches="tight")
        plt.close(fig)
        fig = pl.history(adata, return_fig=True)
        fig.savefig(out / "training_history.png", dpi=150, bbox_inches="tight")
        plt.close(fig)
        adata.write_h5ad(out / "adata_gexbert.h5ad", compression="gzip")
        model.save(out / "model", overwrite=True)  # prepare_out refused an existing one without --overwrite
    return color


def _summary(model, out: Path, color: str | None, t_train: float, t_all: float) -> str:
    """The lines ``demo`` prints at the end."""
    m = model.metrics
    n_p1 = sum(1 for h in model.history if h["phase"] == 1)
    n_p2 = len(model.history) - n_p1
    return "\n".join([
        "",
        f"trained {len(model.history)} epochs (phase 1: {n_p1}, phase 2: {n_p2}) in {t_train:.0f} s on {model.device}",
        "validation MSE, standardised units (lower is better):",
        f"  restore genes not in the input : {m['val_other']:.3f}",
        f"  restore the input genes        : {m['val_same']:.3f}",
        f"  predict the training mean      : {m['val_mean']:.3f}   (baseline)",
        f"  -> restoration error is {m['val_other'] / m['val_mean']:.0%} of the baseline's",
        f"wrote {out / 'adata_gexbert.h5ad'} (.obsm['X_gexbert'], .obsm['X_gexbert_umap'], .uns['gexbert'])",
        f"      {out / 'umap_samples.png'} (coloured by {color}), {out / 'training_history.png'}, {out / 'model'}/",
        f"total {t_all:.0f} s",
    ])
