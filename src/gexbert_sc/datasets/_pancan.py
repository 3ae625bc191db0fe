"""TCGA pan-cancer expression and survival from the UCSC Xena PANCAN hub, downloaded with pooch."""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
from anndata import AnnData

logger = logging.getLogger("gexbert_sc")

#: The UCSC Xena TCGA Pan-Cancer (PANCAN) hub, the source named in the paper.
XENA_PANCAN_URL = "https://tcga-pancan-atlas-hub.s3.us-east-1.amazonaws.com/download/"

#: Files of the hub: batch-corrected RNA-seq (genes x samples, log2(norm_count + 1)) and the
#: TCGA-CDR survival table. Their hashes are not pinned: they could not be fetched from the machine
#: this package was built on, so pooch checks nothing beyond a complete download.
PANCAN_FILES = {
    "expression": "EB%2B%2BAdjustPANCAN_IlluminaHiSeq_RNASeqV2.geneExp.xena.gz",
    "survival": "Survival_SupplementalTable_S1_20171025_xena_sp",
}


def tcga_pancan(
    *,
    base_url: str = XENA_PANCAN_URL,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> AnnData:
    """Download (once) and load the TCGA pan-cancer RNA-seq matrix with overall survival.

    About 11,000 samples x 20,500 genes, 33 cancer types (several hundred MB compressed; the
    download is cached by :mod:`pooch`).

    Parameters
    ----------
    base_url
        Where the files live (default: the UCSC Xena PANCAN hub). Point it at a mirror if needed.
    cache_dir
        Cache folder (default: pooch's user cache for ``gexbert_sc``; the ``GEXBERT_SC_DATA``
        environment variable overrides it).
    progress
        Show a download progress bar.

    Returns
    -------
    AnnData with ``.X`` = log2(normalised count + 1) as distributed (float32, NaN where missing),
    ``.obs`` columns ``cancer_type``, ``os_time`` (days), ``os_event`` (nullable boolean) and
    ``patient_barcode``. Samples without a survival record keep NaN/NA there.
    """
    import pooch

    registry = pooch.create(
        path=cache_dir if cache_dir is not None else pooch.os_cache("gexbert_sc"),
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        registry=dict.fromkeys(PANCAN_FILES.values()),
        env="GEXBERT_SC_DATA",
    )
    expr_path = registry.fetch(PANCAN_FILES["expression"], progressbar=progress)
    surv_path = registry.fetch(PANCAN_FILES["survival"], progressbar=progress)
    expr = pd.read_csv(expr_path, sep="\t", index_col=0)
    surv = pd.read_csv(surv_path, sep="\t", index_col=0)
    missing_cols = {"cancer type abbreviation", "OS", "OS.time"} - set(surv.columns)
    if missing_cols:
        raise ValueError(f"the survival file {surv_path} lacks the columns {sorted(missing_cols)}; is it the Xena one?")
    expr = expr[~expr.index.duplicated()]
    X = expr.to_numpy(dtype=np.float32).T
    obs = pd.DataFrame(index=expr.columns.astype(str))
    s = surv.reindex(obs.index)
    obs["cancer_type"] = s["cancer type abbreviation"].astype("category")
    obs["os_time"] = s["OS.time"].astype(float)
    obs["os_event"] = s["OS"].map({1: True, 0: False}).astype("boolean")
    obs["patient_barcode"] = [b[:12] for b in obs.index]
    adata = AnnData(X, obs=obs, var=pd.DataFrame(index=expr.index.astype(str)))
    adata.uns["source"] = {"base_url": base_url, "files": dict(PANCAN_FILES), "units": "log2(norm_count + 1)"}
    logger.info("loaded TCGA PANCAN: %d samples x %d genes", *adata.shape)
    return adata
