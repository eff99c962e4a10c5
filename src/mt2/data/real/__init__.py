"""Loaders for standard MIR datasets in their original published layout (docs/design.md section 4).

Each module documents the layout it expects under ``root`` and exposes
``load(root, ...) -> list[Example]``: every usable example, sorted by path, with its split
(``train``/``valid``/``test``: the dataset's standard split where one exists, otherwise a
documented deterministic one) and its labels under keys shared across datasets (see
:class:`Example`). Loaders list files and parse annotations; they never decode audio.

A folder or file the layout requires raises :class:`DatasetLayoutError` naming what was
expected where; an unparseable annotation raises :class:`AnnotationError` naming the file
and line; examples whose audio is missing are skipped with one
:class:`SkippedExamplesWarning` that counts them.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mt2.data.real import (
    ballroom,
    giantsteps_key,
    giantsteps_tempo,
    gtzan,
    magnatagatune,
    nsynth,
    tinysol,
)
from mt2.data.real._common import (
    AnnotationError,
    DatasetLayoutError,
    Example,
    SkippedExamplesWarning,
    normalize_key,
    stratified_split,
)

LOADERS: dict[str, Callable[..., list[Example]]] = {
    "giantsteps-key": giantsteps_key.load,
    "giantsteps-tempo": giantsteps_tempo.load,
    "gtzan": gtzan.load,
    "magnatagatune": magnatagatune.load,
    "nsynth": nsynth.load,
    "tinysol": tinysol.load,
    "ballroom": ballroom.load,
}


def load_dataset(name: str, root: str | Path, **options) -> list[Example]:
    """``LOADERS[name](root, **options)``; ``options`` are the loader's keyword arguments."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(LOADERS))}")
    return LOADERS[name](root, **options)


__all__ = [
    "AnnotationError",
    "DatasetLayoutError",
    "Example",
    "LOADERS",
    "SkippedExamplesWarning",
    "load_dataset",
    "normalize_key",
    "stratified_split",
]
