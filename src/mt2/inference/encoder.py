"""The encoder: audio in, embeddings and keys out (DESIGN.md section 6).

**Windows.** Audio is downmixed to mono, resampled to 16 kHz and cut into
non-overlapping windows (hop = window) of :attr:`Encoder.window_frames` CQT frames: the
longest run of whole tokens that the model's learned positions cover (126 frames =
4.03 s with one frame per token; 124 frames with four). Each window is analysed on its
own: its CQT is computed from its own samples and normalised on its own
(:meth:`mt2.frontend.CQTFrontend.window`, the one definition of the model input). A window's
output therefore depends on nothing outside it, so the embedding of a long input is the
concatenation of the embeddings of its windows, and :meth:`Encoder.embed_file` streams a
file with memory that does not grow with its duration (only the outputs do: one vector per
frame token, written once into arrays allocated from the file's duration). The price is
at the window edges, where the lowest CQT bins see the window's reflection instead of
its neighbour (about 0.2 s at the bottom of the 84-bin window).

The last window is zero-padded. Its padded frames are dropped from the frame outputs and
weigh nothing in clip averages: a window weighs its number of valid frames.

**One pass.** Each window goes through the model once, and that pass yields everything: every
class token of every block asked for, the frame tokens, the equivariant head's output and the
input's chroma and level (:class:`Embedding`). Every readout is derived from it
(:meth:`Embedding.readout`), and so is the key (:meth:`Encoder.key_of`).

**Keys.** The key signature comes from the equivariant class token alone, which was
trained without labels; the :class:`~mt2.inference.calibration.Calibration` stored with the
weights (fitted on rendered reference pieces, no labelled recording) says which output bin is
which signature. Major versus minor is not self-supervised: it comes from the stored
mode probe (a linear classifier trained with labels, :mod:`mt2.inference.mode_probe`) when
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

from mt2.audio import RESAMPLE_QUALITY, audio_info, stream_audio
from mt2.frontend import DEFAULT_BACKEND, DEFAULT_OFFSET, HOP_LENGTH, SAMPLE_RATE, CQTFrontend
from mt2.inference.calibration import Calibration
from mt2.inference.checkpoint import read_checkpoint, resolve, write_checkpoint
from mt2.keys import MODES, chroma_from_window, key_name, signature_name, template_mode, tonic_of
from mt2.model import ModelConfig, MT2Model

#: Readouts of :meth:`Encoder.embed` (DESIGN.md section 2).
READOUTS = ("equivariant", "contrastive", "average", "frames")

#: The key label of an input without a key (silence, noise): mir_eval's "uncategorised" key.
NO_KEY = "X"
#: Below this RMS level (dB full scale, 0 dB = a full-scale square wave) an input is silence:
#: no key, whatever the model says (measured values in :meth:`Encoder.key`).
SILENCE_DB = -60.0
#: Below this spectral peakiness (:func:`peakiness`) an input is noise: no key (measured values
#: in :meth:`Encoder.key`).
MIN_PEAKINESS = 0.085


@dataclass(frozen=True)
class Readout:
    """One readout of an :class:`Embedding` at one block.

    Attributes:
        name: ``equivariant``, ``contrastive`` (one class token), ``average`` (mean of the
            class tokens) or ``frames`` (mean of each window's frame tokens).
        layer: the block read, ``0 .. depth - 1``.
        windows: ``(W, D)`` the readout of each window.
        clip: ``(D,)`` mean of ``windows`` weighted by each window's valid duration.
    """

    name: str
    layer: int
    windows: np.ndarray
    clip: np.ndarray


@dataclass
class Embedding:
    """Everything one forward pass over an input's windows yields (:meth:`Encoder.embed`):
    ``W`` windows, ``K`` class tokens, ``F`` frame tokens, ``D`` values per token.

    Every readout of every block held comes from here without another pass:
    ``emb.readout("contrastive")``, ``emb.readout("average", layer=2)``,
    ``emb.frames_at(2)``. The attributes ``clip``, ``windows``, ``class_tokens`` and
    ``frames`` are those of the readout and block that :meth:`Encoder.embed` was asked for.

    Attributes:
        roles: the role of each class token, in order.
        depth: the model's number of blocks; a negative layer counts from the end.
        default_readout: the readout of ``clip`` and ``windows``.
        layer: the block of ``clip``, ``windows``, ``class_tokens`` and ``frames``, ``0 .. depth - 1``.
        layer_class_tokens: block -> ``(W, K, D)`` class tokens of each window. Holds the
            blocks asked for and always the last (the key reads it).
        layer_frames: block -> ``(F, D)`` frame tokens of all windows in time order,
            padding dropped, for the blocks asked for (empty when embedded without frames).
        timestamps: ``(F,)`` centre of each frame token in seconds.
        window_starts: ``(W,)`` start of each window in seconds.
        window_lengths: ``(W,)`` valid (unpadded) duration of each window in seconds.
        frame_counts: ``(W,)`` frame tokens of each window (padding dropped).
        key_probabilities: ``(W, 12)`` softmax of the equivariant head on each window's last-block
            equivariant token, in output-bin order (uncalibrated); None without that token.
        spectrum: ``(W, 84)`` each window's model input averaged over its valid frames (bin ``b``
            is MIDI pitch ``21 + offset + b``, :mod:`mt2.frontend`).
        rms: ``(W,)`` RMS of each window's valid samples at 16 kHz (1 for a full-scale square wave).
    """

    roles: tuple[str, ...]
    depth: int
    default_readout: str
    layer: int
    layer_class_tokens: dict[int, np.ndarray]
    layer_frames: dict[int, np.ndarray]
    timestamps: np.ndarray
    window_starts: np.ndarray
    window_lengths: np.ndarray
    frame_counts: np.ndarray
    key_probabilities: np.ndarray | None
    spectrum: np.ndarray
    rms: np.ndarray

    @property
    def layers(self) -> tuple[int, ...]:
        """The blocks whose class tokens are held, ascending."""
        return tuple(sorted(self.layer_class_tokens))

    def _block(self, layer: int | None) -> int:
        layer = self.layer if layer is None else layer
        if not -self.depth <= layer < self.depth:
            raise ValueError(f"layer {layer} is out of range for a model with {self.depth} blocks (use -{self.depth}..{self.depth - 1})")
        block = layer % self.depth
        if block not in self.layer_class_tokens:
            raise ValueError(f"layer {layer} was not embedded (held: {list(self.layers)}): pass it in embed(..., layers=[...])")
        return block

    def class_tokens_at(self, layer: int | None = None) -> np.ndarray:
        """``(W, K, D)`` class tokens of block ``layer`` (None: :attr:`layer`)."""
        return self.layer_class_tokens[self._block(layer)]

    def frames_at(self, layer: int | None = None) -> np.ndarray:
        """``(F, D)`` frame tokens of block ``layer`` (None: :attr:`layer`).

        Raises:
            ValueError: the block was not embedded, or was embedded without frame tokens.
        """
        block = self._block(layer)
        if block not in self.layer_frames:
            raise ValueError(f"the frame tokens of layer {block} were not kept (held: {sorted(self.layer_frames)}): use Encoder.embed")
        return self.layer_frames[block]

    def readout(self, name: str | None = None, layer: int | None = None) -> Readout:
        """Readout ``name`` (None: :attr:`default_readout`) of block ``layer`` (None: :attr:`layer`).

        ``frames`` averages each window's frame tokens; the other readouts read the class
        tokens. ``clip = sum_w L_w x_w / sum_w L_w`` with ``L_w`` the window's valid duration.

        Raises:
            ValueError: a readout the model lacks, or a block that was not embedded.
        """
        name = self.default_readout if name is None else name
        readouts = (*self.roles, "average", "frames")
        if name not in readouts:
            raise ValueError(f"readout {name!r} is not available: this model has class tokens {self.roles}, so its readouts are {', '.join(readouts)}")
        block = self._block(layer)
        if name == "frames":
            frames = self.frames_at(block)
            starts = np.concatenate([[0], np.cumsum(self.frame_counts)[:-1]])
            windows = (np.add.reduceat(frames, starts, axis=0) / self.frame_counts[:, None]).astype(np.float32)
        elif name == "average":
            windows = self.layer_class_tokens[block].mean(axis=1)
        else:
            windows = self.layer_class_tokens[block][:, self.roles.index(name)]
        weights = self.window_lengths / self.window_lengths.sum()
        return Readout(name, block, windows, (weights @ windows).astype(np.float32))

    @property
    def clip(self) -> np.ndarray:
        """``(D,)`` the default readout of the whole input (:meth:`readout`)."""
        return self.readout().clip

    @property
    def windows(self) -> np.ndarray:
        """``(W, D)`` the default readout of each window."""
        return self.readout().windows

    @property
    def class_tokens(self) -> np.ndarray:
        """``(W, K, D)`` class tokens of :attr:`layer`."""
        return self.class_tokens_at()

    @property
    def frames(self) -> np.ndarray:
        """``(F, D)`` frame tokens of :attr:`layer`."""
        return self.frames_at()

    def arrays(self) -> dict[str, np.ndarray]:
        """The default readout's arrays by name (what ``mt2 embed`` writes): ``clip``,
        ``windows``, ``class_tokens``, ``frames``, ``timestamps``, ``window_starts``, ``window_lengths``."""
        readout = self.readout()
        return {
            "clip": readout.clip, "windows": readout.windows, "class_tokens": self.class_tokens, "frames": self.frames,
            "timestamps": self.timestamps, "window_starts": self.window_starts, "window_lengths": self.window_lengths,
        }


@dataclass
class KeyEstimate:
    """What :meth:`Encoder.key` returns.

    An input without a key (silence, noise: :meth:`Encoder.key` says how it is decided) has
    ``has_key`` False, ``key``, ``tonic``, ``mode``, ``signature`` and ``signature_name`` None,
    and ``label`` :data:`NO_KEY` (``"X"``, mir_eval's uncategorised key).

    Attributes:
        key: ``"A minor"`` (mir_eval spelling), or None: no key.
        tonic: pitch class of the tonic, C = 0 (None: no key).
        mode: ``"major"`` or ``"minor"`` (None: no key).
        signature: key signature as the relative major's pitch class (:mod:`mt2.keys`; None: no key).
        signature_name: e.g. ``"C major / A minor (0 sharps)"`` (None: no key).
        confidence: the profile's maximum (the chosen signature's probability when there is a key).
        profile: ``(12,)`` signature probabilities indexed by signature (C = 0), the
            equivariant token's softmax averaged over windows and calibrated.
        mode_source: ``"probe"`` (stored mode probe), ``"template"`` (Krumhansl-Kessler), None: no key.
        level_db: RMS level of the input in dB full scale (``-inf`` for digital silence).
        peakiness: spectral peakiness of the model input (:func:`peakiness`; noise is low).
    """

    key: str | None
    tonic: int | None
    mode: str | None
    signature: int | None
    signature_name: str | None
    confidence: float
    profile: np.ndarray = field(repr=False)
    mode_source: str | None
    level_db: float
    peakiness: float

    @property
    def has_key(self) -> bool:
        """False for an input without a key (silence, noise)."""
        return self.key is not None

    @property
    def label(self) -> str:
        """The key in mir_eval syntax: :attr:`key`, or :data:`NO_KEY` (``"X"``) without one."""
        return self.key if self.key is not None else NO_KEY

    def to_dict(self) -> dict:
        """JSON-ready fields: ``key`` is :attr:`label` (``"X"``: no key), ``has_key`` is added,
        ``profile`` is a list and ``level_db`` None for digital silence."""
        return {
            "key": self.label, "has_key": self.has_key, "tonic": self.tonic, "mode": self.mode, "signature": self.signature,
            "signature_name": self.signature_name, "confidence": self.confidence,
            "profile": [float(p) for p in self.profile], "mode_source": self.mode_source,
            "level_db": self.level_db if np.isfinite(self.level_db) else None, "peakiness": self.peakiness,
        }


@dataclass
class _KeyStatistics:
    """Window averages (weighted by valid frames) that a key estimate needs."""

    bin_probabilities: np.ndarray  # (12,) uncalibrated softmax of the equivariant head
    token: np.ndarray  # (D,) the equivariant class token
    chroma: np.ndarray  # (12,) of the model input, C = 0
    rms: float  # of the input at 16 kHz
    peakiness: float  # of the model input, window average


class _Rows:
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
        backend: how the CQT is computed (:data:`mt2.frontend.BACKENDS`).
        training: free description of how the weights were made, saved with them as
            ``training`` in ``config.json`` and kept as :attr:`training_info`
            (``nn.Module.training`` is the train/eval flag).
    """

    sample_rate = SAMPLE_RATE
    #: :meth:`key` thresholds (class defaults; set per encoder, e.g. 0 and -inf to always name a key).
    silence_db = SILENCE_DB
    min_peakiness = MIN_PEAKINESS

    def __init__(
        self,
        model: MT2Model,
        calibration: Calibration | None = None,
        mode_probe: nn.Linear | None = None,
        compression: str = "sqrt",
        offset: int = DEFAULT_OFFSET,
        training: dict | None = None,
        backend: str = DEFAULT_BACKEND,
    ) -> None:
        super().__init__()
        if mode_probe is not None and model.config.layout != "pitch-class":
            raise ValueError(f"a mode probe reads the canonical token of the pitch-class layout; this model's layout is {model.config.layout!r}")
        self.frontend = CQTFrontend(compression=compression, offset=offset, backend=backend)
        self.model = model
        self.mode_probe = mode_probe
        self.calibration = calibration
        self.training_info = dict(training or {})
        self.eval()

    # -- persistence -------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write ``model.safetensors`` and ``config.json`` to ``folder`` (see :mod:`mt2.inference.checkpoint`)."""
        write_checkpoint(self, folder)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, backend: str = DEFAULT_BACKEND) -> "Encoder":
        """Load a folder written by :meth:`save_pretrained` with CQT ``backend``
        (:data:`mt2.frontend.BACKENDS`); pickled checkpoints are refused."""
        return cls(**read_checkpoint(folder), backend=backend)

    # -- properties --------------------------------------------------------------------
    @property
    def config(self) -> ModelConfig:
        """The model's :class:`~mt2.model.ModelConfig`."""
        return self.model.config

    @property
    def compression(self) -> str:
        """Magnitude compression of the model input (the frontend's)."""
        return self.frontend.compression

    @property
    def offset(self) -> int:
        """First CQT bin of the model's 84-bin window (the frontend's)."""
        return self.frontend.offset

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
    def embed(self, audio, sr: int, readout: str = "average", layer: int = -1, layers: Iterable[int] = (), batch_size: int = 16) -> Embedding:
        """Embed audio of any length, sample rate and channel count: one forward pass per
        window yields every readout of every block asked for (:class:`Embedding`).

        Args:
            audio: numpy array or torch tensor, ``(N,)`` mono or 2-D multichannel. For 2-D
                input the shorter axis is the channel axis (``(C, N)`` and ``(N, C)`` both
                work; a square array is read as ``(C, N)``); channels are averaged.
            sr: sample rate of ``audio`` in Hz; resampled to 16 kHz with soxr.
            readout: the result's default readout (its ``clip`` and ``windows``):
                ``equivariant``, ``contrastive``, ``average`` (mean of the class tokens) or
                ``frames`` (mean of the frame tokens); see :attr:`readouts`. Every other
                readout is there too: ``emb.readout(name)``.
            layer: the block of the default attributes, ``-1`` the last (through the final norm).
            layers: more blocks to hold, read from the same pass (``emb.readout(name, layer)``,
                ``emb.frames_at(layer)``).
            batch_size: windows per forward pass.

        Raises:
            ValueError: empty or non-finite audio, a bad shape or rate, a readout the
                model lacks, or a layer out of range.
        """
        layers = self.check_readout(readout, layer, layers)
        audio = to_model_rate(audio, sr)
        return self._embed_blocks([audio], len(audio), readout, layer, layers, batch_size)

    def embed_file(
        self, path: str | os.PathLike, readout: str = "average", layer: int = -1, layers: Iterable[int] = (),
        batch_size: int = 16, block_seconds: float = 60.0,
    ) -> Embedding:
        """:meth:`embed` of an audio file, decoded block by block: memory holds one block,
        one batch and the outputs, each output array allocated once from the file's duration.

        Equals ``embed(load_audio(path), 16000)`` up to the resampler's block-edge tolerance.

        Raises:
            mt2.audio.AudioError: the file cannot be used (names the file and the reason).
        """
        layers = self.check_readout(readout, layer, layers)
        return self._embed_blocks(*_file_blocks(path, block_seconds), readout, layer, layers, batch_size)

    def check_readout(self, readout: str, layer: int, layers: Iterable[int] = ()) -> tuple[int, ...]:
        """Raise ValueError unless this model offers ``readout`` and has blocks ``layer`` and
        ``layers``; returns ``layers`` as a tuple."""
        if readout not in self.readouts:
            raise ValueError(
                f"readout {readout!r} is not available: this model has class tokens {self.config.roles}, "
                f"so its readouts are {', '.join(self.readouts)}"
            )
        depth = self.config.depth
        layers = tuple(int(x) for x in layers)
        for index in (layer, *layers):
            if not -depth <= index < depth:
                raise ValueError(f"layer {index} is out of range for a model with {depth} blocks (use -{depth}..{depth - 1})")
        return layers

    @torch.inference_mode()
    def _embed_blocks(
        self, blocks: Iterable[np.ndarray], expected_samples: int, readout: str, layer: int, layers: tuple[int, ...],
        batch_size: int, keep_frames: bool = True,
    ) -> Embedding:
        """The one pass: every window through the model once, each output written once into
        arrays preallocated for ``expected_samples`` samples at 16 kHz (one window of margin)."""
        depth, k, per_token = self.config.depth, self.model.num_prefix_tokens, self.config.frames_per_token
        framed = sorted({x % depth for x in (layer, *layers)}) if keep_frames else []
        read = sorted({*framed, layer % depth, depth - 1})
        capacity = -(-expected_samples // self.window_samples) + 1
        shape = (k, self.embedding_size)
        class_rows = {b: _Rows(capacity, shape) for b in read}
        frame_rows = {b: _Rows(capacity * (self.window_frames // per_token), shape[1:]) for b in framed}
        has_key_token = "equivariant" in self.config.roles
        probabilities, spectrum, rms, valid_frames = [], [], [], []
        for batch, valid, level in self._batches(blocks, batch_size):
            outputs = dict(zip(read, self.model.forward_intermediates(batch, read)))
            valid_tokens = -(-valid // per_token)
            for b, tokens in outputs.items():
                class_rows[b].add(tokens[:, :k].float().cpu().numpy())
                if b in frame_rows:
                    for window, count in zip(tokens[:, k:].float().cpu().numpy(), valid_tokens):
                        frame_rows[b].add(window[:count])
            if has_key_token:
                logits = self.model.forward_head(outputs[depth - 1], "equivariant")
                probabilities.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
            spectrum += [window[:, :count].mean(axis=1) for window, count in zip(batch.float().cpu().numpy(), valid)]
            rms.append(level)
            valid_frames.append(valid)
        valid = np.concatenate(valid_frames)
        counts = -(-valid // per_token)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # token index inside its window
        centres = np.repeat(np.arange(len(valid)) * self.window_frames, counts) + within * per_token + (per_token - 1) / 2
        frame_seconds = HOP_LENGTH / SAMPLE_RATE
        return Embedding(
            roles=self.config.roles,
            depth=depth,
            default_readout=readout,
            layer=layer % depth,
            layer_class_tokens={b: rows.array() for b, rows in class_rows.items()},
            layer_frames={b: rows.array() for b, rows in frame_rows.items()},
            timestamps=centres * frame_seconds,
            window_starts=np.arange(len(valid)) * self.window_frames * frame_seconds,
            window_lengths=valid * frame_seconds,
            frame_counts=counts,
            key_probabilities=np.concatenate(probabilities) if probabilities else None,
            spectrum=np.stack(spectrum),
            rms=np.concatenate(rms),
        )

    def _batches(self, blocks: Iterable[np.ndarray], batch_size: int) -> Iterator[tuple[torch.Tensor, np.ndarray, np.ndarray]]:
        """Model windows ``(B, 84, window_frames)``, their valid frame counts ``(B,)`` and the
        RMS of their valid samples ``(B,)``."""
        for audio, valid_samples in cut_windows(blocks, self.window_samples, batch_size):
            magnitude = self.frontend.magnitude(torch.from_numpy(audio).to(self.device))
            # A window of S samples has 1 + S / hop centred frames; the last one is centred
            # on the next window's first sample and belongs to it.
            rms = np.sqrt(np.square(audio, dtype=np.float64).sum(axis=1) / valid_samples)  # padding adds nothing
            yield self.frontend.window(magnitude, self.window_frames), -(-valid_samples // HOP_LENGTH), rms

    # -- keys ----------------------------------------------------------------------------
    def key(self, audio, sr: int, batch_size: int = 16) -> KeyEstimate:
        """Key of audio (any length, rate and channels, as :meth:`embed`), or no key.

        The signature is the argmax of the calibrated equivariant profile; the mode comes
        from the mode probe or the template rule (module docstring).

        **No key.** Silence and noise have none: the estimate has ``has_key`` False and
        label ``"X"`` (:class:`KeyEstimate`) when the input's RMS level is below
        :attr:`silence_db` (default :data:`SILENCE_DB`, -60 dB) or the spectral peakiness of the
        model input (:func:`peakiness`, window average) is below :attr:`min_peakiness`
        (default :data:`MIN_PEAKINESS`, 0.085). Both read the input, not the model: the
        model's confidence does not separate noise from music. Measured (the confidence row
        with the round-1 ``mt2`` weights; the two statistics that decide read only the input)
        on 8-s noise clips (white, pink, brown at -90 to -10 dB, 32 clips) and rendered
        music (three 24-key sets, seeds 2026-2028, and the small corpus, seed 3: 236 clips):

        ==========  ==============================  ===================================
        statistic   noise (32 clips)                music (236 clips)
        ==========  ==============================  ===================================
        peakiness   0.046 - 0.077 (median 0.063)    0.097 - 0.579 (5th percentile 0.120)
        confidence  0.125 - 0.737 (brown 0.48+)     0.467 - 0.964 (24-key sets, 72 clips)
        RMS level   -90 to -10 dB (as generated)    -19.4 to -11.5 dB (24-key sets)
        ==========  ==============================  ===================================

        Digital silence has level ``-inf`` and peakiness 0 (its profile is flat, confidence
        1/12). The peakiness threshold sits in the gap between the two ranges; real
        recordings (drums, reverb, dense mixes) were not measured.

        Raises:
            ValueError: the model has no equivariant class token, or no calibration is stored.
        """
        self.check_key_support()
        audio = to_model_rate(audio, sr)
        return self._key_from(self._key_statistics([audio], batch_size, len(audio)))

    def key_file(self, path: str | os.PathLike, batch_size: int = 16, block_seconds: float = 60.0) -> KeyEstimate:
        """:meth:`key` of an audio file, decoded block by block (bounded memory)."""
        self.check_key_support()
        blocks, expected = _file_blocks(path, block_seconds)
        return self._key_from(self._key_statistics(blocks, batch_size, expected))

    def key_of(self, embedding: Embedding) -> KeyEstimate:
        """:meth:`key` from an :class:`Embedding` of this encoder (no second pass)."""
        self.check_key_support()
        return self._key_from(self._statistics(embedding))

    def bin_probabilities(self, audio, sr: int, batch_size: int = 16) -> np.ndarray:
        """The equivariant head's softmax ``(12,)`` averaged over windows, uncalibrated (output bin order)."""
        self._check_equivariant()
        audio = to_model_rate(audio, sr)
        return self._key_statistics([audio], batch_size, len(audio)).bin_probabilities

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

    def _key_statistics(self, blocks: Iterable[np.ndarray], batch_size: int, expected_samples: int = 0) -> _KeyStatistics:
        """:meth:`_statistics` of the one pass over ``blocks``, without frame tokens."""
        return self._statistics(self._embed_blocks(blocks, expected_samples, "average", -1, (), batch_size, keep_frames=False))

    def _statistics(self, embedding: Embedding) -> _KeyStatistics:
        """Window averages weighted by valid duration: ``sum_w L_w x_w / sum_w L_w``."""
        if embedding.key_probabilities is None:
            raise ValueError(f"this embedding has no equivariant output: its class tokens are {embedding.roles}")
        weights = embedding.window_lengths / embedding.window_lengths.sum()
        token = embedding.class_tokens_at(-1)[:, embedding.roles.index("equivariant")]
        return _KeyStatistics(
            bin_probabilities=weights @ embedding.key_probabilities,
            token=(weights @ token).astype(np.float32),
            chroma=chroma_from_window((weights @ embedding.spectrum)[:, None], self.offset),
            rms=float(np.sqrt(weights @ np.square(embedding.rms))),
            peakiness=float(weights @ peakiness(embedding.spectrum)),
        )

    def canonical_token(self, token: np.ndarray, output_bin: int) -> np.ndarray:
        """The equivariant token ``(D,)`` with its 12 pitch-class axis rolled back by
        ``output_bin`` (the argmax of the equivariant head): transposing the input rolls the
        token and the bin together, so the result does not change (the mode probe's input).

        Raises:
            ValueError: the model is not in the ``pitch-class`` layout (no 12 axis to roll).
        """
        return self.model.layout.roll(torch.as_tensor(token), -int(output_bin)).numpy()

    def _mode_probabilities(self, stats: _KeyStatistics) -> np.ndarray:
        """``(2,)`` major/minor probabilities of the stored mode probe for one clip's statistics."""
        features = self.canonical_token(stats.token, int(np.argmax(stats.bin_probabilities)))
        with torch.inference_mode():
            logits = self.mode_probe(torch.from_numpy(features).to(self.mode_probe.weight))
        return torch.softmax(logits, dim=-1).cpu().numpy()

    def _key_from(self, stats: _KeyStatistics) -> KeyEstimate:
        profile = self.calibration.signature_probabilities(stats.bin_probabilities)
        level_db = 20 * float(np.log10(stats.rms)) if stats.rms > 0 else float("-inf")
        signature, confidence = int(np.argmax(profile)), float(profile.max())
        if level_db < self.silence_db or stats.peakiness < self.min_peakiness:
            return KeyEstimate(None, None, None, None, None, confidence, profile, None, level_db, stats.peakiness)
        if self.mode_probe is not None:
            mode, source = MODES[int(np.argmax(self._mode_probabilities(stats)))], "probe"
        else:
            mode, source = template_mode(stats.chroma, signature), "template"
        tonic = tonic_of(signature, mode)
        return KeyEstimate(
            key=key_name(tonic, mode),
            tonic=tonic,
            mode=mode,
            signature=signature,
            signature_name=signature_name(signature),
            confidence=confidence,
            profile=profile,
            mode_source=source,
            level_db=level_db,
            peakiness=stats.peakiness,
        )


def peakiness(spectrum: np.ndarray) -> np.ndarray:
    """Spectral peakiness of time-averaged CQT windows ``(..., bins)``: how far each bin stands
    out from the mean of its two neighbours, relative to the mean level,
    ``mean_b |s_b - (s_{b-1} + s_{b+1}) / 2| / mean_b s_b`` over the inner bins (0 for silence).

    Notes and chords put peaks a semitone apart; noise, averaged over a window, is smooth.
    """
    spectrum = np.asarray(spectrum, np.float64)
    curvature = np.abs(spectrum[..., 1:-1] - (spectrum[..., :-2] + spectrum[..., 2:]) / 2).mean(axis=-1)
    level = spectrum.mean(axis=-1)
    return np.where(level > 0, curvature / np.where(level > 0, level, 1), 0.0)


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


def _file_blocks(path: str | os.PathLike, block_seconds: float) -> tuple[Iterator[np.ndarray], int]:
    """Mono 16-kHz blocks of a file (:func:`mt2.audio.stream_audio`) and their expected total
    length in samples, from the file's header."""
    blocks = stream_audio(path, SAMPLE_RATE, block_seconds)
    info = audio_info(path)
    return blocks, -(-info.frames * SAMPLE_RATE // info.sample_rate)


def load(name_or_path: str | os.PathLike, backend: str = DEFAULT_BACKEND) -> Encoder:
    """An :class:`Encoder` from a shipped name (``mt2``, ``contrastive``, ``equivariant``) or a
    folder, computing its CQT with ``backend`` (:data:`mt2.frontend.BACKENDS`).

    Raises:
        mt2.inference.checkpoint.CheckpointError: a pickled checkpoint (with the export
            command), a shipped name missing from this installation (listing those present),
            or a folder that is not a saved model.
        FileNotFoundError: neither a path nor a shipped name.
    """
    return Encoder.from_pretrained(resolve(name_or_path), backend)

