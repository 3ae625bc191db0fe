"""The argument parser: one-line errors, value types and the options the commands share."""

from __future__ import annotations

import argparse
import importlib
from typing import NoReturn

from gexbert_sc import __version__

from ._errors import EXIT_CODES_HELP, EXIT_USAGE

#: The subcommands, in the order ``--help`` lists them; each is the module ``_<name>`` of this package,
#: with ``add_parser(subparsers)`` and ``run(args)``.
COMMANDS = ("demo", "fit", "embed", "impute", "restore", "survival", "classify", "attention", "info")
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps (default: auto: CUDA when present)"


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``<prog>: error: <message> (see <prog> --help)``."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line to stderr and exit with status 2."""
        msg = " ".join(message.split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {msg} (see '{self.prog} --help')\n")


# ---------------------------------------------------------------- value types
def non_negative_int(text: str) -> int:
    """An integer >= 0 from the command line."""
    return _int_at_least(text, 0)


def positive_int(text: str) -> int:
    """An integer >= 1 from the command line."""
    return _int_at_least(text, 1)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), got {value}")
    return value


def interval(text: str) -> float | None:
    """A coverage between 0 and 1, or ``none`` for no intervals."""
    return None if text.lower() in ("none", "0", "off") else fraction(text)


def positive_float(text: str) -> float:
    """A number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def alpha(text: str) -> float | list[float] | None:
    """``cv`` (choose by cross-validation), one penalty, or a comma-separated grid of penalties."""
    if text.lower() == "cv":
        return None
    values = [positive_float(t) for t in text.split(",") if t.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected cv, a number or numbers separated by commas, got {text!r}")
    return values[0] if len(values) == 1 else values


# ---------------------------------------------------------------- shared options
def new_command(sub, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` with the exit-code table as its epilog and ``--debug``."""
    p = sub.add_parser(name, help=summary, description=description, epilog=EXIT_CODES_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="print the traceback of an error, not only its message")
    return p


def add_input_output(p: argparse.ArgumentParser, command: str) -> None:
    """The input .h5ad, ``--out`` and ``--overwrite``."""
    p.add_argument("input", help="samples x genes .h5ad file (log-scale values, NaN where missing)")
    p.add_argument("-o", "--out", default=None, metavar="FILE.h5ad",
                   help=f"the .h5ad to write (default: <input stem>_{command}.h5ad beside the input); "
                        "the input is replaced only if --out names it")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def add_model(p: argparse.ArgumentParser, *, required: bool, needed_for: str = "") -> None:
    """``--model``, the folder of a model saved by ``fit`` (or :meth:`GexBERT.save`)."""
    what = "" if required else f" (needed for {needed_for})"
    p.add_argument("-m", "--model", required=required, metavar="DIR",
                   help=f"folder of a trained model, written by 'gexbert-sc fit' into OUT/model{what}")


def add_runtime(p: argparse.ArgumentParser, *, random_state: int | None = 0,
                random_state_help: str = "seed (default: 0)") -> None:
    """``--device``, ``--random-state``, ``--key-added`` and ``--quiet``."""
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--random-state", type=non_negative_int, default=random_state, metavar="N", help=random_state_help)
    p.add_argument("--key-added", default=None, metavar="KEY",
                   help="prefix of the keys written (default: the Python function's; 'gexbert-sc info MODEL' "
                        "lists them)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no summary")


def build_parser() -> argparse.ArgumentParser:
    """The ``gexbert-sc`` argument parser.

    Returns
    -------
    argparse.ArgumentParser
        The parser; each subcommand sets ``run``, the function that runs it.
    """
    parser = Parser(prog="gexbert-sc", description="GexBERT for bulk gene expression, on .h5ad files",
                    epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gexbert-sc {__version__}")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error, not only its message")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for name in COMMANDS:
        importlib.import_module(f"{__package__}._{name}").add_parser(sub)
    return parser
