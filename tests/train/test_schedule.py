import pytest

from gexbert_sc.model import resolve_config
from gexbert_sc.train import TrainPlan, lr_factor


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
