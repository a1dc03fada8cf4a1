"""One-line errors for the argparse console scripts (``faceprior-weights``, ``-metrics``,
``-fid-stats``, ``-prepare``, ``-compare``).

Every error, expected or not, ends the command with one line on stderr, ``PROG: error: MESSAGE``,
and a non-zero exit status; ``--debug`` (on the command and each subcommand) or
``FACEPRIOR_DEBUG=1`` raises it instead, with the traceback. Imports nothing from faceprior, so
every package may use it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

DEBUG_ENV = "FACEPRIOR_DEBUG"


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help where that says something.

    Unlike :class:`argparse.ArgumentDefaultsHelpFormatter` it leaves out defaults of ``None``, of
    flags (``store_true`` / ``store_false``: the flag's help says what it does) and of options
    whose help already speaks of the default.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        flag = action.nargs == 0  # store_true / store_false / store_const
        if (
            action.default is None
            or action.default is argparse.SUPPRESS
            or flag
            or "default" in text
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def add_debug_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--debug`` to ``parser`` and to each of its subcommands (call after adding them)."""
    parsers = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += list(action.choices.values())
    for i, each in enumerate(parsers):
        each.add_argument(
            "--debug",
            action="store_true",
            default=False if i == 0 else argparse.SUPPRESS,
            help=f"show the traceback of an error (or set {DEBUG_ENV}=1)",
        )
    return parser


def debugging(args: argparse.Namespace | None = None) -> bool:
    """``--debug`` was given or ``$FACEPRIOR_DEBUG`` is set."""
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (its type when it has none)."""
    text = " ".join(str(err).split())
    if " " not in text:  # a bare value (KeyError: 'x', IndexError: 3): the type says what it is
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text


def print_error(prog: str, err: BaseException | str) -> None:
    """``PROG: error: MESSAGE`` on stderr."""
    message = err if isinstance(err, str) else one_line(err)
    print(f"{prog}: error: {message}", file=sys.stderr)


def run_cli(
    prog: str,
    run: Callable[[], int],
    args: argparse.Namespace | None = None,
    codes: Sequence[tuple[type[BaseException], int]] = (),
    default: int = 1,
) -> int:
    """Run a command; an exception becomes one line and an exit status (the first matching
    entry of ``codes``, else ``default``), unless debugging (:func:`debugging`)."""
    try:
        return run()
    except KeyboardInterrupt:
        if debugging(args):
            raise
        print_error(prog, "interrupted")
        return 130
    except Exception as err:
        if debugging(args):
            raise
        print_error(prog, err)
        return next((code for kind, code in codes if isinstance(err, kind)), default)
