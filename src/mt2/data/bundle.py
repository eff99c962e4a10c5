"""CQT bundles: a sample of a run's training data in one file, to train where the corpus is not
(a GPU machine that gets the working tree and a few carried files: ``scripts/gpu_train.sh``).

A bundle is a safetensors file (no pickle) of raw CQT magnitudes in float16, the cache's precision
(:mod:`mt2.data.cqt_cache`): tensor ``rendered`` ``(99, R)`` holds whole rendered clips side by side
and tensor ``real`` ``(99, Q)`` crops of real recordings (:data:`mt2.data.pretrain.CROP_FRAMES`
frames each, drawn as training draws them); a part without items has no tensor. The header's
metadata ``mt2_bundle`` is JSON: ``{"version", "rendered": {key: [start, frames]}, "real": {key:
[start, frames]}, "source": {...}}`` (``source``: what it was sampled from, for the record).
``scripts/gpu_bundle.py`` writes one; :class:`mt2.data.pretrain.BundleSource` trains on one.
A bundle costs ``99 x 2`` bytes a frame: 6.2 kB a second of audio, 22 MB an hour.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mt2.frontend import N_BINS

SUFFIX = ".safetensors"
PARTS = ("rendered", "real")
VERSION = 1
METADATA_KEY = "mt2_bundle"
BYTES_PER_FRAME = N_BINS * 2


class BundlePart:
    """One part of a bundle, read like a CQT cache: ``keys()``, ``part[key]`` and ``crop(key,
    start, n)`` give float32 ``(99, n)`` magnitudes, ``frames(key)`` a clip's length."""

    def __init__(self, array: np.ndarray, index: dict[str, list[int]]) -> None:
        self.array, self.index = array, index

    def __len__(self) -> int:
        return len(self.index)

    def keys(self) -> list[str]:
        return list(self.index)

    def frames(self, key: str) -> int:
        return int(self.index[key][1])

    def crop(self, key: str, start: int, frames: int) -> np.ndarray:
        """Frames ``[start, start + frames)`` of an item (fewer at its end)."""
        first, length = self.index[key]
        return np.asarray(self.array[:, first + start : first + min(length, start + frames)], dtype=np.float32)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.crop(key, 0, self.frames(key))

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        return ((key, self[key]) for key in self.index)


def write_bundle(path: str | os.PathLike, parts: dict[str, dict[str, np.ndarray]], source: dict) -> int:
    """Write ``parts`` (``{"rendered": {key: (99, T) magnitudes}, "real": {...}}``) to ``path``
    (written to a temporary name and renamed); returns the file's size in bytes.

    Raises:
        ValueError: an unknown part, an item that is not ``(99, T)``, or no item at all.
    """
    from safetensors.numpy import save_file

    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown bundle parts {sorted(unknown)}; a bundle holds {', '.join(PARTS)}")
    tensors, index = {}, {}
    for name in PARTS:
        items = parts.get(name, {})
        bad = [key for key, value in items.items() if value.ndim != 2 or value.shape[0] != N_BINS]
        if bad:
            raise ValueError(f"bundle part {name}: items {bad[:3]} are not ({N_BINS}, frames) CQT magnitudes")
        starts = np.cumsum([0] + [value.shape[1] for value in items.values()])
        index[name] = {key: [int(start), int(value.shape[1])] for key, value, start in zip(items, items.values(), starts)}
        if items:
            tensors[name] = np.ascontiguousarray(np.concatenate(list(items.values()), axis=1).astype(np.float16))
    if not tensors:
        raise ValueError(f"{path}: a bundle needs at least one rendered clip or real crop")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps({"version": VERSION, **index, "source": source})})
    os.replace(tmp, path)
    return path.stat().st_size


def read_bundle(path: str | os.PathLike) -> tuple[dict[str, BundlePart], dict]:
    """The parts of the bundle at ``path`` (held in memory) and its ``source`` record.

    Raises:
        ValueError: ``path`` is a safetensors file but no bundle (a model's weights, say), or a
            bundle of another version.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        metadata = (handle.metadata() or {}).get(METADATA_KEY)
        if metadata is None:
            raise ValueError(f"{path}: a safetensors file without {METADATA_KEY!r} metadata is no CQT bundle "
                             "(write one with scripts/gpu_bundle.py)")
        header = json.loads(metadata)
        if header.get("version") != VERSION:
            raise ValueError(f"{path}: bundle version {header.get('version')}, this mt2 reads version {VERSION}: write it again")
        names = set(handle.keys())
        parts = {name: BundlePart(handle.get_tensor(name) if name in names else np.zeros((N_BINS, 0), np.float16), header[name])
                 for name in PARTS}
    return parts, header["source"]
