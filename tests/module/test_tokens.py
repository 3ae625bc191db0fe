import torch

from gexbert_sc.module import ValueTokenizer


def _tok(enc, n_levels=8):
    torch.manual_seed(0)
    t = ValueTokenizer(n_genes=5, d_model=6, n_levels=n_levels, value_encoding=enc)
    centres = torch.linspace(-2, 2, n_levels)
    t.set_cuts((centres[1:] + centres[:-1]) / 2, centres)
    return t


def test_binned_same_bin_same_token_and_bins_differ():
    t = _tok("binned")
    g = torch.tensor([[1, 1, 1]])
    out = t(g, torch.tensor([[0.01, 0.1, 1.9]]))
    assert torch.equal(out[0, 0], out[0, 1])  # 0.01 and 0.1 share a bin
    assert not torch.allclose(out[0, 0], out[0, 2])


def test_interp_is_continuous_and_hits_level_at_centre():
    t = _tok("interp")
    c = t.centres
    g = torch.tensor([[2, 2]])
    at_centre = t.level_embedding(torch.tensor([[float(c[3])]]))[0, 0]
    assert torch.allclose(at_centre, t.level.weight[3], atol=1e-5)
    mid = t.level_embedding(torch.tensor([[float((c[3] + c[4]) / 2)]]))[0, 0]
    assert torch.allclose(mid, (t.level.weight[3] + t.level.weight[4]) / 2, atol=1e-5)
    a, b = t(g, torch.tensor([[0.30, 0.3001]]))[0]
    assert (a - b).abs().max() < 1e-2  # a tiny change in value makes a tiny change in the token
    # clamped beyond the outer centres
    far = t.level_embedding(torch.tensor([[50.0, -50.0]]))[0]
    assert torch.allclose(far[0], t.level.weight[-1]) and torch.allclose(far[1], t.level.weight[0])


def test_interp_proj_adds_per_gene_value_projection():
    t = _tok("interp_proj")
    g = torch.tensor([[0, 3]])
    v = torch.tensor([[0.5, 0.5]])
    expect = t.gene(g) + t.level_embedding(v) + 0.5 * t.gene_value(g)
    assert torch.allclose(t(g, v), expect)


def test_missing_and_mask_levels():
    t = _tok("interp_proj")
    g = torch.tensor([[4]])
    miss = t(g, torch.tensor([[float("nan")]]))
    assert torch.isfinite(miss).all()
    assert torch.allclose(miss[0, 0], t.gene.weight[4] + t.missing)
    assert torch.allclose(t.query(g)[0, 0], t.gene.weight[4] + t.mask)


def test_gene_init_sd_sets_the_scale_of_the_gene_embeddings_only():
    torch.manual_seed(0)
    small = ValueTokenizer(n_genes=2000, d_model=16, n_levels=8)
    torch.manual_seed(0)
    large = ValueTokenizer(n_genes=2000, d_model=16, n_levels=8, gene_init_sd=1.0)
    assert abs(float(small.gene.weight.std()) - 0.02) < 0.001
    assert abs(float(large.gene.weight.std()) - 1.0) < 0.05
    # the other embeddings keep their unit scale
    for t in (small, large):
        assert abs(float(t.level.weight.std()) - 1.0) < 0.5
        assert abs(float(t.gene_value.weight.std()) - 1.0) < 0.05
