"""The encoder: audio in, embeddings and keys out (DESIGN.md section 6).

**Windows.** Audio is downmixed to mono, resampled to 16 kHz and cut into
non-overlapping windows (hop = window) of :attr:`Encoder.window_frames` CQT frames: the
longest run of whole tokens that the model's learned positions cover (126 frames =
4.03 s with one frame per token; 124 frames with four). Each window is analysed on its
own: its CQT is computed from its own samples and normalised on its own
(:func:`mt2.frontend.model_window`). A window's output therefore depends on nothing
outside it, so the embedding of a long input is the concatenation of the embeddings of
its windows, and :meth:`Encoder.embed_file` streams a file with memory that does not
grow with its duration (only the outputs do: one vector per frame token). The price is
at the window edges, where the lowest CQT bins see the window's reflection instead of
its neighbour (about 0.2 s at the bottom of the 84-bin window).

The last window is zero-padded. Its padded frames are dropped from the frame outputs and
weigh nothing in clip averages: a window weighs its number of valid frames.

**Keys.** The key signature comes from the equivariant class token alone, which was
trained without labels; the :class:`~mt2.inference.calibration.Calibration` stored with the
weights (fitted on rendered reference pieces, no labelled recording) says which output bin is
which signature. Major versus minor is not self-supervised: it comes from the stored
mode probe (a linear classifier trained with labels, :mod:`mt2.training.mode_probe`) when
there is one, and otherwise from the Krumhansl-Kessler templates on the input chroma (no
learning), comparing only the two keys that share the estimated signature. The probe reads
the equivariant token averaged over windows with its 12 pitch-class axis rolled so that the
estimated output bin sits at 0 (:meth:`Encoder.canonical_token`): a transposition rolls
token and bin alike, so the probe's input, and its decision, do not change.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import soxr
import torch
from torch import nn

from mt2.audio import RESAMPLE_QUALITY, load_audio, stream_audio
from mt2.frontend import DEFAULT_OFFSET, HOP_LENGTH, SAMPLE_RATE, CQTFrontend, model_window
from mt2.inference.calibration import Calibration
from mt2.inference.checkpoint import read_checkpoint, resolve, write_checkpoint
from mt2.keys import MODES, chroma_from_window, key_name, signature_name, template_mode
from mt2.model import ModelConfig, MT2Model
from mt2.model.vit import split_tokens

#: Readouts of :meth:`Encoder.embed` (DESIGN.md section 2).
READOUTS = ("equivariant", "contrastive", "average", "frames")


@dataclass
class Embedding:
    """What :meth:`Encoder.embed` returns; ``W`` windows, ``K`` class tokens, ``F`` frame tokens.

    Attributes:
        readout: the readout of ``windows`` and ``clip``.
        layer: the block whose tokens were read (negative counts from the end).
        roles: the role of each class token, in order.
        clip: ``(D,)`` the readout for the whole input: mean of ``windows`` weighted by
            the valid length of each window.
        windows: ``(W, D)`` the readout of each window.
        class_tokens: ``(W, K, D)`` every class token of each window.
        frames: ``(F, D)`` frame tokens of all windows in time order, padding dropped.
        timestamps: ``(F,)`` centre of each frame token in seconds.
        window_starts: ``(W,)`` start of each window in seconds.
        window_lengths: ``(W,)`` valid (unpadded) duration of each window in seconds.
    """

    readout: str
    layer: int
    roles: tuple[str, ...]
    clip: np.ndarray
    windows: np.ndarray
    class_tokens: np.ndarray
    frames: np.ndarray
    timestamps: np.ndarray
    window_starts: np.ndarray
    window_lengths: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """The array fields by name (what ``mt2 embed`` writes)."""
        names = ("clip", "windows", "class_tokens", "frames", "timestamps", "window_starts", "window_lengths")
        return {name: getattr(self, name) for name in names}


@dataclass
class KeyEstimate:
    """What :meth:`Encoder.key` returns.

    Attributes:
        key: ``"A minor"`` (mir_eval spelling).
        tonic: pitch class of the tonic, C = 0.
        mode: ``"major"`` or ``"minor"``.
        signature: key signature as the relative major's pitch class (:mod:`mt2.keys`).
        signature_name: e.g. ``"C major / A minor (0 sharps)"``.
        confidence: probability of the chosen signature, ``profile[signature]``.
        profile: ``(12,)`` signature probabilities indexed by signature (C = 0), the
            equivariant token's softmax averaged over windows and calibrated.
        mode_source: ``"probe"`` (stored mode probe) or ``"template"`` (Krumhansl-Kessler).
    """

    key: str
    tonic: int
    mode: str
    signature: int
    signature_name: str
    confidence: float
    profile: np.ndarray = field(repr=False)
    mode_source: str

    def to_dict(self) -> dict:
        """JSON-ready fields (``profile`` as a list)."""
        return {
            "key": self.key, "tonic": self.tonic, "mode": self.mode, "signature": self.signature,
            "signature_name": self.signature_name, "confidence": self.confidence,
            "profile": [float(p) for p in self.profile], "mode_source": self.mode_source,
        }


@dataclass
class _KeyStatistics:
    """Window averages (weighted by valid frames) that a key estimate needs."""

    bin_probabilities: np.ndarray  # (12,) uncalibrated softmax of the equivariant head
    token: np.ndarray  # (D,) the equivariant class token
    chroma: np.ndarray  # (12,) of the model input, C = 0


class Encoder(nn.Module):
    """Frontend + :class:`~mt2.model.MT2Model` + optional calibration and mode probe.

    Build one with :func:`load`, :meth:`from_pretrained`, or from a model:
    ``Encoder(build_model("mt2-tiny", "mt2"))``. All methods run under
    ``torch.inference_mode`` on the device of the model (move it with ``.to(device)``).

    Args:
        model: the network.
        calibration: which equivariant output bin is which key signature (needed by :meth:`key`).
        mode_probe: ``Linear(token_dim, 2)`` major/minor classifier over the canonical equivariant
            class token, or None for the template rule (see the module docstring).
        compression: magnitude compression the model was trained with (:mod:`mt2.frontend`).
        offset: CQT bin where the model's 84-bin window starts.
        training: free description of how the weights were made, saved with them as
            ``training`` in ``config.json`` and kept as :attr:`training_info`
            (``nn.Module.training`` is the train/eval flag).
    """

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        model: MT2Model,
        calibration: Calibration | None = None,
        mode_probe: nn.Linear | None = None,
        compression: str = "sqrt",
        offset: int = DEFAULT_OFFSET,
        training: dict | None = None,
    ) -> None:
        super().__init__()
        if mode_probe is not None and model.config.layout != "pitch-class":
            raise ValueError(f"a mode probe reads the canonical token of the pitch-class layout; this model's layout is {model.config.layout!r}")
        self.frontend = CQTFrontend(compression=compression)
        self.model = model
        self.mode_probe = mode_probe
        self.calibration = calibration
        self.compression = compression
        self.offset = offset
        self.training_info = dict(training or {})
        self.eval()

    # -- persistence -------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write ``model.safetensors`` and ``config.json`` to ``folder`` (see :mod:`mt2.inference.checkpoint`)."""
        write_checkpoint(self, folder)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "Encoder":
        """Load a folder written by :meth:`save_pretrained`; pickled checkpoints are refused."""
        return cls(**read_checkpoint(folder))

    # -- properties --------------------------------------------------------------------
    @property
    def config(self) -> ModelConfig:
        """The model's :class:`~mt2.model.ModelConfig`."""
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def embedding_size(self) -> int:
        """Length ``D`` of every token, so of every readout."""
        return self.config.token_dim

    @property
    def window_frames(self) -> int:
        """CQT frames per window: the whole tokens that the learned positions cover."""
        return self.config.max_tokens // self.config.frames_per_token * self.config.frames_per_token

    @property
    def window_samples(self) -> int:
        """Samples at 16 kHz per window (the window hop too: windows do not overlap)."""
        return self.window_frames * HOP_LENGTH

    @property
    def readouts(self) -> tuple[str, ...]:
        """The readouts this model offers: its class-token roles, ``average`` and ``frames``."""
        return (*self.config.roles, "average", "frames")

    # -- embeddings --------------------------------------------------------------------
    def embed(self, audio, sr: int, readout: str = "average", layer: int = -1, batch_size: int = 16) -> Embedding:
        """Embed audio of any length, sample rate and channel count.

        Args:
            audio: numpy array or torch tensor, ``(N,)`` mono or 2-D multichannel. For 2-D
                input the shorter axis is the channel axis (``(C, N)`` and ``(N, C)`` both
                work; a square array is read as ``(C, N)``); channels are averaged.
            sr: sample rate of ``audio`` in Hz; resampled to 16 kHz with soxr.
            readout: ``equivariant``, ``contrastive``, ``average`` (mean of the class
                tokens) or ``frames`` (mean of the frame tokens); see :attr:`readouts`.
            layer: block whose tokens are read, ``-1`` the last (through the final norm).
            batch_size: windows per forward pass.

        Raises:
            ValueError: empty or non-finite audio, a bad shape or rate, a readout the
                model lacks, or a layer out of range.
        """
        self.check_readout(readout, layer)
        return self._embed_blocks([to_model_rate(audio, sr)], readout, layer, batch_size)

    def embed_file(
        self, path: str | os.PathLike, readout: str = "average", layer: int = -1, batch_size: int = 16, block_seconds: float = 60.0
    ) -> Embedding:
        """:meth:`embed` of an audio file, decoded block by block (bounded memory).

        Equals ``embed(load_audio(path), 16000)`` up to the resampler's block-edge tolerance.

        Raises:
            mt2.audio.AudioError: the file cannot be used (names the file and the reason).
        """
        self.check_readout(readout, layer)
        return self._embed_blocks(stream_audio(path, SAMPLE_RATE, block_seconds), readout, layer, batch_size)

    def check_readout(self, readout: str, layer: int) -> None:
        """Raise ValueError unless this model offers ``readout`` and has block ``layer``."""
        if readout not in self.readouts:
            raise ValueError(
                f"readout {readout!r} is not available: this model has class tokens {self.config.roles}, "
                f"so its readouts are {', '.join(self.readouts)}"
            )
        depth = self.config.depth
        if not -depth <= layer < depth:
            raise ValueError(f"layer {layer} is out of range for a model with {depth} blocks (use -{depth}..{depth - 1})")

    @torch.inference_mode()
    def _embed_blocks(self, blocks: Iterable[np.ndarray], readout: str, layer: int, batch_size: int) -> Embedding:
        k, per_token = self.model.num_prefix_tokens, self.config.frames_per_token
        class_tokens, windows, frames, timestamps, valid_counts = [], [], [], [], []
        first_window = 0
        for batch, valid in self._batches(blocks, batch_size):
            tokens = self.model.forward_intermediates(batch, [layer])[0].float().cpu().numpy()
            valid_tokens = -(-valid // per_token)
            for i, (cls, frame_tokens, count) in enumerate(zip(tokens[:, :k], tokens[:, k:], valid_tokens)):
                kept = frame_tokens[:count]
                start = (first_window + i) * self.window_frames
                centres = start + np.arange(count) * per_token + (per_token - 1) / 2
                class_tokens.append(cls)
                frames.append(kept)
                timestamps.append(centres * HOP_LENGTH / SAMPLE_RATE)
                windows.append(kept.mean(axis=0) if readout == "frames" else _class_readout(cls, readout, self.config.roles))
            valid_counts.append(valid)
            first_window += len(valid)
        weights = np.concatenate(valid_counts).astype(np.float64)
        windows = np.stack(windows)
        frame_seconds = HOP_LENGTH / SAMPLE_RATE
        return Embedding(
            readout=readout,
            layer=layer,
            roles=self.config.roles,
            clip=(weights @ windows / weights.sum()).astype(np.float32),
            windows=windows,
            class_tokens=np.stack(class_tokens),
            frames=np.concatenate(frames),
            timestamps=np.concatenate(timestamps),
            window_starts=np.arange(len(weights)) * self.window_frames * frame_seconds,
            window_lengths=weights * frame_seconds,
        )

    def _batches(self, blocks: Iterable[np.ndarray], batch_size: int) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        """Model windows ``(B, 84, window_frames)`` and their valid frame counts ``(B,)``."""
        for audio, valid_samples in cut_windows(blocks, self.window_samples, batch_size):
            magnitude = self.frontend.magnitude(torch.from_numpy(audio).to(self.device))
            # A window of S samples has 1 + S / hop centred frames; the last one is centred
            # on the next window's first sample and belongs to it.
            windows = model_window(magnitude[..., : self.window_frames], self.offset, self.compression)
            yield windows, -(-valid_samples // HOP_LENGTH)

    # -- keys ----------------------------------------------------------------------------
    def key(self, audio, sr: int, batch_size: int = 16) -> KeyEstimate:
        """Key of audio (any length, rate and channels, as :meth:`embed`).

        The signature is the argmax of the calibrated equivariant profile; the mode comes
        from the mode probe or the template rule (module docstring).

        Raises:
            ValueError: the model has no equivariant class token, or no calibration is stored.
        """
        self.check_key_support()
        return self._key_from(self._key_statistics([to_model_rate(audio, sr)], batch_size))

    def key_file(self, path: str | os.PathLike, batch_size: int = 16, block_seconds: float = 60.0) -> KeyEstimate:
        """:meth:`key` of an audio file, decoded block by block (bounded memory)."""
        self.check_key_support()
        return self._key_from(self._key_statistics(stream_audio(path, SAMPLE_RATE, block_seconds), batch_size))

    def bin_probabilities(self, audio, sr: int, batch_size: int = 16) -> np.ndarray:
        """The equivariant head's softmax ``(12,)`` averaged over windows, uncalibrated (output bin order)."""
        self._check_equivariant()
        return self._key_statistics([to_model_rate(audio, sr)], batch_size).bin_probabilities

    def _check_equivariant(self) -> None:
        if self.model.equivariant_head is None:
            raise ValueError(f"key estimation needs an equivariant class token; this model has class tokens {self.config.roles}")

    def check_key_support(self) -> None:
        """Raise ValueError unless :meth:`key` can run: an equivariant token and a stored calibration."""
        self._check_equivariant()
        if self.calibration is None:
            raise ValueError(
                "this encoder stores no calibration, so its output bins are not tied to key signatures: "
                "run mt2.training.calibrate.calibrate_encoder(encoder), then encoder.save_pretrained(folder)"
            )

    @torch.inference_mode()
    def _key_statistics(self, blocks: Iterable[np.ndarray], batch_size: int) -> _KeyStatistics:
        probabilities = chroma = token = 0.0
        total = 0
        eq = self.model.role_index("equivariant")
        for batch, valid in self._batches(blocks, batch_size):
            out = self.model(batch)
            weights = torch.from_numpy(valid).to(out.key_logits)
            probabilities = probabilities + (weights @ torch.softmax(out.key_logits, dim=-1)).cpu().numpy()
            token = token + (weights @ out.tokens[:, eq].float()).cpu().numpy()
            for window, count in zip(batch.cpu().numpy(), valid):
                chroma = chroma + count * chroma_from_window(window[:, :count], self.offset)
            total += int(valid.sum())
        return _KeyStatistics(
            bin_probabilities=probabilities / total,
            token=token / total,
            chroma=chroma / total,
        )

    def canonical_token(self, token: np.ndarray, output_bin: int) -> np.ndarray:
        """The equivariant token ``(D,)`` with its 12 pitch-class axis rolled back by
        ``output_bin`` (the argmax of the equivariant head): transposing the input rolls the
        token and the bin together, so the result does not change (the mode probe's input).

        Raises:
            ValueError: the model is not in the ``pitch-class`` layout (no 12 axis to roll).
        """
        if self.config.layout != "pitch-class":
            raise ValueError(f"a canonical token needs the pitch-class layout; this model's layout is {self.config.layout!r}")
        e, u = split_tokens(torch.as_tensor(token), self.config.pc_channels)
        return torch.cat([torch.roll(e, -int(output_bin), dims=-2).flatten(-2), u], dim=-1).numpy()

    def _mode_probabilities(self, stats: _KeyStatistics) -> np.ndarray:
        """``(2,)`` major/minor probabilities of the stored mode probe for one clip's statistics."""
        features = self.canonical_token(stats.token, int(np.argmax(stats.bin_probabilities)))
        with torch.inference_mode():
            logits = self.mode_probe(torch.from_numpy(features).to(self.mode_probe.weight))
        return torch.softmax(logits, dim=-1).cpu().numpy()

    def _key_from(self, stats: _KeyStatistics) -> KeyEstimate:
        profile = self.calibration.signature_probabilities(stats.bin_probabilities)
        signature = int(np.argmax(profile))
        if self.mode_probe is not None:
            mode, source = MODES[int(np.argmax(self._mode_probabilities(stats)))], "probe"
        else:
            mode, source = template_mode(stats.chroma, signature), "template"
        tonic = signature if mode == "major" else (signature - 3) % 12
        return KeyEstimate(
            key=key_name(tonic, mode),
            tonic=tonic,
            mode=mode,
            signature=signature,
            signature_name=signature_name(signature),
            confidence=float(profile[signature]),
            profile=profile,
            mode_source=source,
        )


def _class_readout(class_tokens: np.ndarray, readout: str, roles: tuple[str, ...]) -> np.ndarray:
    """Readout of one window's class tokens ``(K, D)``: one role's token, or their mean."""
    return class_tokens.mean(axis=0) if readout == "average" else class_tokens[roles.index(readout)]


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


def cut_windows(blocks: Iterable[np.ndarray], size: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Cut consecutive mono blocks into windows of ``size`` samples, ``batch_size`` at a time.

    Yields ``(windows (B, size), valid samples (B,))``; the last window is zero-padded.
    Holds at most one block and one batch.

    Raises:
        ValueError: the blocks hold no sample at all.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pending = np.zeros(0, np.float32)
    batch: list[np.ndarray] = []
    seen = 0
    for block in blocks:
        seen += len(block)
        pending = np.concatenate([pending, np.asarray(block, dtype=np.float32)])
        full = len(pending) // size
        for i in range(full):
            batch.append(pending[i * size : (i + 1) * size])
            if len(batch) == batch_size:
                yield np.stack(batch), np.full(len(batch), size)
                batch = []
        pending = pending[full * size :].copy()
    if seen == 0:
        raise ValueError("audio has no samples")
    valid = np.full(len(batch) + bool(len(pending)), size)
    if len(pending):
        valid[-1] = len(pending)
        batch.append(np.pad(pending, (0, size - len(pending))))
    if batch:
        yield np.stack(batch), valid


def load(name_or_path: str | os.PathLike) -> Encoder:
    """An :class:`Encoder` from a shipped name (``mt2``, ``contrastive``, ``equivariant``) or a folder.

    Raises:
        mt2.inference.checkpoint.CheckpointError: a pickled checkpoint (with the export
            command), a shipped name missing from this installation (listing those present),
            or a folder that is not a saved model.
        FileNotFoundError: neither a path nor a shipped name.
    """
    return Encoder.from_pretrained(resolve(name_or_path))
