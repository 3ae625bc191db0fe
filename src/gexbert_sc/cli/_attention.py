"""``gexbert-sc attention``: the attention each gene receives from the summary token, per group."""

from __future__ import annotations

import argparse

from ._job import data_errors, finish, open_job
from ._keys import default_key, written_keys
from ._parser import add_input_output, add_model, add_runtime, new_command, positive_int


def add_parser(sub) -> None:
    """Add ``attention`` to the subcommands."""
    p = new_command(sub, "attention", "attention score of each gene, overall and per group",
                    "Score each gene by the attention the summary token gives it in the encoder (tl.attention): "
                    "overall in .var['<key>'], per group in .varm['<key>'], the top genes per group in "
                    ".uns['<key>']. Train with --set linear_path=none for the paper's analysis.")
    add_input_output(p, "attention")
    add_model(p, required=True)
    p.add_argument("--groupby", default=None, metavar="COLUMN",
                   help=".obs column whose groups get their own scores (default: one group, all)")
    p.add_argument("--n-input", type=positive_int, default=None, metavar="N",
                   help="genes per input set (default: the model's n_input)")
    p.add_argument("--n-repeats", type=positive_int, default=None, metavar="N",
                   help="input sets per sample (default: enough to cover the genes, at most 4)")
    p.add_argument("--n-top", type=positive_int, default=100, metavar="N", help="genes listed per group (default: 100)")
    p.add_argument("--batch-size", type=positive_int, default=64, metavar="N",
                   help="samples per forward pass (default: 64)")
    add_runtime(p, random_state_help="seeds the input sets (default: 0)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compute the attention scores and write them; see :func:`add_parser`.

    Parameters
    ----------
    args
        The parsed ``attention`` options.

    Returns
    -------
    int
        0 on success; user errors are raised, tagged with their exit code (see :func:`~gexbert_sc.cli.main`).
    """
    from gexbert_sc import tl

    job = open_job(args, "attention", use_model=True, obs_keys={"groupby": args.groupby})
    key = args.key_added or default_key("attention")
    with data_errors():
        tl.attention(job.adata, model=job.model, groupby=args.groupby, n_input=args.n_input,
                     n_repeats=args.n_repeats, n_top=args.n_top, batch_size=args.batch_size,
                     random_state=args.random_state, progress=not args.quiet, key_added=key)
    top = job.adata.var[key].sort_values(ascending=False, na_position="last").head(5)
    lines = ["highest overall attention: " + ", ".join(f"{g} {s:.3g}" for g, s in top.items())]
    return finish(job, args, lines, written_keys("attention", key))
