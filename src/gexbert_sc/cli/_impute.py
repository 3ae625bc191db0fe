"""``gexbert-sc impute``: fill the missing (NaN) values, with calibrated prediction intervals."""

from __future__ import annotations

import argparse

from ._job import add_training_here, data_errors, finish, fit_kwargs, open_job, usage_error
from ._keys import default_key, written_keys
from ._parser import add_input_output, add_model, add_runtime, fraction, interval, new_command, positive_int

#: The ``method`` values of :func:`gexbert_sc.tl.impute`.
METHODS = ("gexbert", "zero", "mean", "knn", "softimpute", "mice")


def add_parser(sub) -> None:
    """Add ``impute`` to the subcommands."""
    p = new_command(sub, "impute", "fill the missing (NaN) values, with prediction intervals",
                    "Fill the NaN entries of .X (or --layer) with GexBERT or a classic imputer (tl.impute) and "
                    "write the completed matrix to .layers['<key>']; observed values are copied unchanged. "
                    "Without --model, method gexbert trains a model on the observed entries first.")
    add_input_output(p, "impute")
    add_model(p, required=False, needed_for="nothing: without it, method gexbert trains a model here")
    p.add_argument("--method", choices=METHODS, default="gexbert", help="imputer (default: gexbert)")
    p.add_argument("--layer", default=None, help="impute this layer instead of .X (default: the model's layer)")
    p.add_argument("--interval", type=interval, default=0.9, metavar="COVERAGE",
                   help="coverage of the conformal prediction intervals, or none (default: 0.9)")
    p.add_argument("--calibration-fraction", type=fraction, default=0.05, metavar="F",
                   help="fraction of the observed entries hidden to calibrate the intervals (default: 0.05)")
    p.add_argument("--groupby", default=None, metavar="KEY",
                   help="obs column of groups (cohorts, platforms) that may lack whole genes: values missing for a "
                        "whole group get intervals calibrated on whole (group, gene) blocks (default: the model's "
                        "batch key, or --batch-key)")
    p.add_argument("--n-repeats", type=positive_int, default=None, metavar="N",
                   help="gexbert: input subsets per sample (default: enough to cover the observed genes)")
    p.add_argument("--n-neighbors", type=positive_int, default=10, metavar="N", help="knn: neighbours (default: 10)")
    add_runtime(p, random_state_help="seeds the model, the calibration entries and the baselines (default: 0)")
    add_training_here(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Impute the input's missing values and write the result; see :func:`add_parser`.

    Parameters
    ----------
    args
        The parsed ``impute`` options.

    Returns
    -------
    int
        0 on success; user errors are raised, tagged with their exit code (see :func:`~gexbert_sc.cli.main`).
    """
    from gexbert_sc import tl

    if args.model and args.method != "gexbert":
        usage_error(f"--model is used by --method gexbert only, not by --method {args.method}; drop one of them")
    train_here = args.method == "gexbert" and not args.model
    kwargs = fit_kwargs(args) if train_here else None
    job = open_job(args, "impute", use_model=True, obs_keys={"groupby": args.groupby})
    key = args.key_added or default_key("impute", args.method)
    with data_errors():
        tl.impute(job.adata, model=job.model, method=args.method, layer=args.layer, key_added=key,
                  interval=args.interval, calibration_fraction=args.calibration_fraction, groupby=args.groupby,
                  fit_kwargs=kwargs,
                  n_repeats=args.n_repeats, n_neighbors=args.n_neighbors, random_state=args.random_state,
                  progress=not args.quiet)
    res = job.adata.uns[key]
    lines = [f"filled {res['n_filled']} of {res['n_missing']} missing values with {args.method}"]
    if "calibration" in res:
        lines.append(f"{args.interval:.0%} intervals: half-width {res['calibration']['q']:.3g} x each gene's residual "
                     f"scale ({res['calibration']['n_calibration']} calibration entries)")
        if "block_q" in res["calibration"]:
            lines.append(f"{res['calibration']['n_block_missing']} values missing for their whole group: half-width "
                         f"{res['calibration']['block_q'] * res['calibration']['block_rms']:.3g} (calibrated on "
                         f"{res['calibration']['n_block_calibration']} entries of hidden (group, gene) blocks)")
    keys = written_keys("impute", key)
    return finish(job, args, lines, keys if args.interval is not None else [keys[0], keys[-1]])
