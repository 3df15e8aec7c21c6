"""The `t2t-vit` command: one subcommand per module of this package."""

from __future__ import annotations

import argparse
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
    from . import convert, inference

    return [inference.register, convert.register]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except (ValueError, FileNotFoundError, OSError, RuntimeError, ImportError) as err:
        print(f"t2t-vit {args.command}: error: {err}", file=sys.stderr)
        return 2
    return status
