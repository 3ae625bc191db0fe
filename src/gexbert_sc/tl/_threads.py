"""Keep torch's thread count across calls into numba (scanpy's neighbours and UMAP, umap-learn)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Restore :func:`torch.get_num_threads` on exit.

    The first parallel numba call of a process starts numba's threading layer, which sets the OpenMP thread
    count that torch shares to ``NUMBA_NUM_THREADS`` (all cores by default), whatever ``OMP_NUM_THREADS`` or
    :func:`torch.set_num_threads` chose; later training then runs on the wrong number of threads.
    """
    n = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
