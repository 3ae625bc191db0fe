"""``gexbert-sc fit``: train on an .h5ad file; write the model and the AnnData with the embeddings."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from . import _io
from ._demo import add_training_options
from ._errors import EXIT_INPUT_FILE, EXIT_USAGE, errors_mean
from ._parser import new_command
from ._training import check_training_args, config_from_args, prepare_out, training_errors


def add_parser(sub) -> None:
    """Add ``fit`` to the subcommands."""
    f = new_command(sub, "fit", "train on an .h5ad file (works under torchrun for multi-GPU / multi-process)",
                    "Train GexBERT on an .h5ad file and write the model (OUT/model) and the embeddings "
                    "(OUT/adata_gexbert.h5ad).")
    f.add_argument("input", help="samples x genes .h5ad, log-scale values")
    f.add_argument("--config", default="cpu", help="preset: cpu, gpu, paper or auto (gpu with CUDA and 2,000+ samples; default: cpu)")
    f.add_argument("--layer", default=None, help="layer to train on instead of .X")
    f.add_argument("--batch-key", default=None, help="obs column whose groups are standardised separately")
    f.add_argument("--backed", action="store_true", help="stream .X from disk instead of loading it")
    f.add_argument("--checkpoint-dir", default=None, help="write a checkpoint there after every epoch")
    f.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    add_training_options(f, default_out="gexbert_fit")
    f.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train on an .h5ad file; rank 0 writes the model and the AnnData with the embeddings.

    The options, the device and ``--out`` are checked before the data are read, and the data before
    training starts, so a mistake costs seconds, not a training run.

    Parameters
    ----------
    args
        The parsed ``fit`` options.

    Returns
    -------
    int
        0 on success; user errors are raised, tagged with their exit code (see :func:`~gexbert_sc.cli.main`).
    """
    from gexbert_sc import tl

    path, out = Path(args.input), Path(args.out)
    with errors_mean(EXIT_USAGE):
        config = config_from_args(args.config, args.set or [])
        check_training_args(args)
        if args.resume and args.checkpoint_dir is None:
            raise ValueError("--resume needs --checkpoint-dir, the folder the interrupted run wrote checkpoints to")
    with errors_mean(EXIT_INPUT_FILE):
        _io.check_input_file(path)  # before --out is created: a mistyped input leaves no empty folder behind
    with errors_mean(EXIT_USAGE):
        prepare_out(out, overwrite=args.overwrite)
    with errors_mean(EXIT_INPUT_FILE):
        adata = _io.read_h5ad(path, backed=args.backed)
    setup = {"layer": args.layer, "config": config, "batch_key": args.batch_key, "random_state": args.seed}
    training = {"phase1_epochs": args.phase1_epochs, "phase2_epochs": args.phase2_epochs, "device": args.device,
                "progress": not (args.no_progress or args.quiet), "checkpoint_dir": args.checkpoint_dir,
                "resume": args.resume}
    with training_errors():
        if args.backed:  # a backed AnnData cannot take new keys: train, then write the embedding beside it
            from gexbert_sc.model import GexBERT

            model = GexBERT(adata, **setup).train(**training)
        else:
            model = tl.fit(adata, **setup, **training)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    written = _write(adata, model, out, backed=args.backed)
    m = model.metrics
    if not args.quiet and m:
        print(f"validation MSE (standardised): other genes {m['val_other']:.3f}, input genes {m['val_same']:.3f}, "
              f"training mean {m['val_mean']:.3f}")
    if not args.quiet:
        print(f"wrote {out / 'model'}/ and {written}")
    return 0


def _write(adata, model, out: Path, *, backed: bool) -> Path:
    """Save the model and the embeddings (an .npy beside a backed input, else the .h5ad); return the data file."""
    with errors_mean(EXIT_INPUT_FILE, (OSError,)):
        model.save(out / "model", overwrite=True)  # prepare_out refused an existing one without --overwrite
        if backed:
            import numpy as np

            written = out / "X_gexbert.npy"
            np.save(written, model.embed(adata))
        else:
            written = out / "adata_gexbert.h5ad"
            adata.write_h5ad(written, compression="gzip")
    return written
