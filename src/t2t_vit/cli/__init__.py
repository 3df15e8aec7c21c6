"""The `t2t-vit` command: one subcommand per module of this package."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="t2t-vit", description="Tokens-to-Token ViT: convert, inspect and run models."
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Each subcommand module defines `register(subcommands)`, which adds its parser and
    # sets `func(args) -> int` as its default.
    for register in _registrations():
        register(subcommands)
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    _show_progress_lines()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except (ValueError, FileNotFoundError, OSError, RuntimeError, ImportError) as err:
        print(f"t2t-vit {args.command}: error: {err}", file=sys.stderr)
        return 2
    return status
