"""Saving and loading a model: safetensors weights plus JSON, written atomically, read without pickle."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from gexbert_sc import __version__
from gexbert_sc._files import umask_mode

FORMAT = "gexbert_sc.model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"


def write_model(dest: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict, *, overwrite: bool) -> Path:
    """Write ``tensors`` and ``meta`` to the folder ``dest``.

    The folder is written beside its destination under a temporary name, then renamed into place, so an
    interrupted save never leaves a half-written model; with ``overwrite`` an existing model is replaced only
    once the new one is complete. Files and folder get the user's umask permissions.
    """
    from safetensors.torch import save_file

    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest} exists; pass overwrite=True to replace it")
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"{dest} exists and is not a folder; choose another path")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS_FILE),
                  metadata={"format": FORMAT})
        with open(tmp / META_FILE, "w") as fh:
            json.dump({"format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__, **meta}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        for f in (WEIGHTS_FILE, META_FILE):
            os.chmod(tmp / f, umask_mode(0o666))
        os.chmod(tmp, umask_mode(0o777))  # mkdtemp makes it 0700
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def read_model(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read ``(tensors, meta)`` written by :func:`write_model`, with an error that says what is wrong with a damaged or foreign folder."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(path)
    if not d.is_dir():
        raise FileNotFoundError(f"no model folder at {d}")
    missing = [f for f in (META_FILE, WEIGHTS_FILE) if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{d} is not a complete GexBERT model: missing {missing}; save it again")
    try:
        meta = json.loads((d / META_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{d / META_FILE} is not valid JSON ({e}); the model is damaged, save it again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{d} does not hold a gexbert_sc model (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{d} was saved in model format {meta.get('format_version')} (package {meta.get('package_version')}); "
            f"this gexbert_sc ({__version__}) reads format {FORMAT_VERSION}"
        )
    try:
        tensors = load_file(str(d / WEIGHTS_FILE))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{d / WEIGHTS_FILE} cannot be read ({e}); the file is damaged, save the model again") from None
    return tensors, meta


def split_tensors(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose names start with ``prefix + "."``, with the prefix removed."""
    p = prefix + "."
    return {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A float32 numpy copy of a tensor."""
    return t.detach().cpu().numpy().astype(np.float32)
