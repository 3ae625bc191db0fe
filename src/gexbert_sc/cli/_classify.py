"""``gexbert-sc classify``: classify samples (e.g. by cancer type) from a few input genes."""

from __future__ import annotations

import argparse

from . import _io
from ._job import data_errors, finish, open_job, usage_error
from ._keys import default_key, written_keys
from ._parser import add_input_output, add_model, add_runtime, new_command, positive_float, positive_int

#: The ``method`` values of :func:`gexbert_sc.tl.classify`, and those that need a model.
METHODS = ("probe", "finetune", "pca", "mlp")
NEEDS_MODEL = ("probe", "finetune")


def add_parser(sub) -> None:
    """Add ``classify`` to the subcommands."""
    p = new_command(sub, "classify", "classify samples from a few input genes",
                    "Predict the classes in .obs[--groupby] from a few input genes (tl.classify), by "
                    "cross-validation or a train/test --split-key; predictions go to .obs['<key>_pred'], "
                    "probabilities to .obsm['<key>_proba'], metrics to .uns['<key>'].")
    add_input_output(p, "classify")
    add_model(p, required=False, needed_for="--method probe and finetune")
    p.add_argument("--groupby", default="cancer_type", metavar="COLUMN",
                   help=".obs column with the classes (default: cancer_type)")
    p.add_argument("--method", choices=METHODS, default="probe",
                   help="probe (logistic regression on the embedding), finetune (the encoder and a head), or the "
                        "baselines pca and mlp (default: probe)")
    p.add_argument("--input-genes", default="64", metavar="N|A,B,C|@FILE",
                   help="number of random input genes, or their names (default: 64)")
    p.add_argument("--split-key", default=None, metavar="COLUMN",
                   help=".obs column with train/test; default: stratified cross-validation")
    p.add_argument("--n-folds", type=positive_int, default=5, metavar="N", help="cross-validation folds (default: 5)")
    p.add_argument("--n-pcs", type=positive_int, default=200, metavar="N", help="pca: components (default: 200)")
    p.add_argument("--epochs", type=positive_int, default=10, metavar="N", help="finetune: epochs (default: 10)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="finetune: learning rate (default: 0.001)")
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="N", help="finetune: batch size "
                   "(default: 32)")
    p.add_argument("--layer", default=None, help="read this layer (a model reads its own)")
    add_runtime(p, random_state_help="seeds the input genes, the folds and the classifiers (default: 0)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Classify the samples and write the predictions; see :func:`add_parser`.

    Parameters
    ----------
    args
        The parsed ``classify`` options.

    Returns
    -------
    int
        0 on success; user errors are raised, tagged with their exit code (see :func:`~gexbert_sc.cli.main`).
    """
    from gexbert_sc import tl

    if args.method in NEEDS_MODEL and not args.model:
        usage_error(f"--method {args.method} needs --model DIR (a trained model); pca and mlp need none")
    input_genes = _io.int_or_genes(args.input_genes, "--input-genes")
    job = open_job(args, "classify", use_model=True, obs_keys={"groupby": args.groupby, "split_key": args.split_key})
    key = args.key_added or default_key("classify")
    with data_errors():
        tl.classify(job.adata, model=job.model, groupby=args.groupby, method=args.method, input_genes=input_genes,
                    split_key=args.split_key, n_folds=args.n_folds, random_state=args.random_state,
                    n_pcs=args.n_pcs, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, layer=args.layer,
                    progress=not args.quiet, key_added=key)
    res = job.adata.uns[key]
    lines = [f"{args.method}: accuracy {res['accuracy']:.3f}, balanced accuracy {res['balanced_accuracy']:.3f}, "
             f"macro F1 {res['macro_f1']:.3f} on {res['n_predicted']} predicted samples, {len(res['classes'])} classes"]
    return finish(job, args, lines, written_keys("classify", key))
