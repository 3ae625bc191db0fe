"""``tl.umap`` and ``tl.gene_umap`` leave torch's thread count as it was, although numba resets it."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from gexbert_sc.tl._threads import keep_torch_threads


def test_keep_torch_threads_restores_the_count_also_on_error():
    torch.set_num_threads(3)
    with keep_torch_threads():
        torch.set_num_threads(1)
    assert torch.get_num_threads() == 3
    with pytest.raises(RuntimeError, match="boom"), keep_torch_threads():
        torch.set_num_threads(1)
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 3


CALLS = {
    "umap": """
        import numpy as np
        a.obsm["X_gexbert"] = np.random.default_rng(0).normal(size=(a.n_obs, 8)).astype(np.float32)
        gb.tl.umap(a)
        assert a.obsm["X_gexbert_umap"].shape == (a.n_obs, 2)
    """,
    "gene_umap": """
        model = gb.GexBERT(a, d_model=16, n_layers=1, n_heads=2, d_ff=32, n_levels=16, n_input=16, n_target=16)
        gb.tl.gene_umap(a, model=model, n_neighbors=5)
        assert a.varm["X_gexbert_gene_umap"].shape == (a.n_vars, 2)
    """,
}


@pytest.mark.parametrize("tool", list(CALLS))
def test_tools_keep_torch_threads_in_a_fresh_process(tool):
    """The first numba call of a process sets torch's (OpenMP) thread count to NUMBA_NUM_THREADS (here 1).

    A fresh process is needed: numba starts its threading layer once per process.
    """
    script = textwrap.dedent("""
        import warnings
        warnings.simplefilter("ignore")
        import torch
        import gexbert_sc as gb
        a = gb.datasets.synthetic(n_obs=40, n_vars=20, n_modules=2, module_size=5, random_state=1)
        torch.set_num_threads(2)
    """) + textwrap.dedent(CALLS[tool]) + "print('threads', torch.get_num_threads())\n"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["threads", "2"]
