"""Speed and memory of GexBERT on this machine, in one run (ratios are what to compare).

1. Reference: dense fp32 matmul rate (torch, 2048 x 2048), measured before and after every timed
   step (it drifts by 10-25% within a run here).
2. Training step (phase 2, batch 32, 20,000-gene vocabulary) of the "paper" and "cpu" presets:
   samples/s and achieved FLOP/s as a fraction of (1): each step over the mean of its two
   bracketing matmul measurements, median over the steps. FLOPs per sample of one forward pass, with
   N = n_input + 1 encoder tokens, M = n_target restored genes, d = d_model, f = d_ff, L = n_layers:
       encoder  (L-1) * (2*N*4*d^2  +  2*N*2*d*f  +  4*N^2*d)    (QKV+out, feed-forward, QK^T and AV)
                +  2*N*3*d^2 + 2*d^2 + 2*2*d*f + 4*N*d              (last layer: the cls query only)
       decoder  L * (2*2*d^2    +  2*(M+1)*2*d*f)                 (value+out on the summary, feed-forward)
       head     2*M*d (+ 2*M*d with the summary readout)
   A training step counts 3x the forward FLOPs (backward ~ 2x forward); embeddings, norms,
   softmax and the optimiser are left out (so the fraction is slightly pessimistic).
   The step is the trainer's own ``train_step``: on CPU it runs the batch in micro-batches
   (``micro_batch_size``: 4 samples per pass for the paper preset, the whole batch for the cpu
   preset); the paper preset is also timed with the batch in one pass, for the ratio, and with
   ReLU instead of GELU in its feed-forward blocks (``activation="relu"``).
   A torch.profiler table of the paper-preset steps is written beside the results, and the
   profiled step is split into linear layers, attention and the rest, with the rate each kernel
   class reached and the ceiling: the step's FLOPs over the kernel time alone.
3. Restoring all 20,000 genes for 64 samples (paper preset), and time per restored gene when
   restoring 512 (median of 6 timings around the big one) vs 20,000 genes.
4. Embedding and filling the missing entries (10% MCAR) of a 10,000 x 20,000 matrix with the cpu
   preset (untrained weights: cost does not depend on them): wall time and peak RSS (VmHWM).
5. Filling 30% MCAR missing entries of a 1,000 x 2,000 synthetic matrix: GexBERT (cpu preset trained
   on the incomplete matrix; training time reported apart; default n_repeats and n_repeats=1), scikit-learn KNNImputer and
   IterativeImputer (n_nearest_features=64, max_iter=5): time and RMSE on the hidden entries.

6. (``--device cuda``) The trainer's own loop on a GPU: samples/s, achieved TFLOP/s against a bf16 8192^2
   matmul timed in the same run, peak memory (``torch.cuda.max_memory_allocated``) and the paper's whole
   schedule (11,500 epochs over 7,431 samples) in hours, for batch 32 ... 1024, 0% and 10% missing (and
   10% missing with 5% of the rows short of n_input observed genes, the masked path), eager and compiled.
   ``--quick`` (a few minutes on one H100) times fewer steps and compiles only at batch 512 without missing values.
   On CPU (``--device cpu --preset cpu --quick``) it runs the same loop at batch 32 and 64.
7. (``--cpu-ab BASE_SRC``) the cpu preset's training rate with the package in BASE_SRC (e.g. the code before
   a change: ``git archive HEAD src | tar -x -C /tmp/base``) against this checkout's, alternating.

Usage: python benchmarks/throughput.py [--quick]
Writes benchmarks/results/throughput.json, throughput.md and throughput_profile.txt.
       python benchmarks/throughput.py --fill-seeds 0 1 2
runs only (5) for GexBERT, once per training seed, and writes throughput_fill_seeds.{json,md}.
       python benchmarks/throughput.py --activation-ab 6
times the paper step with GELU and with ReLU, interleaved, and writes throughput_activation_ab.{json,md}.
       python benchmarks/throughput.py --device cuda --preset paper --quick
runs only (6) and writes throughput_cuda.{json,md};
       python benchmarks/throughput.py --device cuda --preset paper --profile
profiles one trainer run (batch 512) and writes throughput_profile_cuda.{json,txt};
       python benchmarks/throughput.py --cpu-ab /tmp/base/src
runs only (7) and writes throughput_cpu_ab.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import gexbert_sc as gb
from gexbert_sc.model import resolve_config
from gexbert_sc.module import GexBERTModule
from gexbert_sc.train import make_optimizer, micro_batch_size, sample_genes, tokens_per_pass, train_step

OUT = Path(__file__).parent / "results"


def matmul_rate(n: int = 2048, reps: int = 10) -> float:
    """FLOP/s of an fp32 ``n x n`` matmul on this machine (median of ``reps``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)


def forward_flops(c, n_input: int, n_target: int) -> float:
    """FLOPs of one sample's forward pass for config ``c``."""
    d, f, L = c.d_model, c.d_ff, c.n_layers
    N, M = n_input + 1, n_target
    enc = (L - 1) * (2 * N * 4 * d * d + 2 * N * 2 * d * f + 4 * N * N * d)
    enc += 2 * N * 3 * d * d + 2 * d * d + 2 * 2 * d * f + 4 * N * d  # last layer: only the cls position is used
    dec = L * (2 * 2 * d * d + 2 * (M + 1) * 2 * d * f)
    head = 2 * M * d * (2 if c.summary_readout else 1)
    return float(enc + dec + head)


def build(c, n_genes: int) -> GexBERTModule:
    """A seeded network for config ``c``."""
    torch.manual_seed(0)
    return GexBERTModule.from_config(c, n_genes)


def attention_flops(c, n_input: int) -> float:
    """The attention part of :func:`forward_flops` (QK^T and AV); the rest is in linear layers."""
    N, d, L = n_input + 1, c.d_model, c.n_layers
    return float((L - 1) * 4 * N * N * d + 4 * N * d)


LINEAR_OPS = ("aten::mm", "aten::addmm", "aten::bmm")
ATTENTION_OPS = ("aten::_scaled_dot_product_flash_attention_for_cpu",
                 "aten::_scaled_dot_product_flash_attention_for_cpu_backward")


def breakdown(prof, wall: float, c, batch: int) -> dict:
    """Where one profiled step's time went: linear layers (mm/addmm/bmm), attention (the flash kernel, forward and backward) and everything else, with the rate each kernel class reached. ``ceiling_flop_per_s`` is the step's FLOPs over the kernel time alone: the rate a step would reach with these kernels and zero overhead. The profiler slows the small ops most, so ``other_s`` is an upper bound."""
    self_s = {}
    for e in prof.key_averages():
        self_s[e.key] = self_s.get(e.key, 0.0) + e.self_cpu_time_total / 1e6
    lin = sum(self_s.get(k, 0.0) for k in LINEAR_OPS)
    att = sum(self_s.get(k, 0.0) for k in ATTENTION_OPS)
    total = 3 * forward_flops(c, c.n_input, c.n_target) * batch
    att_flops = 3 * attention_flops(c, c.n_input) * batch
    return {"profiled_step_s": wall, "linear_s": lin, "attention_s": att, "other_s": wall - lin - att,
            "linear_flop_per_s": (total - att_flops) / lin, "attention_flop_per_s": att_flops / att,
            "ceiling_flop_per_s": total / (lin + att)}


def step_runner(c, n_genes: int = 20_000, batch: int = 32, micro: int | None = None, optimizer=None,
                grad_clip: float = 1.0):
    """A fresh module for config ``c`` and a callable that runs one training step on it (random genes, the trainer's own ``train_step``) and returns its seconds, gene sampling included. ``optimizer`` maps the module to an optimiser (default: the trainer's ``make_optimizer``). The callable carries ``.module``, ``.opt`` and ``.micro`` (samples per pass: as training picks them unless given)."""
    m = build(c, n_genes).train()
    opt = optimizer(m) if optimizer else make_optimizer(m, 1e-4, 0.01)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(batch, n_genes)
    micro = micro or micro_batch_size(m, c.n_input + 1 + c.n_target, batch, torch.device("cpu"))

    def run() -> float:
        t = time.perf_counter()
        gi, gt = sample_genes(batch, n_genes, c.n_input, c.n_target, 2, g)
        train_step(m, opt, gi, X.gather(1, gi), gt, X.gather(1, gt), micro_batch=micro, grad_clip=grad_clip)
        return time.perf_counter() - t

    run.module, run.opt, run.micro = m, opt, micro
    return run


def train_step_rate(preset: str, n_genes: int = 20_000, batch: int = 32, steps: int = 3, profile: bool = False,
                    micro: int | None = None, **overrides):
    """Seconds per training step, timed with the trainer's own ``train_step`` (micro-batches as training picks them unless ``micro`` is given; ``micro=batch`` is one pass per batch). ``overrides`` change the preset's settings (e.g. ``activation="relu"``)."""
    c = resolve_config(preset, **overrides)
    step = step_runner(c, n_genes, batch, micro)
    micro = step.micro
    step()  # warm-up
    flops = 3 * forward_flops(c, c.n_input, c.n_target) * batch
    # Each step is bracketed by matmul measurements and compared with their mean: this machine's
    # matmul rate drifts by 10-25% within a run, so one reference for the whole run misleads.
    refs, times = [matmul_rate(reps=5)], []
    for _ in range(steps):
        times.append(step())
        refs.append(matmul_rate(reps=5))
    fractions = [flops / dt / ((refs[i] + refs[i + 1]) / 2) for i, dt in enumerate(times)]
    dt = float(np.mean(times))
    out = {"preset": preset, **overrides, "micro_batch": micro, "seconds_per_step": dt, "samples_per_s": batch / dt,
           "flop_per_step": flops, "flop_per_s": flops / dt, "step_seconds": times, "matmul_brackets": refs,
           "step_fractions": fractions, "fraction_of_matmul": float(np.median(fractions))}
    prof_table = None
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as tprofile

        with tprofile(activities=[ProfilerActivity.CPU]) as p:
            t = time.perf_counter()
            step()
            wall = time.perf_counter() - t
        after = matmul_rate(reps=5)
        prof_table = p.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
        out["breakdown"] = b = breakdown(p, wall, c, batch)
        b["matmul_brackets"] = [refs[-1], after]
        b["ceiling_fraction_of_matmul"] = b["ceiling_flop_per_s"] / ((refs[-1] + after) / 2)
    return out, prof_table


@torch.no_grad()
def decoder_cost(preset: str = "paper", n_genes: int = 20_000, n_samples: int = 64):
    """Decoding time per restored gene at several gene counts."""
    c = resolve_config(preset)
    m = build(c, n_genes).eval()
    s = torch.randn(n_samples, c.d_model)
    chunk = max(1, tokens_per_pass(m, torch.device("cpu")) // n_samples)  # as GexBERT.restore chunks

    def restore(M):
        genes = torch.arange(M).expand(n_samples, -1)
        t = time.perf_counter()
        for g0 in range(0, M, chunk):
            m.decode(s, genes[:, g0 : g0 + chunk])
        return time.perf_counter() - t

    restore(512)  # warm-up
    # 512 genes take ~1.5 s, short enough for a noise burst to skew one timing: it is timed 3 times
    # before and 3 times after the 20,000-gene run, and the median is used
    small = [restore(512) for _ in range(3)]
    full = restore(n_genes)
    small += [restore(512) for _ in range(3)]
    t512 = float(np.median(small))
    return {"restore_all_seconds": full, "restore_512_seconds": small, "per_gene_512_us": t512 / 512 * 1e6,
            "per_gene_all_us": full / n_genes * 1e6, "ratio_all_vs_512": (full / n_genes) / (t512 / 512)}


def peak_rss_mb() -> float:
    """The process's peak resident memory (VmHWM), in MB.

    Not ``getrusage(...).ru_maxrss``: Linux carries that across fork and exec, so a child started
    by a big parent reports the parent's size (the first version of this benchmark read 4,592 MB
    that way, all of it the parent's).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def big_matrix(n_obs: int = 10_000, n_vars: int = 20_000):
    """Set-up, training and inference time and peak memory on a large matrix."""
    import anndata as ad

    rng = np.random.default_rng(0)
    X = np.empty((n_obs, n_vars), dtype=np.float32)
    for i in range(0, n_obs, 500):  # generated in chunks, so that the peak RSS below is the model's
        block = rng.standard_normal((min(500, n_obs - i), n_vars), dtype=np.float32)
        block[rng.random(block.shape, dtype=np.float32) < 0.10] = np.nan
        X[i : i + 500] = block
    a = ad.AnnData(X)
    a.var_names = [f"G{i}" for i in range(n_vars)]
    rss0 = peak_rss_mb()
    t = time.perf_counter()
    model = gb.GexBERT(a, random_state=0)  # cpu preset; set-up scans the matrix once
    t_setup = time.perf_counter() - t
    t = time.perf_counter()
    emb = model.embed(a, n_repeats=1, batch_size=256)
    t_embed = time.perf_counter() - t
    t = time.perf_counter()
    filled = model.impute(a, n_repeats=1, batch_size=256)
    t_impute = time.perf_counter() - t
    rss = peak_rss_mb()
    ok = bool(np.isfinite(filled).all() and np.isfinite(emb).all())
    return {"shape": [n_obs, n_vars], "missing": 0.10, "setup_s": t_setup, "embed_s": t_embed, "impute_s": t_impute,
            "peak_rss_mb": rss, "rss_before_mb": rss0, "matrix_mb": X.nbytes / 1e6, "all_finite": ok}


def fill_comparison(quick: bool, seed: int = 0, baselines: bool = True):
    """Filling 30% MCAR entries: GexBERT against scikit-learn's imputers."""
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401 (registers IterativeImputer)
    from sklearn.impute import IterativeImputer, KNNImputer

    a = gb.datasets.synthetic(n_obs=1000, n_vars=2000, random_state=0)
    truth = a.X.copy()
    mask = np.random.default_rng(1).random(a.shape) < 0.30
    a.X[mask] = np.nan
    rmse = lambda F: float(np.sqrt(np.mean((F[mask] - truth[mask]) ** 2)))
    out = {}
    t = time.perf_counter()
    model = gb.GexBERT(a, random_state=seed).train(progress=False, **({"phase1_epochs": 2, "phase2_epochs": 2} if quick else {}))
    out["gexbert_train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    F = model.impute(a)  # default: 4 input subsets averaged
    out["gexbert_fill_s"] = time.perf_counter() - t
    out["gexbert_rmse"] = rmse(F)
    t = time.perf_counter()
    F = model.impute(a, n_repeats=1)
    out["gexbert_fill1_s"] = time.perf_counter() - t
    out["gexbert_fill1_rmse"] = rmse(F)
    if not baselines:
        return out
    t = time.perf_counter()
    F = KNNImputer(n_neighbors=10).fit_transform(a.X)
    out["knn_s"] = time.perf_counter() - t
    out["knn_rmse"] = rmse(F)
    t = time.perf_counter()
    F = IterativeImputer(n_nearest_features=64, max_iter=5 if not quick else 1, random_state=0).fit_transform(a.X)
    out["iterative_s"] = time.perf_counter() - t
    out["iterative_rmse"] = rmse(F)
    col_mean = np.nanmean(a.X, 0)
    out["mean_rmse"] = rmse(np.where(np.isnan(a.X), col_mean, a.X))
    return out


def activation_ab(pairs: int = 5, n_genes: int = 20_000, batch: int = 32) -> None:
    """Paper-preset training step with GELU and with ReLU, interleaved in one process (``pairs`` steps each, after a warm-up): this machine drifts too much for separate runs to compare. Writes throughput_activation_ab.{json,md}."""
    steps = {a: step_runner(resolve_config("paper", activation=a), n_genes, batch) for a in ("gelu", "relu")}
    micro = steps["gelu"].micro
    for step in steps.values():
        step()  # warm-up
    runs = []
    for i in range(pairs):
        r = {a: step() for a, step in steps.items()}
        runs.append(r)
        print(i, r, flush=True)
    med = {a: float(np.median([r[a] for r in runs])) for a in steps}
    ratios = [r["gelu"] / r["relu"] for r in runs]
    res = {"micro_batch": micro, "runs": runs, "median_s": med, "speedup_median": float(np.median(ratios)),
           "speedup_min": min(ratios), "speedup_max": max(ratios)}
    (OUT / "throughput_activation_ab.json").write_text(json.dumps(res, indent=1))
    lines = [f"# Paper-preset training step, GELU vs ReLU feed-forward\n\n`python benchmarks/throughput.py --activation-ab {pairs}`"
             f" (batch {batch}, passes of {micro}; steps interleaved in one process)\n",
             "| pair | GELU s | ReLU s | GELU / ReLU |", "|---|---|---|---|"]
    lines += [f"| {i} | {r['gelu']:.2f} | {r['relu']:.2f} | {r['gelu'] / r['relu']:.3f} |" for i, r in enumerate(runs)]
    lines.append(f"| median | {med['gelu']:.2f} | {med['relu']:.2f} | {res['speedup_median']:.3f} |")
    (OUT / "throughput_activation_ab.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def fill_seeds(seeds: list[int]) -> None:
    """(5) for GexBERT alone, once per training seed; writes throughput_fill_seeds.{json,md}."""
    runs = []
    for seed in seeds:
        r = fill_comparison(False, seed=seed, baselines=False)
        r["seed"] = seed
        runs.append(r)
        print(r, flush=True)
    (OUT / "throughput_fill_seeds.json").write_text(json.dumps(runs, indent=1))
    cols = [("gexbert_train_s", "train (s)", "{:.0f}"), ("gexbert_fill_s", "fill, 4 subsets (s)", "{:.2f}"),
            ("gexbert_rmse", "RMSE, 4 subsets", "{:.4f}"), ("gexbert_fill1_s", "fill, 1 subset (s)", "{:.2f}"),
            ("gexbert_fill1_rmse", "RMSE, 1 subset", "{:.4f}")]
    lines = [f"# Fill 30% of 1,000 x 2,000: GexBERT over training seeds\n\n"
             f"`python benchmarks/throughput.py --fill-seeds {' '.join(map(str, seeds))}`\n",
             "| seed | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in runs:
        lines.append(f"| {r['seed']} | " + " | ".join(f.format(r[k]) for k, _, f in cols) + " |")
    for name, fn in (("mean", np.mean), ("sd", lambda v: np.std(v, ddof=1) if len(v) > 1 else float("nan"))):
        lines.append(f"| {name} | " + " | ".join(f.format(fn([r[k] for r in runs])) for k, _, f in cols) + " |")
    (OUT / "throughput_fill_seeds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# ---------------------------------------------------------------------------------------------- trainer rates
#: The paper's pretraining schedule: 10,000 + 1,500 epochs over 80% of its development split (9,289 patients
#: in /work/shared/paper.md's table: 7,431).
PAPER_EPOCHS, PAPER_TRAIN_SAMPLES = 11_500, 7_431


def bf16_matmul_rate(device: torch.device, n: int = 8192, reps: int = 20) -> float:
    """FLOP/s of a bf16 ``n x n`` matmul on ``device`` (CUDA; timed after a warm-up, synchronised)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def data_pool(n_rows: int, n_genes: int, missing: float, short: float, n_short_obs: int, seed: int = 0) -> np.ndarray:
    """Standard-normal rows, ``missing`` of the entries NaN (MCAR), and ``short`` of the rows left with only ``n_short_obs`` observed genes."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_genes), dtype=np.float32)
    if missing:
        X[rng.random(X.shape, dtype=np.float32) < missing] = np.nan
    if short:
        for r in np.flatnonzero(rng.random(n_rows) < short):
            X[r, rng.permutation(n_genes)[n_short_obs:]] = np.nan
    return X


def phase2_trainer(c, X: np.ndarray, batch: int, steps: int, device: torch.device, epochs: int = 2,
                   compile_: bool = False):
    """The package's own trainer for ``epochs`` phase-2 epochs of ``steps`` steps on the rows of ``X`` (no validation, no early stop)."""
    from gexbert_sc.train import Trainer, TrainPlan

    kw = {"compile": True} if compile_ else {}  # the field is new: the baseline package has none
    plan = TrainPlan(n_input=c.n_input, n_target=c.n_target, batch_size=batch, lr=c.lr, weight_decay=c.weight_decay,
                     phase_epochs=(0, epochs), patience=10**6, min_steps_per_epoch=steps, **kw)
    module = build(c, X.shape[1]).to(device)
    return Trainer(module, lambda r: torch.from_numpy(X[r]), X.shape[1], plan, device=device, progress=False)


def trainer_rate(c, X: np.ndarray, batch: int, steps: int, device: torch.device, compile_: bool = False,
                 epochs: int = 2) -> dict:
    """Samples/s of the trainer itself (phase 2: reading rows, sampling genes, steps; no validation).

    On the first ``batch * steps`` rows of ``X``: ``epochs`` epochs of ``steps`` steps, the first one a warm-
    up (and the compilation), the median of the others timed (each ends with a synchronisation).
    """
    n_rows = batch * steps
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    trainer = phase2_trainer(c, X, batch, steps, device, epochs, compile_)
    hist = trainer.fit(np.arange(n_rows), np.array([], dtype=np.int64))
    secs = [h["seconds"] for h in hist]
    dt = float(np.median(secs[1:])) if len(secs) > 1 else secs[0]
    out = {"batch": batch, "steps": steps, "epoch_seconds": secs, "samples_per_s": n_rows / dt,
           "compiled": bool(compile_ and getattr(getattr(trainer, "steps", None), "is_compiled", False))}
    if device.type == "cuda":
        out["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    return out


def profile_trainer(preset: str, device: torch.device, batch: int = 512, steps: int = 3, n_genes: int = 20_000,
                    missing: float = 0.0) -> tuple[dict, str]:
    """One profiled epoch of the trainer's loop (``steps`` steps): where the device time goes.

    An unprofiled epoch of the same shapes runs first, to warm up the kernels and the allocator. Returns a
    summary (wall seconds; the device kernels' busy seconds, split into matmul kernels, attention kernels
    and the rest; kernels only, so that the time of a kernel is not counted again under the operator that
    launched it) and the profiler's table of the 30 entries with the most device time.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    c = resolve_config(preset)
    X = data_pool(batch * steps, n_genes, missing, 0.0, 0)
    rows, none = np.arange(batch * steps), np.array([], dtype=np.int64)
    phase2_trainer(c, X, batch, steps, device, epochs=1).fit(rows, none)  # warm-up, not profiled
    trainer = phase2_trainer(c, X, batch, steps, device, epochs=1)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        t = time.perf_counter()
        trainer.fit(rows, none)
        wall = time.perf_counter() - t
    groups = {"matmul": 0.0, "attention": 0.0, "other": 0.0}
    for e in prof.key_averages():
        if e.device_type != DeviceType.CUDA:
            continue
        dev = e.self_device_time_total / 1e6
        k = e.key.lower()
        if any(w in k for w in ("gemm", "cutlass", "xmma", "nvjet", "cublas")):
            groups["matmul"] += dev
        elif any(w in k for w in ("flash", "attention", "fmha", "softmax")):
            groups["attention"] += dev
        else:
            groups["other"] += dev
    summary = {"preset": preset, "batch": batch, "steps": steps, "missing": missing, "wall_s": wall,
               "device_busy_s": sum(groups.values()), **{f"{k}_s": v for k, v in groups.items()}}
    table = prof.key_averages().table(sort_by="self_device_time_total" if device.type == "cuda" else "self_cpu_time_total",
                                      row_limit=30)
    return summary, table


def grid(presets: list[str], device: torch.device, quick: bool, n_genes: int = 20_000, on_run=None) -> dict:
    """Trainer rates per preset, batch size, missing share and mode (eager / compiled).

    Each run: samples/s, achieved TFLOP/s (of the bf16 matmul rate on CUDA), peak memory and the paper's
    schedule in hours, per preset, batch size, missing share and mode (eager / compiled). The eager runs come
    first and the compiled ones (slow to start) last; a run that fails is recorded with its error and the grid
    goes on; ``on_run(res)`` is called after every run (to save what there is so far).
    """
    cuda = device.type == "cuda"
    batches = [32, 64, 128, 256, 512, 1024] if cuda else [32, 64]
    ref = bf16_matmul_rate(device) if cuda else matmul_rate()
    res = {"device": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
           "torch": torch.__version__, "reference_flop_per_s": ref,
           "reference": "bf16 8192^2 matmul" if cuda else "fp32 2048^2 matmul", "runs": []}
    scenarios = [("0%", 0.0, 0.0), ("10%", 0.10, 0.0)] + ([("10% + 5% short rows", 0.10, 0.05)] if cuda else [])
    steps_for = (lambda b: max(4, 1024 // b)) if quick or not cuda else (lambda b: max(8, 4096 // b))
    n_pool = max(b * steps_for(b) for b in batches)
    plan = []  # (preset, scenario, batch, compiled)
    for comp in (False, True):
        for preset in presets:
            for name, missing, short in scenarios:
                for batch in batches:
                    if short and quick and batch != 512:
                        continue
                    if comp and not (cuda and short == 0 and (not quick or (batch == 512 and not missing))):
                        continue
                    plan.append((preset, (name, missing, short), batch, comp))
    pools: dict = {}
    for preset, (name, missing, short), batch, comp in plan:
        c = resolve_config(preset)
        flops = 3 * forward_flops(c, c.n_input, c.n_target)
        key = (name, c.n_input)
        if key not in pools:
            pools.clear()  # one pool at a time (4,096 x 20,000 floats)
            pools[key] = data_pool(n_pool, n_genes, missing, short, c.n_input // 2)
        row = {"preset": preset, "missing": name, "mode": "compiled" if comp else "eager", "batch": batch}
        try:
            r = trainer_rate(c, pools[key], batch, steps_for(batch), device, comp)
        except Exception as err:  # noqa: BLE001 (recorded; the grid goes on)
            row["error"] = f"{type(err).__name__}: {err}"[:500]
            res["runs"].append(row)
            print(row, flush=True)
            if cuda:
                torch.cuda.empty_cache()
            if on_run is not None:
                on_run(res)
            continue
        r.update(row, flop_per_s=r["samples_per_s"] * flops, fraction_of_reference=r["samples_per_s"] * flops / ref,
                 paper_schedule_hours=PAPER_EPOCHS * PAPER_TRAIN_SAMPLES / r["samples_per_s"] / 3600)
        if comp and not r["compiled"]:
            r["mode"] = "compiled (fell back to eager)"
        res["runs"].append(r)
        print({k: v for k, v in r.items() if k != "epoch_seconds"}, flush=True)
        if on_run is not None:
            on_run(res)
    return res


def write_grid(res: dict, command: str, stem: str, quiet: bool = False) -> None:
    """``res`` of :func:`grid` as ``{stem}.json`` and a Markdown table ``{stem}.md``."""
    (OUT / f"{stem}.json").write_text(json.dumps({**res, "command": command}, indent=1))
    ref = res["reference_flop_per_s"]
    lines = [f"# Training throughput on {res['device']}\n", f"`{command}` (torch {res['torch']})\n",
             f"Reference: {res['reference']}, **{ref / 1e12:.3g} TFLOP/s** measured in the same run. The trainer's own "
             "loop (rows read on the host, genes sampled on the device, phase 2, no validation); samples/s is the "
             "median epoch after a warm-up epoch. FLOPs counted analytically (encoder and decoder matmuls, "
             "3x forward). Schedule: the paper's 11,500 epochs over 7,431 samples at this rate.\n",
             "| preset | missing | mode | batch | samples/s | TFLOP/s | of reference | peak memory GB | paper schedule h |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        if "error" in r:
            lines.append(f"| {r['preset']} | {r['missing']} | {r['mode']} | {r['batch']} | failed: {r['error'][:120]} "
                         "| | | | |")
            continue
        mem = f"{r['peak_memory_gb']:.1f}" if "peak_memory_gb" in r else "-"
        lines.append(f"| {r['preset']} | {r['missing']} | {r['mode']} | {r['batch']} | {r['samples_per_s']:,.0f} | "
                     f"{r['flop_per_s'] / 1e12:.3g} | {r['fraction_of_reference']:.1%} | {mem} | "
                     f"{r['paper_schedule_hours']:,.1f} |")
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    if not quiet:
        print("\n".join(lines))


AB_CHILD = """
import json, sys, numpy as np, torch
sys.path.insert(0, {bench!r})
import gexbert_sc, throughput as t
from gexbert_sc.model import resolve_config
torch.set_num_threads({threads})
c = resolve_config("cpu")
X = t.data_pool({batch} * {steps}, {n_genes}, {missing}, 0.0, 0)
r = t.trainer_rate(c, X, {batch}, {steps}, torch.device("cpu"), epochs=3)
r["package"] = gexbert_sc.__file__
print(json.dumps(r))
"""


def cpu_ab(base_src: str, rounds: int = 3, n_genes: int = 20_000, batch: int = 32, steps: int = 25) -> None:
    """The cpu preset's training rate with the package in ``base_src`` (before) and this checkout's (after).

    Trainer loop, 20,000-gene vocabulary: the package in ``base_src`` (the code before a change) and this
    checkout's, alternating in fresh processes (``rounds`` each), 0% and 10% missing. Writes
    throughput_cpu_ab.{json,md}.
    """
    import os
    import subprocess
    import sys

    here = str(Path(__file__).resolve().parents[1] / "src")
    runs = []
    for i in range(rounds):
        for missing in (0.0, 0.10):
            for name, src in (("before", base_src), ("after", here)):
                code = AB_CHILD.format(bench=str(Path(__file__).parent), threads=torch.get_num_threads(), batch=batch,
                                       steps=steps, n_genes=n_genes, missing=missing)
                env = {**os.environ, "PYTHONPATH": src}
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                r.update(version=name, missing=missing, round=i)
                runs.append(r)
                print(name, missing, r["samples_per_s"], r["package"], flush=True)
    (OUT / "throughput_cpu_ab.json").write_text(json.dumps(runs, indent=1))
    lines = [f"# CPU training rate before and after (cpu preset, batch {batch}, {n_genes:,}-gene vocabulary)\n",
             f"`python benchmarks/throughput.py --cpu-ab BASE_SRC` (torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads): the trainer loop (epochs of {steps} steps, phase 2, median of 2 "
             "epochs after a warm-up), the two versions alternating in fresh processes.\n",
             "| missing | before samples/s (runs) | after samples/s (runs) | after / before (medians) |", "|---|---|---|---|"]
    for missing in (0.0, 0.10):
        v = {n: [r["samples_per_s"] for r in runs if r["version"] == n and r["missing"] == missing]
             for n in ("before", "after")}
        med = {n: float(np.median(x)) for n, x in v.items()}
        lines.append(f"| {missing:.0%} | {med['before']:.1f} ({', '.join(f'{x:.0f}' for x in v['before'])}) | "
                     f"{med['after']:.1f} ({', '.join(f'{x:.0f}' for x in v['after'])}) | "
                     f"{med['after'] / med['before']:.2f} |")
    (OUT / "throughput_cpu_ab.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    """Run the benchmark sections chosen on the command line and write the results."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    ap.add_argument("--fill-seeds", type=int, nargs="+", metavar="SEED",
                    help="only (5), GexBERT trained with each of these seeds: the spread of its fill time and RMSE")
    ap.add_argument("--activation-ab", type=int, metavar="PAIRS",
                    help="only the paper step with GELU vs ReLU, PAIRS interleaved steps each")
    ap.add_argument("--device", help="only the trainer grid (batch 32-1024 on CUDA, 0%%/10%% missing, eager and compiled) "
                    "on this device, e.g. cuda; writes throughput_<device>.{json,md}")
    ap.add_argument("--preset", nargs="+", default=["paper"], help="presets of the --device grid (default: paper)")
    ap.add_argument("--profile", action="store_true",
                    help="with --device: only one profiled trainer run per preset (batch 512), "
                    "writes throughput_profile_<device>.{json,txt}")
    ap.add_argument("--cpu-ab", metavar="BASE_SRC",
                    help="only the CPU trainer rate of the package in BASE_SRC (before) vs this checkout (after)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.cpu_ab:
        cpu_ab(args.cpu_ab)
        return
    if args.device and args.profile:
        device = torch.device(args.device)
        out, tables = [], []
        for preset in args.preset:
            summary, table = profile_trainer(preset, device)
            print(summary, flush=True)
            out.append(summary)
            tables.append(f"# {preset}, batch 512, {summary['steps']} profiled steps after a warm-up epoch\n{table}")
        (OUT / f"throughput_profile_{device.type}.json").write_text(json.dumps(out, indent=1))
        (OUT / f"throughput_profile_{device.type}.txt").write_text("\n\n".join(tables))
        return
    if args.device:
        device = torch.device(args.device)
        command = f"python benchmarks/throughput.py --device {args.device} --preset {' '.join(args.preset)}" + (
            " --quick" if args.quick else "")
        stem = f"throughput_{device.type}"
        write_grid(grid(args.preset, device, args.quick, on_run=lambda res: write_grid(res, command, stem, quiet=True)),
                   command, stem)
        return
    if args.activation_ab:
        activation_ab(args.activation_ab)
        return
    if args.fill_seeds:
        fill_seeds(args.fill_seeds)
        return
    res = {"meta": {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
                    "processor": platform.processor(), "command": "python benchmarks/throughput.py" + (" --quick" if args.quick else "")}}
    # The matmul rate of this shared machine drifts by 10-25% within a run: it is measured before and
    # after every timed step, and each step is compared with its own two measurements.
    res["train_step"] = []
    runs = [("paper", None, {}), ("paper", 32, {}), ("paper", None, {"activation": "relu"}), ("cpu", None, {})]
    for preset, micro, over in runs:
        r, table = train_step_rate(preset, steps=1 if args.quick else 3, micro=micro,
                                   profile=preset == "paper" and micro is None, **over)
        res["train_step"].append(r)
        print(r, flush=True)
        if table:
            name = "throughput_profile.txt" if not over else "throughput_profile_" + "_".join(map(str, over.values())) + ".txt"
            (OUT / name).write_text(table)
    res["matmul_runs"] = [v for r in res["train_step"] for v in r["matmul_brackets"]]
    res["matmul_flop_per_s"] = float(np.median(res["matmul_runs"]))
    res["decoder"] = decoder_cost()
    print(res["decoder"], flush=True)
    # in a fresh process, so that its peak RSS is its own
    import subprocess
    import sys

    shape = (2000, 20_000) if args.quick else (10_000, 20_000)
    code = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import throughput as t; print(json.dumps(t.big_matrix(*{shape!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    res["big_matrix"] = json.loads(out.stdout.strip().splitlines()[-1])
    print(res["big_matrix"], flush=True)
    res["fill_1000x2000"] = fill_comparison(args.quick)
    print(res["fill_1000x2000"], flush=True)
    (OUT / "throughput.json").write_text(json.dumps(res, indent=1))
    mm = res["matmul_flop_per_s"]
    lines = [f"# Throughput\n\n`{res['meta']['command']}` — torch {res['meta']['torch']}, {res['meta']['threads']} threads, "
             f"{res['meta']['machine']}\n",
             f"Reference matmul (fp32, 2048^2): median **{mm / 1e9:.1f} GFLOP/s**, range "
             f"{min(res['matmul_runs']) / 1e9:.0f}-{max(res['matmul_runs']) / 1e9:.0f} over the {len(res['matmul_runs'])} "
             "measurements taken between the steps. Each step's fraction is its FLOP rate over the mean of the two "
             "matmul measurements just before and after it (the rate drifts within a run); the table gives the "
             "median over the steps, and the range.\n",
             "| training step (phase 2, batch 32, 20k vocab) | samples per pass | s/step | samples/s | GFLOP/s | fraction of matmul (range) |",
             "|---|---|---|---|---|---|"]
    for r in res["train_step"]:
        name = r["preset"] + (f", {r['activation']}" if "activation" in r else "")
        lines.append(f"| {name} | {r['micro_batch']} | {r['seconds_per_step']:.2f} | {r['samples_per_s']:.1f} | "
                     f"{r['flop_per_s'] / 1e9:.1f} | {r['fraction_of_matmul']:.0%} "
                     f"({min(r['step_fractions']):.0%}-{max(r['step_fractions']):.0%}) |")
    lines += ["", "Where one profiled step went (torch.profiler self time; linear = mm/addmm/bmm, attention = the "
              "flash kernel's forward and backward; the profiler slows small ops, so 'other' is an upper bound). "
              "Ceiling: the step's FLOPs over linear + attention time, i.e. these kernels with zero overhead, as a "
              "fraction of the matmul measurements just before and after the profiled step.\n",
              "| step | profiled s | linear s (GFLOP/s) | attention s (GFLOP/s) | other s | ceiling GFLOP/s (of matmul) |",
              "|---|---|---|---|---|---|"]
    for r in res["train_step"]:
        if "breakdown" not in r:
            continue
        b = r["breakdown"]
        name = r["preset"] + (f", {r['activation']}" if "activation" in r else "")
        lines.append(f"| {name} | {b['profiled_step_s']:.2f} | {b['linear_s']:.2f} ({b['linear_flop_per_s'] / 1e9:.0f}) | "
                     f"{b['attention_s']:.2f} ({b['attention_flop_per_s'] / 1e9:.0f}) | {b['other_s']:.2f} | "
                     f"{b['ceiling_flop_per_s'] / 1e9:.0f} ({b['ceiling_fraction_of_matmul']:.0%}) |")
    d = res["decoder"]
    lines += ["", "| decoder (paper preset, 64 samples) | value |", "|---|---|",
              f"| restore all 20,000 genes | {d['restore_all_seconds']:.2f} s |",
              f"| per restored gene, 512 genes (median of 6) | {d['per_gene_512_us']:.1f} us |",
              f"| per restored gene, 20,000 genes | {d['per_gene_all_us']:.1f} us |",
              f"| ratio 20,000 / 512 | {d['ratio_all_vs_512']:.2f} |"]
    b = res["big_matrix"]
    lines += ["", f"| {b['shape'][0]:,} x {b['shape'][1]:,} matrix, 10% missing (cpu preset) | value |", "|---|---|",
              f"| set-up scan | {b['setup_s']:.1f} s |", f"| embed (1 subset of 256 genes) | {b['embed_s']:.1f} s |",
              f"| fill missing entries | {b['impute_s']:.1f} s |",
              f"| peak RSS (VmHWM of the process, incl. the {b['matrix_mb']:.0f} MB matrix and the {b['matrix_mb']:.0f} MB "
              f"filled copy; {b['rss_before_mb']:,.0f} MB before the model) | {b['peak_rss_mb']:,.0f} MB |"]
    f = res["fill_1000x2000"]
    lines += ["", "| fill 30% missing of 1,000 x 2,000 | time (s) | RMSE |", "|---|---|---|",
              f"| GexBERT cpu preset, default 4 subsets (fill; training {f['gexbert_train_s']:.0f} s apart) | {f['gexbert_fill_s']:.1f} | {f['gexbert_rmse']:.3f} |",
              f"| GexBERT cpu preset, 1 subset (`n_repeats=1`) | {f['gexbert_fill1_s']:.1f} | {f['gexbert_fill1_rmse']:.3f} |",
              f"| KNNImputer(10) | {f['knn_s']:.1f} | {f['knn_rmse']:.3f} |",
              f"| IterativeImputer(64 features, {1 if args.quick else 5} iter) | {f['iterative_s']:.1f} | {f['iterative_rmse']:.3f} |",
              f"| gene mean | - | {f['mean_rmse']:.3f} |"]
    (OUT / "throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
