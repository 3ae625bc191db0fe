"""gexbert_sc: GexBERT, a transformer autoencoder of bulk gene expression, as a scverse plugin.

The public API is the names in ``__all__``:

- :class:`GexBERT` and :class:`GexBERTConfig`, the model and its settings;
- the scverse-style submodules ``datasets``, ``pp`` (preprocessing), ``tl`` (tools) and ``pl`` (plots);
- ``__version__``.

The subpackages :mod:`gexbert_sc.model` (the model class, its config and gene alignment),
:mod:`gexbert_sc.module` (the pure-torch network) and :mod:`gexbert_sc.train` (the training loop) are
public too, for developers building on the network, but are not re-exported at the top level: import
them by their full name, e.g. ``from gexbert_sc.train import resolve_device`` (``gexbert_sc.model`` and
the others also resolve as attributes of the package, imported on first access, but are left out of
``__all__`` and ``dir()``).

Importing the package is cheap: the submodules and the model class (which pull in torch, anndata and
scanpy) are imported on first access (:pep:`562`), so ``import gexbert_sc as gb`` and the
``gexbert-sc --help`` command line start quickly; ``gb.tl.fit`` and ``from gexbert_sc import GexBERT``
work as usual.
"""

from importlib import import_module as _import_module
from importlib import metadata as _metadata
from typing import TYPE_CHECKING as _TYPE_CHECKING

try:
    __version__ = _metadata.version("gexbert_sc")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

if _TYPE_CHECKING:  # for type checkers and IDEs; at run time these come from __getattr__
    from . import datasets, pl, pp, tl
    from .model import GexBERT, GexBERTConfig

__all__ = ["GexBERT", "GexBERTConfig", "datasets", "pl", "pp", "tl", "__version__"]

_SUBMODULES = frozenset({"datasets", "pl", "pp", "tl", "model", "module", "train"})  # the last three: developers'
_FROM_MODEL = frozenset({"GexBERT", "GexBERTConfig"})


def __getattr__(name: str):
    """Import a submodule or model class on first access and keep it in the module namespace."""
    if name in _SUBMODULES:
        value = _import_module(f"{__name__}.{name}")
    elif name in _FROM_MODEL:
        value = getattr(_import_module(f"{__name__}.model"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    """The public API: the names in ``__all__``."""
    return list(__all__)
