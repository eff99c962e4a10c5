"""Pretraining on WebDataset shards (:mod:`mt2.data.shards`): :class:`ShardSource`, decoded on
the fly, and the sample stream its batches read.

Shard streams are split over ranks and DataLoader workers (global worker ``g`` of ``G``): in
epoch ``e`` the shards are shuffled with ``default_rng([seed, e])`` and worker ``g`` reads
shards ``g, g + G, ...`` of that order (or, with fewer shards than workers, every ``G``-th
sample); its ``q``-th batch is raw samples ``[qB, (q + 1)B)`` of its stream, so a resumed worker
skips whole shards by their counts. Unreadable samples in a batch are replaced by readable ones
of the same batch (silence if none is readable), which keeps every rank at ``B`` tracks, as the
cross-rank NT-Xent needs. Exact resume assumes the same number of devices and workers. Samples
whose metadata names a split other than ``train`` are not trained on. A sample's magnitudes are
those the CQT cache would store (:func:`magnitude_of`).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Iterator

import numpy as np
import torch

from mt2.audio import AudioError
from mt2.data.batches import BatchStream, TrainBatch, batch_generator
from mt2.data.shards import Shard, decode_sample, read_shard
from mt2.data.views import sample_views
from mt2.frontend import HOP_LENGTH, N_BINS, CQTFrontend

log = logging.getLogger(__name__)


def magnitude_of(frontend: CQTFrontend, audio: np.ndarray) -> np.ndarray:
    """Raw CQT magnitudes ``(99, T)`` of a 16 kHz signal, rounded through float16 as the cache stores them."""
    with torch.inference_mode():
        magnitude = frontend.magnitude(torch.from_numpy(audio))[0].numpy()
    return magnitude.astype(np.float16).astype(np.float32)


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


class ShardBatches(BatchStream):
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
