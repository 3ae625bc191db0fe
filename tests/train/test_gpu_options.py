"""torch.compile with its eager fallback, and the "gpu" / "auto" presets."""

import logging

import numpy as np
import pytest
import torch

import gexbert_sc as gb
from gexbert_sc.model import PRESETS, resolve_config
from gexbert_sc.model._config import AUTO_GPU_MIN_OBS, auto_preset
from gexbert_sc.module import GexBERTModule
from gexbert_sc.train import Trainer, TrainPlan
from gexbert_sc.train import _trainer as trainer_module


def _fit(compile_):
    torch.manual_seed(0)
    net = GexBERTModule(n_genes=40, d_model=16, n_layers=1, n_heads=2, d_ff=32, n_levels=8)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(30, 40, generator=g)
    X[torch.rand(30, 40, generator=g) < 0.1] = float("nan")
    plan = TrainPlan(n_input=12, n_target=12, batch_size=8, lr=3e-3, weight_decay=0.0, phase_epochs=(1, 1),
                     patience=5, min_steps_per_epoch=2, compile=compile_)
    tr = Trainer(net, lambda r: X[torch.as_tensor(r)], 40, plan, device=torch.device("cpu"), progress=False)
    hist = tr.fit(np.arange(24), np.arange(24, 30))
    return net, hist, tr


def _same(a, b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_compile_unavailable_falls_back_to_eager(monkeypatch, caplog):
    ref, ref_hist, _ = _fit(False)

    def broken(*a, **kw):
        raise RuntimeError("torch.compile is not supported on this Python")

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING, logger="gexbert_sc"):
        net, hist, tr = _fit(True)
    assert "torch.compile is unavailable" in caplog.text and "eager mode" in caplog.text
    assert not tr.steps.is_compiled
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in ref_hist]
    _same(net, ref)


def test_compile_failing_at_the_first_step_falls_back_to_eager(monkeypatch, caplog):
    ref, ref_hist, _ = _fit(False)
    calls = []

    class FailsWhenCalled(torch.nn.Module):  # what torch.compile returns; it compiles (and fails) when called
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, *a, **kw):
            calls.append(1)
            raise RuntimeError("InductorError: no working C compiler found")

    monkeypatch.setattr(torch, "compile", lambda net, **kw: FailsWhenCalled(net))
    with caplog.at_level(logging.WARNING, logger="gexbert_sc"):
        net, hist, tr = _fit(True)
    assert len(calls) == 1  # tried once, then eager for good
    assert "torch.compile failed" in caplog.text and "C compiler" in caplog.text
    assert not tr.steps.is_compiled
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in ref_hist]
    _same(net, ref)


def test_compile_setting_is_validated_and_reaches_the_plan():
    assert resolve_config("cpu").compile is False
    c = resolve_config("cpu", compile=True)
    assert TrainPlan.from_config(c, (1, 1)).compile is True
    with pytest.raises(ValueError, match="config.compile must be True or False"):
        resolve_config("cpu", compile="yes")


def test_gpu_preset_suits_tensor_cores_and_keeps_the_cpu_training_choices():
    gpu, cpu = PRESETS["gpu"], PRESETS["cpu"]
    assert gpu.d_model // gpu.n_heads >= 32
    for name in ("d_model", "d_ff", "n_input", "n_target", "batch_size"):
        assert getattr(gpu, name) % 64 == 0, name
    for name in ("value_encoding", "summary_readout", "activation", "dropout", "n_input_min", "linear_path",
                 "level_cut", "n_levels", "weight_decay", "min_steps_per_epoch"):
        assert getattr(gpu, name) == getattr(cpu, name), name
    assert resolve_config("gpu") == gpu


def test_auto_picks_by_device_and_data_size(monkeypatch):
    assert auto_preset(cuda=False) == "cpu"
    assert auto_preset(cuda=True) == "gpu"
    assert auto_preset(n_obs=AUTO_GPU_MIN_OBS - 1, cuda=True) == "cpu"
    assert auto_preset(n_obs=AUTO_GPU_MIN_OBS, cuda=True) == "gpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_config("auto") == PRESETS["cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_config("auto", n_obs=11_000) == PRESETS["gpu"]
    assert resolve_config("auto", n_obs=300) == PRESETS["cpu"]
    with pytest.raises(ValueError, match="'auto'"):
        resolve_config("gpux")


def test_gpu_preset_trains_on_cpu_at_a_tiny_size():
    adata = gb.datasets.synthetic(n_obs=200, n_vars=60, n_types=3, n_modules=4, module_size=10, random_state=1)
    tiny = {"d_model": 64, "n_heads": 2, "n_layers": 1, "d_ff": 128, "n_input": 32, "n_target": 32,
            "batch_size": 32, "min_steps_per_epoch": 12, "patience": 100,
            "linear_path": "none"}  # the network's own learning at the preset's settings
    model = gb.GexBERT(adata, config="gpu", random_state=0, **tiny)
    assert model.config.lr == PRESETS["gpu"].lr and model.config.d_model // model.config.n_heads == 32
    model.train(phase1_epochs=3, phase2_epochs=3, progress=False, device="cpu")
    other = [h["val_other"] for h in model.history if h["phase"] == 2]
    same = [h["val_same"] for h in model.history if h["phase"] == 1]
    assert same[-1] < 0.9 * same[0]
    assert other[-1] < other[0] and other[-1] < model.history[-1]["val_mean"]


def test_a_trainer_for_a_gpu_seeds_its_device_generator(monkeypatch):
    # CI has no GPU, so the device branch of the set-up runs here with a CPU generator standing in for the
    # device's: the stream it seeds must exist (an unregistered one broke every CUDA training until a GPU run
    # found it)
    made = []

    def stand_in(device, seed):
        made.append(str(device))
        return torch.Generator().manual_seed(seed)

    monkeypatch.setattr(trainer_module, "device_generator", stand_in)
    net = GexBERTModule(n_genes=40, d_model=16, n_layers=1, n_heads=2, d_ff=32, n_levels=8)
    plan = TrainPlan(n_input=12, n_target=12, batch_size=8, lr=3e-3, weight_decay=0.0, phase_epochs=(1, 1),
                     patience=5, min_steps_per_epoch=2)
    first = Trainer(net, lambda r: None, 40, plan, device=torch.device("cuda"), random_state=3, progress=False)
    later = Trainer(net, lambda r: None, 40, plan, device=torch.device("cuda"), random_state=3, progress=False,
                    history=[{}] * 4)  # a model that trained 4 epochs before trains on with fresh draws
    assert made.count("cuda") == 2
    assert first.key_gen is not first.gen and first.key_gen.initial_seed() == gb.train.derive_seed(3, "train_keys")
    assert later.key_gen.initial_seed() == gb.train.derive_seed(3, "train_keys", 4) != first.key_gen.initial_seed()
