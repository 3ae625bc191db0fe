"""The entry point: parse, run the command, turn a user error into one line and an exit code."""

from __future__ import annotations

import logging
import sys
import traceback
import warnings

from ._errors import EXIT_INTERRUPTED, USER_ERRORS, exit_code_of, one_line
from ._parser import build_parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gexbert-sc`` console script.

    Parameters
    ----------
    argv
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, else one of the codes in
        :data:`~gexbert_sc.cli.EXIT_CODES_HELP`, after a one-line message on stderr (``--debug``: after
        the traceback). Errors in the arguments, ``--help`` and ``--version`` raise ``SystemExit`` as in
        :mod:`argparse`; an unexpected exception (a bug) propagates with its traceback.
    """
    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    prog = f"gexbert-sc {args.command}"

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {one_line(message) if isinstance(message, Warning) else message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning  # one line each, without the source line
            return args.run(args)
    except USER_ERRORS as e:
        code = exit_code_of(e)
        if code is None:
            raise  # not a user error that a command expected: a bug, keep the traceback
        if args.debug:
            traceback.print_exc()
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
