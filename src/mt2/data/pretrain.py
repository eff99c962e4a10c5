"""Pretraining sources: tracks from an audio folder, a manifest, real recordings or a bundle, and
the batch streams drawn from them (views A, B, C of ``B`` tracks, :mod:`mt2.data.batches`,
docs/design.md section 3); :func:`open_source` picks the source of a path, WebDataset shards
(:mod:`mt2.data.shard_stream`) included.

Sources (:func:`open_source`):

- **folder** of audio, searched recursively, or a **manifest** (:mod:`mt2.data.tracks`);
  only ``train`` rows are trained on (rows without a split are); a rendered corpus is read
  as its manifest, so that its labels can serve the online probes;
- **shards**: a folder of WebDataset tar shards written by :func:`mt2.data.shards.write_shards`
  (or one ``.tar``), decoded on the fly (:class:`mt2.data.shard_stream.ShardSource`);
- a **bundle** (one ``.safetensors`` file, :mod:`mt2.data.bundle`): CQT magnitudes of rendered
  clips and real-music crops sampled from a run's data, held in memory (:class:`BundleSource`).

All three give the same per-track CQT magnitudes ``(99, T)`` for the same files: raw
magnitudes rounded to float16, the precision of the cache (which transforms clips of equal
length in batches, so values may differ in the last float16 bit). Folder and manifest tracks go
through the CQT cache (:func:`mt2.data.cqt_cache.build_cqt_cache`), computed once. A file
that cannot be decoded is skipped with a warning and counted, never fatal. Cached sources pick
the ``B`` tracks of a batch at random from its generator (:func:`mt2.data.batches.batch_generator`).

**Real recordings** (a manifest written by ``mt2 corpus real``, :mod:`mt2.corpus.real`) are
long tracks, read as random crops: :class:`RealSource` caches each track's CQT once
(:func:`mt2.data.cqt_cache.build_track_cache`, one memory-mapped file per track) and each
batch item reads :data:`CROP_FRAMES` frames (15 s) at a random start of a track drawn with
probability proportional to its length, capped at :data:`TRACK_WEIGHT_CAP` frames (game tracks
loop; a 28-minute loop counts as 5 minutes); views A and B are cut within the crop. The crop is
read from disk: no track is held in memory. Given alone (``--data``), every batch is real;
given as ``real_data`` beside a folder or manifest (:class:`MixedSource`), ``round(B x
real_share)`` items of every batch are real crops and the rest rendered tracks, drawn from the
same batch generator (deterministic, resumable); the online probes keep reading the labelled
corpus.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mt2.data.batches import BatchStream, TrainBatch, batch_generator
from mt2.data.bundle import SUFFIX as BUNDLE_SUFFIX
from mt2.data.bundle import read_bundle
from mt2.data.cqt_cache import CQTCache, TrackCQTCache, build_cqt_cache, build_track_cache
from mt2.data.shard_stream import ShardSource
from mt2.data.shards import INDEX_NAME, find_shards
from mt2.data.tracks import MANIFEST_NAME, TrackList, list_tracks
from mt2.data.views import sample_views
from mt2.frontend import HOP_LENGTH, SAMPLE_RATE

log = logging.getLogger(__name__)


# -- folders and manifests, through the CQT cache ----------------------------------------------
class CachedBatches(BatchStream):
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


class CachedSource:
    """A folder or manifest, read through the CQT cache (built by :meth:`prepare`)."""

    #: How :meth:`prepare` builds the cache, and what it calls an entry in its warning.
    build_cache = staticmethod(build_cqt_cache)
    entry = "file"

    def __init__(self, tracks: TrackList, cache_dir: str | os.PathLike) -> None:
        self.tracks = tracks
        self.kind = tracks.kind
        self.cache_dir = Path(cache_dir)
        self._cache: CQTCache | TrackCQTCache | None = None

    def prepare(self, progress: bool = True) -> CQTCache | TrackCQTCache:
        """Build (or reuse) the cache of every listed file; report the unreadable ones."""
        if self._cache is None:
            paths = [r["path"] for r in self._cached_rows()]
            self._cache = self.build_cache(paths, self.tracks.root, self.cache_dir, progress=progress)
            if self._cache.skipped:
                log.warning("%d unreadable %s(s) skipped (reasons in the cache index under %s)", len(self._cache.skipped),
                            self.entry, self.cache_dir)
        return self._cache

    def _cached_rows(self) -> list[dict]:
        """The rows whose CQT is cached: every row (the online probes read the valid and test ones)."""
        return self.tracks.rows

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


# -- real recordings: random crops of long tracks ------------------------------------------------
#: Frames of one crop of a long track (15 s); views A and B are cut within it.
CROP_FRAMES = 469
#: A track's draw weight is its length capped at this many frames (5 minutes).
TRACK_WEIGHT_CAP = 9375


def draw_crops(cache: TrackCQTCache, keys: list[str], count: int, rng: np.random.Generator,
               crop_frames: int = CROP_FRAMES) -> list[np.ndarray]:
    """``count`` crops ``(99, <= crop_frames)``: tracks drawn with probability proportional to
    their capped length, start uniform in the track; only the crop is read from disk."""
    weights = np.array([min(cache.frames(k), TRACK_WEIGHT_CAP) for k in keys], np.float64)
    chosen = rng.choice(len(keys), size=count, p=weights / weights.sum())
    crops = []
    for i in chosen:
        frames = cache.frames(keys[i])
        start = int(rng.integers(0, max(1, frames - crop_frames + 1)))
        crops.append(cache.crop(keys[i], start, crop_frames))
    return crops


class CropBatches(BatchStream):
    """Batches of ``real_count`` crops of long tracks and ``batch_size - real_count`` whole
    tracks of a CQT cache (``base``), all drawn from batch ``i``'s generator."""

    def __init__(self, tracks: TrackCQTCache, track_keys: list[str], real_count: int,
                 base: CQTCache | None = None, base_keys: list[str] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tracks, self.track_keys, self.real_count = tracks, track_keys, real_count
        self.base, self.base_keys = base, base_keys or []

    def _batches(self, first: int, worker: int, workers: int) -> Iterator[TrainBatch]:
        rendered = self.batch_size - self.real_count
        for index in itertools.count(first, workers):
            rng = batch_generator(self.seed, index, self.rank)
            clips = []
            if rendered:
                n = len(self.base_keys)
                clips = [self.base[self.base_keys[i]] for i in rng.choice(n, size=rendered, replace=n < rendered)]
            clips += draw_crops(self.tracks, self.track_keys, self.real_count, rng)
            yield TrainBatch(index, sample_views(clips, self.views, rng))


class RealSource(CachedSource):
    """Long real recordings (``mt2 corpus real``), read as random crops through a per-track CQT
    cache (memory-mapped: :meth:`magnitudes` holds one track at a time)."""

    build_cache = staticmethod(build_track_cache)
    entry = "track"

    def __init__(self, tracks: TrackList, cache_dir: str | os.PathLike) -> None:
        super().__init__(tracks, cache_dir)
        self.kind = "real"

    def _cached_rows(self) -> list[dict]:
        """The training rows only: nothing reads a real valid, test or held-out track's CQT while
        training (the online probes read the rendered corpus)."""
        return self.tracks.training_rows()

    def hours(self) -> float:
        cache = self.prepare()
        return sum(cache.frames(k) for k in self.train_keys()) * HOP_LENGTH / SAMPLE_RATE / 3600

    def batches(self, **kwargs) -> CropBatches:
        return CropBatches(self.prepare(), self.train_keys(), kwargs["batch_size"], **kwargs)

    def describe(self) -> str:
        return (f"real recordings {self.tracks.root}: {len(self.train_keys())} training tracks ({self.hours():.2f} h, "
                f"random {CROP_FRAMES}-frame crops), {len(self.skipped)} unreadable skipped")


class MixedSource(CachedSource):
    """A folder or manifest (``base``, which the online probes read) and real recordings:
    ``round(B x share)`` items of every batch are crops of real tracks."""

    def __init__(self, base: CachedSource, real: RealSource, share: float) -> None:
        super().__init__(base.tracks, base.cache_dir)
        self.base, self.real, self.share = base, real, share
        self.kind = f"{base.kind}+real"

    def prepare(self, progress: bool = True) -> CQTCache:
        self.real.prepare(progress)
        return self.base.prepare(progress)

    def real_count(self, batch_size: int) -> int:
        return real_count(batch_size, self.share)

    def magnitudes(self) -> Iterator[tuple[str, np.ndarray]]:
        return itertools.chain(self.base.magnitudes(), self.real.magnitudes())

    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.base.fingerprint()}|{self.real.fingerprint()}|{self.share}".encode()).hexdigest()

    def batches(self, **kwargs) -> CropBatches:
        real = self.real_count(kwargs["batch_size"])
        base_keys = self.base.train_keys() if real < kwargs["batch_size"] else []
        return CropBatches(self.real.prepare(), self.real.train_keys(), real, self.base.prepare(), base_keys, **kwargs)

    def describe(self) -> str:
        return f"{self.base.describe()}; mixed with {self.real.describe()}, share {self.share:g} of every batch"


def real_count(batch_size: int, share: float) -> int:
    """Real crops in a mixed batch: ``round(B x share)``, at least one."""
    return min(batch_size, max(1, int(round(batch_size * share))))


class BundleSource:
    """A CQT bundle (:mod:`mt2.data.bundle`), read whole into memory: its rendered clips drawn
    as :class:`CachedBatches` draws tracks, its real crops as :class:`CropBatches` draws crops.
    With a real share (the run's ``real_data`` is set; the bundle carries crops of it, and that
    path is not read), :func:`real_count` items of every batch are real crops, the rest rendered
    clips; without one, the rendered clips alone (the real crops alone in a bundle without
    rendered clips)."""

    kind = "bundle"

    def __init__(self, path: Path, real_share: float | None) -> None:
        self.path, self.share = path, real_share
        self.parts, self.source = read_bundle(path)
        if real_share is not None and not len(self.parts["real"]):
            raise ValueError(f"{path}: the run mixes in real recordings (real_share {real_share:g}) and the bundle holds no real "
                             "crops; write it with real crops (scripts/gpu_bundle.py --real N)")

    def prepare(self, progress: bool = True) -> None:
        """Nothing to build: the bundle was read when opened."""

    def real_count(self, batch_size: int) -> int:
        if not len(self.parts["rendered"]):
            return batch_size
        return 0 if self.share is None else real_count(batch_size, self.share)

    def magnitudes(self) -> Iterator[tuple[str, np.ndarray]]:
        return itertools.chain(*(part.items() for part in self.parts.values()))

    def fingerprint(self) -> str:
        """Hash of the bundle file's bytes."""
        digest = hashlib.sha256(self.kind.encode())
        with open(self.path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def batches(self, **kwargs) -> CachedBatches | CropBatches:
        rendered, real = self.parts["rendered"], self.parts["real"]
        count = self.real_count(kwargs["batch_size"])
        if not count:
            return CachedBatches(rendered, rendered.keys(), **kwargs)
        return CropBatches(real, real.keys(), count, rendered, rendered.keys() if count < kwargs["batch_size"] else [], **kwargs)

    def describe(self) -> str:
        rendered, real = self.parts["rendered"], self.parts["real"]
        share = "no real share" if self.share is None else f"share {self.share:g} of every batch"
        return (f"bundle {self.path}: {len(rendered)} rendered clips, {len(real)} real crops "
                f"({sum(map(real.frames, real.keys())) * HOP_LENGTH / SAMPLE_RATE / 3600:.2f} h), {share}")


def _is_real(tracks: TrackList) -> bool:
    from mt2.corpus.real import is_real_manifest

    return tracks.kind == "manifest" and is_real_manifest(tracks.rows)


def open_source(data: str | os.PathLike, cache_dir: str | os.PathLike, real: str | os.PathLike | None = None,
                real_share: float = 0.5) -> CachedSource | ShardSource | BundleSource:
    """The source at ``data``: a bundle (a ``.safetensors`` file: :class:`BundleSource`, mixing
    in its own real crops at ``real_share`` when ``real`` is given), shards (a ``.tar``, or a
    folder with ``shards.json`` or ``*.tar`` and no manifest), else a manifest or audio folder
    cached under ``cache_dir``; a real-music manifest (``mt2 corpus real``) is a
    :class:`RealSource`. With ``real`` (a real-music corpus or manifest), a :class:`MixedSource`
    whose batches are ``real_share`` real crops.

    Raises:
        ValueError: ``real`` beside shards, or ``real`` that is not a real-music manifest.
    """
    data = Path(data).resolve()
    if not data.exists():
        raise FileNotFoundError(f"{data}: no such file or folder")
    if real is not None and not 0 < real_share <= 1:
        raise ValueError(f"real_share={real_share} must lie in (0, 1]")
    if data.suffix == BUNDLE_SUFFIX:
        return BundleSource(data, real_share if real is not None else None)
    is_shards = data.suffix == ".tar" or (
        data.is_dir() and not (data / MANIFEST_NAME).exists() and ((data / INDEX_NAME).exists() or any(data.glob("*.tar")))
    )
    if is_shards:
        if real is not None:
            raise ValueError(f"real recordings ({real}) mix with a folder or manifest as --data, not with shards ({data})")
        return ShardSource(find_shards(data))
    tracks = list_tracks(data)
    source = RealSource(tracks, cache_dir) if _is_real(tracks) else CachedSource(tracks, cache_dir)
    if real is None:
        return source
    real_tracks = list_tracks(Path(real).resolve())
    if not _is_real(real_tracks):
        raise ValueError(f"{real}: not a real-music manifest (write one with `mt2 corpus real OUT`)")
    return MixedSource(source, RealSource(real_tracks, cache_dir), real_share)
