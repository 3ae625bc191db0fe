"""Checks and error codes shared by the commands that train a model (``demo``, ``fit``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._errors import DATA_ERRORS, EXIT_INPUT_DATA, EXIT_INPUT_FILE, EXIT_MODEL, errors_mean


def config_from_args(preset: str, settings: list[str]):
    """The config ``preset`` with ``KEY=VALUE`` overrides.

    Parameters
    ----------
    preset
        Name of a config preset (``cpu``, ``gpu``, ``paper`` or ``auto``).
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
    from gexbert_sc.model import resolve_config

    return resolve_config(preset, **parse_settings(settings))


def parse_settings(settings: list[str]) -> dict:
    """``KEY=VALUE`` strings as a dict; a VALUE is read as JSON (numbers, true/false), else as text.

    Raises
    ------
    ValueError
        An item without ``=`` or without a key.
    """
    import json

    overrides = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes KEY=VALUE, got {item!r} (e.g. --set activation=relu)")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def check_training_args(args: argparse.Namespace) -> None:
    """Refuse an absent ``--device`` and an empty epoch budget before any data is read.

    Raises
    ------
    ValueError
        The device is unknown or absent (e.g. ``cuda`` without CUDA), or both phases have 0 epochs.
    """
    from gexbert_sc.train import resolve_device

    resolve_device(args.device)
    if args.phase1_epochs == 0 and args.phase2_epochs == 0:
        raise ValueError("--phase1-epochs 0 and --phase2-epochs 0 train nothing; give at least one epoch")


def prepare_out(out: Path, *, overwrite: bool) -> None:
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


@contextmanager
def training_errors() -> Iterator[None]:
    """Exit codes of the errors raised while setting up and training a model.

    A damaged or foreign checkpoint (``--resume``, :class:`~gexbert_sc.train.CheckpointError`) means 5, other
    ``ValueError``, ``KeyError`` and ``TypeError`` bad input data (4), and an ``OSError`` a file that cannot be
    read or written (3).
    """
    from gexbert_sc.train import CheckpointError

    with (
        errors_mean(EXIT_INPUT_FILE, (OSError,)),
        errors_mean(EXIT_INPUT_DATA, DATA_ERRORS),
        errors_mean(EXIT_MODEL, (CheckpointError,)),
    ):
        yield
