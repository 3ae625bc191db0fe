"""``gexbert-sc embed``: the sample embeddings of a saved model (and optionally their UMAP)."""

from __future__ import annotations

import argparse

import gexbert_sc

from ._job import data_errors, finish, open_job
from ._keys import default_key, written_keys
from ._parser import add_input_output, add_model, add_runtime, new_command, positive_int


def add_parser(sub) -> None:
    """Add ``embed`` to the subcommands."""
    p = new_command(sub, "embed", "embed the samples of an .h5ad with a saved model",
                    "Write the summary embedding of every sample, as 'gexbert-sc fit' does for its training data: "
                    ".obsm['X_<key>'] and .uns['<key>'] (the model's settings, history and metrics), and with "
                    "--umap its UMAP. Genes are matched by name; genes the model lacks are left out.")
    add_input_output(p, "embed")
    add_model(p, required=True)
    p.add_argument("--n-input", type=positive_int, default=None, metavar="N",
                   help="genes per encoding (default: the model's n_input)")
    p.add_argument("--n-repeats", type=positive_int, default=None, metavar="N",
                   help="random gene subsets averaged per sample (default: enough to cover the genes, at most 4)")
    p.add_argument("--batch-size", type=positive_int, default=128, metavar="N", help="samples per forward pass")
    p.add_argument("--umap", action="store_true", help="also compute the UMAP of the embeddings (tl.umap)")
    add_runtime(p, random_state=None,
                random_state_help="seed of the gene subsets (default: the model's, as 'fit' embeds)")
    p.set_defaults(run=run)


def history_arrays(history: list[dict]) -> dict:
    """Per-epoch records as one array per column (h5ad-writable), as ``tl.fit`` stores them."""
    import numpy as np

    if not history:
        return {}
    return {k: np.asarray([float(h[k]) for h in history]) for k in history[0]}


def run(args: argparse.Namespace) -> int:
    """Embed the input's samples with the model and write them; see :func:`add_parser`.

    Parameters
    ----------
    args
        The parsed ``embed`` options.

    Returns
    -------
    int
        0 on success; user errors are raised, tagged with their exit code (see :func:`~gexbert_sc.cli.main`).
    """
    from gexbert_sc import tl

    job = open_job(args, "embed", use_model=True)
    model, adata = job.model, job.adata
    key = args.key_added or default_key("embed")
    seed = model.random_state if args.random_state is None else args.random_state
    with data_errors():
        emb = model.embed(adata, n_input=args.n_input, n_repeats=args.n_repeats, batch_size=args.batch_size,
                          random_state=seed)
    adata.obsm[f"X_{key}"] = emb
    adata.uns[key] = {
        "params": {**model.config.to_dict(), "layer": model.layer or "X", "batch_key": model.batch_key or "",
                   "random_state": int(seed), "device": str(model.device), "model": str(args.model)},
        "version": gexbert_sc.__version__,
        "history": history_arrays(model.history),
        "metrics": {k: float(v) for k, v in model.metrics.items()},
    }
    keys = written_keys("embed", key)[:2]
    if args.umap:
        with data_errors():
            tl.umap(adata, use_rep=f"X_{key}", key_added=f"X_{key}_umap", neighbors_key=f"{key}_neighbors",
                    random_state=seed)
        keys = written_keys("embed", key)
    lines = [f"embedded {adata.n_obs} samples ({model.align(adata).n_known} of the model's {len(model.genes)} genes "
             f"present) into {emb.shape[1]} dimensions"]
    return finish(job, args, lines, keys)
