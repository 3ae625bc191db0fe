import numpy as np
import pytest

import gexbert_sc as gb
from gexbert_sc.model import resolve_config
from gexbert_sc.train import TrainPlan, lr_factor, scaffold_factor
from tests.conftest import TINY


def test_warmup_rises_linearly_then_the_cosine_ends_at_a_tenth():
    total, warm = 1000, 40
    ups = [lr_factor(s, total, warm) for s in range(warm)]
    assert ups[0] == pytest.approx(1 / warm) and ups[-1] == pytest.approx(1.0)
    assert all(b - a == pytest.approx(1 / warm) for a, b in zip(ups[:-1], ups[1:], strict=True))
    assert lr_factor(warm, total, warm) == pytest.approx(1.0)
    mid = warm + (total - warm) // 2
    assert lr_factor(mid, total, warm) == pytest.approx(0.55, abs=1e-3)
    assert lr_factor(total, total, warm) == pytest.approx(0.1)
    assert lr_factor(10 * total, total, warm) == pytest.approx(0.1)  # stays at the floor


def test_warmup_is_capped_at_a_tenth_of_the_phase():
    # a 100-step phase warms up over 10 steps even when 500 are asked for
    assert lr_factor(9, 100, 500) == pytest.approx(1.0)
    assert lr_factor(4, 100, 500) == pytest.approx(0.5)
    assert lr_factor(0, 3, 500) == pytest.approx(1.0)  # at least one step


def test_warmup_steps_setting_is_validated_and_reaches_the_plan():
    assert resolve_config("cpu").warmup_steps == 50
    c = resolve_config("paper", warmup_steps=400)
    assert TrainPlan.from_config(c, (1, 1)).warmup_steps == 400
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="config.warmup_steps must be a positive integer"):
            resolve_config("cpu", warmup_steps=bad)


def test_scaffold_is_full_then_fades_linearly_to_nothing():
    w = [scaffold_factor(e, 2) for e in range(10)]
    assert w[:3] == [1.0, 1.0, 1.0]
    assert w[3:8] == pytest.approx([5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    assert w[8:] == [0.0, 0.0]
    assert all(scaffold_factor(e, 0) == 0.0 for e in range(5))


def test_scaffold_setting_is_checked_against_the_readout():
    assert resolve_config("paper").summary_readout is False
    assert TrainPlan.from_config(resolve_config("paper", scaffold_epochs=4), (1, 1)).scaffold_epochs == 4
    with pytest.raises(ValueError, match="scaffold_epochs is for summary_readout=False"):
        resolve_config("cpu", scaffold_epochs=3)
    with pytest.raises(ValueError, match="config.scaffold_epochs must be an integer >= 0"):
        resolve_config("paper", scaffold_epochs=-1)


PAPERISH = {"value_encoding": "binned", "summary_readout": False, "linear_path": "none", "min_steps_per_epoch": 2}


def test_training_fades_the_scaffold_out_and_keeps_only_epochs_without_it(small_adata, tmp_path):
    model = gb.GexBERT(small_adata, random_state=0, **{**TINY, **PAPERISH, "scaffold_epochs": 1, "patience": 50})
    model.train(phase1_epochs=2, phase2_epochs=4, progress=False)
    assert [h["scaffold"] for h in model.history] == pytest.approx([1, 1, 2 / 3, 1 / 3, 0, 0])
    assert float(model.module.readout_scale) == 0.0  # the best phase-2 weights come from an epoch without it
    restored = model.restore(small_adata, genes=list(small_adata.var_names[:4]))
    model.save(tmp_path / "m")
    loaded = gb.GexBERT.load(tmp_path / "m", small_adata)
    assert float(loaded.module.readout_scale) == 0.0
    np.testing.assert_allclose(loaded.restore(small_adata, genes=list(small_adata.var_names[:4])), restored, rtol=1e-5,
                               atol=1e-6)


def test_training_that_ends_before_the_scaffold_faded_warns(small_adata):
    model = gb.GexBERT(small_adata, random_state=0, **{**TINY, **PAPERISH, "scaffold_epochs": 3})
    with pytest.warns(UserWarning, match=r"ended before the scaffold readout faded out \(weight 1.00\).*needs 12 epochs"):
        model.train(phase1_epochs=1, phase2_epochs=1, progress=False)
    assert float(model.module.readout_scale) == 1.0
