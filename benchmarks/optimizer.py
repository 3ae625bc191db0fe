"""AdamW variants on the training step: the plain loop, ``foreach`` and ``fused`` (what ``gexbert_sc.train.make_optimizer`` picks where it can).

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

HERE = Path(__file__).parent
OUT = HERE / "results"
VARIANTS = {"plain": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> None:
    """Run the A/B of the optimisers and write the results."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    import sys

    sys.path.insert(0, str(HERE))
    from throughput import step_runner

    c = resolve_config(args.preset)
    steps = {name: step_runner(c, optimizer=lambda m, kw=kw: torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.01, **kw),
                               grad_clip=0.0)
             for name, kw in VARIANTS.items()}
    micro, batch = steps["plain"].micro, 32

    def step(name):
        t_step = steps[name]()
        t = time.perf_counter()
        steps[name].opt.step()  # the same gradients again: the optimiser alone
        return t_step, time.perf_counter() - t

    for name in steps:
        step(name)
    times = {name: [] for name in steps}
    for _ in range(args.reps):
        for name in steps:
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
