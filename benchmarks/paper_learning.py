"""Does the ``"paper"`` preset leave the mean? Learning curves over learning rates and warm-ups (issue 11).

The paper's network (hard value bins, no summary readout, no linear path) is trained on a benchmark cohort
(``load_cohort`` of the imputation harness: z-scores, at most 2,000 genes) with the model's own validation
split, once per learning rate, warm-up, scaffold (``scaffold_epochs``: a temporary summary readout that fades
out, so the trained network is the paper's) and seed, on the same data and split. Every epoch records the
validation MSE restoring genes that were not in the input (``val_other``) and that of predicting the
training mean (``val_mean``). A run *leaves the mean* at the first epoch where ``val_other`` falls below
0.97 of ``val_mean``.

``--set`` overrides any other setting of the preset; on a CPU a smaller proxy of the paper's network
(``--set n_input=64 n_target=64``, or fewer layers) is what fits in minutes, and the table says which
settings ran. The full preset is for a GPU (issue 16)::

    python benchmarks/paper_learning.py --cohorts nki --lrs 2e-3 --scaffolds 0 10 --seeds 0 1 --epochs 2 78 \
        --set n_input=64 n_target=64 n_layers=2 d_model=64 n_heads=4 d_ff=128
    python benchmarks/paper_learning.py --device cuda --cohorts nki ovarian --lrs 1e-4 5e-4 --scaffolds 0 10 \
        --epochs 10 200

Writes ``benchmarks/results/<out>.json`` and ``.md`` (``--out``, default ``paper_learning``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from imputation import OUT, load_cohort  # the harness's cohorts

import gexbert_sc as gb

#: ``val_other`` below this fraction of ``val_mean`` counts as having left the mean.
LEFT_MEAN = 0.97


def parse_sets(items: list[str]) -> dict:
    """``["n_input=64", "d_model=64"]`` -> ``{"n_input": 64, "d_model": 64}`` (ints, floats, or strings)."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set takes key=value, got {item!r}")
        for cast in (int, float):
            try:
                out[key] = cast(raw)
                break
            except ValueError:
                continue
        else:
            out[key] = raw
    return out


class _Echo(list):
    """The model's history list, printing each epoch's record as it arrives."""

    def __init__(self, tag: str):
        super().__init__()
        self.tag, self.t0 = tag, time.perf_counter()

    def append(self, rec: dict) -> None:
        super().append(rec)
        print(self.tag, f"{time.perf_counter() - self.t0:.0f}s phase {rec['phase']} epoch {rec['epoch']}: "
              f"val_other {rec['val_other']:.4f} (mean {rec['val_mean']:.4f}), lr {rec['lr']:.2g}", flush=True)


def run_one(cohort: str, lr: float, warmup: int, scaffold: int, seed: int, epochs: tuple[int, int], sets: dict,
            device: str) -> dict:
    """Train the paper preset once and summarise its learning curve."""
    a = load_cohort(cohort)
    model = gb.GexBERT(a, config="paper", random_state=seed, lr=lr, warmup_steps=warmup, scaffold_epochs=scaffold,
                       phase1_epochs=epochs[0], phase2_epochs=epochs[1], **sets)
    tag = f"[{cohort} lr {lr:g} warm-up {warmup} scaffold {scaffold} seed {seed}]"
    model.history = _Echo(tag)
    t = time.perf_counter()
    model.train(progress=False, device=device)
    seconds = time.perf_counter() - t
    keys = ("phase", "epoch", "train_loss", "lr", "val_same", "val_other", "val_mean")
    curve = [{**{k: rec[k] for k in keys}, "scaffold": rec.get("scaffold", 0.0)} for rec in model.history]
    steps_per_epoch = max(model.config.min_steps_per_epoch, -(-len(model.training_rows) // model.config.batch_size))
    return {"cohort": cohort, "lr": lr, "warmup_steps": warmup, "scaffold_epochs": scaffold, "seed": seed,
            "steps_per_epoch": steps_per_epoch, "seconds": seconds, "settings": sets, "curve": curve}


def summarise(row: dict) -> dict:
    """Epochs run, the first epoch below :data:`LEFT_MEAN` of the mean, and the best and final ratios.

    Best and final count epochs without the scaffold only (the network as configured; what early stopping keeps).
    """
    curve = row["curve"]
    ratio = [r["val_other"] / r["val_mean"] for r in curve]
    weight = [r.get("scaffold", gb.train.scaffold_factor(r["epoch"], row["scaffold_epochs"])) for r in curve]
    plain = [q for w, q in zip(weight, ratio, strict=True) if not w]
    left = next((r["epoch"] for r, q in zip(curve, ratio, strict=True) if q < LEFT_MEAN), None)
    alone = next((r["epoch"] for r, w, q in zip(curve, weight, ratio, strict=True) if not w and q < LEFT_MEAN), None)
    return {"epochs": len(curve), "left_mean_epoch": left, "left_alone_epoch": alone,
            "best_ratio": min(plain) if plain else math.nan, "final_ratio": ratio[-1]}


def render(rows: list[dict], command: str, threads: str, device: str = "cpu") -> str:
    """The Markdown report."""
    lines = ["# Does the paper preset leave the mean?", "",
             f"`{command}` (device: {device}; threads: {threads}; see the script's docstring).", "",
             "The `\"paper\"` preset (bins, no summary readout, no linear path) with the settings shown; validation "
             "MSE restoring genes not in the input, as a ratio to predicting the training mean (lower is better). "
             f"*Left the mean*: the first epoch below {LEFT_MEAN} of the mean (steps = epoch x steps per epoch); "
             "`-`: never. *Alone*: the same, counting only epochs without the scaffold. *Best* and *final*: epochs without the scaffold only (the network as configured, what "
             "early stopping keeps); with `scaffold_epochs` S the scaffold is gone from epoch 4S on.", "",
             "| cohort | settings | lr | warm-up | scaffold | seed | epochs x steps | left the mean (epoch) | alone | best | final | s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        r = {**r, **summarise(r)}
        sets = " ".join(f"{k}={v}" for k, v in r["settings"].items()) or "preset"
        left, alone = ("-" if r[k] is None else str(r[k]) for k in ("left_mean_epoch", "left_alone_epoch"))
        lines.append(f"| {r['cohort']} | {sets} | {r['lr']:g} | {r['warmup_steps']} | {r['scaffold_epochs']} | {r['seed']} | "
                     f"{r['epochs']} x {r['steps_per_epoch']} | {left} | {alone} | {r['best_ratio']:.3f} | "
                     f"{r['final_ratio']:.3f} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the grid (see the module docstring and ``--help``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohorts", nargs="+", default=["nki"])
    ap.add_argument("--lrs", nargs="+", type=float, default=[1e-4, 2e-3])
    ap.add_argument("--warmups", nargs="+", type=int, default=[50])
    ap.add_argument("--scaffolds", nargs="+", type=int, default=[0, 10], help="scaffold_epochs values")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--epochs", nargs=2, type=int, default=[2, 78], metavar=("PHASE1", "PHASE2"))
    ap.add_argument("--set", nargs="*", default=[], dest="sets", help="other settings, key=value")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="paper_learning")
    ap.add_argument("--render", type=Path, help="only write the Markdown of an earlier run's JSON")
    args = ap.parse_args()
    if args.render:
        saved = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(render(saved["rows"], saved["command"], saved["threads"],
                                                         saved.get("device", "cpu")))
        return
    sets = parse_sets(args.sets)
    command = "python benchmarks/paper_learning.py " + " ".join(sys.argv[1:])
    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    out = OUT / args.out
    rows = []
    for cohort in args.cohorts:
        for lr in args.lrs:
            for warmup in args.warmups:
                for scaffold in args.scaffolds:
                    for seed in args.seeds:
                        rows.append(run_one(cohort, lr, warmup, scaffold, seed, tuple(args.epochs), sets, args.device))
                        # after every run, so that a run cut short leaves what it measured
                        out.with_suffix(".json").write_text(json.dumps(
                            {"command": command, "threads": threads, "device": device, "torch": torch.__version__,
                             "rows": rows}, indent=1))
                        out.with_suffix(".md").write_text(render(rows, command, threads, device))
    print(render(rows, command, threads, device))

if __name__ == "__main__":
    main()
