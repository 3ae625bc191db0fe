"""The documentation: every public name is in the API reference, and the site builds with -W."""

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gexbert_sc as gb

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SUBMODULES = ("pp", "tl", "pl", "datasets")


def _public_names() -> list[str]:
    """``pp.x``, ``tl.x``, ... for every name in the submodules' ``__all__``, and the model classes."""
    names = [f"{sub}.{name}" for sub in SUBMODULES for name in getattr(gb, sub).__all__]
    return names + ["GexBERT", "GexBERTConfig"]


@pytest.mark.parametrize("name", _public_names())
def test_public_name_in_api_reference(name):
    obj = gb
    for part in name.split("."):
        obj = getattr(obj, part)  # the name exists
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    # as an autosummary entry or a py:data directive, on a line of its own
    assert re.search(rf"^\s*(\.\. py:data:: )?{re.escape(name)}\s*$", api, flags=re.M), (
        f"{name} is public but not in docs/api.md"
    )


@pytest.mark.parametrize("name", [f"{sub}.{n}" for sub in ("pp", "tl") for n in getattr(gb, sub).__all__])
def test_tool_in_keys_table(name):
    keys = (DOCS / "keys.md").read_text(encoding="utf-8")
    assert f"gexbert_sc.{name}>" in keys, f"{name} writes keys but has no row in docs/keys.md"


def test_docs_build_without_warnings(tmp_path):
    """Build the site with warnings as errors (needs the ``docs`` extra), in a copy of ``docs/``.

    The copy keeps autosummary's generated stubs out of the source tree. A fake result table in a copy
    of ``benchmarks/results`` checks that ``conf.py`` adds result files ``benchmarks.md`` does not list.
    """
    for module in ("sphinx", "myst_nb", "sphinx_book_theme"):
        pytest.importorskip(module)
    src = tmp_path / "repo"
    # the tutorial notebooks are left out of the copy: conf.py copies them from ../tutorials
    shutil.copytree(DOCS, src / "docs", ignore=shutil.ignore_patterns("_build", "generated", "*.ipynb"))
    (src / "src").symlink_to(ROOT / "src", target_is_directory=True)
    (src / "tutorials").symlink_to(ROOT / "tutorials", target_is_directory=True)
    results = src / "benchmarks" / "results"
    results.mkdir(parents=True)
    for md in (ROOT / "benchmarks" / "results").glob("*.md"):
        shutil.copy(md, results)
    (results / "zz_docs_test.md").write_text("# Docs test table\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")

    out = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(tmp_path / "doctrees")]
    proc = subprocess.run([*cmd, str(src / "docs"), str(out)], capture_output=True, text=True, timeout=300, cwd=src)
    assert proc.returncode == 0, f"sphinx failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"

    pages = ("index", "installation", "quickstart", "api", "keys", "design", "benchmarks", "tutorials/index", "datasets", "cli")
    for page in pages:
        assert (out / f"{page}.html").is_file(), page
    notebooks = sorted((ROOT / "tutorials").glob("*.ipynb"))
    assert notebooks
    for nb in notebooks:  # rendered with their stored outputs: text and figures
        page = (out / "tutorials" / f"{nb.stem}.html").read_text(encoding="utf-8")
        assert "On the full TCGA data" in page and "<img" in page, nb.name
    assert (out / "generated" / "gexbert_sc.tl.fit.html").is_file()
    benchmarks = html.unescape(re.sub(r"<[^>]+>", "", (out / "benchmarks.html").read_text(encoding="utf-8")))
    assert "Docs test table" in benchmarks  # appended by conf.py
    for md in (ROOT / "benchmarks" / "results").glob("*.md"):
        title = md.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").replace("`", "")
        assert title.split(":")[0].split("(")[0].strip() in benchmarks, f"{md.name} is not rendered"
