"""The ``mt2`` command line: one subcommand per module in this package.

Each subcommand module defines ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed arguments, returning an exit status).
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: Subcommand modules, in the order ``mt2 --help`` lists them.
SUBCOMMANDS = ["demo", "study", "embed", "key", "corpus", "pretrain", "export", "bench", "perf"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mt2",
        description="MT2: Multi-Class-Token Transformer for self-supervised music information retrieval.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(f"mt2.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
