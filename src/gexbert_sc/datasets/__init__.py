"""Datasets: a synthetic generator with ground truth and small real cohorts bundled with the package."""

from ._real import nki_breast, ovarian_gse51088, survival_complete, tcga_cdr_survival, tcga_skcm
from ._synthetic import synthetic

__all__ = ["synthetic", "tcga_skcm", "ovarian_gse51088", "nki_breast", "tcga_cdr_survival", "survival_complete"]
