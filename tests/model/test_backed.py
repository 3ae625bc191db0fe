import tracemalloc

import anndata as ad
import numpy as np

import gexbert_sc as gb
from tests.conftest import TINY

#: The linear path's set-up holds up to 4,096 training rows in memory (documented in GexBERTConfig), so
#: this test of streaming runs without it.
STREAMED = {**TINY, "linear_path": "none"}


def test_backed_anndata_is_streamed_not_loaded(tmp_path):
    a = gb.datasets.synthetic(n_obs=10_000, n_vars=2_000, n_types=3, n_modules=10, module_size=20, random_state=0)
    a.X[np.random.default_rng(0).random(a.shape) < 0.05] = np.nan
    path = tmp_path / "big.h5ad"
    a.write_h5ad(path)
    matrix_bytes = a.X.nbytes  # 80 MB
    small = a[:300].copy()
    del a

    # warm up: the first backward pass imports modules lazily (tens of MB of Python objects, once)
    gb.GexBERT(small, **STREAMED).train(phase1_epochs=1, phase2_epochs=1, progress=False)

    backed = ad.read_h5ad(path, backed="r")
    tracemalloc.start()
    model = gb.GexBERT(backed, random_state=0, **{**STREAMED, "batch_size": 512, "min_steps_per_epoch": 1})
    model.train(phase1_epochs=1, phase2_epochs=1, progress=False)
    emb = model.embed(backed, n_repeats=1, batch_size=256)
    r = model.restore(backed, genes=backed.var_names[:5], n_repeats=1, batch_size=256)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert emb.shape == (10_000, TINY["d_model"]) and np.isfinite(emb).all()
    assert r.shape == (10_000, 5) and np.isfinite(r).all()
    print(f"peak traced memory {peak / 1e6:.1f} MB for a {matrix_bytes / 1e6:.0f} MB matrix")
    assert peak < 0.25 * matrix_bytes, (peak, matrix_bytes)

    # the streamed statistics equal the in-memory ones, and so do the outputs
    mem = ad.read_h5ad(path)
    m2 = gb.GexBERT(mem, random_state=0, **{**STREAMED, "batch_size": 512, "min_steps_per_epoch": 1})
    assert np.allclose(model.standardizer.mean, m2.standardizer.mean, atol=1e-4) and np.allclose(model.standardizer.sd, m2.standardizer.sd, atol=1e-4)
    m2.train(phase1_epochs=1, phase2_epochs=1, progress=False)
    assert np.allclose(m2.embed(mem[:300], n_repeats=1), model.embed(small, n_repeats=1), atol=1e-4)
    backed.file.close()
