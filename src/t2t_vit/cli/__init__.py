"""The `t2t-vit` command: one subcommand per module of this package."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="t2t-vit", description="Tokens-to-Token ViT: convert, inspect and run models."
    )
    parser.add_argument("--version", action="version", version=_version())
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Each subcommand module defines `register(subcommands)`, which adds its parser and
    # sets `func(args) -> int` as its default.
    for register in _registrations():
        register(subcommands)
    return parser


def _version() -> str:
    import torch

    from .. import __version__

    return f"t2t-vit {__version__} (torch {torch.__version__})"


Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _registrations() -> list[Register]:
    """The subcommand modules' `register` functions, in the order `--help` lists them."""
    from . import convert, inference, publish

    return [inference.register, convert.register, publish.register]


class _StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is when a record comes (tests replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def _show_progress_lines() -> None:
    # The library says where weights came from at INFO; the command line shows it.
    logger = logging.getLogger("t2t_vit")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("t2t-vit: %(message)s"))
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


#: The exit status of a command whose output pipe was closed (`t2t-vit info X | head -1`),
#: that of a process killed by SIGPIPE in a shell: 128 + 13.
EXIT_BROKEN_PIPE = 141

#: The exit status of a command stopped with Ctrl-C, that of a process killed by SIGINT in a
#: shell: 128 + 2.
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    _show_progress_lines()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
        # Buffered output reaches a closed pipe here, not at interpreter exit.
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        # Ctrl-C is the user's choice, not a fault: one line, a shell's status for SIGINT.
        print(f"t2t-vit {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, FileNotFoundError, OSError, RuntimeError, ImportError) as err:
        print(f"t2t-vit {args.command}: error: {err}", file=sys.stderr)
        return 2
    return status


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit cannot fail again.

    The reader stopped reading, which is no error of ours: nothing to report.
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
