"""``gexbert-sc restore``: predict chosen genes, measured or not, from the genes each sample has."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import _io
from ._errors import EXIT_MODEL, errors_mean
from ._job import add_training_here, data_errors, finish, fit_kwargs, open_job, usage_error
from ._keys import default_key
from ._parser import add_input_output, add_model, add_runtime, interval, new_command, positive_int

#: The ``method`` values of :func:`gexbert_sc.tl.restore`.
METHODS = ("gexbert", "ridge")


def add_parser(sub) -> None:
    """Add ``restore`` to the subcommands."""
    p = new_command(sub, "restore", "predict chosen genes from the genes each sample measures",
                    "Restore (predict) --genes of every sample from its other genes (tl.restore): targets the "
                    "input has go to .layers['<key>'], the others to .obsm['<key>'] (a table, genes as columns). "
                    "Targets are never used as inputs. Intervals need --reference, samples that measure the "
                    "targets (held out from the model's training).")
    add_input_output(p, "restore")
    add_model(p, required=False, needed_for="method gexbert, unless a model is trained here on --reference")
    p.add_argument("--genes", default=None, metavar="A,B,C|@FILE",
                   help="genes to restore, separated by commas, or @FILE with one per line (default: every gene "
                        "of the model; for ridge every gene of --reference the input lacks)")
    p.add_argument("--method", choices=METHODS, default="gexbert", help="gexbert or ridge (default: gexbert)")
    p.add_argument("--reference", default=None, metavar="REF.h5ad",
                   help="samples with the input genes and the targets: calibrate the intervals, fit ridge, or "
                        "train a model here")
    p.add_argument("--layer", default=None, help="read this layer of the input and --reference (default: the model's)")
    p.add_argument("--interval", type=interval, default=0.9, metavar="COVERAGE",
                   help="coverage of the prediction intervals (with --reference), or none (default: 0.9)")
    p.add_argument("--n-input", type=positive_int, default=None, metavar="N",
                   help="gexbert: input genes per encoding (default: the model's n_input)")
    p.add_argument("--n-repeats", type=positive_int, default=None, metavar="N",
                   help="gexbert: input subsets averaged (default: enough to cover the genes, at most 4)")
    p.add_argument("--n-folds", type=positive_int, default=5, metavar="N",
                   help="ridge: folds of the cross-validated residuals (default: 5)")
    add_runtime(p, random_state_help="seeds the input subsets and the folds (default: 0)")
    add_training_here(p)
    p.set_defaults(run=run)


def _check_args(args: argparse.Namespace) -> None:
    """Refuse inconsistent options (exit 2)."""
    if args.method == "ridge" and args.model:
        usage_error("--model is used by --method gexbert only; ridge learns from --reference")
    if args.method == "ridge" and not args.reference:
        usage_error("--method ridge learns from --reference REF.h5ad, samples with both the input genes and the "
                    "genes to restore")
    if args.method == "gexbert" and not args.model and not args.reference:
        usage_error("--method gexbert needs --model DIR (a trained model) or --reference REF.h5ad (to train one on)")


def run(args: argparse.Namespace) -> int:
    """Restore the chosen genes and write them; see :func:`add_parser`.

    Parameters
    ----------
    args
        The parsed ``restore`` options.

    Returns
    -------
    int
        0 on success; user errors are raised, tagged with their exit code (see :func:`~gexbert_sc.cli.main`).
    """
    from gexbert_sc import tl

    _check_args(args)
    genes = _io.read_gene_list(args.genes, "--genes") if args.genes is not None else None
    kwargs = fit_kwargs(args) if args.method == "gexbert" and not args.model else None
    job = open_job(args, "restore", use_model=True)
    if job.model is not None and genes is not None:
        unknown = [g for g in genes if g not in set(job.model.genes)]
        if unknown:
            with errors_mean(EXIT_MODEL):
                raise KeyError(f"--genes: {len(unknown)} of {len(genes)} genes are not in the vocabulary of the model "
                               f"in {args.model}, e.g. {unknown[:5]}; 'gexbert-sc info {args.model}' lists its genes")
    reference = _io.read_input(Path(args.reference)) if args.reference else None
    key = args.key_added or default_key("restore", args.method)
    with data_errors():
        tl.restore(job.adata, model=job.model, genes=genes, method=args.method, reference=reference,
                   layer=args.layer, key_added=key, interval=args.interval if reference is not None else None,
                   n_input=args.n_input, n_repeats=args.n_repeats, fit_kwargs=kwargs, n_folds=args.n_folds,
                   random_state=args.random_state)
    res = job.adata.uns[key]
    n_layer, n_obsm = len(res["targets_in_layer"]), len(res["targets_in_obsm"])
    lines = [f"restored {n_layer + n_obsm} genes from {res['params']['n_input_genes']} input genes with {args.method}"]
    if args.interval is not None and reference is None:
        lines.append("no intervals: they are calibrated on --reference")
    return finish(job, args, lines, _present_keys(job.adata, key))


def _present_keys(adata, key: str) -> list[str]:
    """The ``.layers`` / ``.obsm`` / ``.uns`` keys that ``tl.restore`` wrote under ``key``."""
    found = [f".{slot}[{k!r}]" for slot in ("layers", "obsm") for k in getattr(adata, slot)
             if k == key or k in (f"{key}_sd", f"{key}_lower", f"{key}_upper")]
    return [*found, f".uns[{key!r}]"]
