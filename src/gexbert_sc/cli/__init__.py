"""The ``gexbert-sc`` command line: train, use and describe a GexBERT on .h5ad files.

Commands: ``demo`` and ``fit`` train; ``embed``, ``impute``, ``restore``, ``survival``, ``classify`` and
``attention`` use a saved model (or a baseline); ``info`` describes a model folder or an .h5ad file.

Only the standard library is imported here and when the parser is built: torch, anndata and scanpy are
imported inside the commands, so ``gexbert-sc --help`` and ``gexbert-sc --version`` start at once.

A user error (a bad option, a missing or unreadable input file, bad input data, a missing, damaged or
incompatible model) prints one line, ``gexbert-sc <command>: error: <message>``, to stderr and exits with
the code listed in :data:`EXIT_CODES_HELP`; any other exception is a bug and keeps its traceback (exit
status 1). Each command checks its options, the device and the output path before it reads data, and the
data (and the model) before it computes. Python warnings are printed as one line each,
``gexbert-sc <command>: warning: <message>``.

Each command is the module ``_<command>`` of this package (``add_parser`` and ``run``); the shared parts are
``_errors`` (exit codes), ``_parser`` (options), ``_io`` (files and the model), ``_training`` (checks of
the training commands) and ``_keys`` (the AnnData keys each command writes).
"""

from ._errors import (
    EXIT_CODES_HELP,
    EXIT_INPUT_DATA,
    EXIT_INPUT_FILE,
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_USAGE,
)
from ._main import main
from ._parser import build_parser

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_INPUT_DATA",
    "EXIT_INPUT_FILE",
    "EXIT_INTERRUPTED",
    "EXIT_MODEL",
    "EXIT_USAGE",
    "build_parser",
    "main",
]
