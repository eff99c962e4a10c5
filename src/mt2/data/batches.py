"""The batch stream that every pretraining source gives (views A, B, C of ``B`` tracks,
docs/design.md section 3), and its generator.

Batches are deterministic and resumable: batch ``i`` of rank ``r`` draws its randomness from
``numpy.random.default_rng([seed, i, r])`` (:func:`batch_generator`), and the trainer restarts
the stream at ``i = global_step``. A source's ``batches(batch_size=, views=, seed=, rank=,
world=, start=)`` returns a :class:`BatchStream`: the cached sources of :mod:`mt2.data.pretrain`
and the shard stream of :mod:`mt2.data.shard_stream`.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from mt2.data.views import ViewConfig, Views


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


class BatchStream(IterableDataset):
    """Batches ``start, start + 1, ...`` of one rank. DataLoader worker ``w`` of ``W`` makes the
    batches whose index is ``w`` modulo ``W``, so the loader's in-order output is the sequence.
    A source's stream implements :meth:`_batches`."""

    def __init__(self, batch_size: int, views: ViewConfig, seed: int, rank: int, world: int, start: int) -> None:
        self.batch_size, self.views, self.seed = batch_size, views, seed
        self.rank, self.world, self.start = rank, world, start

    def __iter__(self) -> Iterator[TrainBatch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        first = self.start + (worker - self.start) % workers
        return self._batches(first, worker, workers)

    def _batches(self, first: int, worker: int, workers: int) -> Iterator[TrainBatch]:
        """Batches ``first, first + workers, ...`` made by DataLoader worker ``worker`` of ``workers``."""
        raise NotImplementedError
