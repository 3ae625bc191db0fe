"""The tutorials: every notebook in ``tutorials/`` runs end to end at the small size, and the stored ones are complete.

Each notebook reads ``GEXBERT_TUTORIAL_SIZE`` in its first code cell (``"small"`` here: tiny data, a few
epochs) and, when ``GEXBERT_TUTORIAL_OUT`` is set, writes a JSON summary of its results in its last
(hidden) cell. The notebooks run on a copy in ``tmp_path``, in a kernel of this interpreter; nothing is
written into ``tutorials/``. Deselect the executing tests with ``-m "not tutorials"``.

To refresh the stored outputs after changing a notebook, execute it at the full size in place, e.g.::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python -c "import nbformat, nbclient, sys; p = sys.argv[1]; \\
        nb = nbformat.read(p, 4); nbclient.NotebookClient(nb, timeout=1800, kernel_name='python3', \\
        resources={'metadata': {'path': 'tutorials'}}).execute(); nbformat.write(nb, p)" tutorials/01_....ipynb
"""

import json
import math
import shutil
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
KERNEL = "gexbert-sc-tutorial-test"

nbformat = pytest.importorskip("nbformat")


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _outputs(nb, output_type=None, mime=None):
    for cell in _code_cells(nb):
        for out in cell.get("outputs", []):
            if output_type and out.output_type != output_type:
                continue
            if mime and mime not in out.get("data", {}):
                continue
            yield out


def test_four_tutorials():
    names = [p.stem for p in NOTEBOOKS]
    assert len(names) == 4, names
    for i, name in enumerate(names, start=1):
        assert name.startswith(f"{i:02d}_"), names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_notebook_is_executed_at_full_size(path):
    """The stored outputs come from one complete run at the full size, and the notebook says what the full data cost."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    first = _code_cells(nb)[0].source
    assert "GEXBERT_TUTORIAL_SIZE" in first, "the first code cell must read the size switch"
    shown = [c for c in _code_cells(nb) if "remove-cell" not in c.metadata.get("tags", [])]
    counts = [c.execution_count for c in shown]
    assert all(counts), f"unexecuted cells in the stored {path.name}"
    assert counts == sorted(counts), f"{path.name}: cells were not run top to bottom in one go"
    assert not list(_outputs(nb, "error")), f"{path.name} is stored with an error output"
    text = "".join(o.get("text", "") for o in _outputs(nb, "stream"))
    assert "size: full" in text, f"{path.name} is stored from a run that was not at the full size"
    assert "Traceback" not in text
    assert len(list(_outputs(nb, mime="image/png"))) >= 2, f"{path.name} has fewer than two figures"
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## On the full TCGA data" in md
    assert "tcga_pancan" in md and "not measured" in md
    assert "_TEXT" not in md, "a placeholder was left in the text"


def test_stored_notebooks_are_small():
    total = sum(p.stat().st_size for p in NOTEBOOKS)
    assert total < 1.5e6, f"the stored tutorials take {total / 1e6:.2f} MB; lower the figures' dpi or size"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A kernelspec that runs this interpreter (ahead of any user-level ``python3`` kernel)."""
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    jupyter = tmp_path_factory.mktemp("jupyter")
    spec = jupyter / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    return jupyter, nbclient


def _check_01(s):
    assert s["metrics"]["val_other"] > 0 and s["metrics"]["val_mean"] > 0
    assert set(s["ari"]) == {"gexbert", "pca"}
    for scores in (s["classify"], s["skcm_classify"]):
        assert set(scores) == {"probe", "pca"}
        assert all(0 <= v["accuracy"] <= 1 and 0 <= v["balanced_accuracy"] <= 1 for v in scores.values())
    assert s["pooled_embedding"][0] == s["pooled_shape"][0]
    assert "X_gexbert_umap" in s["umap_keys"]


def _check_02(s):
    assert set(s["c_index"]) == {"original", "restored", "both", "pca"}
    assert all(0 <= c <= 1 for c in s["c_index"].values())
    assert s["n_anchor_groups"] >= 1
    assert {f"surv_{f}_risk" for f in s["c_index"]} <= set(s["risk_columns"])


def _check_03(s):
    assert set(s["rmse"]) == {"gexbert", "knn", "softimpute", "mice", "gene mean"}
    assert all(math.isfinite(v) and v > 0 for v in s["rmse"].values())
    assert set(s["coverage"]) == {"gexbert", "knn", "softimpute", "mice"}
    assert all(0 <= v <= 1 for v in s["coverage"].values())
    assert s["benchmark_methods"] == sorted(["gexbert", "knn", "softimpute", "mice", "mean"])
    assert s["benchmark_mechanisms"] == ["gene_block", "mcar"]
    assert s["benchmark_rows"] == 10


def _check_04(s):
    assert all(math.isfinite(v) and v > 0 for v in s["ratios"].values())
    assert len(s["groups"]) >= 2
    assert s["gene_umap_shape"][1] == 2


CHECKS = {"01": _check_01, "02": _check_02, "03": _check_03, "04": _check_04}


@pytest.mark.tutorials
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_tutorial_runs_small(path, tmp_path, monkeypatch, kernel_dir):
    jupyter, nbclient = kernel_dir
    work = tmp_path / "run"
    work.mkdir()
    copy = work / path.name
    shutil.copy(path, copy)
    summary = tmp_path / "summary.json"
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
    monkeypatch.setenv("GEXBERT_TUTORIAL_SIZE", "small")
    monkeypatch.setenv("GEXBERT_TUTORIAL_OUT", str(summary))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # numba (scanpy's neighbours, UMAP) would otherwise set the OpenMP pool torch shares to all cores
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    before = path.read_bytes()
    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name=KERNEL, resources={"metadata": {"path": str(work)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the cell that failed
    seconds = time.perf_counter() - t0

    assert not list(_outputs(nb, "error"))
    assert list(_outputs(nb, mime="image/png")), "no figure was drawn"
    s = json.loads(summary.read_text())
    assert s["size"] == "small"
    assert Path(s["python"]).resolve() == Path(sys.executable).resolve(), "the kernel ran another interpreter"
    CHECKS[path.name[:2]](s)
    assert path.read_bytes() == before, "the stored notebook was changed"
    print(f"{path.name}: {seconds:.1f} s")
