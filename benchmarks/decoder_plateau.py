"""Why the paper's network stalls at the mean, at module level: the decoder alone, initialisations, scaffolds (issue 11).

One run trains a :class:`~gexbert_sc.module.GexBERTModule` of the paper's design (hard value bins, no summary
readout, no linear path) on a benchmark cohort (``load_cohort`` of the imputation harness; genes with a
missing value dropped) with a plain loop: AdamW (weight decay 0.01), a linear warm-up, then a constant
learning rate; ``--bs`` samples a step, each with ``--n`` random input genes and ``--n`` other genes to
restore. Every 25 steps it records the validation MSE of 20% held-out samples (fixed genes) as a ratio to
predicting the training mean. Options isolate the parts:

- ``--oracle K``: the decoder alone, its summary fixed to the sample's first K principal-component scores
  (from all genes, unit variance): does the decoder itself have a plateau?
- ``--gene-sd`` / ``--mask-sd`` / ``--level-sd``: the embeddings' scales at initialisation.
- ``--scaffold S``: the summary readout as a scaffold, at full weight for S steps, then frozen and fading
  linearly to nothing at step 4S (the package's ``scaffold_epochs``, counted in steps here).
- ``--aux S``: for S steps the encoder learns through the readout while the decoder learns from the detached
  summary (then the decoder alone).

*Left*: the first step below 0.97 of the mean once no scaffold or auxiliary loss is left. Prints the ratio
every 250 steps and a JSON record at the end; ``--out FILE`` also appends the record (with the curve) to
that JSON list. Example (the paper's size with 64 genes, about 20 minutes at one thread)::

    python benchmarks/decoder_plateau.py --d 200 --layers 8 --heads 8 --lr 5e-4 --steps 1250 \
        --gene-sd 1 --scaffold 150 --tag "gene1 scaffold150"
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from imputation import load_cohort  # the harness's cohorts

from gexbert_sc.module import GexBERTModule, masked_mse
from gexbert_sc.train import scaffold_factor


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cohort", default="nki")
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--n", type=int, default=64, help="input genes, and genes restored, per sample")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--bs", type=int, default=32)
    p.add_argument("--gene-sd", type=float, default=0.02)
    p.add_argument("--mask-sd", type=float, default=1.0)
    p.add_argument("--level-sd", type=float, default=1.0)
    p.add_argument("--enc", default="binned")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--same", action="store_true", help="phase-1 style: restore the input genes")
    p.add_argument("--tag", default="")
    p.add_argument("--aux", type=int, default=0,
                   help="steps with the readout's loss for the encoder and the decoder on the detached summary")
    p.add_argument("--scaffold", type=int, default=0, help="steps at full weight; fades to 0 at 4x")
    p.add_argument("--oracle", type=int, default=0, help="decoder only: summary = this many PC scores")
    p.add_argument("--oracle-scale", type=float, default=1.0)
    p.add_argument("--out", type=Path, help="JSON list to append the record to")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Train once and return the record (see the module docstring)."""
    a = parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    X = np.asarray(load_cohort(a.cohort).X, dtype=np.float32)
    X = X[:, ~np.isnan(X).any(0)]
    n, G = X.shape
    perm = rng.permutation(n)
    va, tr = perm[: n // 5], perm[n // 5 :]
    mu = X[tr].mean(0)
    m = GexBERTModule(G, d_model=a.d, n_layers=a.layers, n_heads=a.heads, d_ff=4 * a.d, value_encoding=a.enc,
                      summary_readout=False, scaffold_epochs=1 if (a.scaffold or a.aux) else 0)
    with torch.no_grad():
        torch.nn.init.normal_(m.tokens.gene.weight, std=a.gene_sd)
        torch.nn.init.normal_(m.tokens.mask, std=a.mask_sd)
        torch.nn.init.normal_(m.tokens.level.weight, std=a.level_sd)
    opt = torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / a.warmup))
    Xt = torch.from_numpy(X)
    oracle = None
    if a.oracle:
        _, _, vt = np.linalg.svd(X[tr] - mu, full_matrices=False)
        pcs = (X - mu) @ vt[: a.oracle].T
        pcs = pcs / pcs[tr].std(0)
        oracle = torch.zeros(n, a.d)
        oracle[:, : a.oracle] = torch.from_numpy(pcs.astype(np.float32)) * a.oracle_scale

    def fwd(rows, ii, xi, tt):
        return m.decode(oracle[torch.as_tensor(rows)], tt) if a.oracle else m(ii, xi, tt)

    def draw(rows, g):
        idx = torch.stack([torch.randperm(G, generator=g)[: 2 * a.n] for _ in rows])
        ii, tt = idx[:, : a.n], (idx[:, : a.n] if a.same else idx[:, a.n :])
        r = torch.as_tensor(rows)[:, None]
        return ii, Xt[r, ii], tt, Xt[r, tt]

    val = draw(va, torch.Generator().manual_seed(123))
    base = float(((val[3] - torch.from_numpy(mu)[val[2]]) ** 2).mean())
    g = torch.Generator().manual_seed(a.seed)
    t0, left, curve = time.time(), None, []
    for step in range(1, a.steps + 1):
        rows = tr[rng.integers(0, len(tr), a.bs)]
        ii, xi, tt, xt = draw(rows, g)
        if a.scaffold:  # the package's fade, counted in steps here
            m.set_readout_scale(scaffold_factor(step, a.scaffold))
        m.train()
        if a.aux and step <= a.aux:
            m.set_readout_scale(0.0)
            summary = m.encode(ii, xi)
            readout = torch.einsum("bd,bmd->bm", summary, m.readout(tt))
            loss = masked_mse(readout, xt) + masked_mse(m.decode(summary.detach(), tt), xt)
        else:
            if a.aux:
                m.set_readout_scale(0.0)
            loss = masked_mse(fwd(rows, ii, xi, tt), xt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0:
            m.eval()
            with torch.no_grad():
                ratio = float(masked_mse(fwd(va, *val[:3]), val[3])) / base
            curve.append(ratio)
            if left is None and ratio < 0.97 and (not a.scaffold or step >= 4 * a.scaffold) and step > a.aux:
                left = step
            if step % 250 == 0:
                print(f"{a.tag} step {step} ratio {ratio:.3f} min {min(curve):.3f} ({time.time() - t0:.0f}s)",
                      flush=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
    record = {"tag": a.tag, "args": settings, "left": left, "best": min(curve), "final": curve[-1],
              "s": round(time.time() - t0), "curve_every_25_steps": curve}
    print(json.dumps({k: v for k, v in record.items() if k != "curve_every_25_steps"}), flush=True)
    if a.out:
        rows = json.loads(a.out.read_text()) if a.out.exists() else []
        a.out.write_text(json.dumps([*rows, record], indent=1))
    return record


if __name__ == "__main__":
    main()
