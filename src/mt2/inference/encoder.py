"""The encoder: audio in, embeddings and keys out (docs/design.md section 5).

The one path from audio to outputs, used by ``mt2 embed``/``mt2 key``, the study, the
calibration, the mode probe and ``mt2 perf`` alike:

audio -> :func:`~mt2.inference.windows.to_model_rate` -> windows
(:func:`~mt2.inference.windows.cut_windows`) -> model input (:meth:`Encoder.model_input_batches`,
:meth:`Encoder.model_inputs`) -> one forward pass (:meth:`Encoder.embed`) -> key statistics
(:meth:`Encoder.key_statistics`) -> key decision (:mod:`mt2.inference.key_decision`).

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
class token of every block asked for, the frame tokens, and the input's spectrum and level
(:class:`~mt2.inference.embedding.Embedding`). Every readout is derived from it
(:meth:`Embedding.readout`).

**Keys.** The key signature comes from the equivariant class token alone, which was
trained without labels; the :class:`~mt2.inference.calibration.Calibration` stored with the
weights (fitted on rendered reference pieces, no labelled recording) says which output bin is
which signature. Major versus minor is not self-supervised: the Krumhansl-Kessler templates on
each window's chroma (no learning), times the stored mode probe (a linear classifier trained
with labels, fitted by :mod:`mt2.training.mode_probe`) on the window's equivariant token with
its 12 pitch-class axis rolled so that the signature's output bin sits at 0
(:meth:`Encoder.canonical_token`): a transposition rolls token and bin alike, so the probe's
input does not change. The decision (:func:`mt2.inference.key_decision.decide_key`) pools the
windows' 24 key probabilities; the key timeline reads the same function per window.

The key path reads its own pass (:meth:`Encoder.key_embedding`), which differs from
:meth:`Encoder.embed`'s in two ways, both measured in docs/key-inference.md:

* **Transposition average** (:attr:`Encoder.shifts`, default :data:`~mt2.inference.key_path.DEFAULT_SHIFTS`): each
  window is also cut ``s`` bins higher for every shift ``s`` (from the same CQT, the cuts of a
  batch in one forward pass), each cut's head softmax and equivariant token are rolled back by
  ``s`` and averaged: a group average over transpositions. The layers are exactly equivariant
  to a circular roll of the 84 bins; what a cut changes is what enters and leaves the window at
  its edges, which on real music flips the clip's argmax in 29 % of resampled copies. A cut must
  stay inside the 99 CQT bins (:func:`~mt2.inference.key_path.check_shifts`: offset 7 allows -7..8).
* **Overlapping windows** (:attr:`Encoder.passes`, default :data:`~mt2.inference.key_path.DEFAULT_PASSES`): windows start
  every ``1 / passes`` of a window, as the timeline's passes, and only full ones are read.

The clip averages that the no-key rule, the calibration and the mode probe's fit read come from
the first pass's non-overlapping windows (:func:`mt2.inference.key_decision.key_statistics`).
How silence and noise get no key: :mod:`mt2.inference.key_decision`.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from mt2.frontend import DEFAULT_BACKEND, DEFAULT_COMPRESSION, DEFAULT_OFFSET, HOP_LENGTH, SAMPLE_RATE, CQTFrontend
from mt2.inference.calibration import Calibration
from mt2.inference.checkpoint import read_checkpoint, resolve, write_checkpoint
from mt2.inference.embedding import Embedding, check_readout, readouts_of
from mt2.inference.key_decision import MIN_TONALITY, SILENCE_DB
from mt2.inference.key_path import DEFAULT_PASSES, KeyPath, check_shifts, default_shifts
from mt2.inference.windows import DEFAULT_BATCH_SIZE, Rows, cut_windows, file_blocks, to_model_rate
from mt2.model import ModelConfig, MT2Model


class ModelInput(NamedTuple):
    """One batch of the model's input, as :meth:`Encoder.model_input_batches` cuts it."""

    windows: torch.Tensor  # (B, 84, window_frames) on the encoder's device
    valid_frames: np.ndarray  # (B,) frames of each window that hold audio (the rest is padding)
    rms: np.ndarray  # (B,) RMS of each window's valid samples at 16 kHz
    #: (S, B, 84, window_frames): the same windows cut at each of the ``shifts`` asked for
    #: (:meth:`Encoder.model_input_batches`); None when only ``windows`` was asked for.
    shifted: torch.Tensor | None = None


class Encoder(KeyPath, nn.Module):
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
        shifts: the bin shifts whose group average the key path reads (:attr:`shifts`,
            :func:`~mt2.inference.key_path.check_shifts`); ``(0,)`` runs each window once; None:
            :data:`~mt2.inference.key_path.DEFAULT_SHIFTS`, less those a window at ``offset``
            cannot be cut at (:func:`~mt2.inference.key_path.default_shifts`).
        passes: the key path's windows start every ``1 / passes`` of a window (:attr:`passes`).
    """

    sample_rate = SAMPLE_RATE
    #: :meth:`key` thresholds (class defaults; set per encoder, e.g. 0 and -inf to always name a key).
    silence_db = SILENCE_DB
    min_tonality = MIN_TONALITY

    def __init__(
        self,
        model: MT2Model,
        calibration: Calibration | None = None,
        mode_probe: nn.Linear | None = None,
        compression: str = DEFAULT_COMPRESSION,
        offset: int = DEFAULT_OFFSET,
        training: dict | None = None,
        backend: str = DEFAULT_BACKEND,
        shifts=None,
        passes: int = DEFAULT_PASSES,
    ) -> None:
        super().__init__()
        if mode_probe is not None and not model.layout.has_pitch_classes:
            raise ValueError(f"a mode probe reads the canonical token of the pitch-class layout; this model's layout is {model.config.layout!r}")
        self.frontend = CQTFrontend(compression=compression, offset=offset, backend=backend)
        self.model = model
        self.mode_probe = mode_probe
        self.calibration = calibration
        self.training_info = dict(training or {})
        self.shifts = default_shifts(offset) if shifts is None else shifts
        self.passes = passes
        self.eval()

    # -- persistence -------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike, storage: str = "float32") -> None:
        """Write ``model.safetensors`` and ``config.json`` to ``folder`` (see :mod:`mt2.inference.checkpoint`),
        the weights stored as ``storage`` (``float32`` or ``float16``)."""
        write_checkpoint(
            folder, self.model, calibration=self.calibration, mode_probe=self.mode_probe,
            frontend={"compression": self.compression, "offset": self.offset}, training=self.training_info, storage=storage,
        )

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
        """Length ``D`` of every token, so of every readout but ``concat`` (``K * D``)."""
        return self.model.layout.token_dim

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
        return readouts_of(self.config.roles)

    # -- embeddings --------------------------------------------------------------------
    def embed(
        self, audio, sr: int, readout: str = "average", layer: int = -1, layers: Iterable[int] = (), batch_size: int = DEFAULT_BATCH_SIZE,
        shifts: Iterable[int] = (0,),
    ) -> Embedding:
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
            shifts: bin shifts whose group average the embedding's key outputs hold
                (:attr:`Embedding.key_probabilities`, :attr:`Embedding.key_tokens`, what
                :meth:`key_of` reads); ``encoder.shifts`` gives the key of :meth:`key`. The
                readouts are those of the unshifted windows whatever the shifts.

        Raises:
            ValueError: empty or non-finite audio, a bad shape or rate, a readout the
                model lacks, a layer out of range, or shifts outside the range (:func:`check_shifts`).
        """
        layers = self.check_readout(readout, layer, layers)
        audio = to_model_rate(audio, sr)
        return self._embed_blocks([audio], len(audio), readout, layer, layers, batch_size, shifts=check_shifts(shifts, self.offset))

    def embed_file(
        self, path: str | os.PathLike, readout: str = "average", layer: int = -1, layers: Iterable[int] = (),
        batch_size: int = DEFAULT_BATCH_SIZE, block_seconds: float = 60.0, shifts: Iterable[int] = (0,),
    ) -> Embedding:
        """:meth:`embed` of an audio file, decoded block by block: memory holds one block,
        one batch and the outputs, each output array allocated once from the file's duration.

        Equals ``embed(load_audio(path), 16000)`` up to the resampler's block-edge tolerance.

        Raises:
            mt2.audio.AudioError: the file cannot be used (names the file and the reason).
        """
        layers = self.check_readout(readout, layer, layers)
        shifts = check_shifts(shifts, self.offset)
        return self._embed_blocks(*file_blocks(path, block_seconds), readout, layer, layers, batch_size, shifts=shifts)

    def check_readout(self, readout: str, layer: int, layers: Iterable[int] = ()) -> tuple[int, ...]:
        """Raise ValueError unless this model offers ``readout`` and has blocks ``layer`` and
        ``layers``; returns ``layers`` as a tuple."""
        return check_readout(self.config.roles, self.config.depth, readout, layer, layers)

    @torch.inference_mode()
    def _embed_blocks(
        self, blocks: Iterable[np.ndarray], expected_samples: int, readout: str, layer: int, layers: tuple[int, ...],
        batch_size: int, keep_frames: bool = True, shifts: tuple[int, ...] = (0,), cut: int = 0, passes: int = 1,
    ) -> Embedding:
        """The one pass: every window through the model once (once per shift: the cuts of a
        batch go through together), each output written once into arrays preallocated for
        ``expected_samples`` samples at 16 kHz (one window of margin). ``cut``: every window cut
        that many bins higher (:meth:`model_input_batches`' ``shift``; 0 but in :meth:`window_profiles`).
        ``passes``: windows start every ``window_samples / passes`` samples (the key path's
        overlapping windows, without frame tokens; 1: the embedding's non-overlapping ones)."""
        if passes != 1 and keep_frames:
            raise ValueError("overlapping windows (passes > 1) hold no frame tokens: the key path only")
        depth, k, per_token = self.config.depth, self.model.num_prefix_tokens, self.config.frames_per_token
        hop = self.window_samples // passes
        framed = sorted({x % depth for x in (layer, *layers)}) if keep_frames else []
        read = sorted({*framed, layer % depth, depth - 1})
        capacity = -(-expected_samples // hop) + 1
        shape = (k, self.embedding_size)
        class_rows = {b: Rows(capacity, shape) for b in read}
        frame_rows = {b: Rows(capacity * (self.window_frames // per_token), shape[1:]) for b in framed}
        averaged = len(shifts) > 1 and self.model.equivariant_head is not None
        key_rows = (Rows(capacity, (12,)), Rows(capacity, shape[1:])) if averaged else None
        spectrum, rms, valid_frames = [], [], []
        for batch, valid, level, shifted in self.model_input_batches(blocks, batch_size, cut, shifts if averaged else None, hop):
            if averaged:
                intermediates = self.model.forward_intermediates(shifted.flatten(0, 1), read)
                self._add_group_average(key_rows, intermediates[-1][:, :k], shifts)
                zero = shifts.index(0) * len(batch)
                outputs = {b: tokens[zero : zero + len(batch)] for b, tokens in zip(read, intermediates)}
            else:
                outputs = dict(zip(read, self.model.forward_intermediates(batch, read)))
            valid_tokens = -(-valid // per_token)
            for b, tokens in outputs.items():
                class_rows[b].add(tokens[:, :k].float().cpu().numpy())
                if b in frame_rows:
                    for window, count in zip(tokens[:, k:].float().cpu().numpy(), valid_tokens):
                        frame_rows[b].add(window[:count])
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
            window_starts=np.arange(len(valid)) * hop / SAMPLE_RATE,
            window_lengths=valid * frame_seconds,
            frame_counts=counts,
            spectrum=np.stack(spectrum),
            rms=np.concatenate(rms),
            key_head=self._key_head if self.model.equivariant_head is not None else None,
            shifts=shifts if averaged else (0,),
            passes=passes,
            averaged_probabilities=key_rows[0].array() if averaged else None,
            averaged_tokens=key_rows[1].array() if averaged else None,
        )

    @torch.inference_mode()
    def _key_head(self, tokens: np.ndarray) -> np.ndarray:
        """``(W, D)`` last-block equivariant tokens -> ``(W, 12)`` softmax of the equivariant head."""
        logits = self.model.equivariant_head(torch.from_numpy(tokens).to(self.device))
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def model_input_batches(
        self, blocks: Iterable[np.ndarray], batch_size: int = DEFAULT_BATCH_SIZE, shift: int = 0, shifts: tuple[int, ...] | None = None,
        hop: int | None = None,
    ) -> Iterator[ModelInput]:
        """The model's input, batch by batch, from consecutive mono 16-kHz blocks: windows of
        :attr:`window_samples` (:func:`~mt2.inference.windows.cut_windows`), each through the
        frontend on its own (:meth:`mt2.frontend.CQTFrontend.window`). ``shift`` cuts every
        window that many CQT bins above :attr:`offset` (the content ``shift`` semitones lower;
        0, what :meth:`embed` and :meth:`key` use, unless a measure of equivariance asks).
        ``shifts`` also cuts each window ``shift + s`` bins above :attr:`offset` for every ``s``
        (:attr:`ModelInput.shifted`, from the same CQT; :func:`check_shifts`). ``hop``: windows
        start every ``hop`` samples (default :attr:`window_samples`: they do not overlap)."""
        if shifts is not None:
            shifts = check_shifts(shifts, self.offset + shift)
        for audio, valid_samples in cut_windows(blocks, self.window_samples, batch_size, hop):
            magnitude = self.frontend.magnitude(torch.from_numpy(audio).to(self.device))
            # A window of S samples has 1 + S / hop centred frames; the last one is centred
            # on the next window's first sample and belongs to it.
            rms = np.sqrt(np.square(audio, dtype=np.float64).sum(axis=1) / valid_samples)  # padding adds nothing
            windows = self.frontend.window(magnitude, self.window_frames, shift)
            shifted = None
            if shifts is not None:
                shifted = torch.stack([windows if s == 0 else self.frontend.window(magnitude, self.window_frames, shift + s) for s in shifts])
            yield ModelInput(windows, -(-valid_samples // HOP_LENGTH), rms, shifted)

    @torch.inference_mode()
    def model_inputs(self, audio, sr: int, batch_size: int = DEFAULT_BATCH_SIZE, shift: int = 0) -> torch.Tensor:
        """Every model window ``(W, 84, window_frames)`` of audio (any rate and channels, as
        :meth:`embed`): exactly what :meth:`embed` and :meth:`key` feed the model (with
        ``shift`` 0; see :meth:`model_input_batches`)."""
        batches = self.model_input_batches([to_model_rate(audio, sr)], batch_size, shift)
        return torch.cat([batch.windows for batch in batches]).clone()  # an ordinary tensor, usable with autograd


def load(name_or_path: str | os.PathLike, backend: str = DEFAULT_BACKEND) -> Encoder:
    """An :class:`Encoder` from a shipped name (``mt2``, ``contrastive``, ``equivariant``, ``masked``, ``mt2-tiny``) or a
    folder, computing its CQT with ``backend`` (:data:`mt2.frontend.BACKENDS`).

    Raises:
        mt2.inference.checkpoint.CheckpointError: a pickled checkpoint (with the export
            command), a shipped name missing from this installation (listing those present),
            or a folder that is not a saved model.
        FileNotFoundError: neither a path nor a shipped name.
    """
    return Encoder.from_pretrained(resolve(name_or_path), backend)

