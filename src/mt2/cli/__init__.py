"""The ``mt2`` command line: one subcommand per module in this package.

Each subcommand module defines ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed arguments, returning an exit status). A subcommand whose
optional dependencies are not installed (a core install has only what ``embed`` and ``key``
need) stays listed and, when called, names the extra to install.
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
        try:
            module = importlib.import_module(f"mt2.cli.{name}")
            module.register(argparse.ArgumentParser().add_subparsers())  # imports what it needs, or fails whole
        except ModuleNotFoundError as error:
            _register_missing(sub, name, error)
        else:
            module.register(sub)
    return parser


def _register_missing(sub: argparse._SubParsersAction, name: str, error: ModuleNotFoundError) -> None:
    """A stand-in for subcommand ``name`` whose dependency ``error.name`` is not installed."""
    message = (f"mt2 {name} needs the optional package {error.name!r}, which is not installed: "
               "pip install 'mt2-mir[all]' (or the extra that holds it: corpus, train, bench)")
    parser = sub.add_parser(name, help=f"(not installed: needs {error.name}) {message}", add_help=False)

    def missing(args: argparse.Namespace) -> int:
        print(message, file=sys.stderr)
        return 2

    parser.set_defaults(func=missing, takes_any_arguments=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "takes_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
