"""The HEAR 2021 API (https://hearbenchmark.com): ``load_model``, ``get_scene_embeddings``,
``get_timestamp_embeddings``, over :class:`mt2.inference.Encoder`.

* Scene embeddings: the ``average`` readout (mean of the class tokens) of the whole sound,
  windows weighted by their valid length.
* Timestamp embeddings: the frame tokens of the last block, one every
  ``frames_per_token x 32`` ms, stamped at the centre of their frames (in milliseconds).

Both have :attr:`~mt2.inference.Encoder.embedding_size` values and come back as float32
CPU tensors. Sounds are embedded one after the other, each in batches of 4-s windows.
"""
from __future__ import annotations

import numpy as np
import torch

from mt2.inference import Encoder, load

#: The model loaded when ``load_model`` gets no path.
DEFAULT_MODEL = "mt2"


def load_model(model_file_path: str = "") -> Encoder:
    """The shipped ``mt2`` model (empty path) or the model folder ``model_file_path``.

    The encoder gets the attributes HEAR asks for: ``sample_rate`` (16000),
    ``scene_embedding_size`` and ``timestamp_embedding_size``.
    """
    encoder = load(model_file_path or DEFAULT_MODEL)
    encoder.scene_embedding_size = encoder.embedding_size
    encoder.timestamp_embedding_size = encoder.embedding_size
    return encoder


def get_scene_embeddings(audio: torch.Tensor, model: Encoder) -> torch.Tensor:
    """``(n_sounds, n_samples)`` audio at 16 kHz -> ``(n_sounds, embedding_size)``."""
    _check_batch(audio)
    clips = [model.embed(sound, model.sample_rate, readout="average").clip for sound in audio]
    return torch.from_numpy(_stack(clips))


def get_timestamp_embeddings(audio: torch.Tensor, model: Encoder) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n_sounds, n_samples)`` audio at 16 kHz -> embeddings ``(n_sounds, n_timestamps,
    embedding_size)`` and timestamps ``(n_sounds, n_timestamps)`` in milliseconds."""
    _check_batch(audio)
    embeddings = [model.embed(sound, model.sample_rate) for sound in audio]
    frames = torch.from_numpy(_stack([e.frames for e in embeddings]))
    timestamps = torch.from_numpy(_stack([e.timestamps * 1000.0 for e in embeddings]))
    return frames, timestamps


def _check_batch(audio: torch.Tensor) -> None:
    if audio.dim() != 2 or audio.shape[0] == 0:
        raise ValueError(f"HEAR audio must have shape (n_sounds, n_samples) with n_sounds >= 1, got {tuple(audio.shape)}")


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    return np.stack(arrays).astype(np.float32)
