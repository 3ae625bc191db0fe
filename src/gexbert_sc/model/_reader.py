"""Reading rows of an AnnData matrix, in memory or backed, as dense float32 blocks."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from ._alignment import GeneAlignment

#: Values read per chunk when streaming over a whole matrix.
CHUNK_VALUES = 250_000


def matrix_of(adata: AnnData, layer: str | None):
    """``adata.layers[layer]``, or ``adata.X`` when ``layer`` is None."""
    return adata.layers[layer] if layer is not None else adata.X


def where_of(layer: str | None) -> str:
    """How error messages name the matrix."""
    return f"adata.layers[{layer!r}]" if layer else "adata.X"


def chunks(rows: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``rows`` of at most ``size``."""
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def rows_per_chunk(n_cols: int) -> int:
    """Rows per chunk so that a chunk holds about :data:`CHUNK_VALUES` values (at least 16)."""
    return max(16, CHUNK_VALUES // max(n_cols, 1))


def read_rows(X, rows: np.ndarray) -> np.ndarray:
    """Dense float32 copy of ``X[rows]`` for a numpy, sparse or backed (h5py) matrix.

    Contiguous rows are read as one slice (fast on backed data); other rows in increasing order,
    each read once, as h5py requires. The result never shares memory with ``X``.
    """
    rows = np.asarray(rows)
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1):
        block = X[int(rows[0]) : int(rows[-1]) + 1]
    elif len(rows) > 1 and not np.all(np.diff(rows) > 0):
        uniq, inverse = np.unique(rows, return_inverse=True)
        block = X[uniq]
        block = (block.toarray() if sp.issparse(block) else np.asarray(block))[inverse]
    else:
        block = X[rows]
    block = block.toarray() if sp.issparse(block) else np.asarray(block)
    out = block.astype(np.float32, copy=False)
    if (isinstance(X, np.ndarray) and np.shares_memory(out, X)) or not out.flags.writeable:
        out = out.copy()
    return out


class RowReader:
    """Rows of one AnnData matrix, columns in a model's vocabulary order (NaN where absent)."""

    def __init__(self, adata: AnnData, layer: str | None, alignment: GeneAlignment):
        self.X = matrix_of(adata, layer)
        self.alignment = alignment
        self.n_obs = adata.n_obs

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """Raw values of ``rows``, ``(len(rows), n_genes)`` float32."""
        return self.alignment.to_vocab(read_rows(self.X, rows))

    def chunks(self, rows: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(rows, values)`` chunk by chunk over ``rows`` (all rows by default)."""
        rows = np.arange(self.n_obs) if rows is None else np.asarray(rows)
        for part in chunks(rows, rows_per_chunk(len(self.alignment.genes))):
            yield part, self(part)
