"""musicnn (Pons and Serra, 2019) in PyTorch, as an anchor system of ``mt2 bench``.

The ``musicnn`` package (PyPI, ISC licence) ships taggers trained on real music as
TensorFlow checkpoints; :mod:`mt2.bench.musicnn_convert` turns them into safetensors once,
and this module runs them without TensorFlow. The converted MSD_musicnn and MTT_musicnn
weights ship in ``mt2/weights/anchors/`` with the package's licence beside them.

**Front end** (the package's ``extractor.batch_data``): mono audio at 16 kHz; power mel
spectrogram as ``librosa.feature.melspectrogram`` computes it (``n_fft`` 512, hop 256,
periodic Hann window, centred frames with reflect padding as in the librosa 0.7 the package
asks for, 96 Slaney mel bands from 0 to 8 kHz, Slaney area normalisation); then
``log10(10000 * mel + 1)``, in float32. The package casts the mel spectrogram to float16
before that product, which overflows to inf wherever ``mel > 6.55`` (loud music), and the
pooled features then carry inf and NaN; here every output is checked finite.

**Patches**: non-overlapping cuts of ``PATCH_FRAMES`` = 187 frames (3 s: the package's
``time_to_frames(3) + 1``); a tail shorter than a patch is left out of the clip readouts, as
the package does; a clip shorter than one patch is one shorter patch (the network is
convolutional over time and pools globally), and one shorter than 512 samples is padded with
silence to 512.

**Network** (the package's ``models.build_musicnn``; T frames, 96 mel bands in):

* front end: batch norm of the input, then five branches, each conv -> ReLU -> batch norm ->
  max over frequency: two timbral convolutions of 204 filters over 7 frames x 38 and 67
  bands (time padded by 3, frequency valid) and three temporal ones of 51 filters over
  128, 64 and 32 frames x 1 band (TensorFlow's "same" padding: ``(k-1)//2`` before,
  the rest after); concatenated: 561 channels per frame.
* mid-end: three 1-D convolutions over 7 frames (padding 3), 64 filters, conv -> ReLU ->
  batch norm; the second and third add their input (residual). The mid-end features are
  the front end and the three outputs side by side: ``753 = 561 + 3 * 64`` per frame.
* back end: max and mean of the mid-end features over time, interleaved per feature
  (``[max_0, mean_0, max_1, ...]``, TensorFlow's flatten of the pair), batch norm, dense 200
  -> ReLU -> batch norm (the **penultimate** layer), dense to the tags; the **taggram** is
  its sigmoid. Batch norms use their moving statistics, epsilon 1e-3 (TensorFlow's default).

**Readouts** (:data:`READOUTS`), one clip vector averaged over a clip's patches:
``pooled`` is the max over time of the mid-end features (753-d), ``penultimate`` the
penultimate layer (200-d). Frame-level tasks read the mid-end features of every frame (tail
patch included) averaged over pairs of frames (:data:`FRAME_POOL`): 753-d at 31.25 Hz, the
rate of MT2's frame tokens, stamped with each pair's centre ``(2i + 0.5) * 256 / 16000`` s.
The package's extractor (0.1.0) returns the first patch's penultimate layer for every
patch; this module runs the graph on every patch.

Benchmark systems (``mt2 bench --encoder ...``)::

    mt2.bench.musicnn:load_msd              # MSD_musicnn, pooled (753-d)
    mt2.bench.musicnn:load_msd_penultimate  # MSD_musicnn, penultimate (200-d)
    mt2.bench.musicnn:load_mtt              # MTT_musicnn, pooled
    mt2.bench.musicnn:load_mtt_penultimate  # MTT_musicnn, penultimate

``MT2_MUSICNN_WEIGHTS`` names a folder of converted weights (the output of
:mod:`mt2.bench.musicnn_convert`) to use instead of the shipped ones.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
#: The log compression ``log10(LOG_SCALE * mel + 1)`` (the package's "logC").
LOG_SCALE = 10000.0
#: 3 s of frames: ``librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1``.
PATCH_FRAMES = 187
#: Spectrogram frames averaged into one frame-level vector (62.5 Hz -> 31.25 Hz, MT2's frame rate).
FRAME_POOL = 2
#: Batch-norm epsilon of ``tf.compat.v1.layers.batch_normalization``.
NORM_EPSILON = 1e-3
TIMBRAL_FILTERS, TIMBRAL_WIDTHS = 204, (38, 67)  # int(1.6 * 128); int(0.4 * 96), int(0.7 * 96)
TEMPORAL_FILTERS, TEMPORAL_LENGTHS = 51, (128, 64, 32)  # int(1.6 * 32)
MIDEND_FILTERS, BACKEND_UNITS = 64, 200
FRONTEND_CHANNELS = len(TIMBRAL_WIDTHS) * TIMBRAL_FILTERS + len(TEMPORAL_LENGTHS) * TEMPORAL_FILTERS  # 561
MIDEND_CHANNELS = FRONTEND_CHANNELS + 3 * MIDEND_FILTERS  # 753

#: Checkpoint name in the package -> file stem of its converted weights.
MODELS = {"MSD_musicnn": "musicnn-msd", "MTT_musicnn": "musicnn-mtt"}
READOUTS = ("pooled", "penultimate")
WEIGHTS_VARIABLE = "MT2_MUSICNN_WEIGHTS"
CONVERT_COMMAND = "python -m mt2.bench.musicnn_convert --package-dir DIR --out FOLDER"


class MusicnnError(ValueError):
    """Converted weights that are missing or do not fit the network; the message names the file and the fix."""


# ----------------------------------------------------------------------------- front end


def _mel_filters() -> torch.Tensor:
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32))


class LogMel(nn.Module):
    """``(samples,)`` at 16 kHz -> ``(frames, 96)``: ``log10(10000 * mel + 1)`` in float32 (module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)
        self.register_buffer("filters", _mel_filters(), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(audio.float(), N_FFT, HOP, window=self.window, center=True, pad_mode="reflect", return_complex=True)
        mel = self.filters @ spectrum.abs().square()
        return torch.log10(LOG_SCALE * mel + 1.0).T


# ----------------------------------------------------------------------------- network


class FrozenNorm(nn.Module):
    """Batch norm at inference over dimension 1: ``(x - running_mean) / sqrt(running_var + 1e-3) * weight + bias``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = self.weight / torch.sqrt(self.running_var + NORM_EPSILON)
        return (x - self.running_mean.view(shape)) * scale.view(shape) + self.bias.view(shape)


class ConvBlock(nn.Module):
    """conv -> ReLU -> batch norm (the package's order), then the max over frequency for 2-D convs."""

    def __init__(self, conv: nn.Conv1d | nn.Conv2d, pad: tuple[int, ...]) -> None:
        super().__init__()
        self.conv = conv
        self.norm = FrozenNorm(conv.out_channels)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(F.relu(self.conv(F.pad(x, self.pad))))
        return out.amax(dim=3) if out.dim() == 4 else out


@dataclass
class MusicnnOutput:
    """Per patch: ``taggram`` (P, tags), ``penultimate`` (P, 200), ``max_pool`` and ``mean_pool``
    (P, 753); ``midend`` (P, 753, T) the mid-end features of every frame."""

    taggram: torch.Tensor
    penultimate: torch.Tensor
    max_pool: torch.Tensor
    mean_pool: torch.Tensor
    midend: torch.Tensor


class Musicnn(nn.Module):
    """The musicnn network (module doc) on log-mel patches ``(P, T, 96)``."""

    def __init__(self, tags: int = 50) -> None:
        super().__init__()
        self.input_norm = FrozenNorm(1)
        # time padding (left, right) of each branch; F.pad lists the last dimension (frequency) first
        self.timbral = nn.ModuleList(
            ConvBlock(nn.Conv2d(1, TIMBRAL_FILTERS, (7, width)), (0, 0, 3, 3)) for width in TIMBRAL_WIDTHS)
        self.temporal = nn.ModuleList(
            ConvBlock(nn.Conv2d(1, TEMPORAL_FILTERS, (length, 1)), (0, 0, (length - 1) // 2, length // 2))
            for length in TEMPORAL_LENGTHS)
        self.midend = nn.ModuleList(
            ConvBlock(nn.Conv1d(FRONTEND_CHANNELS if i == 0 else MIDEND_FILTERS, MIDEND_FILTERS, 7), (3, 3)) for i in range(3))
        self.pool_norm = FrozenNorm(2 * MIDEND_CHANNELS)
        self.dense = nn.Linear(2 * MIDEND_CHANNELS, BACKEND_UNITS)
        self.dense_norm = FrozenNorm(BACKEND_UNITS)
        self.tagger = nn.Linear(BACKEND_UNITS, tags)

    def forward(self, patches: torch.Tensor) -> MusicnnOutput:
        x = self.input_norm(patches[:, None])  # (P, 1, T, 96)
        front = torch.cat([block(x) for block in (*self.timbral, *self.temporal)], dim=1)  # (P, 561, T)
        layers = [front]
        h = self.midend[0](front)
        layers.append(h)
        for block in self.midend[1:]:
            h = block(h) + h
            layers.append(h)
        midend = torch.cat(layers, dim=1)  # (P, 753, T)
        max_pool, mean_pool = midend.amax(dim=2), midend.mean(dim=2)
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)
        penultimate = self.dense_norm(F.relu(self.dense(self.pool_norm(pooled))))
        return MusicnnOutput(torch.sigmoid(self.tagger(penultimate)), penultimate, max_pool, mean_pool, midend)


def patch_starts(frames: int) -> list[int]:
    """Starts of the full non-overlapping patches of a clip of ``frames`` frames (``[0]`` when shorter than one)."""
    return list(range(0, frames - PATCH_FRAMES + 1, PATCH_FRAMES)) or [0]


# ----------------------------------------------------------------------------- weights


def shipped_weights() -> Traversable:
    """The folder of the converted weights that ship with mt2."""
    return resources.files("mt2") / "weights" / "anchors"


def weights_folder() -> Path | Traversable:
    """``$MT2_MUSICNN_WEIGHTS`` when set, else :func:`shipped_weights`."""
    folder = os.environ.get(WEIGHTS_VARIABLE)
    return Path(folder) if folder else shipped_weights()


def load_network(model: str, folder: Path | Traversable | None = None) -> tuple[Musicnn, dict]:
    """The network of checkpoint ``model`` (a key of :data:`MODELS`) and its record (JSON) from ``folder``.

    Raises:
        MusicnnError: unknown model, missing files, or tensors that do not fit the network.
    """
    from safetensors.torch import load as load_tensors

    if model not in MODELS:
        raise MusicnnError(f"unknown musicnn model {model!r}; known: {', '.join(MODELS)}")
    folder = weights_folder() if folder is None else folder
    weights, record_file = folder / f"{MODELS[model]}.safetensors", folder / f"{MODELS[model]}.json"
    if not (weights.is_file() and record_file.is_file()):
        raise MusicnnError(f"{weights}: no converted {model} weights here; convert the package's checkpoints once with `{CONVERT_COMMAND}`")
    record = json.loads(record_file.read_text())
    network = Musicnn(tags=len(record["tags"]))
    try:
        network.load_state_dict(load_tensors(weights.read_bytes()), strict=True)
    except RuntimeError as error:
        raise MusicnnError(f"{weights}: the tensors do not fit the musicnn network ({' '.join(str(error).split())}); "
                           f"convert again with `{CONVERT_COMMAND}`") from None
    return network.eval(), record


# ----------------------------------------------------------------------------- encoder


@dataclass
class MusicnnEmbedding:
    """``clip`` the readout averaged over patches; ``frames`` (F, 753) mid-end features (pairs of
    frames averaged) at ``timestamps`` (F,) in seconds."""

    clip: np.ndarray
    frames: np.ndarray
    timestamps: np.ndarray


class MusicnnEncoder(nn.Module):
    """A musicnn checkpoint with ``embed(audio, sr)`` and ``tag(audio, sr)`` (module doc)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, model: str = "MSD_musicnn", readout: str = "pooled", folder: Path | Traversable | None = None) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise MusicnnError(f"unknown musicnn readout {readout!r}; known: {', '.join(READOUTS)}")
        self.network, self.record = load_network(model, folder)
        self.model_name, self.readout = model, readout
        self.tags = list(self.record["tags"])
        self.log_mel = LogMel()
        # part of the state, so that the benchmark's weights hash (and feature cache) tells readouts and frame pooling apart
        self.register_buffer("readout_choice", torch.tensor([READOUTS.index(readout), FRAME_POOL]))

    @torch.inference_mode()
    def run(self, audio, sr: int = SAMPLE_RATE) -> tuple[MusicnnOutput, MusicnnOutput | None, int]:
        """The network on a clip's full patches, on its tail (None when there is none), and the frame count.

        Raises:
            ValueError: audio that is not mono, or outputs that are not finite.
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected mono audio (samples,), got shape {audio.shape}; downmix first")
        if sr != SAMPLE_RATE:
            import soxr

            audio = soxr.resample(audio, sr, SAMPLE_RATE).astype(np.float32)
        if audio.size < N_FFT:  # the STFT's reflect padding needs more than half a window: pad with silence
            audio = np.pad(audio, (0, N_FFT - audio.size))
        spectrogram = self.log_mel(torch.from_numpy(audio))
        frames = spectrogram.shape[0]
        starts = patch_starts(frames)
        full = self.network(torch.stack([spectrogram[s:s + PATCH_FRAMES] for s in starts]))
        tail_start = starts[-1] + PATCH_FRAMES
        tail = self.network(spectrogram[None, tail_start:]) if tail_start < frames else None
        for output in (full, tail):
            if output is not None and not all(torch.isfinite(t).all() for t in vars(output).values()):
                raise ValueError(f"musicnn {self.model_name}: non-finite outputs on a clip of {audio.size} samples")
        return full, tail, frames

    def embed(self, audio, sr: int) -> MusicnnEmbedding:
        """The readout averaged over the full patches, and the mid-end features of every pair of frames."""
        full, tail, frames = self.run(audio, sr)
        vectors = full.max_pool if self.readout == "pooled" else full.penultimate
        midend = torch.cat([m.T for m in full.midend] + ([tail.midend[0].T] if tail is not None else []))[:frames]
        groups = torch.arange(frames) // FRAME_POOL
        pooled = torch.zeros(int(groups[-1]) + 1, midend.shape[1]).index_add_(0, groups, midend)
        sizes = torch.bincount(groups).float()
        starts = torch.arange(len(pooled)) * FRAME_POOL
        return MusicnnEmbedding(vectors.mean(dim=0).numpy(), (pooled / sizes[:, None]).numpy(),
                                ((starts + (sizes - 1) / 2) * HOP / SAMPLE_RATE).numpy().astype(np.float64))

    def tag(self, audio, sr: int) -> dict[str, float]:
        """The taggram averaged over the full patches, by tag name."""
        full, _, _ = self.run(audio, sr)
        return dict(zip(self.tags, full.taggram.mean(dim=0).tolist()))


def load_msd() -> MusicnnEncoder:
    """``--encoder mt2.bench.musicnn:load_msd``: MSD_musicnn, pooled features (753-d)."""
    return MusicnnEncoder("MSD_musicnn", "pooled")


def load_msd_penultimate() -> MusicnnEncoder:
    """``--encoder mt2.bench.musicnn:load_msd_penultimate``: MSD_musicnn, penultimate layer (200-d)."""
    return MusicnnEncoder("MSD_musicnn", "penultimate")


def load_mtt() -> MusicnnEncoder:
    """``--encoder mt2.bench.musicnn:load_mtt``: MTT_musicnn, pooled features (753-d)."""
    return MusicnnEncoder("MTT_musicnn", "pooled")


def load_mtt_penultimate() -> MusicnnEncoder:
    """``--encoder mt2.bench.musicnn:load_mtt_penultimate``: MTT_musicnn, penultimate layer (200-d)."""
    return MusicnnEncoder("MTT_musicnn", "penultimate")
