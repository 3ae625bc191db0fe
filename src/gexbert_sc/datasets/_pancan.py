"""TCGA pan-cancer expression and survival from the UCSC Xena PANCAN hub, downloaded with pooch.

The expression matrix is stream-parsed (:mod:`._xena_parse`, one copy in memory) and the full parse
(every sample, every gene, survival joined) is cached as ``.h5ad`` next to the download. Sample and
gene filters and the split are applied after reading, so one cache serves every option.
"""

from __future__ import annotations

import logging
import numbers
import os
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from anndata import AnnData

from gexbert_sc._files import atomic_file

from ._tcga_split import assign_split, primary_mask, sample_type_codes
from ._xena_parse import read_xena_matrix

logger = logging.getLogger("gexbert_sc")

#: The UCSC Xena TCGA Pan-Cancer (PANCAN) hub, the source named in the paper.
XENA_PANCAN_URL = "https://tcga-pancan-atlas-hub.s3.us-east-1.amazonaws.com/download/"

#: Files of the hub: batch-corrected RNA-seq (genes x samples, log2(norm_count + 1)) and the
#: TCGA-CDR survival table. Their hashes are not pinned (none is published with the files and they
#: could not be fetched where this package was built): pass ``known_hashes`` to check them.
PANCAN_FILES = {
    "expression": "EB%2B%2BAdjustPANCAN_IlluminaHiSeq_RNASeqV2.geneExp.xena.gz",
    "survival": "Survival_SupplementalTable_S1_20171025_xena_sp",
}

#: Genes kept by default: the paper's count after dropping genes with very little variation.
PAPER_N_GENES = 20_311

_CACHE_VERSION = 1
_SURVIVAL_COLUMNS = ("cancer type abbreviation", "OS", "OS.time")


def _check_fraction(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def _check_options(primary_only, min_variance, n_top_genes, test_size, validation_size, random_state) -> None:
    if not isinstance(primary_only, bool | np.bool_):
        raise TypeError(f"primary_only must be True or False, got {primary_only!r}")
    if min_variance is not None and (
        isinstance(min_variance, bool) or not isinstance(min_variance, numbers.Real) or min_variance < 0
    ):
        raise ValueError(f"min_variance must be a number >= 0 or None (no threshold), got {min_variance!r}")
    if n_top_genes is not None and (
        isinstance(n_top_genes, bool) or not isinstance(n_top_genes, numbers.Integral) or n_top_genes < 1
    ):
        raise ValueError(f"n_top_genes must be an integer >= 1 or None (keep every gene), got {n_top_genes!r}")
    _check_fraction(test_size, "test_size")
    _check_fraction(validation_size, "validation_size")
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise ValueError(f"random_state must be an integer seed, got {random_state!r}")


def _registry(base_url: str, cache_dir, known_hashes: dict | None):
    import pooch

    known_hashes = dict(known_hashes or {})
    unknown = set(known_hashes) - set(PANCAN_FILES)
    if unknown:
        raise ValueError(f"known_hashes has unknown key(s) {sorted(unknown)}; use {sorted(PANCAN_FILES)}")
    return pooch.create(
        path=cache_dir if cache_dir is not None else pooch.os_cache("gexbert_sc"),
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        registry={name: known_hashes.get(key) for key, name in PANCAN_FILES.items()},
        env="GEXBERT_SC_DATA",
    )


def _fetch(registry, key: str, progress: bool) -> Path:
    """Download (once) one file; a hash mismatch becomes a ``ValueError`` naming the file and the fix."""
    name = PANCAN_FILES[key]
    try:
        return Path(registry.fetch(name, progressbar=progress))
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        raise ValueError(
            f"{name} from {registry.base_url} does not match known_hashes[{key!r}] ({err}). Check that base_url "
            "serves the Xena file; if the file changed upstream, pass its new hash (or None to skip the check)."
        ) from err


def _read_survival(path: Path) -> pd.DataFrame:
    """The Xena survival table indexed by sample barcode (first row of a repeated barcode)."""
    try:
        surv = pd.read_csv(path, sep="\t", index_col=0)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path} is not a readable tab-separated survival table ({err}); delete it to re-download") from err
    missing = set(_SURVIVAL_COLUMNS) - set(surv.columns)
    if missing:
        raise ValueError(
            f"the survival file {path} lacks the columns {sorted(missing)}; is it the Xena one? Delete it to re-download"
        )
    return surv[~surv.index.duplicated()]


def _survival_obs(samples: list[str], surv: pd.DataFrame) -> pd.DataFrame:
    obs = pd.DataFrame(index=pd.Index(samples, dtype=str))
    s = surv.reindex(obs.index)
    obs["cancer_type"] = s["cancer type abbreviation"].astype("category")
    obs["os_time"] = s["OS.time"].astype(float)
    obs["os_event"] = s["OS"].map({1: True, 0: False}).astype("boolean")
    barcode12 = pd.Series([b[:12] for b in samples], index=obs.index)
    obs["patient_barcode"] = s["_PATIENT"].fillna(barcode12) if "_PATIENT" in s else barcode12
    obs["sample_type_code"] = sample_type_codes(samples)
    return obs


def _stamp(*paths: Path) -> list[int]:
    """Size and modification time of the downloads: a cache made from other files is stale."""
    return [_CACHE_VERSION] + [v for p in paths for v in (p.stat().st_size, p.stat().st_mtime_ns)]


def _cache_path(expr_path: Path) -> Path:
    return expr_path.with_name(f"{expr_path.name}.parsed-v{_CACHE_VERSION}.h5ad")


def _load_cache(path: Path, stamp: list[int]) -> AnnData | None:
    if not path.exists():
        return None
    try:
        adata = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as err:
        logger.warning("ignoring the unreadable cache %s (%s); parsing again", path, err)
        return None
    if [int(v) for v in adata.uns.get("cache_stamp", [])] != stamp:
        logger.info("cache %s was made from other downloads; parsing again", path)
        return None
    return adata


def _write_cache(adata: AnnData, path: Path, stamp: list[int]) -> None:
    """Write atomically (a temporary file beside it, then renamed); a failure only costs a re-parse next time."""
    adata.uns["cache_stamp"] = np.asarray(stamp, dtype=np.int64)
    try:
        with atomic_file(path) as tmp:
            adata.write_h5ad(tmp)
        logger.info("cached the parsed matrix as %s", path)
    except OSError as err:
        logger.warning("could not write the cache %s (%s); the next call parses again", path, err)


def _full_parse(expr_path: Path, surv_path: Path, progress: bool) -> AnnData:
    """Every sample and gene of the download, survival joined (what the cache holds)."""
    surv = _read_survival(surv_path)
    X, samples, genes = read_xena_matrix(expr_path, progress=progress)
    return AnnData(X, obs=_survival_obs(samples, surv), var=pd.DataFrame(index=pd.Index(genes, dtype=str)))


def _gene_variance(X: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Per-gene variance over samples ignoring NaN, by blocks of genes (no full-size temporary)."""
    out = np.full(X.shape[1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN genes: variance NaN
        for j in range(0, X.shape[1], chunk):
            out[j : j + chunk] = np.nanvar(X[:, j : j + chunk], axis=0, dtype=np.float64)
    return out


def _select_genes(variance: np.ndarray, min_variance: float | None, n_top_genes: int | None) -> np.ndarray:
    """Sorted indices of the genes kept: variance above ``min_variance``, then the ``n_top_genes`` highest."""
    v = np.where(np.isnan(variance), -np.inf, variance)
    keep = np.flatnonzero(v > min_variance) if min_variance is not None else np.arange(v.size)
    if n_top_genes is not None and keep.size > n_top_genes:
        keep = np.sort(keep[np.argsort(-v[keep], kind="stable")[:n_top_genes]])
    return keep


def _subset_inplace(X: np.ndarray, rows: np.ndarray | None, cols: np.ndarray | None) -> np.ndarray:
    """``X[rows][:, cols]`` written over the front of ``X``'s own buffer (sorted indices; no second copy).

    Returns a C-contiguous view of the front of the buffer; the rest of it is not freed.
    """
    n_rows = X.shape[0] if rows is None else rows.size
    n_cols = X.shape[1] if cols is None else cols.size
    if n_rows == X.shape[0] and n_cols == X.shape[1]:
        return X
    X = np.ascontiguousarray(X)  # a no-op here: parsed, read and subset arrays are C-contiguous
    flat = X.reshape(-1)
    for k, i in enumerate(range(X.shape[0]) if rows is None else rows):
        flat[k * n_cols : (k + 1) * n_cols] = X[i] if cols is None else X[i, cols]  # row k ends before row i+1
    return flat[: n_rows * n_cols].reshape(n_rows, n_cols)


def tcga_pancan(
    *,
    primary_only: bool = False,
    min_variance: float | None = 0.0,
    n_top_genes: int | None = PAPER_N_GENES,
    test_size: float = 0.3,
    validation_size: float = 0.2,
    random_state: int = 0,
    base_url: str = XENA_PANCAN_URL,
    cache_dir: str | os.PathLike | None = None,
    known_hashes: dict[str, str | None] | None = None,
    progress: bool = True,
) -> AnnData:
    """Download (once) and load the TCGA pan-cancer RNA-seq matrix with overall survival and the paper's split.

    The Xena matrix (about 11,069 samples x 20,531 genes, 33 cancer types; a gigabyte-scale download) is
    stream-parsed into one float32 array (peak about one copy, 0.9 GB) and the full parse is cached
    as ``<expression file>.parsed-v1.h5ad`` next to the download, so later calls read that instead.
    The filters and the split below are applied after reading; any option can change without
    re-parsing. The cache is remade when the downloaded files change (size or modification time).

    Parameters
    ----------
    primary_only
        Keep only primary tumours: TCGA sample-type code ``01`` (primary solid tumour) or ``03``
        (primary blood-derived cancer, the LAML samples). Drops normal tissue (``11``), metastases
        (``06``: most SKCM samples) and recurrences. Default ``False``: the paper's sample counts
        (11,014, SKCM nearly complete) include every sample type.
    min_variance
        Drop genes whose variance over the kept samples (NaN ignored) is at most this; the default
        ``0`` drops constant and all-missing genes. ``None``: no threshold.
    n_top_genes
        Then keep at most this many of the most variable genes, in file order. The default is the
        paper's gene count (20,311 of 20,531: "genes with very little variation dropped"; its
        threshold is not stated). ``None`` keeps every gene passing ``min_variance``.
    test_size
        Fraction of the patients of each of the 14 ``gexbert_sc.datasets.SURVIVAL_TYPES`` drawn into the ``"test"``
        split (the paper: 30%).
    validation_size
        Fraction of the remaining (development) patients of each type in ``"validation"``; the rest
        is ``"pretrain"`` (the paper: 20%).
    random_state
        Seed of the split.
    base_url
        Where the files live (default: the UCSC Xena PANCAN hub). Point it at a mirror if needed.
    cache_dir
        Cache folder (default: pooch's user cache for ``gexbert_sc``; the ``GEXBERT_SC_DATA``
        environment variable overrides it).
    known_hashes
        Expected hashes of the files, keyed like :data:`~gexbert_sc.datasets.PANCAN_FILES` (``"expression"``,
        ``"survival"``), in pooch's form (``"sha256:<hex>"``, ``"md5:<hex>"``). Unpinned by default.
    progress
        Show download and parse progress bars.

    Returns
    -------
    AnnData, samples x genes, ``.X`` = log2(normalised count + 1) as distributed (float32, NaN where
    missing; not standardised). ``.obs``: ``cancer_type``, ``os_time`` (days), ``os_event``
    (nullable boolean), ``patient_barcode``, ``sample_type_code`` and ``split`` (``"pretrain"``,
    ``"validation"``, ``"test"``; all samples of a patient share one). Samples without a survival
    record keep NaN/NA there. ``.var["variance"]``: the variance the gene filter used.
    ``.uns["tcga_pancan"]``: the options.
    """
    _check_options(primary_only, min_variance, n_top_genes, test_size, validation_size, random_state)
    registry = _registry(base_url, cache_dir, known_hashes)
    expr_path, surv_path = _fetch(registry, "expression", progress), _fetch(registry, "survival", progress)
    cache, stamp = _cache_path(expr_path), _stamp(expr_path, surv_path)
    full = _load_cache(cache, stamp)
    if full is not None:
        logger.info("read the parsed TCGA PANCAN matrix from the cache %s", cache)
    else:
        full = _full_parse(expr_path, surv_path, progress)
        _write_cache(full, cache, stamp)
    return _finish(full, primary_only, min_variance, n_top_genes, test_size, validation_size, random_state, base_url)


def _finish(full: AnnData, primary_only, min_variance, n_top_genes, test_size, validation_size, seed, base_url):
    """Split (on every sample, so a patient's split does not depend on ``primary_only``), then filter in place."""
    obs, X, var, n_genes = full.obs.copy(), full.X, full.var.copy(), full.n_vars
    obs["split"] = pd.Categorical(
        assign_split(obs["patient_barcode"], obs["cancer_type"], test_size=test_size,
                     validation_size=validation_size, random_state=seed),
        categories=["pretrain", "validation", "test"],
    )  # fmt: skip
    del full
    rows = np.flatnonzero(primary_mask(obs.index)) if primary_only else None
    X = _subset_inplace(X, rows, None)
    obs = obs.iloc[rows] if rows is not None else obs
    cols = None
    if min_variance is not None or n_top_genes is not None:
        var["variance"] = _gene_variance(X)
        cols = _select_genes(var["variance"].to_numpy(), min_variance, n_top_genes)
        X, var = _subset_inplace(X, None, cols), var.iloc[cols]
    adata = AnnData(X, obs=obs, var=var)
    adata.uns["source"] = {"base_url": base_url, "files": dict(PANCAN_FILES), "units": "log2(norm_count + 1)"}
    options = {"primary_only": primary_only, "min_variance": min_variance, "n_top_genes": n_top_genes,
               "test_size": test_size, "validation_size": validation_size, "random_state": seed}  # fmt: skip
    adata.uns["tcga_pancan"] = {k: v for k, v in options.items() if v is not None}
    counts = obs["split"].value_counts()
    logger.info(
        "loaded TCGA PANCAN: %d samples x %d genes (primary_only=%s; %d of %d genes dropped by the variance "
        "filter); split: %d pretrain, %d validation, %d test samples",
        *adata.shape, primary_only, n_genes - adata.n_vars, n_genes,
        counts["pretrain"], counts["validation"], counts["test"],
    )  # fmt: skip
    return adata
