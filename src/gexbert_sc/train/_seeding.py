"""Seeds derived from one ``random_state``: every stream of randomness has its own, defined here once."""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger("gexbert_sc")

#: Offsets of the derived streams. ``"train"`` drives shuffling and gene sampling during training (on CPU),
#: ``"train_keys"`` the gene sampling on a GPU (a generator on the device), ``"validation"`` the fixed gene
#: subsets on which validation losses are computed, ``"linear_path"`` the gene halves on which the linear
#: path's penalty is picked.
_OFFSETS = {"train": 0, "validation": 1, "linear_path": 2, "train_keys": 3}
#: The streams that a model which trains on continues with fresh draws.
_PER_RUN = ("train", "train_keys")


def derive_seed(random_state: int, purpose: str, start_epoch: int = 0) -> int:
    """The seed of one stream (a key of ``_OFFSETS``) of a run seeded with ``random_state``.

    ``start_epoch`` (the epochs a model had already trained) shifts the training streams, so that a model
    that trains on draws other genes than it did before; a fresh run has 0.
    """
    if purpose not in _OFFSETS:
        raise ValueError(f"unknown seed purpose {purpose!r}; one of {sorted(_OFFSETS)}")
    return int(random_state) + _OFFSETS[purpose] + (1_000_003 * int(start_epoch) if purpose in _PER_RUN else 0)


def check_random_state(random_state) -> int:
    """An int seed from ``random_state``: an int is kept; None draws a fresh seed (logged, so the run can be repeated), as scikit-learn's None does; anything else is refused."""
    if random_state is None:
        seed = int(np.random.default_rng().integers(0, 2**31 - 1))
        logger.info("random_state=None: drew seed %d (pass random_state=%d to repeat this run)", seed, seed)
        return seed
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, (int, np.integer)):
        raise TypeError(
            f"random_state must be an int or None, got {type(random_state).__name__} {random_state!r}; "
            "e.g. random_state=0 for a reproducible run, None for a fresh seed"
        )
    if random_state < 0:
        raise ValueError(f"random_state must be >= 0, got {random_state}")
    return int(random_state)
