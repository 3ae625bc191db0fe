"""Sphinx configuration of the gexbert_sc documentation.

Build (offline, warnings as errors), from the repository root::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Needs the ``docs`` extra: ``pip install -e ".[docs]"``.
"""

import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).parent
# Document the source tree next to this file (also when the package is not installed).
SRC = HERE.parent / "src"
if SRC.is_dir():
    sys.path.insert(0, str(SRC))

# -- Project -----------------------------------------------------------------

project = "gexbert_sc"
author = "gexbert_sc developers"
copyright = f"{datetime.now():%Y}, {author}"
try:
    release = metadata.version("gexbert_sc")
except metadata.PackageNotFoundError:
    release = "0.0.0+unknown"
version = release

# -- Extensions --------------------------------------------------------------

extensions = [
    "myst_nb",  # Markdown pages (MyST) and, later, notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # the numpydoc-style docstrings of the package
    "sphinx.ext.mathjax",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
# Render "--option" and quotes in the included result tables as written.
smartquotes = False
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
# autosummary's class template (own methods only: GexBERTModule would list all of torch.nn.Module's).
# It lives under _static/ (not copied to the site: html_static_path is empty).
templates_path = ["_static/templates"]

# No intersphinx: the build must work offline.

# MyST / myst-nb
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3  # anchors for ## and ### headings, e.g. design.md#speed-on-cpu
nb_execution_mode = "off"  # the tutorials are rendered with their stored outputs (the tests execute them)

# autodoc / autosummary
autosummary_generate = True
autosummary_imported_members = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True}
autoclass_content = "class"

# napoleon: numpydoc sections
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
napoleon_use_param = True

# References to objects outside this package (numpy, anndata, torch, ...) cannot be resolved
# without intersphinx; do not warn about them.
nitpicky = False

# -- HTML --------------------------------------------------------------------

html_theme = "sphinx_book_theme"
html_title = "gexbert_sc"
html_static_path: list[str] = []
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
html_show_sourcelink = False

# -- benchmarks.md: render result tables added after the page was written ---

RESULTS = HERE.parent / "benchmarks" / "results"


def _append_new_results(app, docname, source):
    """Append an include of every ``benchmarks/results/*.md`` that ``benchmarks.md`` does not name."""
    if docname != "benchmarks" or not RESULTS.is_dir():
        return
    text = source[0]
    new = [p.name for p in sorted(RESULTS.glob("*.md")) if f"results/{p.name}" not in text]
    if not new:
        return
    parts = ["", "## Other results", ""]
    for name in new:
        parts += [f"```{{include}} ../benchmarks/results/{name}", ":heading-offset: 2", "```", ""]
    source[0] = text.rstrip("\n") + "\n" + "\n".join(parts)


# -- tutorials: the notebooks of ../tutorials, rendered under tutorials/ -------

TUTORIALS = HERE.parent / "tutorials"


def _copy_tutorials(app, config):
    """Copy ``../tutorials/*.ipynb`` next to ``tutorials/index.md`` (Sphinx reads sources under docs/ only).

    The copies are git-ignored (``docs/tutorials/.gitignore``); a copy is rewritten only when its
    notebook changed, so that incremental builds stay incremental.
    """
    notebooks = sorted(TUTORIALS.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no tutorial notebooks in {TUTORIALS}; the docs render them")
    dest = Path(app.srcdir) / "tutorials"
    dest.mkdir(exist_ok=True)
    for nb in notebooks:
        target = dest / nb.name
        data = nb.read_bytes()
        if not target.is_file() or target.read_bytes() != data:
            target.write_bytes(data)
    for stale in set(dest.glob("*.ipynb")) - {dest / nb.name for nb in notebooks}:
        stale.unlink()


def setup(app):
    """Connect the hooks above."""
    app.connect("config-inited", _copy_tutorials)
    app.connect("source-read", _append_new_results)
