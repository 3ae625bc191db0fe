"""Reading the input .h5ad and the model, checking that they fit, and writing the output .h5ad atomically."""

from __future__ import annotations

import tempfile
from pathlib import Path

from gexbert_sc._files import atomic_file

from ._errors import EXIT_INPUT_DATA, EXIT_INPUT_FILE, EXIT_MODEL, EXIT_USAGE, errors_mean, one_line


# ---------------------------------------------------------------- input
def check_input_file(path: Path) -> None:
    """Raise ``FileNotFoundError`` unless ``path`` is a file (cheap: before any output is prepared)."""
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}" if not path.exists() else f"{path} is not a file")


def read_h5ad(path: Path, *, backed: bool = False):
    """Read the input .h5ad (``backed``: only open it), or raise ``OSError`` saying why it cannot be read.

    Raises
    ------
    FileNotFoundError
        There is no file at ``path``.
    OSError
        The file is not a readable .h5ad.
    """
    import anndata as ad

    if not path.exists():
        raise FileNotFoundError(f"no file at {path}")
    if not path.is_file():
        raise OSError(f"{path} is not a file; give the path of an .h5ad file")
    try:
        adata = ad.read_h5ad(path, backed="r" if backed else None)
        if backed:
            _ = adata.X  # backed reading is lazy: open the matrix now, so a damaged file fails here
    except Exception as e:  # h5py and anndata raise many types here: all mean "not a readable .h5ad"
        reason = one_line(e)
        raise OSError(f"cannot read {path} as an .h5ad file ({type(e).__name__}: {reason[:200]})") from e
    return adata


def read_input(path: Path):
    """The input AnnData, in memory; a missing or unreadable file exits with 3."""
    with errors_mean(EXIT_INPUT_FILE):
        return read_h5ad(path)


def check_obs_keys(adata, path: Path, **keys: str | None) -> None:
    """Exit with 4 unless each named option's value is a column of ``adata.obs``.

    Parameters
    ----------
    adata
        The input.
    path
        Its file, for the message.
    **keys
        ``option=column``, e.g. ``groupby="cancer_type"``; None is skipped.
    """
    import difflib

    columns = [str(c) for c in adata.obs.columns]
    for option, key in keys.items():
        if key is None or key in adata.obs.columns:
            continue
        close = difflib.get_close_matches(key, columns, n=3)
        hint = f"; did you mean {close[0]!r}?" if close else f"; its columns are {columns[:20]}"
        with errors_mean(EXIT_INPUT_DATA):
            raise KeyError(f"--{option.replace('_', '-')} {key!r} is not a column of .obs in {path}{hint}")


def read_gene_list(text: str, option: str) -> list[str]:
    """Gene names from ``A,B,C`` or ``@FILE`` (names separated by commas, spaces or new lines; ``#`` comments).

    Raises
    ------
    ValueError
        No gene is named (exit 2).
    OSError
        ``@FILE`` cannot be read (exit 3).
    """
    if text.startswith("@"):
        path = Path(text[1:])
        with errors_mean(EXIT_INPUT_FILE):
            try:
                raw = path.read_text()
            except OSError as e:
                raise OSError(f"{option} {text}: cannot read {path} ({e.strerror or e})") from None
        raw = "\n".join(line.split("#", 1)[0] for line in raw.splitlines())
    else:
        raw = text
    genes = [g for g in raw.replace(",", " ").split() if g]
    if not genes:
        with errors_mean(EXIT_USAGE):
            raise ValueError(f"{option} {text!r} names no gene; give names separated by commas, or @FILE")
    return list(dict.fromkeys(genes))  # in order, without repeats


def int_or_genes(text: str, option: str):
    """An ``--input-genes`` value: a number of random genes, or gene names (``A,B,C`` or ``@FILE``)."""
    if text.isdigit():
        if int(text) < 1:
            with errors_mean(EXIT_USAGE):
                raise ValueError(f"{option} must be a number >= 1 or gene names, got {text!r}")
        return int(text)
    return read_gene_list(text, option)


# ---------------------------------------------------------------- model
def load_model(path: str, device: str):
    """The trained model in the folder ``path``, on ``device``; exit 5 if it is missing, damaged or untrained."""
    from gexbert_sc.model import GexBERT

    with errors_mean(EXIT_MODEL):
        model = GexBERT.load(path, device=device)
        if not model.is_trained:
            raise ValueError(f"the model in {path} has not been trained (no training history); "
                             "train one with 'gexbert-sc fit' or give the folder of a trained model")
    return model


def check_model_fits(model, adata, path: Path, model_dir: str) -> None:
    """Exit with 5 unless ``adata`` has the model's layer, its batch column and genes it knows.

    Parameters
    ----------
    model
        The loaded :class:`~gexbert_sc.GexBERT`.
    adata
        The input.
    path, model_dir
        The input file and the model folder, for the messages.
    """
    with errors_mean(EXIT_MODEL):
        if model.layer is not None and model.layer not in adata.layers:
            raise KeyError(f"the model in {model_dir} reads .layers[{model.layer!r}], which {path} lacks (layers: "
                           f"{list(adata.layers)}); add that layer, or use a model trained on .X or another layer")
        if model.batch_key is not None and model.batch_key not in adata.obs.columns:
            raise KeyError(f"the model in {model_dir} standardises per .obs[{model.batch_key!r}] (its batch_key), "
                           f"which {path} lacks; add that column")
        align = model.align(adata)
        if align.n_known == 0:
            raise ValueError(
                f"none of the {adata.n_vars} genes of {path} (e.g. {list(adata.var_names[:3])}) is in the vocabulary "
                f"of the model in {model_dir} ({len(model.genes)} genes, e.g. {list(model.genes[:3])}); use a model "
                "trained on the same kind of gene identifiers"
            )


def check_device(device: str) -> str:
    """``device`` if torch has it; else exit with 2 (before any data is read)."""
    from gexbert_sc.train import resolve_device

    with errors_mean(EXIT_USAGE):
        resolve_device(device)
    return device


# ---------------------------------------------------------------- output
def output_path(input_path: Path, out: str | None, command: str, *, overwrite: bool) -> Path:
    """The output .h5ad: ``--out``, or ``<input stem>_<command>.h5ad`` beside the input; exit 2 if it cannot be.

    An existing file is replaced only with ``--overwrite``, or when ``--out`` names the input itself
    (an update in place, asked for explicitly). The folder must exist and be writable.
    """
    with errors_mean(EXIT_USAGE):
        dest = Path(out) if out is not None else input_path.with_name(f"{input_path.stem}_{command}.h5ad")
        in_place = out is not None and dest.exists() and input_path.exists() and dest.samefile(input_path)
        if dest.is_dir():
            raise IsADirectoryError(f"--out {dest} is a folder; give the path of the .h5ad file to write")
        if dest.exists() and not (overwrite or in_place):
            raise FileExistsError(f"{dest} exists; pass --overwrite to replace it, or choose another --out")
        folder = dest.parent
        if not folder.is_dir():
            raise FileNotFoundError(f"--out {dest}: the folder {folder} does not exist; create it first")
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            raise OSError(f"--out {dest}: the folder {folder} is not writable ({e.strerror or e})") from None
    return dest


def write_h5ad(adata, dest: Path) -> None:
    """Write ``adata`` to ``dest`` atomically: into a temporary file beside it, then renamed into place.

    An interrupted or failed write leaves ``dest`` as it was; a failure exits with 3.
    """
    with errors_mean(EXIT_INPUT_FILE, (OSError,)):
        with atomic_file(dest) as tmp:
            adata.write_h5ad(tmp, compression="gzip")
