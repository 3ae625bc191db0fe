"""``gexbert-sc survival``: cross-validated Cox survival prediction per group from a few input genes."""

from __future__ import annotations

import argparse

from . import _io
from ._job import data_errors, finish, open_job, usage_error
from ._keys import default_key, written_keys
from ._parser import add_input_output, add_model, add_runtime, alpha, new_command, positive_int

#: The ``features`` values of :func:`gexbert_sc.tl.survival`, and those that need a model.
FEATURES = ("original", "restored", "both", "embedding", "pca")
NEEDS_MODEL = ("restored", "both", "embedding")


def add_parser(sub) -> None:
    """Add ``survival`` to the subcommands."""
    p = new_command(sub, "survival", "cross-validated survival prediction (ridge Cox) per group",
                    "Score how well features built from a few input genes predict survival (tl.survival): per "
                    "group and repeat, a ridge Cox model is cross-validated and its Harrell's C-index written to "
                    ".uns['<key>'], the out-of-fold risk to .obs['<key>_risk'].")
    add_input_output(p, "survival")
    add_model(p, required=False, needed_for="--features restored, both and embedding")
    p.add_argument("--features", choices=FEATURES, default="both",
                   help="original (the input genes), restored (anchors restored by the model), both, embedding, or "
                        "pca (a baseline without a model) (default: both)")
    p.add_argument("--time-key", default="os_time", metavar="COLUMN", help=".obs column of survival times "
                   "(default: os_time)")
    p.add_argument("--event-key", default="os_event", metavar="COLUMN", help=".obs column, 1/True for an event "
                   "(default: os_event)")
    p.add_argument("--groupby", default=None, metavar="COLUMN", help=".obs column of groups scored apart "
                   "(default: all samples as one group)")
    p.add_argument("--input-genes", default="64", metavar="N|A,B,C|@FILE",
                   help="number of random input genes, or their names (default: 64)")
    p.add_argument("--n-anchors", type=positive_int, default=512, metavar="N",
                   help="anchors restored per training fold (default: 512)")
    p.add_argument("--repeats", type=positive_int, default=3, metavar="N", help="repeats (default: 3)")
    p.add_argument("--n-folds", type=positive_int, default=5, metavar="N", help="cross-validation folds (default: 5)")
    p.add_argument("--alpha", type=alpha, default=None, metavar="cv|A|A,B,..",
                   help="Cox penalty: cv (chosen per fold), a number, or a grid (default: cv)")
    p.add_argument("--min-events", type=positive_int, default=10, metavar="N",
                   help="skip groups with fewer events (default: 10)")
    p.add_argument("--n-pcs", type=positive_int, default=200, metavar="N", help="pca: components (default: 200)")
    p.add_argument("--layer", default=None, help="read this layer (a model reads its own)")
    p.add_argument("--time-unit", default=None, help="unit of the times, e.g. days (for plot labels)")
    add_runtime(p, random_state_help="seeds the input genes, the folds and the model's subsets (default: 0)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the survival evaluation and write its results; see :func:`add_parser`.

    Parameters
    ----------
    args
        The parsed ``survival`` options.

    Returns
    -------
    int
        0 on success; user errors are raised, tagged with their exit code (see :func:`~gexbert_sc.cli.main`).
    """
    from gexbert_sc import tl

    if args.features in NEEDS_MODEL and not args.model:
        usage_error(f"--features {args.features} needs --model DIR (a trained model); original and pca need none")
    if args.min_events < args.n_folds:
        usage_error(f"--min-events ({args.min_events}) must be >= --n-folds ({args.n_folds}) so that every held-out "
                    "fold can hold an event")
    input_genes = _io.int_or_genes(args.input_genes, "--input-genes")
    job = open_job(args, "survival", use_model=True,
                   obs_keys={"time_key": args.time_key, "event_key": args.event_key, "groupby": args.groupby})
    key = args.key_added or default_key("survival")
    with data_errors():
        tl.survival(job.adata, model=job.model, features=args.features, input_genes=input_genes,
                    groupby=args.groupby, time_key=args.time_key, event_key=args.event_key, repeats=args.repeats,
                    random_state=args.random_state, alpha=args.alpha, n_anchors=args.n_anchors,
                    n_folds=args.n_folds, min_events=args.min_events, n_pcs=args.n_pcs, layer=args.layer,
                    time_unit=args.time_unit, progress=not args.quiet, key_added=key)
    res = job.adata.uns[key]
    c = res["c_index"]
    lines = [f"C-index ({args.features}): {res['mean']:.3f} +/- {res['sd']:.3f} over {c.shape[1]} repeat(s)"]
    lines += [f"  {g}: {row.mean():.3f}" for g, row in c.iterrows()]
    return finish(job, args, lines, written_keys("survival", key))
