"""Ablation of GexBERT variants for issue 11, on the one imputation/restoration harness.

Each variant is a ``gexbert:<variant>`` method of ``benchmarks/imputation.py`` (its settings in that
module's ``GEXBERT_VARIANTS``), run side by side with mean, KNN, SoftImpute, MICE and ridge on the same
cohorts, masks, splits and metrics: restoration (a third of the genes hidden in 20% of the samples, and
64-gene panels) and imputation (MCAR and gene_block), RMSE in standardised units and as a ratio to the
mean's, 90% interval coverage, and the seconds of each method (GexBERT's include its training). The
default ``gexbert`` (the ``"cpu"`` preset) is always in the table.

    python benchmarks/quality.py --variants linear_only none --cohorts nki ovarian --seeds 0 1
    python benchmarks/quality.py --variants paper --cohorts ovarian --parts restoration --epochs 2 6

Writes ``benchmarks/results/quality_ablation.json`` and ``.md`` (``--out``) through the harness. Results of
the former stand-alone script (its own loaders and baselines, retired in session 7) stay in
``benchmarks/results/quality.md``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import imputation  # the harness, next to this file

IMPUTE_BASELINES = ("mean", "knn", "softimpute", "mice")
RESTORE_BASELINES = ("mean", "ridge", "softimpute", "knn")


def harness_argv(args: argparse.Namespace) -> list[str]:
    """The ``benchmarks/imputation.py`` command line of an ablation run."""
    labels = ["gexbert", *(f"gexbert:{v}" for v in args.variants)]
    argv = ["--cohorts", *args.cohorts, "--seeds", *map(str, args.seeds), "--parts", *args.parts,
            "--methods", *IMPUTE_BASELINES, *labels, "--restore-methods", *RESTORE_BASELINES, *labels,
            "--rates", *map(str, args.rates), "--block-rates", *map(str, args.block_rates),
            "--mechanisms", *args.mechanisms, "--out", str(args.out)]
    if args.epochs:
        argv += ["--epochs", *map(str, args.epochs)]
    return argv


def main(argv: Iterable[str] | None = None) -> None:
    """Run the ablation (see the module docstring and ``--help``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", choices=sorted(imputation.GEXBERT_VARIANTS), default=["linear_only", "none"])
    ap.add_argument("--cohorts", nargs="+", choices=imputation.COHORTS, default=["nki", "ovarian", "pooled", "tcga_skcm"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--parts", nargs="+", choices=("imputation", "restoration"), default=["restoration", "imputation"])
    ap.add_argument("--rates", nargs="+", type=float, default=[0.1, 0.3, 0.5], help="MCAR rates")
    ap.add_argument("--block-rates", nargs="+", type=float, default=[0.2], help="gene_block rates")
    ap.add_argument("--mechanisms", nargs="+", choices=("mcar", "gene_block", "low_value"), default=["mcar", "gene_block"])
    ap.add_argument("--epochs", nargs=2, type=int, default=None, metavar=("PHASE1", "PHASE2"),
                    help="override every GexBERT's epochs (e.g. the paper preset on CPU)")
    ap.add_argument("--out", type=Path, default=imputation.OUT / "quality_ablation")
    imputation.main(harness_argv(ap.parse_args(None if argv is None else list(argv))))


if __name__ == "__main__":
    main()
