"""Datasets: a synthetic generator with ground truth and small real cohorts bundled with the package."""

from ._pancan import PANCAN_FILES, XENA_PANCAN_URL, tcga_pancan
from ._real import nki_breast, ovarian_gse51088, survival_complete, tcga_cdr_survival, tcga_skcm
from ._synthetic import synthetic
from ._tcga_split import SURVIVAL_TYPES

__all__ = [
    "tcga_pancan",
    "XENA_PANCAN_URL",
    "PANCAN_FILES",
    "SURVIVAL_TYPES",
    "synthetic",
    "tcga_skcm",
    "ovarian_gse51088",
    "nki_breast",
    "tcga_cdr_survival",
    "survival_complete",
]
