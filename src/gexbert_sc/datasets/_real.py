"""Small real cohorts bundled with the package (about 7 MB)."""

from __future__ import annotations

from importlib.resources import as_file, files

import anndata as ad
import numpy as np
import pandas as pd
from anndata import AnnData

from gexbert_sc.pp import log_normalize

_DATA = files("gexbert_sc.datasets") / "data"


def _read(name: str) -> AnnData:
    with as_file(_DATA / name) as path:
        adata = ad.read_h5ad(path)
    return adata


def _survival_columns(adata: AnnData) -> AnnData:
    adata.obs["os_time"] = adata.obs["os_time"].astype(float)
    adata.obs["os_event"] = adata.obs["os_event"].astype("boolean")
    adata.obs["cancer_type"] = adata.obs["cancer_type"].astype("category")
    return adata


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


def ovarian_gse51088() -> AnnData:
    """Ovarian cancer GSE51088: 123 primary tumours x 8,211 genes, two-colour microarray.

    ``.X`` holds the log ratios against a pooled reference as distributed (about log10; NaN where
    missing, 0.16%). ``.obs``: ``cancer_type`` (``OV``), ``os_time`` (days), ``os_event``
    (nullable boolean; one sample unknown), histology, stage, grade, age. Source:
    curatedOvarianData (Artistic-2.0), Karlan et al. 2014.
    """
    return _survival_columns(_read("ovarian_gse51088.h5ad"))


def nki_breast() -> AnnData:
    """NKI breast cancer: 150 patients x 922 probes, two-colour microarray log ratios.

    ``.X`` as distributed (range clipped to [-2, 2]; NaN where missing). ``.obs``: ``cancer_type``
    (``BRCA``), ``os_time``/``os_event`` (OS unknown for 21 patients), ``dmfs_time``/``dmfs_event``,
    ``er``, ``grade``, ``node``, ``size_cm``, ``age``. Duplicated probes of a gene carry ``-1``,
    ``-2`` suffixes in ``var_names``; ``var.gene_symbol`` has the symbol. Source: genefu
    (Artistic-2.0), van de Vijver et al. 2002.
    """
    return _survival_columns(_read("nki_breast.h5ad"))


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
