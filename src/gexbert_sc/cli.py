"""The ``gexbert-sc`` command line: ``demo`` trains on a bundled dataset, ``fit`` on an .h5ad file.

Only the standard library is imported here: torch, anndata and scanpy are imported inside the commands,
so ``gexbert-sc --help`` and ``gexbert-sc --version`` start at once.

A user error (a bad option, a missing or unreadable input file, bad input data, a damaged checkpoint)
prints one line, ``gexbert-sc <command>: error: <message>``, to stderr and exits with the code listed in
:data:`EXIT_CODES_HELP`; any other exception is a bug and keeps its traceback (exit status 1). Each
command checks its options, the device and ``--out`` before it reads data, and the data before it
trains. Python warnings are printed as one line each, ``gexbert-sc <command>: warning: <message>``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from . import __version__

DATASETS = ("synthetic", "tcga_skcm", "ovarian_gse51088", "nki_breast")

EXIT_USAGE = 2  #: bad arguments or settings
EXIT_INPUT_FILE = 3  #: input file missing or unreadable; results cannot be written
EXIT_INPUT_DATA = 4  #: bad input data
EXIT_MODEL = 5  #: incompatible or damaged model or checkpoint
EXIT_INTERRUPTED = 130  #: Ctrl-C

EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    unexpected error: a bug (the traceback is printed; please report it)
  2    bad arguments or settings (options, --set, --device, --out)
  3    a file cannot be read or written: the input is missing or not a readable .h5ad,
       a bundled dataset cannot be loaded, or writing the results failed
  4    bad input data: its values (e.g. raw counts), a missing --layer or --batch-key
  5    incompatible or damaged model or training checkpoint (--resume)
  130  interrupted (Ctrl-C)"""

#: The exceptions the package raises for user errors. Inside an :func:`_errors_mean` block they are
#: tagged with an exit code; :func:`main` turns a tagged one into a one-line message.
_DATA_ERRORS = (ValueError, KeyError, TypeError)
_USER_ERRORS = (*_DATA_ERRORS, OSError)  # OSError: FileNotFoundError, FileExistsError, ...
_EXIT_CODE_ATTR = "_gexbert_exit_code"


@contextmanager
def _errors_mean(
    code: int, types: tuple[type[BaseException], ...] = _USER_ERRORS, *, raised_in: tuple[Callable, ...] = ()
) -> Iterator[None]:
    """Say that the user-facing exceptions raised in the block are user errors with exit status ``code``.

    Parameters
    ----------
    code
        Exit status for :func:`main` to return.
    types
        The exception types meant; others pass through untouched.
    raised_in
        If given, only exceptions raised inside one of these functions are meant.

    Notes
    -----
    The exception propagates unchanged, tagged with ``code``; an inner block's tag wins over an outer's.
    An exception raised outside every block is not a user error but a bug, and keeps its traceback.
    """
    try:
        yield
    except types as e:
        if not hasattr(e, _EXIT_CODE_ATTR) and (not raised_in or _raised_in(e, raised_in)):
            setattr(e, _EXIT_CODE_ATTR, code)
        raise


def _raised_in(e: BaseException, functions: tuple[Callable, ...]) -> bool:
    """Whether the traceback of ``e`` passes through one of ``functions``."""
    codes = {f.__code__ for f in functions}
    return any(frame.f_code in codes for frame, _ in traceback.walk_tb(e.__traceback__))


def _one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (a ``KeyError``'s without the quotes its ``str`` adds)."""
    msg = e.args[0] if isinstance(e, KeyError) and e.args else e
    return " ".join(str(msg).split()) or type(e).__name__


# ---------------------------------------------------------------- checks shared by the commands
def _config_from_args(preset: str, settings: list[str]):
    """The config ``preset`` with ``KEY=VALUE`` overrides.

    Parameters
    ----------
    preset
        Name of a config preset (``cpu`` or ``paper``).
    settings
        ``KEY=VALUE`` strings; a VALUE is read as JSON (numbers, true/false), else as text.

    Returns
    -------
    GexBERTConfig
        The resolved, validated config.

    Raises
    ------
    ValueError, TypeError
        A malformed item, an unknown preset or setting, or a bad value.
    """
    import json

    from .model import resolve_config

    overrides = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes KEY=VALUE, got {item!r} (e.g. --set activation=relu)")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return resolve_config(preset, **overrides)


def _check_training_args(args: argparse.Namespace) -> None:
    """Refuse an absent ``--device`` and an empty epoch budget before any data is read.

    Raises
    ------
    ValueError
        The device is unknown or absent (e.g. ``cuda`` without CUDA), or both phases have 0 epochs.
    """
    from .train import resolve_device

    resolve_device(args.device)
    if args.phase1_epochs == 0 and args.phase2_epochs == 0:
        raise ValueError("--phase1-epochs 0 and --phase2-epochs 0 train nothing; give at least one epoch")


def _prepare_out(out: Path, *, overwrite: bool) -> None:
    """Create the output folder, check that it is writable and that ``out/model`` may be written.

    Parameters
    ----------
    out
        The ``--out`` folder.
    overwrite
        Whether ``out/model`` may be replaced.

    Raises
    ------
    OSError
        ``out`` cannot be created or written to, or is not a folder.
    FileExistsError
        ``out/model`` exists and ``overwrite`` is False, or it is not a folder.
    """
    import tempfile

    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise OSError(f"--out {out} is not a writable folder ({e.strerror or e}); choose another --out") from None
    model = out / "model"
    if model.exists() and not model.is_dir():
        raise FileExistsError(f"{model} exists and is not a model folder; choose another --out")
    if model.exists() and not overwrite:
        raise FileExistsError(f"{model} exists; pass --overwrite to replace it, or choose another --out")


def _read_h5ad(path: Path, *, backed: bool):
    """Read the input .h5ad (``backed``: only open it), or raise ``OSError`` saying why it cannot be read.

    Raises
    ------
    FileNotFoundError
        There is no file at ``path``.
    OSError
        The file is not a readable .h5ad.
    """
    import anndata as ad

    if not path.exists():
        raise FileNotFoundError(f"no file at {path}")
    if not path.is_file():
        raise OSError(f"{path} is not a file; give the path of an .h5ad file")
    try:
        adata = ad.read_h5ad(path, backed="r" if backed else None)
        if backed:
            _ = adata.X  # backed reading is lazy: open the matrix now, so a damaged file fails here
    except Exception as e:  # h5py and anndata raise many types here: all mean "not a readable .h5ad"
        reason = _one_line(e)
        raise OSError(f"cannot read {path} as an .h5ad file ({type(e).__name__}: {reason[:200]})") from e
    return adata


def _checkpoint_readers() -> tuple[Callable, ...]:
    """The functions that read a training checkpoint: what they raise means a damaged or foreign one."""
    from .train import _trainer, load_checkpoint

    resume = getattr(_trainer.Trainer, "_resume", None)
    return (load_checkpoint,) if resume is None else (load_checkpoint, resume)


@contextmanager
def _training_errors() -> Iterator[None]:
    """Exit codes of the errors raised while setting up and training a model.

    A damaged or foreign checkpoint (``--resume``) means 5, other ``ValueError``, ``KeyError`` and
    ``TypeError`` bad input data (4), and an ``OSError`` a file that cannot be read or written (3).
    """
    with (
        _errors_mean(EXIT_INPUT_FILE, (OSError,)),
        _errors_mean(EXIT_INPUT_DATA, _DATA_ERRORS),
        _errors_mean(EXIT_MODEL, raised_in=_checkpoint_readers()),
    ):
        yield


# ---------------------------------------------------------------- commands
def _load(name: str):
    """The bundled dataset ``name``."""
    from . import datasets

    return getattr(datasets, name)()


def demo(args: argparse.Namespace) -> int:
    """Train on a bundled dataset; write the .h5ad, UMAP and loss-curve PNGs and the model; print a summary.

    Parameters
    ----------
    args
        The parsed ``demo`` options.

    Returns
    -------
    int
        0 on success; user errors are raised, tagged with their exit code (see :func:`main`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import pl, tl

    out = Path(args.out)
    t_all = time.perf_counter()
    with _errors_mean(EXIT_USAGE):
        config = _config_from_args("cpu", args.set or [])
        _check_training_args(args)
        _prepare_out(out, overwrite=args.overwrite)
    with _errors_mean(EXIT_INPUT_FILE, (OSError,)):
        adata = _load(args.dataset)
    print(f"GexBERT demo on {args.dataset}: {adata.n_obs} samples x {adata.n_vars} genes", flush=True)
    t0 = time.perf_counter()
    with _training_errors():
        model = tl.fit(
            adata,
            config=config,
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
    with _errors_mean(EXIT_INPUT_FILE, (OSError,)):
        fig = pl.umap(adata, color=color, return_fig=True)
        fig.savefig(out / "umap_samples.png", dpi=150, bbox_inches="tight")
        plt.close(fig)
        fig = pl.history(adata, return_fig=True)
        fig.savefig(out / "training_history.png", dpi=150, bbox_inches="tight")
        plt.close(fig)
        adata.write_h5ad(out / "adata_gexbert.h5ad", compression="gzip")
        model.save(out / "model", overwrite=True)  # _prepare_out refused an existing one without --overwrite
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


def fit(args: argparse.Namespace) -> int:
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
        0 on success; user errors are raised, tagged with their exit code (see :func:`main`).
    """
    from . import tl

    path, out = Path(args.input), Path(args.out)
    with _errors_mean(EXIT_USAGE):
        config = _config_from_args(args.config, args.set or [])
        _check_training_args(args)
        if args.resume and args.checkpoint_dir is None:
            raise ValueError("--resume needs --checkpoint-dir, the folder the interrupted run wrote checkpoints to")
    with _errors_mean(EXIT_INPUT_FILE):
        if not path.is_file():  # before --out is created: a mistyped input leaves no empty folder behind
            raise FileNotFoundError(f"no file at {path}" if not path.exists() else f"{path} is not a file")
    with _errors_mean(EXIT_USAGE):
        _prepare_out(out, overwrite=args.overwrite)
    with _errors_mean(EXIT_INPUT_FILE):
        adata = _read_h5ad(path, backed=args.backed)
    setup = {"layer": args.layer, "config": config, "batch_key": args.batch_key, "random_state": args.seed}
    training = {"phase1_epochs": args.phase1_epochs, "phase2_epochs": args.phase2_epochs, "device": args.device,
                "progress": not args.no_progress, "checkpoint_dir": args.checkpoint_dir, "resume": args.resume}
    with _training_errors():
        if args.backed:  # a backed AnnData cannot take new keys: train, then write the embedding beside it
            from .model import GexBERT

            model = GexBERT(adata, **setup).train(**training)
        else:
            model = tl.fit(adata, **setup, **training)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    with _errors_mean(EXIT_INPUT_FILE, (OSError,)):
        model.save(out / "model", overwrite=True)  # _prepare_out refused an existing one without --overwrite
        if args.backed:
            import numpy as np

            written = out / "X_gexbert.npy"
            np.save(written, model.embed(adata))
        else:
            written = out / "adata_gexbert.h5ad"
            adata.write_h5ad(written, compression="gzip")
    m = model.metrics
    if m:
        print(f"validation MSE (standardised): other genes {m['val_other']:.3f}, input genes {m['val_same']:.3f}, "
              f"training mean {m['val_mean']:.3f}")
    print(f"wrote {out / 'model'}/ and {written}")
    return 0


# ---------------------------------------------------------------- parser and entry point
class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``<prog>: error: <message> (see <prog> --help)``."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line to stderr and exit with status 2."""
        msg = " ".join(message.split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {msg} (see '{self.prog} --help')\n")


def _non_negative_int(text: str) -> int:
    """An integer >= 0 from the command line."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _add_common(p: argparse.ArgumentParser, *, default_out: str) -> None:
    """The options ``demo`` and ``fit`` share."""
    p.add_argument("--out", default=default_out, help=f"output folder, created if absent (default: {default_out})")
    p.add_argument("--overwrite", action="store_true", help="replace the model in --out/model if there is one")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config setting, e.g. --set activation=relu --set batch_size=64 (repeatable)")
    p.add_argument("--phase1-epochs", type=_non_negative_int, default=None, metavar="N",
                   help="override the phase-1 epochs")
    p.add_argument("--phase2-epochs", type=_non_negative_int, default=None, metavar="N",
                   help="override the phase-2 epochs")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random_state (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log what is added where")


def build_parser() -> argparse.ArgumentParser:
    """The ``gexbert-sc`` argument parser.

    Returns
    -------
    argparse.ArgumentParser
        The parser; each subcommand sets ``run``, the function that runs it.
    """
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="gexbert-sc", description="GexBERT for bulk gene expression",
                     epilog=EXIT_CODES_HELP, formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"gexbert-sc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,fit}")
    p = sub.add_parser("demo", help="train a small GexBERT on a bundled dataset and write the results",
                       description="Train a small GexBERT on a bundled dataset (cpu preset) and write the "
                                   "results.", epilog=EXIT_CODES_HELP, formatter_class=formatter)
    p.add_argument("--dataset", choices=DATASETS, default="synthetic", help="bundled dataset (default: synthetic)")
    _add_common(p, default_out="gexbert_demo")
    p.set_defaults(run=demo)
    f = sub.add_parser("fit", help="train on an .h5ad file (works under torchrun for multi-GPU / multi-process)",
                       description="Train GexBERT on an .h5ad file and write the model and the embeddings.",
                       epilog=EXIT_CODES_HELP, formatter_class=formatter)
    f.add_argument("input", help="samples x genes .h5ad, log-scale values")
    f.add_argument("--config", default="cpu", help="preset: cpu or paper (default: cpu)")
    f.add_argument("--layer", default=None, help="layer to train on instead of .X")
    f.add_argument("--batch-key", default=None, help="obs column whose groups are standardised separately")
    f.add_argument("--backed", action="store_true", help="stream .X from disk instead of loading it")
    f.add_argument("--checkpoint-dir", default=None, help="write a checkpoint there after every epoch")
    f.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    _add_common(f, default_out="gexbert_fit")
    f.set_defaults(run=fit)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gexbert-sc`` console script.

    Parameters
    ----------
    argv
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, else one of the codes in :data:`EXIT_CODES_HELP`, after a
        one-line message on stderr. Errors in the arguments, ``--help`` and ``--version`` raise
        ``SystemExit`` as in :mod:`argparse`; an unexpected exception (a bug) propagates with its
        traceback.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    prog = f"gexbert-sc {args.command}"

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {_one_line(message) if isinstance(message, Warning) else message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning  # one line each, without the source line
            return args.run(args)
    except _USER_ERRORS as e:
        code = getattr(e, _EXIT_CODE_ATTR, None)
        if code is None:
            raise  # not a user error that a command expected: a bug, keep the traceback
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
