"""The steps every data command shares: check, read, (load the model), compute, write atomically, report."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _io
from ._errors import DATA_ERRORS, EXIT_INPUT_DATA, EXIT_INPUT_FILE, EXIT_USAGE, errors_mean


@dataclass
class Job:
    """What a data command works on.

    Attributes
    ----------
    input
        The input .h5ad.
    out
        The .h5ad to write.
    adata
        The input, read into memory; the command adds its keys to it.
    model
        The loaded model (None where the command runs without one).
    """

    input: Path
    out: Path
    adata: Any
    model: Any = None


def open_job(args: argparse.Namespace, command: str, *, use_model: bool, obs_keys: dict | None = None) -> Job:
    """Check the options, the input and the output path, load the model, read the data and check that they fit.

    The order makes a mistake cheap: the device (exit 2), the input file's existence (3), the output path
    (2), the model (5), reading the input (3), the model against the data (5), then the ``.obs`` columns
    the options name (4).

    Parameters
    ----------
    args
        The parsed options: ``input``, ``out``, ``overwrite``, ``device`` and, with ``use_model``, ``model``.
    command
        The command's name (the default output is ``<input stem>_<command>.h5ad``).
    use_model
        Load ``args.model`` when it is given.
    obs_keys
        ``option=column`` of the ``.obs`` columns the options name.

    Returns
    -------
    Job
        The input, the output path, the data and the model.
    """
    path = Path(args.input)
    _io.check_device(args.device)
    with errors_mean(EXIT_INPUT_FILE):
        _io.check_input_file(path)
    out = _io.output_path(path, args.out, command, overwrite=args.overwrite)
    model = _io.load_model(args.model, args.device) if use_model and args.model else None
    adata = _io.read_input(path)
    if model is not None:
        _io.check_model_fits(model, adata, path, args.model)
    _io.check_obs_keys(adata, path, **(obs_keys or {}))
    return Job(input=path, out=out, adata=adata, model=model)


def usage_error(message: str) -> None:
    """Raise ``ValueError(message)`` as a bad-arguments error (exit 2)."""
    with errors_mean(EXIT_USAGE):
        raise ValueError(message)


@contextmanager
def data_errors() -> Iterator[None]:
    """Errors of the computation: ``ValueError``, ``KeyError``, ``TypeError`` mean bad input data (exit 4)."""
    with errors_mean(EXIT_INPUT_DATA, DATA_ERRORS):
        yield


def finish(job: Job, args: argparse.Namespace, lines: list[str], keys: list[str]) -> int:
    """Write the output atomically and, unless ``--quiet``, print ``lines`` and the keys written.

    Returns
    -------
    int
        0, the exit status of success.
    """
    _io.write_h5ad(job.adata, job.out)
    if not args.quiet:
        print("\n".join([*lines, f"wrote {job.out}:", *(f"  {k}" for k in keys)]))
    return 0


def fit_kwargs(args: argparse.Namespace) -> dict:
    """Settings of a model trained by the command itself (no ``--model``): ``--config``, ``--set``, epochs."""
    from gexbert_sc.model import resolve_config

    from ._training import parse_settings

    with errors_mean(EXIT_USAGE):
        kwargs = {"config": args.config, **parse_settings(args.set or [])}
        resolve_config(args.config, **{k: v for k, v in kwargs.items() if k != "config"})  # refuse bad settings now
    for name in ("phase1_epochs", "phase2_epochs"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    if args.phase1_epochs == 0 and args.phase2_epochs == 0:
        usage_error("--phase1-epochs 0 and --phase2-epochs 0 train nothing; give at least one epoch")
    return {**kwargs, "device": args.device, "progress": not args.quiet}


def add_training_here(p: argparse.ArgumentParser) -> None:
    """Options of the model a command trains itself when no ``--model`` is given."""
    from ._parser import non_negative_int

    g = p.add_argument_group("training a model here (without --model)")
    g.add_argument("--config", default="cpu", help="preset: cpu or paper (default: cpu)")
    g.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config setting (repeatable)")
    g.add_argument("--phase1-epochs", type=non_negative_int, default=None, metavar="N",
                   help="override the phase-1 epochs")
    g.add_argument("--phase2-epochs", type=non_negative_int, default=None, metavar="N",
                   help="override the phase-2 epochs")
