"""The whole user path on a GPU, checked against the CPU: fit, impute, restore, save, load, train on (issue 16).

CI has no GPU, so this is the check of the CUDA paths that only a GPU runs (pinned host memory, prefetch,
bf16 autocast, the fused optimiser, ``torch.compile``). On a small synthetic cohort:

1. ``tl.fit(device="cuda")`` eager and with ``compile=True``: both train (validation loss below the mean's);
   compiled and eager runs end at about the same loss.
2. ``tl.impute`` with the CUDA model, then the same weights loaded on the CPU: the largest difference of the
   filled values (bf16 autocast on the GPU, fp32 on the CPU: differences of order 1e-2 are rounding).
3. ``save`` / ``load(device="cuda")``: the loaded model fills exactly what the saved one filled; it trains
   on for one more epoch.

Usage: ``python benchmarks/cuda_check.py [--out DIR]``; writes ``cuda_check.json`` in DIR (default
benchmarks/results). Exits with 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import gexbert_sc as gb

OUT = Path(__file__).parent / "results"


def _filled(adata, model) -> np.ndarray:
    a = adata.copy()
    gb.tl.impute(a, model=model, key_added="filled", random_state=0)
    return np.asarray(a.layers["filled"], dtype=np.float64)


def main() -> int:
    """Run the checks; return the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=r"training on \d+ samples", category=UserWarning)
    adata = gb.datasets.synthetic(n_obs=400, n_vars=600, n_modules=12, random_state=0)
    adata.X = np.asarray(adata.X, dtype=np.float32)
    rng = np.random.default_rng(0)
    adata.X[rng.random(adata.shape) < 0.1] = np.nan
    res: dict = {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
                 "torch": torch.__version__, "checks": {}}
    ok = True
    models = {}
    for comp in (False, True):
        t = time.perf_counter()
        model = gb.tl.fit(adata, device=args.device, phase1_epochs=3, phase2_epochs=5, compile=comp, progress=False)
        last = model.history[-1]
        name = "fit_compiled" if comp else "fit_eager"
        res["checks"][name] = {"seconds": time.perf_counter() - t, "val_other": last["val_other"],
                               "val_mean": last["val_mean"], "epochs": len(model.history),
                               "passed": bool(last["val_other"] < last["val_mean"])}
        ok &= res["checks"][name]["passed"]
        models[comp] = model
        print(name, res["checks"][name], flush=True)
    model = models[False]
    on_device = _filled(adata, model)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "m")
        on_cpu = _filled(adata, gb.GexBERT.load(Path(tmp) / "m", adata, device="cpu"))
        loaded = gb.GexBERT.load(Path(tmp) / "m", adata, device=args.device)
        again = _filled(adata, loaded)
        loaded.train(phase1_epochs=0, phase2_epochs=1, device=args.device, progress=False)
        trained_on = len(loaded.history)
    missing = np.isnan(np.asarray(adata.X))
    diff_cpu = float(np.abs(on_device - on_cpu)[missing].max())
    res["checks"]["gpu_vs_cpu_fill"] = {"max_abs_diff": diff_cpu, "passed": diff_cpu < 0.1}
    res["checks"]["save_load_fill"] = {"max_abs_diff": float(np.abs(on_device - again).max()),
                                       "passed": bool(np.array_equal(on_device, again))}
    res["checks"]["train_on"] = {"history": trained_on, "passed": trained_on == len(model.history) + 1}
    for k in ("gpu_vs_cpu_fill", "save_load_fill", "train_on"):
        ok &= res["checks"][k]["passed"]
        print(k, res["checks"][k], flush=True)
    res["passed"] = bool(ok)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cuda_check.json").write_text(json.dumps(res, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
