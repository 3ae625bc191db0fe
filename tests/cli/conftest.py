"""Fixtures of the command-line tests: a small cohort as .h5ad files and a tiny model trained once by ``fit``."""

import shutil
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import gexbert_sc as gb
from gexbert_sc.cli import main

TINY = ["--set", "d_model=16", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "d_ff=32",
        "--set", "n_input=16", "--set", "n_target=16", "--set", "linear_rank=16"]
#: One short epoch per phase: for the tests of the training commands' plumbing.
QUICK = [*TINY, "--set", "min_steps_per_epoch=2", "--phase1-epochs", "1", "--phase2-epochs", "1", "--no-progress"]


@dataclass(frozen=True)
class Cohort:
    """Files shared by the tests (read them; copy before changing)."""

    folder: Path
    full: Path  #: 150 samples x 40 genes, 2 cancer types, survival columns
    missing: Path  #: the same with 10% of the values NaN
    model: Path  #: a tiny model trained on ``full`` by ``gexbert-sc fit``
    fit_h5ad: Path  #: the AnnData ``fit`` wrote (with .obsm["X_gexbert"])


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Cohort:
    """The shared files; the model is trained once (2 + 2 epochs) by the ``fit`` command itself."""
    folder = tmp_path_factory.mktemp("cli_cohort")
    a = gb.datasets.synthetic(n_obs=150, n_vars=40, n_types=2, n_modules=2, module_size=10, random_state=0)
    a.write_h5ad(folder / "full.h5ad")
    X = a.X.copy()
    X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    a.X = X
    a.write_h5ad(folder / "missing.h5ad")
    rc = main(["fit", str(folder / "full.h5ad"), "--out", str(folder / "fit"), *TINY,
               "--phase1-epochs", "2", "--phase2-epochs", "2", "--quiet"])
    assert rc == 0
    return Cohort(folder, folder / "full.h5ad", folder / "missing.h5ad", folder / "fit" / "model",
                  folder / "fit" / "adata_gexbert.h5ad")


@pytest.fixture
def h5ad(tmp_path):
    """A small log-scale cohort written to an .h5ad file (for the training commands)."""
    a = gb.datasets.synthetic(n_obs=60, n_vars=30, n_types=2, n_modules=2, module_size=8, random_state=0)
    a.write_h5ad(tmp_path / "in.h5ad")
    return tmp_path / "in.h5ad"


def copy_to(src: Path, folder: Path, name: str | None = None) -> Path:
    """Copy ``src`` (a file or a folder) into ``folder``; return the copy."""
    dest = folder / (name or src.name)
    (shutil.copytree if src.is_dir() else shutil.copy)(src, dest)
    return dest


def error_line(capsys, command: str) -> str:
    """The one line a user error prints: no traceback, nothing else on stderr."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if ": warning: " not in line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gexbert-sc {command}: error: "), err
    return lines[0]


def read(path: Path) -> ad.AnnData:
    """The .h5ad at ``path``."""
    return ad.read_h5ad(path)
