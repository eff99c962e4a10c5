"""A cache of raw CQT magnitudes, computed once per corpus (the CQT is the slow part on CPU).

Layout, in one folder: ``<name>.npy`` holds float16 magnitudes ``(99, total_frames)`` of
every clip side by side; ``<name>.json`` maps each clip's key (its manifest path) to
``[start_frame, num_frames]`` and records the frontend settings and the source hash. Both
files are written to a temporary name and renamed, so a killed build leaves no half cache.
Training crops windows from the cache with :func:`mt2.frontend.model_window`.

Long recordings (the real-music corpus, :mod:`mt2.corpus.real`) get a cache of their own
(:func:`build_track_cache`, :class:`TrackCQTCache`): one float16 ``.npy`` file per track,
computed in chunks of :data:`CHUNK_FRAMES` frames with :data:`MARGIN_FRAMES` frames of audio
context on each side (equal to the whole-track transform: tested), written to a temporary
name and renamed, so an interrupted build keeps the tracks it finished. Reads are
memory-mapped: :meth:`TrackCQTCache.crop` reads only the frames of a crop, never a whole track.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mt2.audio import AudioError, load_audio
from mt2.frontend import HOP_LENGTH, N_BINS, SAMPLE_RATE, CQTFrontend

log = logging.getLogger(__name__)
CACHE_VERSION = 1
BATCH_SIZE = 8


def _fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION} sr{SAMPLE_RATE} hop{HOP_LENGTH} bins{N_BINS}".encode())
    for path in paths:
        stat = path.stat() if path.exists() else None
        digest.update(f"{path}|{stat.st_size if stat else -1}|{stat.st_mtime_ns if stat else -1}\n".encode())
    return digest.hexdigest()[:16]


class _Indexed:
    """What both caches share: membership, size and keys of their index, and the skipped files."""

    index: dict
    skipped: dict

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def __len__(self) -> int:
        return len(self.index)

    def keys(self) -> list[str]:
        return list(self.index)


class CQTCache(_Indexed):
    """Read access to a built cache: ``cache[key] -> (99, T) float32`` magnitudes."""

    def __init__(self, array_path: Path, index: dict) -> None:
        self.array = np.load(array_path, mmap_mode="r")
        self.index = index["clips"]
        self.skipped = index.get("skipped", {})

    def __getitem__(self, key: str) -> np.ndarray:
        start, frames = self.index[key]
        return np.asarray(self.array[:, start : start + frames], dtype=np.float32)


def _decoded(rel: str, path: Path, skipped: dict) -> np.ndarray | None:
    """One file at 16 kHz, or None with the reason under ``skipped[rel]`` (unreadable, or shorter than one hop)."""
    try:
        audio = load_audio(path, SAMPLE_RATE)
    except AudioError as error:
        log.warning("skipping %s", error)
        skipped[rel] = str(error)
        return None
    if audio.size < HOP_LENGTH:
        skipped[rel] = f"{path}: shorter than one CQT hop ({audio.size} samples)"
        return None
    return audio


def _equal_length_batches(rel_paths, full_paths, skipped: dict, progress: bool, batch_size: int = BATCH_SIZE):
    """Decode the clips and yield lists of ``(key, audio)`` of equal length, ``batch_size`` at most.

    nnAudio's CQT costs about as much for a batch of 8 clips as for one on CPU, so clips of
    the same length (a rendered corpus has few distinct lengths) are transformed together.
    Undecodable or too-short files are logged and recorded in ``skipped``.
    """
    pending: dict[int, list] = {}
    for rel, path in tqdm(list(zip(rel_paths, full_paths)), desc="CQT cache", disable=not progress, unit="clip"):
        audio = _decoded(rel, path, skipped)
        if audio is None:
            continue
        group = pending.setdefault(audio.size, [])
        group.append((rel, audio))
        if len(group) == batch_size:
            yield pending.pop(audio.size)
    yield from pending.values()


def build_cqt_cache(paths: list[str | os.PathLike], root: str | os.PathLike, cache_dir: str | os.PathLike, progress: bool = True) -> CQTCache:
    """Compute (or reuse) the cache for audio ``paths`` relative to ``root``; keys are the relative paths.

    A file that cannot be decoded is skipped, logged with its path and reason, and listed
    under ``skipped`` in the index; it never stops the build.
    """
    root = Path(root)
    rel_paths = [str(p) for p in paths]
    full = [root / p for p in rel_paths]
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    name = f"cqt-{_fingerprint(full)}"
    array_path, index_path = cache_dir / f"{name}.npy", cache_dir / f"{name}.json"
    if array_path.exists() and index_path.exists():
        return CQTCache(array_path, json.loads(index_path.read_text()))

    frontend = CQTFrontend()
    blocks, clips, skipped, cursor = [], {}, {}, 0
    for batch in _equal_length_batches(rel_paths, full, skipped, progress):
        with torch.inference_mode():
            magnitudes = frontend.magnitude(torch.from_numpy(np.stack([audio for _, audio in batch]))).numpy()
        for (rel, _), magnitude in zip(batch, magnitudes.astype(np.float16)):
            clips[rel] = [cursor, int(magnitude.shape[1])]
            cursor += magnitude.shape[1]
            blocks.append(magnitude)
    array = np.concatenate(blocks, axis=1) if blocks else np.zeros((N_BINS, 0), np.float16)
    tmp_array = array_path.with_suffix(".tmp.npy")
    np.save(tmp_array, array)
    os.replace(tmp_array, array_path)
    index = {"version": CACHE_VERSION, "sample_rate": SAMPLE_RATE, "hop_length": HOP_LENGTH, "bins": N_BINS, "clips": clips, "skipped": skipped}
    tmp_index = index_path.with_suffix(".tmp")
    tmp_index.write_text(json.dumps(index))
    os.replace(tmp_index, index_path)
    return CQTCache(array_path, index)


# -- long tracks --------------------------------------------------------------------------------
#: Frames of audio transformed at once when caching a long track (60 s), and the audio context
#: added on each side (3 s; the CQT's longest kernel spans about 0.6 s).
CHUNK_FRAMES = 1875
MARGIN_FRAMES = 96
TRACK_CACHE_VERSION = 1


def chunked_magnitude(frontend: CQTFrontend, audio: np.ndarray, chunk_frames: int = CHUNK_FRAMES,
                      margin_frames: int = MARGIN_FRAMES) -> np.ndarray:
    """Raw CQT magnitudes ``(99, 1 + N // hop)`` of a long 16 kHz signal, float16, computed
    ``chunk_frames`` at a time with ``margin_frames`` of context: the same frames as one
    transform of the whole signal, in bounded memory."""
    hop = frontend.hop_length
    total = 1 + len(audio) // hop
    out = np.empty((frontend.n_bins, total), np.float16)
    for start in range(0, total, chunk_frames):
        end = min(total, start + chunk_frames)
        first, last = max(0, start - margin_frames) * hop, min(len(audio), (end + margin_frames) * hop)
        with torch.inference_mode():
            magnitude = frontend.magnitude(torch.from_numpy(np.ascontiguousarray(audio[first:last])))[0].numpy()
        skip = start - first // hop
        out[:, start:end] = magnitude[:, skip : skip + end - start]
    return out


class TrackCQTCache(_Indexed):
    """Per-track cached magnitudes, memory-mapped: ``cache.frames(key)``, ``cache.crop(key, start, n)``
    (float32 ``(99, n)``), ``cache[key]`` (the whole track, float32)."""

    def __init__(self, folder: Path, index: dict) -> None:
        self.folder = Path(folder)
        self.index = index["tracks"]
        self.skipped = index.get("skipped", {})
        self._arrays: dict[str, np.ndarray] = {}

    def frames(self, key: str) -> int:
        return int(self.index[key][1])

    def _array(self, key: str) -> np.ndarray:
        if key not in self._arrays:
            self._arrays[key] = np.load(self.folder / self.index[key][0], mmap_mode="r")
        return self._arrays[key]

    def crop(self, key: str, start: int, frames: int) -> np.ndarray:
        """Frames ``[start, start + frames)`` of a track (fewer at its end), read from disk."""
        return np.asarray(self._array(key)[:, start : start + frames], dtype=np.float32)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.crop(key, 0, self.frames(key))


def build_track_cache(paths: list[str | os.PathLike], root: str | os.PathLike, cache_dir: str | os.PathLike,
                      progress: bool = True) -> TrackCQTCache:
    """Compute (or reuse) the per-track cache of long recordings ``paths`` relative to ``root``.

    Tracks are decoded one at a time (the whole track at 16 kHz: about 4 MB a minute) and
    transformed by :func:`chunked_magnitude`. A file that cannot be decoded is skipped, logged
    and listed under ``skipped``; it never stops the build. Reusing a cache tries its skipped
    tracks again (the decoder's rules may have changed since, as the tolerance of
    :data:`mt2.audio.SHORT_DECODE_TOLERANCE` did), so a reused cache holds what a new build would.
    """
    root = Path(root)
    rel_paths = [str(p) for p in paths]
    folder = Path(cache_dir) / f"tracks-{_fingerprint([root / p for p in rel_paths])}"
    index_path = folder / "index.json"
    previous = json.loads(index_path.read_text()) if index_path.exists() else None
    if previous is not None and not previous.get("skipped"):
        return TrackCQTCache(folder, previous)
    folder.mkdir(parents=True, exist_ok=True)
    frontend = CQTFrontend()
    tracks, skipped = (dict(previous["tracks"]), {}) if previous else ({}, {})
    todo = list(previous["skipped"]) if previous else rel_paths
    for rel in tqdm(todo, desc="CQT cache (tracks)", disable=not progress, unit="track"):
        name = f"{hashlib.sha256(rel.encode()).hexdigest()[:20]}.npy"
        target = folder / name
        if target.exists():  # finished by an interrupted build
            tracks[rel] = [name, int(np.load(target, mmap_mode="r").shape[1])]
            continue
        audio = _decoded(rel, root / rel, skipped)
        if audio is None:
            continue
        magnitude = chunked_magnitude(frontend, audio)
        del audio
        tmp = target.with_suffix(".tmp.npy")
        np.save(tmp, magnitude)
        os.replace(tmp, target)
        tracks[rel] = [name, int(magnitude.shape[1])]
    index = {"version": TRACK_CACHE_VERSION, "sample_rate": SAMPLE_RATE, "hop_length": HOP_LENGTH, "bins": N_BINS,
             "tracks": tracks, "skipped": skipped}
    tmp_index = index_path.with_suffix(".tmp")
    tmp_index.write_text(json.dumps(index))
    os.replace(tmp_index, index_path)
    return TrackCQTCache(folder, index)
