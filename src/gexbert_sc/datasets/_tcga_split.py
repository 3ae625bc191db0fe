"""TCGA sample selection and the paper's patient-level pretrain / validation / test split."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The 14 cancer types the paper evaluates survival on (each has at least 100 deaths in TCGA);
#: 30% of their patients form the test split. Taken as listed in the paper, not re-derived.
SURVIVAL_TYPES = (
    "BLCA", "BRCA", "COAD", "GBM", "HNSC", "KIRC", "LAML", "LGG", "LIHC", "LUAD", "LUSC", "OV", "SKCM", "STAD",
)  # fmt: skip

#: TCGA sample-type codes kept by ``primary_only=True``: 01 primary solid tumour and 03 primary
#: blood-derived cancer (peripheral blood; the code of the LAML samples).
PRIMARY_CODES = ("01", "03")

SPLITS = ("pretrain", "validation", "test")


def sample_type_codes(barcodes) -> np.ndarray:
    """Two-digit TCGA sample-type code of each barcode (``TCGA-XX-XXXX-01...`` -> ``"01"``); ``""`` if none."""
    codes = pd.Series(list(barcodes), dtype=str).str.extract(r"^TCGA-[^-]+-[^-]+-(\d\d)", expand=False)
    return codes.fillna("").to_numpy(dtype=object)


def primary_mask(barcodes) -> np.ndarray:
    """Samples whose sample-type code is one of :data:`PRIMARY_CODES`."""
    return np.isin(sample_type_codes(barcodes), PRIMARY_CODES)


def _rounded(fraction: float, n: int) -> int:
    return int(np.floor(fraction * n + 0.5))


def _patient_types(patients: pd.Series, cancer_types: pd.Series) -> pd.Series:
    """One cancer type per patient (the first known among its samples; NaN if none), sorted by patient."""
    df = pd.DataFrame({"patient": patients.astype(str).to_numpy(), "type": cancer_types.astype(object).to_numpy()})
    return df.dropna(subset=["type"]).groupby("patient")["type"].first().reindex(sorted(set(df["patient"])))


def _take(rng: np.random.Generator, patients: np.ndarray, fraction: float) -> np.ndarray:
    """A random ``round(fraction * n)`` of ``patients`` (given sorted, so only the seed matters)."""
    return rng.permutation(patients)[: _rounded(fraction, len(patients))]


def assign_split(
    patients: pd.Series,
    cancer_types: pd.Series,
    *,
    test_size: float = 0.3,
    validation_size: float = 0.2,
    random_state: int = 0,
    test_types=SURVIVAL_TYPES,
) -> np.ndarray:
    """Patient-level split of samples into ``"pretrain"``, ``"validation"`` and ``"test"``.

    ``test``: ``round(test_size * n)`` patients of each type in ``test_types``. The rest of the
    patients (every patient of the other types and those without a type included) form the
    development set; ``round(validation_size * n)`` of each type's development patients go to
    ``validation``, the others to ``pretrain``. All samples of a patient share its split.

    Parameters
    ----------
    patients
        Patient id of each sample.
    cancer_types
        Cancer type of each sample (NaN where unknown).
    test_size, validation_size
        Fractions, each in (0, 1).
    random_state
        Seed of :func:`numpy.random.default_rng`; patients are sorted first, so the result depends
        only on the seed and the set of (patient, type) pairs, not on the sample order.
    test_types
        Types whose patients can be drawn into ``test``.

    Returns
    -------
    Array of split names, one per sample.
    """
    ptype = _patient_types(patients, cancer_types)
    rng = np.random.default_rng(random_state)
    split = pd.Series("pretrain", index=ptype.index, dtype=object)
    for t in test_types:
        split.loc[_take(rng, ptype.index[ptype == t].to_numpy(), test_size)] = "test"
    dev = ptype[split != "test"].fillna("")
    for t in sorted(set(dev)):
        split.loc[_take(rng, dev.index[dev == t].to_numpy(), validation_size)] = "validation"
    return split.reindex(patients.astype(str).to_numpy()).to_numpy()
