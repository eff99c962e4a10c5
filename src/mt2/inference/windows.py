"""Audio to windows: the first half of the encoder's one path (docs/design.md section 5).

Audio is downmixed to mono and resampled to 16 kHz (:func:`to_model_rate`, or
:func:`file_blocks` for a file decoded block by block), then cut into non-overlapping windows
of a fixed number of samples, the last one zero-padded (:func:`cut_windows`).
:meth:`mt2.inference.Encoder.model_input_batches` turns those windows into the model's input.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np
import soxr
import torch

from mt2.audio import RESAMPLE_QUALITY, audio_info, stream_audio
from mt2.frontend import SAMPLE_RATE

#: Windows per forward pass unless told otherwise (every batched path of the package).
DEFAULT_BATCH_SIZE = 16


def to_model_rate(audio, sr: float) -> np.ndarray:
    """Mono float32 at 16 kHz from ``(N,)`` or 2-D multichannel audio (numpy or torch) at ``sr``.

    For 2-D input the shorter axis holds the channels (a square array is read as
    ``(C, N)``); channels are averaged, as :mod:`mt2.audio` downmixes files.
    """
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=0 if audio.shape[0] <= audio.shape[1] else 1, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must have shape (samples,) or (channels, samples), got {audio.shape}")
    if audio.size == 0:
        raise ValueError("audio has no samples")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples: clean or drop the input")
    if not sr > 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if sr != SAMPLE_RATE:
        audio = soxr.resample(audio, sr, SAMPLE_RATE, quality=RESAMPLE_QUALITY).astype(np.float32, copy=False)
    return audio


def cut_windows(blocks: Iterable[np.ndarray], size: int, batch_size: int, hop: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Cut consecutive mono blocks into windows of ``size`` samples starting every ``hop``
    samples (``size``, the default: windows that do not overlap), ``batch_size`` at a time.

    Yields ``(windows (B, size), valid samples (B,))``: the windows starting at ``k * hop`` for
    every ``k`` with ``k * hop`` inside the input, those running past its end zero-padded.
    Holds at most one block, one window and one batch.

    Raises:
        ValueError: the blocks hold no sample at all, or ``hop`` is not in ``1..size``.
    """
    hop = size if hop is None else hop
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 1 <= hop <= size:
        raise ValueError(f"hop must lie in [1, {size}] samples (the window), got {hop}")
    pending = np.zeros(0, np.float32)  # the samples from ``start`` on
    batch: list[np.ndarray] = []
    seen = 0
    for block in blocks:
        seen += len(block)
        pending = np.concatenate([pending, np.asarray(block, dtype=np.float32)])
        full = 0 if len(pending) < size else 1 + (len(pending) - size) // hop
        for i in range(full):
            batch.append(pending[i * hop : i * hop + size])
            if len(batch) == batch_size:
                yield np.stack(batch), np.full(len(batch), size)
                batch = []
        pending = pending[full * hop :].copy()
    if seen == 0:
        raise ValueError("audio has no samples")
    tails = range(0, len(pending), hop)  # the windows that run past the end
    valid = np.concatenate([np.full(len(batch), size), [len(pending) - i for i in tails]]).astype(np.int64)
    batch += [np.pad(pending[i:], (0, size - len(pending) + i)) for i in tails]
    for first in range(0, len(batch), batch_size):
        yield np.stack(batch[first : first + batch_size]), valid[first : first + batch_size]


def file_blocks(path: str | os.PathLike, block_seconds: float) -> tuple[Iterator[np.ndarray], int]:
    """Mono 16-kHz blocks of a file (:func:`mt2.audio.stream_audio`) and their expected total
    length in samples, from the file's header."""
    blocks = stream_audio(path, SAMPLE_RATE, block_seconds)
    info = audio_info(path)
    return blocks, -(-info.frames * SAMPLE_RATE // info.sample_rate)


class Rows:
    """Rows written once into one preallocated array (the capacity estimated from the input's
    length); it grows, with one copy, only when the estimate was short."""

    def __init__(self, capacity: int, shape: tuple[int, ...], dtype=np.float32) -> None:
        self.data = np.empty((capacity, *shape), dtype)
        self.size = 0

    def add(self, rows: np.ndarray) -> None:
        end = self.size + len(rows)
        if end > len(self.data):
            grown = np.empty((max(end, 2 * len(self.data)), *self.data.shape[1:]), self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = rows
        self.size = end

    def array(self) -> np.ndarray:
        """The rows written (a view, no copy)."""
        return self.data[: self.size]
