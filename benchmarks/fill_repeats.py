"""Filling 30% MCAR of the synthetic 1,000 x 2,000 cohort: input subsets per sample, with and without the linear path.

Trains the ``"cpu"`` preset for 4 + 8 epochs (``linear_path="none"``, and ``"fixed"`` with ``--linear``) on the
complete z-scored cohort of ``benchmarks/imputation.py``, hides 30% of the entries (seed 0), then fills them with
``gb.tl.impute(model=..., n_repeats=r)`` for r = 1, 2, 4 beside ``gb.tl.impute(method="knn")``, twice each, at one
thread. Prints one JSON line per fill (seconds, RMSE in standardised units over the hidden entries). The model has
seen the hidden values in training: the RMSE is for comparing the settings, not the methods.

Usage: python benchmarks/fill_repeats.py [--linear]
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings

import torch
from threadpoolctl import threadpool_limits

import gexbert_sc as gb

sys.path.insert(0, os.path.dirname(__file__))
from imputation import load_cohort


def main() -> None:
    """Run the comparison (see the module docstring)."""
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    linear = "--linear" in sys.argv[1:]
    a = load_cohort("synthetic", synthetic_shape=(1000, 2000))
    t = time.perf_counter()
    model = gb.tl.fit(a, phase1_epochs=4, phase2_epochs=8, progress=False,
                      linear_path="fixed" if linear else "none")
    print(json.dumps({"linear": linear, "train_seconds": round(time.perf_counter() - t, 1)}), flush=True)
    gb.pp.simulate_missing(a, rate=0.3, random_state=0)
    truth, mask = a.layers["simulated_truth"], a.layers["simulated_mask"]
    with threadpool_limits(1):
        for _ in range(2):
            for r in (1, 2, 4):
                t = time.perf_counter()
                gb.tl.impute(a, model=model, key_added="g", interval=None, n_repeats=r, progress=False)
                tg = time.perf_counter() - t
                t = time.perf_counter()
                gb.tl.impute(a, method="knn", key_added="k", interval=None, progress=False)
                tk = time.perf_counter() - t
                print(json.dumps({"linear": linear, "n_repeats": r, "gexbert_s": round(tg, 2), "knn_s": round(tk, 2),
                                  "knn_over_gexbert": round(tk / tg, 2),
                                  "rmse": round(gb.tl.score_imputation(truth, a.layers["g"], mask)["rmse"], 4),
                                  "knn_rmse": round(gb.tl.score_imputation(truth, a.layers["k"], mask)["rmse"], 4),
                                  "load": round(os.getloadavg()[0], 1)}), flush=True)


if __name__ == "__main__":
    main()
