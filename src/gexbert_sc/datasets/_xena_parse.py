"""Stream-parse a UCSC Xena genes x samples matrix (gzipped TSV, ``NA`` for missing) into float32.

Two passes over the file, one copy of the matrix in memory:

1. *scan*: read the header (sample ids) and, line by line, each gene's name and its number of
   fields (no number is parsed). Bad rows and truncated files fail here, before any large allocation.
2. *fill*: allocate the final ``samples x genes`` float32 array once, parse each gene row with
   :func:`numpy.fromstring` and write it into its column.

Peak memory is one ``samples x genes`` float32 array plus one row (the TCGA PANCAN matrix:
11,069 x 20,531 x 4 bytes = 0.91 GB). The price is decompressing the file twice.
"""

from __future__ import annotations

import gzip
import logging
import os
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger("gexbert_sc")

_FIX = "delete it and call gexbert_sc.datasets.tcga_pancan() again to download it afresh"


@dataclass
class XenaScan:
    """What the scan pass found: sample ids, gene names and which rows to keep (first of duplicates)."""

    samples: list[str]
    genes: list[str]
    keep_rows: np.ndarray  # row numbers (0-based, header excluded) of the genes kept
    n_duplicates: int


def _open(path: str | os.PathLike):
    """Open gzipped or plain text in binary mode (sniffed from the gzip magic bytes)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


@contextmanager
def _read_errors(path) -> Iterator[None]:
    """Turn decompression errors into a ``ValueError`` naming the file and the fix."""
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(f"{path} is truncated or not a valid gzip file ({err}); {_FIX}") from err


def _lines(fh) -> Iterator[tuple[int, bytes]]:
    """Non-empty lines without their line ending, numbered from 1 (the header)."""
    for number, line in enumerate(fh, start=1):
        line = line.rstrip(b"\r\n")
        if line:
            yield number, line


def _header(path, first: tuple[int, bytes] | None) -> list[str]:
    if first is None:
        raise ValueError(f"{path} is empty; {_FIX}")
    fields = first[1].decode().split("\t")
    samples = fields[1:]
    if not samples:
        raise ValueError(f"{path}: the header has no sample columns (is it a tab-separated Xena matrix?); {_FIX}")
    if len(set(samples)) != len(samples):
        raise ValueError(f"{path}: the header repeats sample ids; the file is not a Xena genes x samples matrix")
    return samples


def scan_xena_matrix(path: str | os.PathLike) -> XenaScan:
    """First pass: sample ids, gene names and a field count check of every row.

    Parameters
    ----------
    path
        Gzipped (or plain) tab-separated genes x samples matrix, first column gene names.

    Returns
    -------
    A :class:`XenaScan`; duplicated gene names keep their first row.
    """
    genes: list[str] = []
    seen: set[str] = set()
    keep: list[int] = []
    with _read_errors(path), _open(path) as fh:
        lines = _lines(fh)
        samples = _header(path, next(lines, None))
        n_tabs = len(samples)
        n_rows = 0
        for row, (number, line) in enumerate(lines):
            n_fields = line.count(b"\t") + 1
            if n_fields != n_tabs + 1:
                raise ValueError(
                    f"{path}, line {number}: {n_fields} fields where the header has {n_tabs + 1}; "
                    f"the file is truncated or corrupt: {_FIX}"
                )
            n_rows = row + 1
            name = line[: line.index(b"\t")].decode()
            if name not in seen:
                seen.add(name)
                genes.append(name)
                keep.append(row)
    if not genes:
        raise ValueError(f"{path} has a header but no gene rows; {_FIX}")
    return XenaScan(samples, genes, np.asarray(keep, dtype=np.int64), n_rows - len(keep))


def _parse_row(path, number: int, values: bytes, n: int) -> np.ndarray:
    """Numbers of one row (``NA`` -> NaN) as float32; ``ValueError`` naming the line if any is not a number."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # numpy warns when it stops at a non-number
        try:
            out = np.fromstring(values.replace(b"NA", b"nan"), dtype=np.float32, sep="\t")
        except (DeprecationWarning, ValueError) as err:
            raise ValueError(f"{path}, line {number}: a value is not a number or NA ({err}); {_FIX}") from err
    if out.size != n:
        raise ValueError(f"{path}, line {number}: read {out.size} numbers where the header has {n} samples; {_FIX}")
    return out


def fill_xena_matrix(path: str | os.PathLike, scan: XenaScan, *, progress: bool = False) -> np.ndarray:
    """Second pass: parse the kept rows into one preallocated ``samples x genes`` float32 array.

    Parameters
    ----------
    path
        The file given to :func:`scan_xena_matrix`.
    scan
        Its result.
    progress
        Show a progress bar over genes.

    Returns
    -------
    ``samples x genes`` float32 array, NaN where the file has ``NA``.
    """
    from tqdm.auto import tqdm

    n = len(scan.samples)
    X = np.empty((n, len(scan.genes)), dtype=np.float32)
    keep = scan.keep_rows
    col = 0
    with _read_errors(path), _open(path) as fh, tqdm(total=len(scan.genes), disable=not progress, desc="parse") as bar:
        lines = _lines(fh)
        next(lines)
        for row, (number, line) in enumerate(lines):
            if col == len(keep) or keep[col] != row:
                continue
            X[:, col] = _parse_row(path, number, line[line.index(b"\t") + 1 :], n)
            col += 1
            bar.update()
    if col != len(keep):
        raise ValueError(f"{path} changed while it was read ({col} of {len(keep)} genes); {_FIX}")
    return X


def read_xena_matrix(path: str | os.PathLike, *, progress: bool = False) -> tuple[np.ndarray, list[str], list[str]]:
    """Read a Xena genes x samples matrix as ``samples x genes`` float32 with one copy in memory.

    Parameters
    ----------
    path
        Gzipped (or plain) tab-separated matrix, first row sample ids, first column gene names,
        ``NA`` for missing values.
    progress
        Show a progress bar while parsing.

    Returns
    -------
    ``(X, samples, genes)``. Duplicated gene names keep their first row (the count is logged).
    """
    scan = scan_xena_matrix(path)
    if scan.n_duplicates:
        logger.warning("%s: %d duplicated gene row(s); kept the first of each", path, scan.n_duplicates)
    logger.info("parsing %s: %d samples x %d genes", path, len(scan.samples), len(scan.genes))
    return fill_xena_matrix(path, scan, progress=progress), scan.samples, scan.genes
