"""Observed-only input sampling, the device batch path, and training without an attention mask."""

import numpy as np
import pytest
import torch

from gexbert_sc.module import EncoderLayer, GexBERTModule
from gexbert_sc.train import Trainer, TrainPlan, run_step, sample_genes, sample_observed_genes, step_passes
from gexbert_sc.train._batches import host_batches, read_batch, to_device


def _observed(B=6, G=50, frac=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, G, generator=g) >= frac


def test_inputs_are_observed_and_phase2_targets_disjoint():
    obs = _observed()
    gi, gt = sample_observed_genes(obs, 10, 12, 2, torch.Generator().manual_seed(1))
    assert gi.shape == (6, 10) and gt.shape == (6, 12)
    assert obs.gather(1, gi).all()  # every row has >= 22 observed genes: all inputs and targets observed
    assert obs.gather(1, gt).all()
    for a, b in zip(gi.tolist(), gt.tolist(), strict=True):
        assert len(set(a) | set(b)) == 22
    g1, _ = sample_observed_genes(obs, 10, 10, 1, torch.Generator().manual_seed(1))
    assert obs.gather(1, g1).all() and all(len(set(r)) == 10 for r in g1.tolist())


def test_short_rows_take_all_their_observed_genes_first():
    obs = torch.zeros(2, 40, dtype=torch.bool)
    obs[0, :4] = True  # 4 observed < n_in = 8
    obs[1, 10:30] = True  # 20 observed: targets run out of observed genes after 12
    gi, gt = sample_observed_genes(obs, 8, 16, 2, torch.Generator().manual_seed(0))
    assert set(range(4)) <= set(gi[0].tolist())
    assert obs[1].gather(0, gi[1]).all()
    assert obs[1].gather(0, gt[1]).sum() == 12  # the 12 remaining observed genes, then missing ones


def test_sampling_is_seeded_and_uniform_over_observed_genes():
    obs = torch.zeros(1, 50, dtype=torch.bool)
    obs[0, torch.randperm(50, generator=torch.Generator().manual_seed(3))[:30]] = True
    draws, n_in = 6000, 10
    rows = obs.expand(draws, -1)
    gi, _ = sample_observed_genes(rows, n_in, n_in, 1, torch.Generator().manual_seed(7))
    again, _ = sample_observed_genes(rows, n_in, n_in, 1, torch.Generator().manual_seed(7))
    assert torch.equal(gi, again)
    counts = torch.bincount(gi.reshape(-1), minlength=50).double()
    assert counts[~obs[0]].sum() == 0  # never a missing gene
    expected = draws * n_in / 30
    chi2 = float(((counts[obs[0]] - expected) ** 2 / expected).sum())
    # 29 degrees of freedom: the 0.999 quantile is 58.3 (a selection without replacement
    # varies a little less than multinomial counts, so this bound is conservative)
    assert chi2 < 58.3, chi2
    assert counts[obs[0]].min() > 0.9 * expected and counts[obs[0]].max() < 1.1 * expected
    # phase-2 targets are uniform over the observed genes left after the inputs, too
    _, gt = sample_observed_genes(rows, n_in, 10, 2, torch.Generator().manual_seed(8))
    tc = torch.bincount(gt.reshape(-1), minlength=50).double()[obs[0]]
    chi2_t = float(((tc - expected) ** 2 / expected).sum())
    assert chi2_t < 58.3, chi2_t


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    return GexBERTModule(n_genes=60, **{"d_model": 24, "n_layers": 2, "n_heads": 3, "d_ff": 48, "n_levels": 8, **kw})


def test_unmasked_attention_equals_masked_attention_on_the_same_tokens():
    net = _net().eval()
    g = torch.Generator().manual_seed(0)
    X = torch.randn(5, 60, generator=g)
    X[torch.rand(5, 60, generator=g) < 0.3] = float("nan")
    obs = ~torch.isnan(X)
    gi, gt = sample_observed_genes(obs, 12, 12, 2, g)
    vals = X.gather(1, gi)
    assert not torch.isnan(vals).any()
    with torch.no_grad():
        unmasked = net(gi, vals, gt, key_mask=False)
        masked = net(gi, vals, gt, key_mask=True)  # an all-True key mask: the old masked kernel path
        assert torch.allclose(unmasked, masked, atol=1e-5)
        # today's sampling: the same observed genes plus missing ones, masked out of attention
        miss = (~obs[0]).nonzero().reshape(-1)[:7]
        gi_old = torch.cat([gi[:1], miss[None]], dim=1)
        old = net(gi_old, X[:1].gather(1, gi_old), gt[:1])
        assert torch.isnan(X[0, miss]).all()
        assert torch.allclose(old, unmasked[:1], atol=1e-5)


def test_short_rows_run_masked_and_their_padding_does_not_leak():
    net = _net().eval()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(6, 60, generator=g)
    X[4:, 5:] = float("nan")  # rows 4 and 5: 5 observed genes < n_in = 10
    hb = read_batch(lambda r: X[torch.as_tensor(r)], np.arange(6), 10)
    assert hb.n_dense == 4 and hb.pos is None
    b = to_device(hb, 2, 8, g, torch.device("cpu"))
    assert not torch.isnan(b.vals[:4]).any() and torch.isnan(b.vals[4:]).any()
    assert [m for _, m in step_passes(6, 4, b.n_dense)] == [False, True]
    with torch.no_grad():
        pred = net(b.gi, b.vals, b.gt)  # the whole batch, masked
        for r in (4, 5):  # a short row from its observed genes alone, no mask: the padding left no trace
            keep = ~torch.isnan(b.vals[r])
            alone = net(b.gi[r : r + 1, keep], b.vals[r : r + 1, keep], b.gt[r : r + 1], key_mask=False)
            assert torch.allclose(pred[r], alone[0], atol=1e-5)
        dense = net(b.gi[:4], b.vals[:4], b.gt[:4], key_mask=False)
        assert torch.allclose(pred[:4], dense, atol=1e-5)


def test_rows_with_few_observed_genes_go_last_and_the_step_is_unchanged():
    g = torch.Generator().manual_seed(2)
    X = torch.randn(7, 60, generator=g)
    X[[1, 4], 6:] = float("nan")  # two short rows in the middle
    X[torch.rand(7, 60, generator=g) < 0.1] = float("nan")
    hb = read_batch(lambda r: X[torch.as_tensor(r)], np.arange(7), 10)
    assert hb.n_dense == 5 and hb.rows.tolist() == [0, 2, 3, 5, 6, 1, 4]
    assert hb.pos.tolist() == [0, 2, 3, 5, 6, 1, 4]
    b = to_device(hb, 2, 12, g, torch.device("cpu"))
    losses, nets = [], []
    for n_dense in (b.n_dense, None):  # split passes (dense unmasked, short masked) vs masked where needed
        net = _net()
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        losses.append(float(run_step(net, opt, b.gi, b.vals, b.gt, b.tgt, micro_batch=7, grad_clip=1.0,
                                     n_dense=n_dense)))
        nets.append(net)
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for (name, a), c in zip(nets[0].state_dict().items(), nets[1].state_dict().values(), strict=True):
        assert torch.allclose(a, c, atol=1e-6, rtol=1e-5), name


def test_keys_follow_the_rows_under_ddp_shares():
    """Each process's rows get the keys the single process gives them: the genes do not depend on the split."""
    X = torch.randn(8, 60)
    X[[3, 6], 4:] = float("nan")
    fetch = lambda r: X[torch.as_tensor(r)]
    rows = np.arange(8)
    one = to_device(read_batch(fetch, rows, 10), 2, 12, torch.Generator().manual_seed(5), torch.device("cpu"))
    by_row = {int(r): (gi, gt) for r, gi, gt in zip(one.rows, one.gi, one.gt, strict=True)}
    for rank in (0, 1):
        hb = read_batch(fetch, rows, 10, rank=rank, world=2)
        part = to_device(hb, 2, 12, torch.Generator().manual_seed(5), torch.device("cpu"))
        for r, gi, gt in zip(part.rows, part.gi, part.gt, strict=True):
            assert torch.equal(gi, by_row[int(r)][0]) and torch.equal(gt, by_row[int(r)][1])


def test_prefetch_keeps_order():
    specs = [(np.array([i]), i) for i in range(5)]
    out = list(host_batches(lambda rows, n: (int(rows[0]), n), specs, prefetch=True))
    assert out == [(i, i) for i in range(5)]


def _fit(X, **plan_kw):
    net = _net(linear_path="none")
    plan = TrainPlan(**{"n_input": 16, "n_target": 16, "batch_size": 8, "lr": 3e-3, "weight_decay": 0.0,
                        "phase_epochs": (2, 2), "patience": 10, "min_steps_per_epoch": 3, **plan_kw})
    tr = Trainer(net, lambda r: X[torch.as_tensor(r)], 60, plan, device=torch.device("cpu"), random_state=0,
                 progress=False)
    hist = tr.fit(np.arange(40), np.arange(40, 48))
    return net, hist


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(4)
    X = torch.randn(48, 60, generator=g)
    X[torch.rand(48, 60, generator=g) < 0.1] = float("nan")
    return X


def test_training_builds_no_mask_when_rows_have_enough_observed_genes(data, monkeypatch):
    seen = []
    real = EncoderLayer.forward

    def spy(self, x, keep=None, *a, **kw):
        if self.training:
            seen.append(keep)
        return real(self, x, keep, *a, **kw)

    monkeypatch.setattr(EncoderLayer, "forward", spy)
    _, hist = _fit(data)
    assert len(seen) > 0 and all(k is None for k in seen)  # 10% missing, >= 16 observed per row: no mask
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    seen.clear()
    short = data.clone()
    short[::5, 10:] = float("nan")  # every 5th row: 10 observed genes < 16
    _fit(short)
    masks = [k for k in seen if k is not None]
    assert len(masks) > 0 and any(k is None for k in seen)  # short rows masked, the others not
    assert all(bool((~k).any()) for k in masks)  # the masked passes hold the short rows only


def test_prefetch_gives_the_same_training(data):
    a, ha = _fit(data, prefetch=False)
    b, hb = _fit(data, prefetch=True)
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_sample_genes_is_kept_for_validation_sets():
    gi, gt = sample_genes(4, 30, 8, 8, 2, torch.Generator().manual_seed(0))
    assert gi.shape == (4, 8) and gt.shape == (4, 8)
