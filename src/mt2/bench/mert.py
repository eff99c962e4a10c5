"""MERT (or any HuBERT-shaped ``transformers`` checkpoint) as an external encoder of ``mt2 bench``.

MERT's weights do not ship here; a user who has a local copy puts it in the same table as
MT2 through the ``--encoder MODULE:CALLABLE`` path (:func:`mt2.bench.features.load_external`)::

    pip install "mt2[mert]"                      # transformers
    # a local folder holding MERT-v1-95M: config.json, the weights, preprocessor_config.json,
    # and MERT's own configuration_MERT.py / modeling_MERT.py (its model code)
    export MT2_MERT_PATH=/models/MERT-v1-95M
    export MT2_MERT_TRUST_REMOTE_CODE=1          # MERT's model class is code in that folder: read it first
    export MT2_MERT_LAYER=mean                   # or 0..12 (default: mean)
    mt2 bench ... --encoder mt2.bench.mert:load_mert

What the adapter computes, per clip (:meth:`MERTEncoder.embed`):

* **Sample rate**: the checkpoint's, from ``preprocessor_config.json`` (MERT-v1: 24 kHz;
  MERT-v0 and HuBERT: 16 kHz); the benchmark decodes clips at :attr:`MERTEncoder.sample_rate`,
  other rates are resampled with soxr.
* **Input**: the checkpoint's feature extractor (``Wav2Vec2FeatureExtractor``: zero mean,
  unit variance per window, as MERT's model card does), in windows of at most
  ``window_seconds`` (30 s; MERT was pretrained on 5-s crops and attends over a window).
* **Layer**: ``output_hidden_states=True`` gives ``num_hidden_layers + 1`` states (13 for
  MERT-95M: the input of the first transformer layer, then each layer's output).
  ``layer="mean"`` (the default) averages all of them: MERT's model card aggregates the 13
  layers with a learned 1x1 convolution and says each task prefers its own layer; the uniform
  average is that aggregation without fitting, and needs no layer chosen on test data. An
  integer ``l`` reads ``hidden_states[l]`` (MARBLE's protocol picks the best layer per task on
  validation: run the bench once per ``MT2_MERT_LAYER``; the layer is part of the adapter's
  weights hash, so each gets its own feature cache).
* **Pooling**: the clip vector is the mean of the frames over time (MERT's model card);
  ``frames`` (75 Hz for MERT-v1, 50 Hz at 16 kHz) and their ``timestamps`` (centres, in seconds)
  serve frame-level tasks.

The folder is read with ``local_files_only=True``: nothing is downloaded.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

PATH_VARIABLE = "MT2_MERT_PATH"
LAYER_VARIABLE = "MT2_MERT_LAYER"
TRUST_VARIABLE = "MT2_MERT_TRUST_REMOTE_CODE"
DEVICE_VARIABLE = "MT2_MERT_DEVICE"
DEFAULT_LAYER = "mean"
WINDOW_SECONDS = 30.0


@dataclass
class MERTEmbedding:
    """``clip`` ``(D,)``: mean of ``frames`` ``(F, D)`` over time; ``timestamps`` ``(F,)`` in seconds."""

    clip: np.ndarray
    frames: np.ndarray
    timestamps: np.ndarray


def _parse_layer(layer: int | str, states: int) -> int:
    """``"mean"`` -> -1; an index (int or digit string) of the ``states`` hidden states -> itself."""
    if layer == "mean":
        return -1
    try:
        index = int(layer)
    except (TypeError, ValueError):
        index = None
    if index is None or not 0 <= index < states:
        raise ValueError(f"layer={layer!r}: choose 'mean' or a hidden state index 0..{states - 1} (set {LAYER_VARIABLE})")
    return index


class MERTEncoder(nn.Module):
    """A local MERT/HuBERT-shaped checkpoint with ``embed(audio, sr)``; see the module doc."""

    def __init__(
        self,
        folder: str | os.PathLike,
        layer: int | str = DEFAULT_LAYER,
        window_seconds: float = WINDOW_SECONDS,
        trust_remote_code: bool = False,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        from transformers import AutoFeatureExtractor, AutoModel

        folder = Path(folder)
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{folder}: no config.json; set {PATH_VARIABLE} to a downloaded MERT (or HuBERT) checkpoint folder")
        config = json.loads(config_file.read_text())
        if "auto_map" in config and not trust_remote_code:
            code = sorted(p.name for p in folder.glob("*.py"))
            raise ValueError(
                f"{folder}: the model class is code in the folder ({', '.join(code) or 'auto_map in config.json'}); "
                f"read it, then pass trust_remote_code=True (or set {TRUST_VARIABLE}=1)"
            )
        self.model = AutoModel.from_pretrained(folder, trust_remote_code=trust_remote_code, local_files_only=True).to(device).eval()
        self.feature_extractor = None
        if (folder / "preprocessor_config.json").is_file():
            self.feature_extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=trust_remote_code, local_files_only=True)
            self.sample_rate = int(self.feature_extractor.sampling_rate)
        else:
            self.sample_rate = int(config.get("sample_rate", 16000))
        self.hop, self.receptive_field = 1, 1  # of the convolutional feature encoder, in samples
        for kernel, stride in zip(config.get("conv_kernel", [10, 3, 3, 3, 3, 2, 2]), config.get("conv_stride", [5, 2, 2, 2, 2, 2, 2])):
            self.receptive_field += (kernel - 1) * self.hop
            self.hop *= stride
        states = int(config.get("num_hidden_layers", 12)) + 1
        self.layer = _parse_layer(layer, states)
        # part of the state, so that the benchmark's weights hash (and feature cache) tells layers apart
        self.register_buffer("layer_choice", torch.tensor([self.layer, states]))
        self.window = int(window_seconds * self.sample_rate)
        if self.window < self.receptive_field:
            raise ValueError(f"window_seconds={window_seconds} is shorter than one frame ({self.receptive_field} samples)")
        self.device_name = device

    @torch.inference_mode()
    def _window_frames(self, audio: np.ndarray) -> torch.Tensor:
        if self.feature_extractor is not None:
            inputs = self.feature_extractor(audio, sampling_rate=self.sample_rate, return_tensors="pt")["input_values"]
        else:
            inputs = torch.from_numpy(audio)[None]
        states = self.model(inputs.to(self.device_name).float(), output_hidden_states=True).hidden_states
        chosen = torch.stack(states).mean(dim=0) if self.layer < 0 else states[self.layer]
        return chosen[0].float().cpu()

    def embed(self, audio, sr: int) -> MERTEmbedding:
        """Frames of the chosen layer and their time mean for a mono signal at ``sr``."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected mono audio (samples,), got shape {audio.shape}; downmix first")
        if sr != self.sample_rate:
            import soxr

            audio = soxr.resample(audio, sr, self.sample_rate).astype(np.float32)
        if audio.size < self.receptive_field:
            audio = np.pad(audio, (0, self.receptive_field - audio.size))
        frames, stamps = [], []
        for start in range(0, audio.size, self.window):
            piece = audio[start : start + self.window]
            if piece.size < self.receptive_field:  # a tail shorter than one frame adds nothing
                break
            out = self._window_frames(piece)
            frames.append(out)
            stamps.append((start + np.arange(len(out)) * self.hop + self.receptive_field / 2) / self.sample_rate)
        frames = torch.cat(frames).numpy()
        return MERTEmbedding(clip=frames.mean(axis=0), frames=frames, timestamps=np.concatenate(stamps))


def load_mert() -> MERTEncoder:
    """The ``--encoder mt2.bench.mert:load_mert`` callable: a :class:`MERTEncoder` configured by
    ``MT2_MERT_PATH`` (required), ``MT2_MERT_LAYER`` (``mean`` or 0..12), ``MT2_MERT_TRUST_REMOTE_CODE``
    (``1`` to run the folder's model code, which MERT needs) and ``MT2_MERT_DEVICE`` (``cpu``)."""
    folder = os.environ.get(PATH_VARIABLE)
    if not folder:
        raise ValueError(f"set {PATH_VARIABLE} to a local MERT checkpoint folder (e.g. a download of m-a-p/MERT-v1-95M)")
    return MERTEncoder(
        folder,
        layer=os.environ.get(LAYER_VARIABLE, DEFAULT_LAYER),
        trust_remote_code=os.environ.get(TRUST_VARIABLE, "0") == "1",
        device=os.environ.get(DEVICE_VARIABLE, "cpu"),
    )
