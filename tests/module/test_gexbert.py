import math

import pytest
import torch

from gexbert_sc.module import FeedForward, GexBERTModule, masked_mse


@pytest.fixture
def net():
    torch.manual_seed(0)
    m = GexBERTModule(n_genes=50, d_model=16, n_layers=2, n_heads=4, d_ff=32, n_levels=8).eval()
    return m


def test_missing_gene_is_masked_out_of_attention(net):
    genes = torch.tensor([[3, 7, 11, 20, 31]])
    vals = torch.tensor([[0.5, -1.0, float("nan"), 2.0, 0.1]])
    with torch.no_grad():
        s_nan = net.encode(genes, vals)
        # the same sample without the missing gene at all
        s_without = net.encode(genes[:, [0, 1, 3, 4]], vals[:, [0, 1, 3, 4]])
        # a different gene identity in the missing slot
        s_other = net.encode(torch.tensor([[3, 7, 42, 20, 31]]), vals)
        # the missing gene observed instead changes the summary
        s_obs = net.encode(genes, torch.tensor([[0.5, -1.0, 1.5, 2.0, 0.1]]))
    assert torch.allclose(s_nan, s_without, atol=1e-5)
    assert torch.allclose(s_nan, s_other, atol=1e-5)
    assert (s_nan - s_obs).abs().max() > 1e-3


def test_all_missing_sample_gives_finite_summary(net):
    vals = torch.full((2, 4), float("nan"))
    vals[1] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    with torch.no_grad():
        s = net.encode(torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4]]), vals)
    assert torch.isfinite(s).all()


@pytest.mark.parametrize("readout", [True, False])
def test_decoder_genes_are_independent(readout):
    torch.manual_seed(1)
    net = GexBERTModule(n_genes=40, d_model=16, n_layers=2, n_heads=2, d_ff=32, summary_readout=readout).eval()
    if readout:
        torch.nn.init.normal_(net.readout.weight)
    genes = torch.tensor([[0, 5, 9, 17, 33, 39], [2, 3, 4, 5, 6, 7]])
    summary = torch.randn(2, 16)
    with torch.no_grad():
        together = net.decode(summary, genes)
        one_by_one = torch.cat([net.decode(summary, genes[:, j : j + 1]) for j in range(genes.shape[1])], dim=1)
        # the same gene next to different company
        swapped = net.decode(summary, torch.tensor([[5, 0, 1], [5, 0, 1]]))
    assert torch.allclose(together, one_by_one, atol=1e-5)
    assert torch.allclose(swapped[0, 0], together[0, 1], atol=1e-5)


def test_decoder_memory_is_linear_in_genes(net):
    # 20,000 genes to restore from 2 summaries: an N x N attention would need 1.6e9 floats
    big = GexBERTModule(n_genes=20_000, d_model=16, n_layers=1, n_heads=2, d_ff=32).eval()
    with torch.no_grad():
        out = big.decode(torch.randn(2, 16), torch.arange(20_000).expand(2, -1))
    assert out.shape == (2, 20_000) and torch.isfinite(out).all()


def test_masked_mse_ignores_missing_targets():
    pred = torch.tensor([[1.0, 2.0, 3.0]])
    tgt = torch.tensor([[0.0, float("nan"), 5.0]])
    assert math.isclose(float(masked_mse(pred, tgt)), (1.0 + 4.0) / 2)
    assert float(masked_mse(pred, torch.full_like(tgt, float("nan")))) == 0.0


def test_gradients_reach_every_trainable_part(net):
    net.train()
    genes = torch.randint(0, 50, (4, 10))
    vals = torch.randn(4, 10)
    vals[0, 0] = float("nan")
    loss = masked_mse(net(genes, vals, genes), vals)
    loss.backward()
    assert net.cls.grad.abs().sum() > 0
    assert net.tokens.gene.weight.grad.abs().sum() > 0
    assert net.tokens.gene_value.weight.grad.abs().sum() > 0
    assert net.tokens.missing.grad is not None


@pytest.mark.parametrize("d_model,n_heads", [(50, 2), (64, 4)])  # head dim 25 (padded to 32 on CPU) and 16
def test_encoder_attention_equals_explicit_softmax(d_model, n_heads):
    from gexbert_sc.module import EncoderLayer

    torch.manual_seed(0)
    layer = EncoderLayer(d_model, n_heads, 2 * d_model, 0.0).eval()
    x = torch.randn(3, 9, d_model)
    keep = torch.ones(3, 9, dtype=torch.bool)
    keep[1, 4:] = False
    with torch.no_grad():
        got = layer(x, keep)
        B, N, D = x.shape
        hd = D // n_heads
        q, k, v = layer.qkv(layer.norm(x)).view(B, N, 3, n_heads, hd).permute(2, 0, 3, 1, 4)
        s = q @ k.transpose(-1, -2) / math.sqrt(hd)
        s = s.masked_fill(~keep[:, None, None, :], float("-inf"))
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, N, D)
        h = x + layer.out(a)
        want = h + layer.ff(h)
    assert torch.allclose(got, want, atol=1e-5)


def test_last_encoder_layer_computes_only_the_summary(net):
    genes = torch.tensor([[3, 7, 11, 20, 31], [1, 2, 3, 4, 5]])
    vals = torch.tensor([[0.5, -1.0, float("nan"), 2.0, 0.1], [0.3, 0.2, -0.4, 1.0, 0.0]])
    with torch.no_grad():
        got = net.encode(genes, vals)
        # the full computation: every layer on every position
        x = net.tokens(genes, vals)
        x = torch.cat([net.cls.expand(2, 1, -1), x], dim=1)
        keep = torch.cat([torch.ones(2, 1, dtype=torch.bool), ~torch.isnan(vals)], dim=1)
        for layer in net.encoder:
            x = layer(x, keep)
        assert layer(x, keep, first_only=True).shape == (2, 1, 16)
    assert torch.allclose(got, x[:, 0], atol=1e-5)


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_feed_forward_activation(activation):
    torch.manual_seed(0)
    ff = FeedForward(8, 16, 0.0, activation)
    x = torch.randn(3, 5, 8)
    h = ff.fc1(ff.norm(x))
    h = torch.nn.functional.gelu(h) if activation == "gelu" else h.clamp(min=0)
    torch.testing.assert_close(ff(x), ff.fc2(h))
    with pytest.raises(ValueError, match="activation must be one of"):
        FeedForward(8, 16, 0.0, "swish")


def test_module_activation_reaches_every_block():
    m = GexBERTModule(n_genes=10, d_model=8, n_layers=2, n_heads=2, d_ff=16, activation="relu")
    blocks = [layer.ff for layer in [*m.encoder, *m.decoder]]
    assert len(blocks) == 4 and {b.activation for b in blocks} == {"relu"}


# ---------------------------------------------------------------- the linear path
def _linear_net(linear_path="fixed", n_genes=40, rank=8, seed=0):
    torch.manual_seed(seed)
    m = GexBERTModule(n_genes=n_genes, d_model=16, n_layers=1, n_heads=4, d_ff=32, n_levels=8,
                      linear_path=linear_path, linear_rank=rank)
    z = torch.randn(30, 4) @ torch.randn(4, n_genes) + 0.3 * torch.randn(30, n_genes)
    m.linear.fit(z, z[:10], generator=torch.Generator().manual_seed(0))
    return m.eval()


def test_linear_path_shapes_and_untrained_output_is_the_linear_estimate():
    m = _linear_net()
    genes = torch.randint(0, 40, (3, 12))
    vals = torch.randn(3, 12)
    targets = torch.randint(0, 40, (3, 5))
    with torch.no_grad():
        state = m.encode(genes, vals)
        out = m.decode(state, targets)
        lin = m.linear.estimate(m.linear.latent(genes, vals), targets)
    assert state.shape == (3, m.state_dim) == (3, 16 + 8)
    assert out.shape == (3, 5)
    # the head starts at zero and the readout too: the network adds nothing before training
    assert torch.allclose(out, lin, atol=1e-5)


def test_linear_path_equals_ridge_on_the_training_factors():
    """Full rank: the estimate is kernel ridge of the targets on the inputs, penalty n * lam."""
    torch.manual_seed(1)
    n, G = 12, 30
    z = torch.randn(n, G, dtype=torch.float64)
    from gexbert_sc.module import GaussianLinearPath

    lp = GaussianLinearPath(G, rank=n)
    lp.fit(z)  # lam = 1 without validation rows
    S, T = torch.arange(0, 20), torch.arange(20, 30)
    x = torch.randn(2, 20, dtype=torch.float64)
    pred = lp.estimate(lp.latent(S.expand(2, -1), x.float()), T.expand(2, -1)).double()  # float32 inside
    Xs, Xt = z[:, S], z[:, T]
    beta = torch.linalg.solve(Xs.T @ Xs + n * torch.eye(20, dtype=torch.float64), Xs.T @ Xt)
    assert torch.allclose(pred, x @ beta, atol=1e-4)


def test_linear_path_missing_equals_left_out_and_genes_independent():
    m = _linear_net()
    genes = torch.tensor([[3, 7, 11, 20, 31], [1, 2, 3, 4, 5]])
    vals = torch.tensor([[0.5, -1.0, float("nan"), 2.0, 0.1], [0.3, 0.2, -0.1, 1.0, -2.0]])
    with torch.no_grad():
        a = m.encode(genes[:1], vals[:1])
        b = m.encode(genes[:1, [0, 1, 3, 4]], vals[:1, [0, 1, 3, 4]])
        assert torch.allclose(a, b, atol=1e-5)
        # rows with different input sets in one batch == each on its own
        both = m.encode(genes, vals)
        assert torch.allclose(both[1:], m.encode(genes[1:], vals[1:]), atol=1e-5)
        # one gene restored alone == restored with others
        t_all = torch.tensor([[0, 5, 9, 17, 39]])
        one = m.decode(a, t_all[:, 2:3])
        assert torch.allclose(m.decode(a, t_all)[:, 2:3], one, atol=1e-5)


def test_linear_path_shared_input_set_equals_per_row():
    m = _linear_net()
    genes = torch.arange(10).expand(4, -1)
    vals = torch.randn(4, 10)
    vals[:, 3] = float("nan")  # the same missing gene in every row: the one-matrix shortcut
    with torch.no_grad():
        shared = m.linear.latent(genes, vals)
        single = torch.cat([m.linear.latent(genes[i : i + 1], vals[i : i + 1]) for i in range(4)])
    assert torch.allclose(shared, single, atol=1e-5)


@pytest.mark.parametrize("mode,trainable", [("fixed", False), ("learned", True)])
def test_linear_path_trainable_only_when_learned(mode, trainable):
    m = _linear_net(mode).train()
    assert m.linear.factors.requires_grad is trainable
    genes = torch.randint(0, 40, (4, 10))
    loss = m(genes, torch.randn(4, 10), torch.randint(0, 40, (4, 6))).pow(2).mean()
    loss.backward()
    assert (m.linear.factors.grad is not None) is trainable
    assert m.head.weight.grad is not None  # the network still learns its correction


def test_linear_path_penalty_picked_on_validation_rows():
    from gexbert_sc.module import GaussianLinearPath

    torch.manual_seed(0)
    z = torch.randn(60, 3) @ torch.randn(3, 30) + torch.randn(60, 30)
    lp = GaussianLinearPath(30, rank=16)
    scores = lp.fit(z[:40], z[40:], generator=torch.Generator().manual_seed(0))
    assert len(scores) == 11 and math.isclose(float(lp.lam), min(scores, key=scores.get), rel_tol=1e-5)
    assert lp.factors[:16].abs().sum() > 0


def test_linear_path_leave_one_out_equals_ridge_without_the_row():
    """Training rows are restored with factors that leave them out: kernel ridge on the other rows."""
    from gexbert_sc.module import GaussianLinearPath

    torch.manual_seed(2)
    n, G = 10, 25
    z = torch.randn(n, G, dtype=torch.float64)
    lp = GaussianLinearPath(G, rank=16)  # rank above n: every factor of the rows is kept
    lp.fit(z.float(), rows=torch.arange(3, 3 + n), n_rows=20)  # data rows 3..12 of 20
    S, T = torch.arange(0, 15), torch.arange(15, 25)
    i = 4
    x = z[i : i + 1, S]
    got = lp.estimate(lp.latent(S[None], x.float(), torch.tensor([3 + i])), T[None]).double()
    keep = torch.arange(n) != i
    Xs, Xt = z[keep][:, S], z[keep][:, T]
    beta = torch.linalg.solve(Xs.T @ Xs + n * torch.eye(15, dtype=torch.float64), Xs.T @ Xt)  # penalty n * lam
    assert torch.allclose(got, x @ beta, atol=1e-3)
    # a row outside the fit (or no rows: inference) uses every row's factors
    full = lp.estimate(lp.latent(S[None], x.float()), T[None])
    assert torch.allclose(lp.estimate(lp.latent(S[None], x.float(), torch.tensor([0])), T[None]), full)
    assert torch.allclose(lp.estimate(lp.latent(S[None], x.float(), torch.tensor([19])), T[None]), full)
    assert not torch.allclose(got.float(), full, atol=1e-3)


def _scaffolded_pair(seed=0):
    """A scaffolded network (trained-looking readout) and the same network without a readout."""
    kw = {"n_genes": 30, "d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 32, "n_levels": 8,
          "value_encoding": "binned", "summary_readout": False}
    torch.manual_seed(seed)
    scaf = GexBERTModule(**kw, scaffold_epochs=3)
    with torch.no_grad():
        scaf.readout.weight.normal_()  # as if the scaffold had been trained
    plain = GexBERTModule(**kw)
    plain.load_state_dict({k: v for k, v in scaf.state_dict().items() if not k.startswith(("readout", "readout_scale"))})
    return scaf, plain


def test_scaffold_readout_at_weight_zero_is_the_network_without_a_readout():
    scaf, plain = _scaffolded_pair()
    assert scaf.is_scaffolded and not plain.is_scaffolded and plain.readout is None
    g = torch.randint(0, 30, (5, 12))
    v = torch.randn(5, 12)
    t = torch.randint(0, 30, (5, 7))
    scaf.eval(), plain.eval()
    with torch.no_grad():
        full = scaf(g, v, t)
        scaf.set_readout_scale(0.25)
        quarter = scaf(g, v, t)
        scaf.set_readout_scale(0.0)
        off = scaf(g, v, t)
        ref = plain(g, v, t)
    assert torch.equal(off, ref)
    readout = full - ref
    assert readout.abs().mean() > 0.1  # the scaffold term is there at full weight...
    torch.testing.assert_close(quarter - ref, 0.25 * readout, rtol=1e-4, atol=1e-5)  # ...and scales linearly
    # the weight is part of the state, so a saved and loaded network restores the same way
    again, _ = _scaffolded_pair(seed=1)
    again.load_state_dict(scaf.state_dict())
    with torch.no_grad():
        assert torch.equal(again.eval()(g, v, t), ref)
    plain.set_readout_scale(1.0)  # no scaffold: a no-op
    with torch.no_grad():
        assert torch.equal(plain(g, v, t), ref)


def test_scaffold_readout_is_frozen_while_it_fades_but_still_teaches_the_encoder():
    scaf, _ = _scaffolded_pair()
    g = torch.randint(0, 30, (4, 10))
    v = torch.randn(4, 10)
    t = torch.randint(0, 30, (4, 6))

    def grads(scale):
        scaf.zero_grad(set_to_none=False)
        scaf.set_readout_scale(scale)
        scaf(g, v, t).pow(2).sum().backward()
        return scaf.readout.weight.grad.abs().sum().item(), scaf.cls.grad.abs().sum().item()

    full_readout, _ = grads(1.0)
    fading_readout, fading_encoder = grads(0.5)
    assert full_readout > 0  # at full weight the scaffold learns...
    assert fading_readout == 0.0  # ...while it fades it cannot grow back what it loses
    assert fading_encoder > 0
    # the frozen readout's part of the encoder's gradient: compare with a network whose readout term is gone
    scaf.zero_grad(set_to_none=False)
    scaf.set_readout_scale(0.0)
    scaf(g, v, t).pow(2).sum().backward()
    assert scaf.cls.grad.abs().sum().item() != pytest.approx(fading_encoder)


def test_from_config_passes_the_gene_init_sd():
    from gexbert_sc.model import resolve_config

    torch.manual_seed(0)
    net = GexBERTModule.from_config(resolve_config("cpu", gene_init_sd=0.5), n_genes=1000)
    assert abs(float(net.tokens.gene.weight.std()) - 0.5) < 0.02
    torch.manual_seed(0)
    default = GexBERTModule.from_config(resolve_config("cpu"), n_genes=1000)
    assert abs(float(default.tokens.gene.weight.std()) - 0.02) < 0.001
