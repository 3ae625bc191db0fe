"""Files written atomically, with the permissions the user's umask gives (used by train, model, cli and datasets)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process's umask: the permissions an ordinary ``open`` or ``mkdir`` would give."""
    current = os.umask(0)
    os.umask(current)
    return mode & ~current


@contextmanager
def atomic_file(dest: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``dest`` to write; on success it replaces ``dest`` in one rename.

    The temporary file is made in ``dest``'s folder (so the rename is atomic) and exists, empty, when the block
    starts. When the block ends without an error it gets the permissions an ordinary ``open`` would give
    (:func:`umask_mode`; :func:`tempfile.mkstemp` makes it 0600) and is renamed to ``dest``; on an error it is
    deleted and ``dest`` is left as it was.
    """
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, umask_mode(0o666))
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
