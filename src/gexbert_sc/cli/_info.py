"""``gexbert-sc info``: describe a saved model (settings, genes, training, keys written) or an .h5ad's gexbert keys."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from . import _io
from ._errors import EXIT_INPUT_FILE, EXIT_MODEL, errors_mean
from ._keys import TEMPLATES, default_key, written_keys
from ._parser import new_command, positive_int

#: Name endings of the keys the commands write, besides those holding "gexbert" (baselines' defaults).
_OTHER_ENDINGS = ("_imputed", "_restored")
_BAND_SUFFIXES = ("", "_sd", "_lower", "_upper")


def add_parser(sub) -> None:
    """Add ``info`` to the subcommands."""
    p = new_command(sub, "info", "describe a saved model, or the gexbert keys of an .h5ad",
                    "With a model folder: its settings, genes, training history (epochs per phase, best "
                    "validation loss) and the AnnData keys each command writes. With an .h5ad file: the keys "
                    "of gexbert_sc it holds and the command that writes each.")
    p.add_argument("path", help="a model folder (written by 'gexbert-sc fit') or an .h5ad file")
    p.add_argument("--n-genes", type=positive_int, default=10, metavar="N", help="genes to list (default: 10)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the description of ``args.path``.

    Parameters
    ----------
    args
        The parsed ``info`` options.

    Returns
    -------
    int
        0 on success; user errors are raised, tagged with their exit code (see :func:`~gexbert_sc.cli.main`).
    """
    path = Path(args.path)
    if path.is_dir():
        print("\n".join(describe_model(path, args.n_genes)))
        return 0
    with errors_mean(EXIT_INPUT_FILE):
        adata = _io.read_h5ad(path, backed=True)  # only .obs, .var and the keys' names are read
    try:
        print("\n".join(describe_h5ad(adata, path)))
    finally:
        adata.file.close()
    return 0


# ---------------------------------------------------------------- a model
def describe_model(path: Path, n_genes: int) -> list[str]:
    """Lines describing the model saved in ``path``: its data, training, settings and the keys written."""
    from gexbert_sc.model import GexBERT

    with errors_mean(EXIT_MODEL):
        model = GexBERT.load(path, device="cpu")
    genes = model.genes.tolist()
    shown = ", ".join(genes[:n_genes]) + (", ..." if len(genes) > n_genes else "")
    lines = [f"model: {path}",
             f"genes: {len(genes)} ({shown})",
             f"reads: {'.X' if model.layer is None else f'.layers[{model.layer!r}]'}; batch_key: {model.batch_key}; "
             f"random_state: {model.random_state}",
             *_training_lines(model.history, model.metrics),
             "config:",
             *(f"  {k} = {v!r}" for k, v in model.config.to_dict().items()),
             "keys the commands write (defaults; --key-added changes the prefix):"]
    for command in TEMPLATES:
        lines.append(f"  {command}:")
        lines += [f"    {k}" for k in written_keys(command)]
    return lines


def _training_lines(history: list[dict], metrics: dict) -> list[str]:
    """Whether the model is trained, its epochs per phase and its best and final validation losses."""
    if not history:
        return ["trained: no (no training history; train it with 'gexbert-sc fit')"]
    per_phase = {p: [h for h in history if int(h["phase"]) == p] for p in (1, 2)}
    lines = [f"trained: yes, {len(history)} epochs (phase 1: {len(per_phase[1])}, phase 2: {len(per_phase[2])}), "
             f"{sum(float(h.get('seconds', 0.0)) for h in history):.0f} s"]
    for phase, loss, what in ((1, "val_same", "restore the input genes"), (2, "val_other", "restore other genes")):
        scored = [h for h in per_phase[phase] if not math.isnan(float(h.get(loss, math.nan)))]
        if scored:
            best = min(scored, key=lambda h: float(h[loss]))
            lines.append(f"best validation MSE, phase {phase} ({what}): {float(best[loss]):.4f} "
                         f"(epoch {int(best['epoch']) + 1})")
    if metrics:
        lines.append("final validation MSE: " + ", ".join(f"{k} {float(v):.4f}" for k, v in metrics.items())
                     + " (val_mean: predicting the training mean)")
    return lines


# ---------------------------------------------------------------- an .h5ad
def describe_h5ad(adata, path: Path) -> list[str]:
    """Lines listing the keys of ``adata`` that gexbert_sc commands write, with their shapes and writers."""
    owners = _default_owners()
    lines = [f"{path}: {adata.n_obs} samples x {adata.n_vars} genes"]
    found = []
    for slot in ("obs", "var", "obsm", "varm", "layers", "obsp", "uns"):
        container = getattr(adata, slot)
        names = container.columns if slot in ("obs", "var") else container.keys()
        for name in names:
            name = str(name)
            if "gexbert" in name or any(name.endswith(e + s) for e in _OTHER_ENDINGS for s in _BAND_SUFFIXES):
                owner = owners.get((slot, name), _guess_owner(name))
                found.append(f"  .{slot}[{name!r}]{_shape(container[name])}  ({owner})")
    lines += ["gexbert keys:", *found] if found else ["no gexbert keys (run embed, impute, ... on it)"]
    return lines


def _default_owners() -> dict[tuple[str, str], str]:
    """``(slot, name) -> command`` for every key the commands write with their default ``key_added``."""
    owners = {}
    for command, templates in TEMPLATES.items():
        for slot, name, _ in templates:
            for s in slot.split("/"):
                owners[(s, name.format(key=default_key(command)))] = command
    owners[("obsm", "X_gexbert")] = owners[("uns", "gexbert")] = "fit or embed"
    return owners


def _guess_owner(name: str) -> str:
    """The command whose keys end like ``name`` (for keys of a non-default method or ``--key-added``)."""
    for ending, command in (("_imputed", "impute"), ("_restored", "restore"), ("_survival", "survival"),
                            ("_classify", "classify"), ("_attention", "attention")):
        if ending in name:
            return command
    return "gexbert_sc"


def _shape(value) -> str:
    """`` (shape)`` of an array or table, or ``""``."""
    shape = getattr(value, "shape", None)
    return f" {tuple(shape)}" if shape is not None else ""
