import torch

from gexbert_sc.train import observed_first_subsets, phase_sizes, sample_genes


def test_phase_sizes():
    assert phase_sizes(1000, 256, 256, 1) == (256, 256)
    assert phase_sizes(1000, 256, 128, 2) == (256, 128)
    assert phase_sizes(100, 256, 256, 1) == (100, 100)
    n_in, n_tgt = phase_sizes(100, 256, 256, 2)
    assert n_in == 50 and n_tgt == 50


def test_sample_genes_phase2_disjoint_and_seeded():
    g = torch.Generator().manual_seed(0)
    gi, gt = sample_genes(8, 100, 30, 40, 2, g)
    assert gi.shape == (8, 30) and gt.shape == (8, 40)
    for a, b in zip(gi, gt, strict=False):
        assert len(set(a.tolist()) | set(b.tolist())) == 70
    gi1, gt1 = sample_genes(8, 100, 30, 30, 1, torch.Generator().manual_seed(5))
    gi2, _ = sample_genes(8, 100, 30, 30, 1, torch.Generator().manual_seed(5))
    assert torch.equal(gi1, gt1) and torch.equal(gi1, gi2)
    assert all(len(set(r.tolist())) == 30 for r in gi1)


def test_observed_first_subsets_prefer_observed_and_cover():
    obs = torch.zeros(3, 50, dtype=torch.bool)
    obs[0, :40] = True  # 40 observed
    obs[1, :5] = True  # fewer observed than n_input
    obs[2] = True
    sub = observed_first_subsets(obs, n_input=10, n_repeats=4, generator=torch.Generator().manual_seed(0))
    assert sub.shape == (4, 3, 10)
    row0 = sub[:, 0].reshape(-1)
    assert set(row0.tolist()) == set(range(40))  # 4 x 10 walks through all 40 observed genes
    assert set(range(5)) <= set(sub[0, 1].tolist())  # all observed genes used, the rest filled up
    for r in range(4):
        for b in range(3):
            assert len(set(sub[r, b].tolist())) == 10


def test_draw_input_size_range_and_seeded():
    import torch

    from gexbert_sc.train import draw_input_size

    g = torch.Generator().manual_seed(0)
    sizes = [draw_input_size(16, 256, g) for _ in range(400)]
    assert min(sizes) >= 16 and max(sizes) <= 256
    assert min(sizes) < 24 and max(sizes) > 200  # log-uniform: both ends are reached
    assert sum(s < 64 for s in sizes) > 100  # about half below the geometric mean (64)
    assert draw_input_size(None, 256, g) == 256
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert [draw_input_size(8, 64, g1) for _ in range(5)] == [draw_input_size(8, 64, g2) for _ in range(5)]
