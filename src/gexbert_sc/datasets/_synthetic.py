"""A synthetic pan-cancer-like bulk expression cohort with known ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData


def synthetic(
    n_obs: int = 1000,
    n_vars: int = 2000,
    n_types: int = 5,
    *,
    n_modules: int = 20,
    module_size: int = 50,
    n_risk_modules: int = 4,
    noise_sd: float = 0.5,
    censoring: float = 0.35,
    missing_rate: float = 0.0,
    random_state: int = 0,
) -> AnnData:
    """Simulate bulk expression of several cancer types, with survival and ground truth.

    Model (log-expression scale):

    - every gene has a baseline ``mu_g ~ N(6, 2)``;
    - every cancer type shifts a random 15% of the genes by ``N(0, 1.5)`` (distinct profiles);
    - ``n_modules`` disjoint modules of ``module_size`` co-expressed genes: sample ``i`` has an
      activity ``a_im ~ N(type_mean[t, m], 1)`` and gene ``g`` of module ``m`` gets
      ``loading_g * a_im`` with ``|loading_g| ~ U(0.5, 1.2)``;
    - independent noise ``N(0, noise_sd)``;
    - survival: the first ``n_risk_modules`` modules drive risk through a Cox model with
      type-specific coefficients ``beta[t, m] ~ N(0, 0.8)``, linear predictor
      ``eta_i = sum_m beta[t, m] a_im``; Weibull (shape 1.3) event times
      ``T = (-log U / (lambda exp(eta)))^(1/1.3)`` in days, and uniform censoring times tuned so
      that about ``censoring`` of the samples are censored.

    Parameters
    ----------
    n_obs, n_vars, n_types
        Samples, genes and cancer types.
    n_modules, module_size
        Co-expressed modules (``n_modules * module_size <= n_vars``).
    n_risk_modules
        Modules that drive risk.
    noise_sd
        Sd of the independent noise.
    censoring
        Approximate fraction of censored samples.
    missing_rate
        Fraction of entries set to NaN completely at random.
    random_state
        Seed.

    Returns
    -------
    AnnData with ``.X`` (float32, log scale), ``.obs`` columns ``cancer_type`` (categorical),
    ``os_time`` (days), ``os_event`` (bool), ``true_risk`` (the linear predictor ``eta``) and
    ``cohort``; ``.var`` columns ``module`` (-1: none) and ``risk_gene``; ``.uns["synthetic"]``
    with ``beta`` (types x risk modules), ``type_means`` (types x modules), ``loadings``,
    ``cancer_types`` and the parameters.
    """
    if n_modules * module_size > n_vars:
        raise ValueError(
            f"n_modules * module_size = {n_modules * module_size} exceeds n_vars = {n_vars}; lower either"
        )
    if not 1 <= n_types <= 26 or n_obs < 1:
        raise ValueError("need n_obs >= 1 and 1 <= n_types <= 26")
    if not 0 <= missing_rate < 1:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate}")
    n_risk_modules = min(n_risk_modules, n_modules)
    rng = np.random.default_rng(random_state)
    types = np.array([f"T{chr(65 + t)}" for t in range(n_types)])
    t_of = rng.integers(0, n_types, n_obs)

    mu = rng.normal(6.0, 2.0, n_vars)
    shift = np.where(rng.random((n_types, n_vars)) < 0.15, rng.normal(0, 1.5, (n_types, n_vars)), 0.0)
    module = np.full(n_vars, -1)
    genes_perm = rng.permutation(n_vars)
    for m in range(n_modules):
        module[genes_perm[m * module_size : (m + 1) * module_size]] = m
    loading = rng.uniform(0.5, 1.2, n_vars) * rng.choice([-1.0, 1.0], n_vars)
    loading[module < 0] = 0.0
    type_means = rng.normal(0, 1.0, (n_types, n_modules))
    act = type_means[t_of] + rng.normal(0, 1.0, (n_obs, n_modules))

    X = mu + shift[t_of] + rng.normal(0, noise_sd, (n_obs, n_vars))
    in_mod = module >= 0
    X[:, in_mod] += act[:, module[in_mod]] * loading[in_mod]

    beta = rng.normal(0, 0.8, (n_types, n_risk_modules))
    eta = np.einsum("im,im->i", act[:, :n_risk_modules], beta[t_of])
    lam, k = 1.0 / 1500.0, 1.3
    T = (-np.log(rng.random(n_obs)) / (lam * np.exp(eta))) ** (1 / k)
    # uniform censoring on [0, c_max], c_max chosen for the target censoring fraction
    grid = np.quantile(T, np.linspace(0.05, 1.0, 60)) * 3
    u = rng.random(n_obs)
    frac = [np.mean(u * c < T) for c in grid]
    c_max = grid[int(np.argmin(np.abs(np.array(frac) - censoring)))]
    C = u * c_max
    time = np.maximum(np.minimum(T, C), 1.0)
    event = T <= C

    if missing_rate > 0:
        X[rng.random(X.shape) < missing_rate] = np.nan

    obs = pd.DataFrame(
        {
            "cancer_type": pd.Categorical(types[t_of], categories=types),
            "os_time": time.round(1),
            "os_event": event,
            "true_risk": eta,
            "cohort": "synthetic",
        },
        index=[f"S{i:05d}" for i in range(n_obs)],
    )
    var = pd.DataFrame(
        {"module": module, "risk_gene": (module >= 0) & (module < n_risk_modules)},
        index=[f"GENE{j:05d}" for j in range(n_vars)],
    )
    adata = AnnData(X.astype(np.float32), obs=obs, var=var)
    adata.uns["synthetic"] = {
        "beta": beta,
        "type_means": type_means,
        "loadings": loading,
        "cancer_types": types,
        "params": {
            "n_modules": n_modules,
            "module_size": module_size,
            "n_risk_modules": n_risk_modules,
            "noise_sd": noise_sd,
            "censoring": censoring,
            "missing_rate": missing_rate,
            "random_state": random_state,
        },
    }
    return adata
