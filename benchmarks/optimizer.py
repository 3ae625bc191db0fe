"""AdamW variants on the training step: the plain loop, ``foreach`` and ``fused`` (what
``gexbert_sc.train.make_optimizer`` picks where it can).

For a preset (batch 32, 20,000-gene vocabulary), the three optimisers each drive their own copy of
the module; steps are interleaved in one process (this machine drifts too much for separate runs),
and ``opt.step()`` is also timed alone after each step. Medians over the repetitions.

Usage: python benchmarks/optimizer.py [--preset cpu] [--reps 30]
Writes benchmarks/results/optimizer_<preset>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from gexbert_sc.model import resolve_config
from gexbert_sc.train import micro_batch_size, sample_genes, train_step

HERE = Path(__file__).parent
OUT = HERE / "results"
VARIANTS = {"plain": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    import sys

    sys.path.insert(0, str(HERE))
    from throughput import build

    c = resolve_config(args.preset)
    n_genes, batch = 20_000, 32
    nets = {}
    for name, kw in VARIANTS.items():
        m = build(c, n_genes).train()
        nets[name] = (m, torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.01, **kw))
    micro = micro_batch_size(nets["plain"][0], c.n_input + 1 + c.n_target, batch, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    X = torch.randn(batch, n_genes)

    def step(name):
        gi, gt = sample_genes(batch, n_genes, c.n_input, c.n_target, 2, g)
        t = time.perf_counter()
        train_step(*nets[name], gi, X.gather(1, gi), gt, X.gather(1, gt), micro_batch=micro)
        t_step = time.perf_counter() - t
        t = time.perf_counter()
        nets[name][1].step()  # the same gradients again: the optimiser alone
        return t_step, time.perf_counter() - t

    for name in nets:
        step(name)
    times = {name: [] for name in nets}
    for _ in range(args.reps):
        for name in nets:
            times[name].append(step(name))
    res = {name: {"step_ms": 1e3 * statistics.median(t[0] for t in v), "opt_step_ms": 1e3 * statistics.median(t[1] for t in v)}
           for name, v in times.items()}
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"optimizer_{args.preset}"
    out.with_suffix(".json").write_text(json.dumps({"preset": args.preset, "reps": args.reps, "micro_batch": micro,
                                                    "torch": torch.__version__, "results": res}, indent=1))
    lines = [f"# AdamW variants, {args.preset} preset\n\n`python benchmarks/optimizer.py --preset {args.preset} --reps {args.reps}`"
             f" (batch {batch}, passes of {micro}; medians of {args.reps} interleaved repetitions; torch {torch.__version__})\n",
             "| AdamW | training step (ms) | opt.step() alone (ms) |", "|---|---|---|"]
    lines += [f"| {name} | {r['step_ms']:.1f} | {r['opt_step_ms']:.2f} |" for name, r in res.items()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
