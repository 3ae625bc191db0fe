import pytest
import torch

from gexbert_sc.module import GexBERTModule, masked_mse
from gexbert_sc.train import make_optimizer, micro_batch_size, sample_genes, train_step


def _net(seed=0):
    torch.manual_seed(seed)
    return GexBERTModule(n_genes=60, d_model=24, n_layers=2, n_heads=3, d_ff=48, n_levels=8)


@pytest.mark.parametrize("micro", [1, 3, 7])
def test_micro_batches_give_the_full_batch_step(micro):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(7, 60)
    X[torch.rand(7, 60, generator=g) < 0.2] = float("nan")  # uneven observed targets per micro-batch
    gi, gt = sample_genes(7, 60, 10, 12, 2, g)
    vals, tgt = X.gather(1, gi), X.gather(1, gt)
    nets, losses = [], []
    for m in (7, micro):
        net = _net()
        # SGD: the step is the gradient itself (Adam's first step would amplify float noise in
        # gradients that are zero in exact arithmetic, such as the key bias's)
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        losses.append(train_step(net, opt, gi, vals, gt, tgt, micro_batch=m, grad_clip=1.0))
        nets.append(net)
    with torch.no_grad():
        want = float(masked_mse(_net()(gi, vals, gt), tgt))
    assert losses[0] == pytest.approx(want, rel=1e-5)
    assert losses[1] == pytest.approx(want, rel=1e-5)
    for (name, a), b in zip(nets[0].state_dict().items(), nets[1].state_dict().values(), strict=False):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), name
    # and the step did change the weights
    assert not torch.allclose(nets[0].encoder[0].qkv.weight, _net().encoder[0].qkv.weight)


def test_micro_batch_size_follows_activation_size():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    paper = GexBERTModule(n_genes=10, d_model=200, n_layers=1, n_heads=8, d_ff=800)
    small = GexBERTModule(n_genes=10, d_model=64, n_layers=1, n_heads=4, d_ff=128)
    assert micro_batch_size(paper, 1025, 32, cpu) == 4  # 4 x 1025 tokens x 800 <= 4M values
    assert micro_batch_size(small, 513, 32, cpu) == 32  # fits: one pass
    assert micro_batch_size(paper, 1025, 32, cuda) == 32  # GPUs take the whole batch
    assert micro_batch_size(paper, 100_000, 32, cpu) == 1  # never below one sample


def test_make_optimizer_is_fused_adamw_with_the_plain_update(monkeypatch):
    nets = [_net(), _net()]
    fused = make_optimizer(nets[0], 1e-2, 0.01)
    plain = torch.optim.AdamW(nets[1].parameters(), lr=1e-2, weight_decay=0.01)
    assert fused.defaults["fused"] is True  # this torch has the CPU kernel
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # the same gradients for both (backprop's float noise left out)
        grads = [torch.randn(p.shape, generator=g) for p in nets[0].parameters()]
        for net, opt in zip(nets, (fused, plain), strict=False):
            for p, gr in zip(net.parameters(), grads, strict=False):
                p.grad = gr.clone()
            opt.step()
    start = _net().state_dict()
    for (name, a), b in zip(nets[0].state_dict().items(), nets[1].state_dict().values(), strict=False):
        assert torch.allclose(a, b, atol=1e-6), name
        if a.is_floating_point() and a.numel() > 1 and name.endswith("weight"):
            assert not torch.equal(a, start[name]), name
    # a torch or device without the fused kernel gets the plain AdamW
    real = torch.optim.AdamW

    def no_fused(*a, fused=None, **kw):
        if fused:
            raise RuntimeError("`fused=True` is not supported here")
        return real(*a, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", no_fused)
    opt = make_optimizer(_net(), 1e-3, 0.0)
    assert isinstance(opt, real) and not opt.defaults.get("fused")
