"""The console script, ``--help`` and ``--version``: fast, with no heavy import."""

import json
import subprocess
import sys

import pytest

import gexbert_sc as gb
from gexbert_sc.cli._parser import COMMANDS


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter and return its stdout (fails the test on a non-zero exit)."""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _text_file(tmp_path):
    (tmp_path / "table.h5ad").write_text("gene\tsample1\nTP53\t1.0\n")
    return tmp_path / "table.h5ad"


def test_console_script_error_in_a_subprocess(tmp_path):
    """The installed entry point: a file that is not an .h5ad gives one line on stderr and exit status 3."""
    path = _text_file(tmp_path)
    res = subprocess.run([sys.executable, "-m", "gexbert_sc.cli", "fit", str(path), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 3
    assert "Traceback" not in res.stderr
    assert res.stderr.splitlines() == [res.stderr.strip()]
    assert res.stderr.startswith(f"gexbert-sc fit: error: cannot read {path} as an .h5ad file")


# ---------------------------------------------------------------- --help, --version and a lazy import
HEAVY = ("torch", "anndata", "scanpy")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], *([c, "--help"] for c in COMMANDS)])
def test_help_and_version_do_not_import_heavy_modules(argv):
    code = (
        "import json, sys\n"
        "from gexbert_sc.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    )
    stdout = run_python(code)
    assert json.loads(stdout.splitlines()[-1]) == dict.fromkeys(HEAVY, False)
    if argv == ["--version"]:
        assert stdout.splitlines()[0] == f"gexbert-sc {gb.__version__}"
    else:
        assert "exit codes:" in stdout
        for code_line in ("0 ", "1 ", "2 ", "3 ", "4 ", "5 "):
            assert f"\n  {code_line}" in stdout
    if argv == ["--help"]:
        assert all(f"\n    {c} " in stdout for c in COMMANDS), stdout


def test_installed_console_script_answers_help():
    """The entry point of pyproject.toml, ``gexbert-sc = gexbert_sc.cli:main``, is installed and answers."""
    import shutil
    from pathlib import Path

    script = Path(sys.executable).with_name("gexbert-sc")
    script = script if script.exists() else shutil.which("gexbert-sc")
    if script is None:
        pytest.skip("the gexbert-sc console script is not installed")
    res = subprocess.run([str(script), "impute", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: gexbert-sc impute") and "--interval COVERAGE" in res.stdout


def test_package_imports_lazily():
    code = (
        "import json, sys\n"
        "import gexbert_sc as gb\n"
        "lazy = [m for m in ('torch', 'anndata', 'scanpy') if m in sys.modules]\n"
        "names = sorted(vars(gb))\n"
        "listing = dir(gb)\n"
        "from gexbert_sc import GexBERT, GexBERTConfig\n"
        "ok = callable(gb.tl.fit) and GexBERT is gb.GexBERT and GexBERTConfig is gb.model.GexBERTConfig\n"
        "subs = [type(getattr(gb, m)).__name__ for m in ('datasets', 'pl', 'pp', 'tl')]\n"
        "try:\n    gb.nope\n    missing = False\nexcept AttributeError:\n    missing = True\n"
        "print(json.dumps(dict(lazy=lazy, names=names, listing=listing, ok=ok, subs=subs, missing=missing, "
        "all=gb.__all__, version=gb.__version__)))\n"
    )
    r = json.loads(run_python(code).splitlines()[-1])
    assert r["lazy"] == []
    assert "PackageNotFoundError" not in r["names"] and "version" not in r["names"]
    assert r["all"] == ["GexBERT", "GexBERTConfig", "datasets", "pl", "pp", "tl", "__version__"]
    assert sorted(r["listing"]) == sorted(r["all"])
    assert r["ok"] and r["missing"] and r["subs"] == ["module"] * 4
    assert r["version"] == gb.__version__
