"""Pretraining data: tracks from an audio folder, a manifest or WebDataset shards, and the
stream of training batches drawn from them (views A, B, C of ``B`` tracks, DESIGN.md section 3).

Sources (:func:`open_source` picks one from the path):

- **folder** of audio, searched recursively, or a **manifest** (:mod:`mt2.data.tracks`);
  only ``train`` rows are trained on (rows without a split are); a rendered corpus is read
  as its manifest, so that its labels can serve the online probes;
- **shards**: a folder of WebDataset tar shards written by :func:`mt2.data.shards.write_shards`
  (or one ``.tar``), decoded on the fly; samples whose metadata names a split other than
  ``train`` are not trained on.

All three give the same per-track CQT magnitudes ``(99, T)`` for the same files: raw
magnitudes rounded to float16, the precision of the cache (which transforms clips of equal
length in batches, so values may differ in the last float16 bit). Folder and manifest tracks go
through the CQT cache (:func:`mt2.data.cqt_cache.build_cqt_cache`), computed once. A file
that cannot be decoded is skipped with a warning and counted, never fatal.

Batches are deterministic and resumable: batch ``i`` of rank ``r`` draws its randomness from
``numpy.random.default_rng([seed, i, r])``, and the trainer restarts the stream at
``i = global_step``. Cached sources pick ``B`` tracks at random from that generator. Shard
streams are split over ranks and DataLoader workers (global worker ``g`` of ``G``): in epoch
``e`` the shards are shuffled with ``default_rng([seed, e])`` and worker ``g`` reads shards
``g, g + G, ...`` of that order (or, with fewer shards than workers, every ``G``-th sample);
its ``q``-th batch is raw samples ``[qB, (q + 1)B)`` of its stream, so a resumed worker skips
whole shards by their counts. Unreadable samples in a batch are replaced by readable ones of
the same batch (silence if none is readable), which keeps every rank at ``B`` tracks, as the
cross-rank NT-Xent needs. Exact resume assumes the same number of devices and workers.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from mt2.audio import AudioError
from mt2.data.cqt_cache import CQTCache, build_cqt_cache
from mt2.data.shards import INDEX_NAME, Shard, decode_sample, find_shards, read_shard
from mt2.data.tracks import MANIFEST_NAME, TrackList, list_tracks
from mt2.data.views import ViewConfig, Views, sample_views
from mt2.frontend import HOP_LENGTH, N_BINS, CQTFrontend

log = logging.getLogger(__name__)

# -- batches ---------------------------------------------------------------------------------
@dataclass
class TrainBatch:
    """Batch number ``index`` of one rank (its data position), its views, and how many samples
    met while making it were unreadable."""

    index: int
    views: Views
    unreadable: int = 0


def batch_generator(seed: int, index: int, rank: int) -> np.random.Generator:
    """The random generator of batch ``index`` on ``rank``: the whole batch follows from it."""
    return np.random.default_rng([seed, index, rank])


def magnitude_of(frontend: CQTFrontend, audio: np.ndarray) -> np.ndarray:
    """Raw CQT magnitudes ``(99, T)`` of a 16 kHz signal, rounded through float16 as the cache stores them."""
    with torch.inference_mode():
        magnitude = frontend.magnitude(torch.from_numpy(audio))[0].numpy()
    return magnitude.astype(np.float16).astype(np.float32)


class _BatchStream(IterableDataset):
    """Batches ``start, start + 1, ...`` of one rank. DataLoader worker ``w`` of ``W`` makes the
    batches whose index is ``w`` modulo ``W``, so the loader's in-order output is the sequence."""

    def __init__(self, batch_size: int, views: ViewConfig, seed: int, rank: int, world: int, start: int) -> None:
        self.batch_size, self.views, self.seed = batch_size, views, seed
        self.rank, self.world, self.start = rank, world, start

    def __iter__(self) -> Iterator[TrainBatch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        first = self.start + (worker - self.start) % workers
        return self._batches(first, worker, workers)

    def _batches(self, first: int, worker: int, workers: int) -> Iterator[TrainBatch]:
        raise NotImplementedError


class CachedBatches(_BatchStream):
    """Batches of tracks drawn at random from a CQT cache."""

    def __init__(self, cache: CQTCache, keys: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.cache, self.keys = cache, keys

    def _batches(self, first: int, worker: int, workers: int) -> Iterator[TrainBatch]:
        n = len(self.keys)
        for index in itertools.count(first, workers):
            rng = batch_generator(self.seed, index, self.rank)
            chosen = rng.choice(n, size=self.batch_size, replace=n < self.batch_size)
            yield TrainBatch(index, sample_views([self.cache[self.keys[i]] for i in chosen], self.views, rng))


def _epoch_plan(shards: list[Shard], seed: int, epoch: int, worker: int, workers: int) -> list[tuple[Shard, list[int] | None]]:
    """Shards read by global ``worker`` in ``epoch``: ``(shard, None)`` for all its samples, or
    ``(shard, local indices)`` when there are fewer shards than workers."""
    order = np.random.default_rng([seed, epoch]).permutation(len(shards))
    if len(shards) >= workers:
        return [(shards[i], None) for i in order[worker::workers]]
    plan, offset = [], 0
    for i in order:
        plan.append((shards[i], [j for j in range(shards[i].samples) if (offset + j) % workers == worker]))
        offset += shards[i].samples
    return plan


def stream_samples(shards: list[Shard], seed: int, worker: int, workers: int, skip: int = 0) -> Iterator[dict | None]:
    """The endless raw-sample stream of global ``worker`` of ``workers``, from its ``skip``-th sample.

    Whole shards before the position are skipped by their counts, unopened.
    """
    if sum(s.samples for s in shards) < workers:
        raise ValueError(f"{sum(s.samples for s in shards)} shard samples cannot feed {workers} data workers: lower --devices or num_workers")
    for epoch in itertools.count():
        plan = _epoch_plan(shards, seed, epoch, worker, workers)
        if not any(s.samples if sel is None else sel for s, sel in plan):
            raise ValueError(f"data worker {worker} of {workers} gets no samples: write smaller shards")
        for shard, selected in plan:
            count = shard.samples if selected is None else len(selected)
            if skip >= count:
                skip -= count
                continue
            if selected is None:
                yield from read_shard(shard, skip)
            else:
                wanted = set(selected[skip:])
                start = selected[skip]
                yield from (s for j, s in enumerate(read_shard(shard, start), start) if j in wanted)
            skip = 0


class ShardBatches(_BatchStream):
    """Batches of ``B`` consecutive samples of this worker's shard stream, decoded on the fly."""

    def __init__(self, shards: list[Shard], **kwargs) -> None:
        super().__init__(**kwargs)
        self.shards = shards

    def _batches(self, first: int, worker: int, workers: int) -> Iterator[TrainBatch]:
        frontend = CQTFrontend()
        samples = stream_samples(
            self.shards, self.seed, self.rank * workers + worker, self.world * workers, skip=first // workers * self.batch_size
        )
        for index in itertools.count(first, workers):
            clips, unreadable = [], 0
            for sample in itertools.islice(samples, self.batch_size):
                clip = _training_clip(frontend, sample)
                if clip is None:
                    unreadable += 1
                elif clip.size:
                    clips.append(clip)
            rng = batch_generator(self.seed, index, self.rank)
            if not clips:
                clips = [np.zeros((N_BINS, self.views.segment_frames), np.float32)]
            clips += [clips[i] for i in rng.integers(len(clips), size=self.batch_size - len(clips))]
            yield TrainBatch(index, sample_views(clips, self.views, rng), unreadable)


def _training_clip(frontend: CQTFrontend, sample: dict | None) -> np.ndarray | None:
    """Magnitudes of a shard sample; ``None`` if unreadable, an empty array if held out (not ``train``)."""
    if sample is not None and json.loads(sample.get("json", b"{}")).get("split") not in (None, "", "train"):
        return np.zeros((N_BINS, 0), np.float32)
    try:
        name, audio = decode_sample(sample)
    except AudioError as error:
        log.warning("skipping %s", error)
        return None
    if audio.size < HOP_LENGTH:
        log.warning("skipping %s: shorter than one CQT hop (%d samples)", name, audio.size)
        return None
    return magnitude_of(frontend, audio)


# -- sources ---------------------------------------------------------------------------------
class CachedSource:
    """A folder or manifest, read through the CQT cache (built by :meth:`prepare`)."""

    def __init__(self, tracks: TrackList, cache_dir: str | os.PathLike) -> None:
        self.tracks = tracks
        self.kind = tracks.kind
        self.cache_dir = Path(cache_dir)
        self._cache: CQTCache | None = None

    def prepare(self, progress: bool = True) -> CQTCache:
        """Build (or reuse) the cache of every listed file; report the unreadable ones."""
        if self._cache is None:
            paths = [r["path"] for r in self.tracks.rows]
            self._cache = build_cqt_cache(paths, self.tracks.root, self.cache_dir, progress=progress)
            if self._cache.skipped:
                log.warning("%d unreadable file(s) skipped (reasons in the cache index under %s)", len(self._cache.skipped), self.cache_dir)
        return self._cache

    @property
    def skipped(self) -> dict[str, str]:
        return self.prepare().skipped

    def train_keys(self) -> list[str]:
        cache = self.prepare()
        keys = [r["path"] for r in self.tracks.training_rows() if r["path"] in cache]
        if not keys:
            raise ValueError(f"{self.tracks.root}: no readable training tracks")
        return keys

    def magnitudes(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(path, (99, T) magnitudes)`` of every readable track."""
        cache = self.prepare()
        return ((key, cache[key]) for key in cache.keys())

    def fingerprint(self) -> str:
        """Hash of the training list: relative paths and file sizes."""
        digest = hashlib.sha256(self.kind.encode())
        for row in self.tracks.training_rows():
            path = self.tracks.root / row["path"]
            digest.update(f"{row['path']}|{path.stat().st_size if path.is_file() else -1}\n".encode())
        return digest.hexdigest()

    def batches(self, **kwargs) -> CachedBatches:
        return CachedBatches(self.prepare(), self.train_keys(), **kwargs)

    def describe(self) -> str:
        return f"{self.kind} {self.tracks.root}: {len(self.train_keys())} training tracks, {len(self.skipped)} unreadable skipped"


class ShardSource:
    """WebDataset shards, decoded on the fly."""

    kind = "shards"

    def __init__(self, shards: list[Shard]) -> None:
        self.shards = shards

    def prepare(self, progress: bool = True) -> None:
        """Nothing to build: shards are decoded while training."""

    def magnitudes(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(path, (99, T) magnitudes)`` of every readable sample, shard by shard; the unreadable
        ones are skipped with a warning."""
        frontend = CQTFrontend()
        for shard in self.shards:
            for sample in read_shard(shard):
                try:
                    name, audio = decode_sample(sample)
                except AudioError as error:
                    log.warning("skipping %s", error)
                    continue
                if audio.size >= HOP_LENGTH:
                    yield name, magnitude_of(frontend, audio)

    def fingerprint(self) -> str:
        """Hash of the shard list: names, sample counts and sizes."""
        digest = hashlib.sha256(self.kind.encode())
        for shard in self.shards:
            size = shard.path.stat().st_size if shard.path.exists() else -1
            digest.update(f"{shard.path.name}|{shard.samples}|{size}\n".encode())
        return digest.hexdigest()

    def batches(self, **kwargs) -> ShardBatches:
        return ShardBatches(self.shards, **kwargs)

    def describe(self) -> str:
        return f"shards: {len(self.shards)} files, {sum(s.samples for s in self.shards)} samples (decoded on the fly)"


def open_source(data: str | os.PathLike, cache_dir: str | os.PathLike) -> CachedSource | ShardSource:
    """The source at ``data``: shards (a ``.tar``, or a folder with ``shards.json`` or ``*.tar``
    and no manifest), else a manifest or audio folder cached under ``cache_dir``."""
    data = Path(data).resolve()
    if not data.exists():
        raise FileNotFoundError(f"{data}: no such file or folder")
    is_shards = data.suffix == ".tar" or (
        data.is_dir() and not (data / MANIFEST_NAME).exists() and ((data / INDEX_NAME).exists() or any(data.glob("*.tar")))
    )
    if is_shards:
        return ShardSource(find_shards(data))
    return CachedSource(list_tracks(data), cache_dir)
