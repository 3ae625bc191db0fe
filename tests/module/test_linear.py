"""The linear path's fast system for rows sharing their genes, and its EM fit on rows with missing values."""

import torch

from gexbert_sc.module import GaussianLinearPath


def _low_rank(n, G, k=4, noise=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g) @ torch.randn(k, G, generator=g) + noise * torch.randn(n, G, generator=g)


def _reference_latent(lp, genes, values):
    """Each row on its own, float64, from its observed genes only."""
    out = []
    Z = lp.factors.double()
    for g, v in zip(genes, values, strict=True):
        o = ~torch.isnan(v)
        zs = Z[:, g[o]]
        a = zs @ zs.T + float(lp.lam) * torch.eye(lp.rank, dtype=torch.float64)
        out.append(torch.linalg.solve(a, zs @ v[o].double()))
    return torch.stack(out)


def test_shared_genes_system_equals_each_row_alone():
    G = 60
    lp = GaussianLinearPath(G, rank=10)
    lp.fit(_low_rank(80, G), _low_rank(20, G, seed=1), generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(2)
    x = _low_rank(7, G, seed=3)
    few_missing = x.clone()
    few_missing[torch.rand(x.shape, generator=g) < 0.2] = float("nan")  # complement side: Z Z^T minus missing
    many_missing = x.clone()
    many_missing[torch.rand(x.shape, generator=g) < 0.8] = float("nan")  # observed side
    same = x.clone()
    same[:, [1, 5, 9]] = float("nan")  # every row misses the same genes: one factorisation
    genes = torch.arange(G).expand(7, -1)
    for vals in (few_missing, many_missing, same, x):
        got = lp.latent(genes, vals).double()
        assert torch.allclose(got, _reference_latent(lp, genes, vals), atol=1e-4)


def test_em_fit_restores_missing_values_better_than_mean_filling():
    """30% of the training entries missing: EM beats setting them to the mean, on held-out rows' hidden genes."""
    G = 80
    z = _low_rank(240, G, k=5, seed=4)  # one structure: training, validation and held-out rows
    z, val, truth = z[:160].clone(), z[160:200].clone(), z[200:]
    g = torch.Generator().manual_seed(6)
    z[torch.rand(z.shape, generator=g) < 0.3] = float("nan")
    val[torch.rand(val.shape, generator=g) < 0.3] = float("nan")
    inputs, targets = torch.arange(0, 50), torch.arange(50, G)

    def error(em_iterations):
        lp = GaussianLinearPath(G, rank=16)
        lp.fit(z, val, generator=torch.Generator().manual_seed(0), em_iterations=em_iterations)
        pred = lp.estimate(lp.latent(inputs.expand(40, -1), truth[:, inputs]), targets.expand(40, -1))
        return float(((pred - truth[:, targets]) ** 2).mean() / truth[:, targets].var())

    no_em, em = error(0), error(10)
    assert em < 0.9 * no_em, (em, no_em)


def test_fill_keeps_observed_values_and_fills_the_rest():
    G = 30
    lp = GaussianLinearPath(G, rank=6)
    lp.fit(_low_rank(50, G))
    x = _low_rank(5, G, seed=7)
    x[0, 3] = x[2, 10] = float("nan")
    filled = lp.fill(x)
    obs = ~torch.isnan(x)
    assert torch.equal(filled[obs], x[obs]) and torch.isfinite(filled).all()
