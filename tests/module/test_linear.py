"""The linear path's fast system for rows sharing their genes, and its EM fit on rows with missing values."""

import pytest
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


def test_em_goes_on_while_validation_improves_on_gene_blocks():
    """Whole genes missing in groups of rows converge slowly: ten EM iterations are not enough, and the
    validation-stopped EM (up to 50) restores the hidden blocks clearly better."""
    G = 120
    full = _low_rank(300, G, k=20, noise=1.0, seed=11)
    z, val = full[:240].clone(), full[240:].clone()
    g = torch.Generator().manual_seed(5)
    hidden = torch.zeros_like(z, dtype=torch.bool)
    for b in range(3):  # three groups of training rows, each without its own 60% of the genes
        genes = torch.randperm(G, generator=g)[: int(0.6 * G)]
        hidden[torch.arange(b * 80, (b + 1) * 80)[:, None], genes[None, :]] = True
    zm = z.clone()
    zm[hidden] = float("nan")

    def error(em_iterations):
        lp = GaussianLinearPath(G, rank=32)
        lp.fit(zm, val, generator=torch.Generator().manual_seed(0), em_iterations=em_iterations)
        return float(((lp.fill(zm)[hidden] - z[hidden]) ** 2).mean() / z[hidden].var())

    none, ten, stopped = error(0), error(10), error(50)
    assert ten < 0.85 * none, (ten, none)
    assert stopped < 0.97 * ten, (stopped, ten)


def test_fill_keeps_observed_values_and_fills_the_rest():
    G = 30
    lp = GaussianLinearPath(G, rank=6)
    lp.fit(_low_rank(50, G))
    x = _low_rank(5, G, seed=7)
    x[0, 3] = x[2, 10] = float("nan")
    filled = lp.fill(x)
    obs = ~torch.isnan(x)
    assert torch.equal(filled[obs], x[obs]) and torch.isfinite(filled).all()


def test_penalty_by_input_size_is_picked_saved_and_interpolated():
    G = 200
    z = _low_rank(300, G, k=6, noise=0.5, seed=8)
    lp = GaussianLinearPath(G, rank=32)
    lp.fit(z[:240], z[240:], generator=torch.Generator().manual_seed(0))
    sizes = lp.lam_log_sizes.exp().round().tolist()
    assert sizes == [16.0, 64.0, 100.0]  # PICK_SIZES capped at half the genes (100), plus that half
    table = lp.lam_log_values.exp()
    assert torch.allclose(lp.row_lam(torch.tensor([16, 64, 100])), table, rtol=1e-5)
    mid = lp.row_lam(torch.tensor([32]))  # halfway between 16 and 64 on the log scale
    assert torch.allclose(mid.log(), (table[0].log() + table[1].log()) / 2, atol=1e-5)
    assert torch.allclose(lp.row_lam(torch.tensor([4, 1000])), table[[0, -1]])  # constant beyond the ends
    # a row's latent uses its own size's penalty
    x = z[:1, :16]
    h = lp.latent(torch.arange(16)[None], x).double()
    lp2 = GaussianLinearPath(G, rank=32)
    lp2.load_state_dict(lp.state_dict())
    assert torch.equal(lp2.lam_log_values, lp.lam_log_values)
    lp2.lam_log_sizes, lp2.lam_log_values = torch.zeros(0), torch.zeros(0)
    lp2.log_lam.fill_(float(table[0].log()))
    assert torch.allclose(h, lp2.latent(torch.arange(16)[None], x).double(), atol=1e-5)


def test_models_saved_before_the_penalty_table_load_with_one_penalty():
    lp = GaussianLinearPath(30, rank=4)
    lp.fit(_low_rank(40, 30), _low_rank(10, 30, seed=1), generator=torch.Generator().manual_seed(0))
    old = {k: v for k, v in lp.state_dict().items()
           if not k.startswith("lam_log") and k not in ("log_lam_gap", "group_measured")}
    fresh = GaussianLinearPath(30, rank=4)
    fresh.load_state_dict(old)
    assert len(fresh.lam_log_sizes) == 0
    assert fresh.lam_gap is None and fresh.gaps(torch.ones(2, 30, dtype=torch.bool), torch.tensor([0, 1])) is None
    assert torch.allclose(fresh.row_lam(torch.tensor([3, 15])), lp.lam.expand(2))


def _two_platforms(seed, n=240, G=120, k=4, shift=0.5):
    """Two groups of rows whose genes load on the same factors differently (e.g. two tissues or platforms); the
    second group never measured the first quarter of the genes. Returns (truth, with gaps, codes, gap mask)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(k, G, generator=g)
    codes = torch.arange(n) % 2
    n1 = int((codes == 1).sum())
    X = torch.randn(n, k, generator=g) @ W + 0.3 * torch.randn(n, G, generator=g)
    X[codes == 1] = (torch.randn(n1, k, generator=g) @ (W + shift * torch.randn(k, G, generator=g))
                     + 0.3 * torch.randn(n1, G, generator=g))
    X = (X - X.mean(0)) / X.std(0)
    gap = torch.zeros_like(X, dtype=torch.bool)
    gap[codes == 1, : G // 4] = True
    return X, X.masked_fill(gap, float("nan")), codes, gap


def _split(n, seed):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 5].sort().values, perm[n // 5 :].sort().values


def test_genes_a_group_never_measured_get_their_own_penalty_which_restores_them_better():
    ratios = []
    for seed in range(3):
        X, Xm, codes, gap = _two_platforms(seed)
        va, tr = _split(len(X), seed)
        errors = []
        for kw in ({}, {"codes": codes[tr], "val_codes": codes[va]}):
            lp = GaussianLinearPath(X.shape[1], rank=32)
            lp.fit(Xm[tr], Xm[va], generator=torch.Generator().manual_seed(0), **kw)
            F = lp.fill(Xm, codes if kw else None)
            assert torch.equal(F[~gap], Xm[~gap])
            errors.append(float(((F - X)[gap] ** 2).mean().sqrt()))
        assert lp.lam_gap is not None and lp.lam_gap > 5 * float(lp.lam)  # the transferred covariance holds less well
        assert torch.equal(lp.gaps(torch.isnan(Xm), codes), gap)
        ratios.append(errors[1] / errors[0])
    assert max(ratios) < 1.0 and sum(ratios) / 3 < 0.9, ratios


def test_gap_penalty_needs_gaps_and_known_groups_and_survives_a_state_dict_round_trip():
    X, Xm, codes, gap = _two_platforms(0)
    va, tr = _split(len(X), 0)
    plain, one_group = GaussianLinearPath(X.shape[1], rank=16), GaussianLinearPath(X.shape[1], rank=16)
    plain.fit(Xm[tr], Xm[va], generator=torch.Generator().manual_seed(0))
    zeros = torch.zeros(len(X), dtype=torch.long)
    one_group.fit(Xm[tr], Xm[va], generator=torch.Generator().manual_seed(0), codes=zeros[tr], val_codes=zeros[va])
    assert one_group.lam_gap is None and plain.lam_gap is None  # one group: no gene is measured elsewhere
    assert torch.equal(one_group.factors, plain.factors)
    lp = GaussianLinearPath(X.shape[1], rank=16)
    lp.fit(Xm[tr], Xm[va], generator=torch.Generator().manual_seed(0), codes=codes[tr], val_codes=codes[va])
    miss = torch.isnan(Xm)
    assert not bool(lp.gaps(miss, torch.full((len(X),), 2)).any())  # a group the fit never saw
    assert not bool(lp.gaps(miss, torch.full((len(X),), -1)).any())
    assert torch.equal(lp.gaps(miss, codes), gap)
    again = GaussianLinearPath(X.shape[1], rank=16)
    again.load_state_dict(lp.state_dict())
    assert again.lam_gap == lp.lam_gap and torch.equal(again.group_measured, lp.group_measured)
    assert torch.allclose(again.fill(Xm, codes), lp.fill(Xm, codes))
    assert not torch.allclose(lp.fill(Xm, codes)[gap], lp.fill(Xm)[gap])
    with pytest.raises(ValueError, match="val_codes"):
        lp.fit(Xm[tr], Xm[va], codes=codes[tr])
