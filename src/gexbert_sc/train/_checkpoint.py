"""Training checkpoints: written atomically, read without running pickled code."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from gexbert_sc._files import atomic_file

CHECKPOINT_FILE = "checkpoint.pt"


class CheckpointError(ValueError):
    """A training checkpoint that cannot be resumed from: damaged, truncated, or written for other data or settings.

    Raised by :func:`load_checkpoint` and by :meth:`Trainer.fit(resume=True) <gexbert_sc.train.Trainer.fit>`
    (and so by :meth:`gexbert_sc.GexBERT.train` with ``resume=True``). A subclass of :class:`ValueError`; its
    message names the checkpoint and the fix (delete it, or use another checkpoint folder).
    """


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` atomically: a temporary file in the same folder, fsync, then rename. The file gets the user's umask permissions like any other file they write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: no code runs).

    Raises
    ------
    CheckpointError
        The file is truncated, tampered with or not a checkpoint.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, tampered or foreign file: any failure means unreadable
        raise unusable(path, "cannot be read", e) from None
    if not isinstance(payload, dict):
        raise unusable(path, f"cannot be read (it holds a {type(payload).__name__}, not a checkpoint)")
    return payload


def unusable(path: Path, what: str, cause: BaseException | None = None) -> CheckpointError:
    """The error for the checkpoint at ``path``: ``what`` is wrong with it, then its cause and the fix."""
    if cause is not None:
        what += f" ({type(cause).__name__}: {(str(cause).splitlines() or [''])[0][:200]})"
    return CheckpointError(f"checkpoint {path} {what}; delete it to start over, or pass resume=False")
