"""Exit codes and the tagging of user errors: what went wrong, as one line and a number."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

EXIT_USAGE = 2  #: bad arguments or settings
EXIT_INPUT_FILE = 3  #: input file missing or unreadable; results cannot be written
EXIT_INPUT_DATA = 4  #: bad input data, or it lacks what an option names
EXIT_MODEL = 5  #: model missing, damaged, untrained or incompatible with the data
EXIT_INTERRUPTED = 130  #: Ctrl-C

EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    unexpected error: a bug (the traceback is printed; please report it)
  2    bad arguments or settings (options, --set, --device, --out, --genes)
  3    a file cannot be read or written: the input is missing or not a readable .h5ad,
       a bundled dataset cannot be loaded, or writing the results failed
  4    bad input data: its values (e.g. raw counts), or it lacks what an option names
       (a --layer, an obs column such as --groupby or --time-key, a gene)
  5    the model: its folder is missing or damaged, it is untrained, it does not fit
       the data (no shared genes, its layer or batch column absent) or the request
       (genes it does not know); or a damaged training checkpoint (--resume)
  130  interrupted (Ctrl-C)
add --debug to see the traceback of an error"""

#: The exceptions the package raises for user errors. Inside an :func:`errors_mean` block they are
#: tagged with an exit code; :func:`gexbert_sc.cli.main` turns a tagged one into a one-line message.
DATA_ERRORS = (ValueError, KeyError, TypeError)
USER_ERRORS = (*DATA_ERRORS, OSError)  # OSError: FileNotFoundError, FileExistsError, ...
_EXIT_CODE_ATTR = "_gexbert_exit_code"


@contextmanager
def errors_mean(code: int, types: tuple[type[BaseException], ...] = USER_ERRORS) -> Iterator[None]:
    """Say that the user-facing exceptions raised in the block are user errors with exit status ``code``.

    Parameters
    ----------
    code
        Exit status for :func:`~gexbert_sc.cli.main` to return.
    types
        The exception types meant; others pass through untouched.

    Notes
    -----
    The exception propagates unchanged, tagged with ``code``; an inner block's tag wins over an outer's.
    An exception raised outside every block is not a user error but a bug, and keeps its traceback.
    """
    try:
        yield
    except types as e:
        if not hasattr(e, _EXIT_CODE_ATTR):
            setattr(e, _EXIT_CODE_ATTR, code)
        raise


def exit_code_of(e: BaseException) -> int | None:
    """The exit code an :func:`errors_mean` block tagged ``e`` with (None: not a user error, a bug)."""
    return getattr(e, _EXIT_CODE_ATTR, None)


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (a ``KeyError``'s without the quotes its ``str`` adds)."""
    msg = e.args[0] if isinstance(e, KeyError) and e.args else e
    return " ".join(str(msg).split()) or type(e).__name__
