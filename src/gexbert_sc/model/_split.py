"""The train/validation split of a model's samples, and how many samples a model needs."""

from __future__ import annotations

import warnings

import numpy as np

#: Fewer samples than this are refused: with the default 20% validation split, 20 samples leave 16 to
#: learn gene-gene relations from and 4 to stop on, and below that no restoration beats the mean.
MIN_SAMPLES = 20
#: Below this many samples a warning says that linear methods are likely as good.
FEW_SAMPLES = 100


def check_sample_count(n_obs: int) -> None:
    """Refuse fewer than :data:`MIN_SAMPLES` samples; warn below :data:`FEW_SAMPLES`."""
    if n_obs < MIN_SAMPLES:
        raise ValueError(
            f"adata has {n_obs} sample(s); a GexBERT model needs at least {MIN_SAMPLES} to learn anything (it learns "
            f"how genes vary together across samples), and a useful one a few hundred. Pool cohorts (with batch_key) "
            "or use a model trained on more samples: GexBERT.load(path, adata)"
        )
    if n_obs < FEW_SAMPLES:
        warnings.warn(
            f"training on {n_obs} samples: with fewer than {FEW_SAMPLES}, expect a linear method (ridge regression, "
            "SoftImpute) to restore genes as well; a model pretrained on more samples is a better start",
            UserWarning,
            stacklevel=3,
        )


def split_rows(n_obs: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n_obs)`` into sorted (training, validation) rows."""
    n_val = int(round(val_fraction * n_obs))
    if val_fraction > 0 and n_val < 1:
        raise ValueError(
            f"{n_obs} samples: val_fraction={val_fraction} leaves no validation sample; "
            "add samples, raise val_fraction, or set val_fraction=0 (then no early stopping)"
        )
    perm = np.random.default_rng(seed).permutation(n_obs)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
