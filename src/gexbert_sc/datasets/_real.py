"""Small real cohorts bundled with the package (about 7 MB)."""

from __future__ import annotations

import logging
import warnings
from importlib.resources import as_file, files

import anndata as ad
import numpy as np
import pandas as pd
from anndata import AnnData

from gexbert_sc.pp import log_normalize

_DATA = files("gexbert_sc.datasets") / "data"

logger = logging.getLogger("gexbert_sc")


def _read(name: str) -> AnnData:
    with as_file(_DATA / name) as path:
        adata = ad.read_h5ad(path)
    return adata


def _survival_columns(adata: AnnData) -> AnnData:
    adata.obs["os_time"] = adata.obs["os_time"].astype(float)
    adata.obs["os_event"] = adata.obs["os_event"].astype("boolean")
    adata.obs["cancer_type"] = adata.obs["cancer_type"].astype("category")
    return adata


def _probe_variance(X: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing probe: NaN, never preferred
        return np.nan_to_num(np.nanvar(np.asarray(X, dtype=np.float64), axis=0), nan=-np.inf)


def _clean_symbols(adata: AnnData, probe_key: str) -> AnnData:
    """One feature per gene symbol, named by it (see :func:`nki_breast` for the rules).

    Drops probes annotated with several symbols (``"A///B"``), keeps the most variable probe of a
    symbol measured by several (ties: the first), and records the others in ``var["other_probes"]``.
    """
    symbols = adata.var["gene_symbol"].astype(str).to_numpy()
    ambiguous = np.char.find(symbols.astype(str), "///") >= 0
    order = np.argsort(-_probe_variance(adata.X), kind="stable")
    order = order[~ambiguous[order]]
    first = order[~pd.Index(symbols[order]).duplicated()]
    keep = np.sort(first)
    probes = pd.Series(adata.var[probe_key].astype(str).to_numpy())[~ambiguous].groupby(symbols[~ambiguous])
    out = adata[:, keep].copy()
    out.var_names = pd.Index(symbols[keep], dtype=str)
    out.var["n_probes"] = probes.size().reindex(out.var_names).to_numpy()
    kept = adata.var[probe_key].astype(str).to_numpy()[keep]
    others = probes.agg(list).reindex(out.var_names)
    out.var["other_probes"] = [";".join(p for p in ps if p != k) for ps, k in zip(others, kept, strict=True)]
    n_dup = int((~ambiguous).sum() - keep.size)
    out.uns["symbol_cleaning"] = {"dropped_multi_symbol": int(ambiguous.sum()), "dropped_duplicate_probes": n_dup}
    logger.info(
        "cleaned gene symbols: %d features -> %d (%d multi-symbol probes dropped, %d duplicate probes collapsed "
        "to the most variable one)", adata.n_vars, out.n_vars, int(ambiguous.sum()), n_dup,
    )  # fmt: skip
    return out


def tcga_skcm() -> AnnData:
    """TCGA melanoma (SKCM): 454 samples x 1,712 genes, RNA-seq, overall survival.

    ``.X`` is ``log1p`` of counts per million over the 1,712 genes (``scanpy.pp.normalize_total``
    with ``target_sum=1e6``, then ``scanpy.pp.log1p``); the raw read counts are kept in
    ``.layers["counts"]``. ``.obs``: ``cancer_type`` (``SKCM``), ``os_time`` (days), ``os_event``
    (bool), ``patient_barcode`` (two patients have two samples: split by it), ``sample_type``.
    Source: TCGA via the CRAN package survival666 (MIT); only 1,712 genes chosen by that
    package's author.
    """
    adata = _survival_columns(_read("tcga_skcm.h5ad"))
    log_normalize(adata, target_sum=1e6, counts_layer="counts")
    return adata


def ovarian_gse51088(*, clean_symbols: bool = True) -> AnnData:
    """Ovarian cancer GSE51088: 123 primary tumours x 7,824 genes, two-colour microarray.

    ``.X`` holds the log ratios against a pooled reference as distributed (about log10; NaN where
    missing, 0.16%). ``.obs``: ``cancer_type`` (``OV``), ``os_time`` (days), ``os_event``
    (nullable boolean; one sample unknown), histology, stage, grade, age. Source:
    curatedOvarianData (Artistic-2.0), Karlan et al. 2014.

    Parameters
    ----------
    clean_symbols
        ``True`` (default): ``var_names`` are single, unique gene symbols; the 387 features
        annotated with several symbols (``"AKR1C1///AKR1C2"``) are dropped, since they cannot be
        given one (the first is often a pseudogene: ``ACTBP8///ACTBP2///ACTB``). ``var["probeset"]``
        keeps the Agilent probe id, ``var["n_probes"]`` is 1 and ``var["other_probes"]`` empty (no
        symbol repeats here). ``False``: all 8,211 features with the names as distributed.

    Returns
    -------
    AnnData, samples x genes.
    """
    adata = _survival_columns(_read("ovarian_gse51088.h5ad"))
    return _clean_symbols(adata, "probeset") if clean_symbols else adata


def nki_breast(*, clean_symbols: bool = True) -> AnnData:
    """NKI breast cancer: 150 patients x 912 genes (922 probes), two-colour microarray log ratios.

    ``.X`` as distributed (range clipped to [-2, 2]; NaN where missing). ``.obs``: ``cancer_type``
    (``BRCA``), ``os_time``/``os_event`` (OS unknown for 21 patients), ``dmfs_time``/``dmfs_event``,
    ``er``, ``grade``, ``node``, ``size_cm``, ``age``. Source: genefu (Artistic-2.0), van de Vijver
    et al. 2002.

    Parameters
    ----------
    clean_symbols
        ``True`` (default): one feature per gene symbol, named by it. Of the 8 symbols measured by
        several probes (18 probes, e.g. ``IGFBP5`` x 3), the most variable probe (variance over the
        samples, NaN ignored) is kept: its values are real measurements, not a blend of probes that
        may target different transcripts. ``var["probe"]`` is the kept probe,
        ``var["n_probes"]`` how many the symbol had and ``var["other_probes"]`` the dropped ones
        (``;``-separated). The 50 probes without a gene symbol keep their probe id as name
        (``var["symbol_source"] == "probe"``; they match nothing in other cohorts). ``False``: all
        922 probes, duplicates named ``SYMBOL-1``, ``SYMBOL-2`` and ``var["gene_symbol"]`` the symbol.

    Returns
    -------
    AnnData, samples x genes.
    """
    adata = _survival_columns(_read("nki_breast.h5ad"))
    return _clean_symbols(adata, "probe") if clean_symbols else adata


def tcga_cdr_survival() -> pd.DataFrame:
    """TCGA Pan-Cancer Clinical Data Resource endpoints (Liu et al. 2018): 11,160 patients.

    Columns ``bcr_patient_barcode``, ``type``, ``OS``, ``OS.time``, ``DSS``, ``DSS.time``, ``PFI``,
    ``PFI.time`` (events 1/0, times in days), ``age_at_initial_pathologic_diagnosis``, ``gender``.
    No expression.
    """
    with as_file(_DATA / "tcga_cdr_survival.csv.gz") as path:
        return pd.read_csv(path)


def survival_complete(adata: AnnData) -> np.ndarray:
    """Boolean mask of samples with known ``os_time`` and ``os_event``."""
    return (adata.obs["os_time"].notna() & adata.obs["os_event"].notna()).to_numpy()
