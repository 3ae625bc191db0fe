"""Seeds of the training streams (``train.derive_seed``)."""

import pytest

from gexbert_sc.train import derive_seed

PURPOSES = ("train", "train_keys", "validation", "linear_path")


def test_every_stream_has_its_own_seed():
    seeds = [derive_seed(7, p) for p in PURPOSES]
    assert len(set(seeds)) == len(PURPOSES)
    assert derive_seed(7, "train") == 7  # the main stream is the user's seed itself


def test_training_streams_move_on_with_the_epochs_already_trained():
    # a model that trains on draws other genes, on CPU ("train") and on a GPU ("train_keys") alike
    for p in ("train", "train_keys"):
        assert derive_seed(7, p, start_epoch=3) != derive_seed(7, p)
        assert derive_seed(7, p, start_epoch=3) == derive_seed(7, p, start_epoch=3)
    # the validation subsets and the linear path's halves stay fixed
    for p in ("validation", "linear_path"):
        assert derive_seed(7, p, start_epoch=3) == derive_seed(7, p)


def test_an_unknown_stream_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown seed purpose 'train-keys'.*'train_keys'"):
        derive_seed(0, "train-keys")
