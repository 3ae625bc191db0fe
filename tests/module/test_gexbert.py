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
