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
(:meth:`Embedding.readout`), and so is the key (:meth:`Encoder.key_of`: the equivariant head
runs on the held last-block token only when a key is asked for).

**Keys.** The key signature comes from the equivariant class token alone, which was
trained without labels; the :class:`~mt2.inference.calibration.Calibration` stored with the
weights (fitted on rendered reference pieces, no labelled recording) says which output bin is
which signature. Major versus minor is not self-supervised: it comes from the stored
mode probe (a linear classifier trained with labels, fitted by :mod:`mt2.training.mode_probe`)
when there is one, and otherwise from the Krumhansl-Kessler templates on the input chroma (no
learning), comparing only the two keys that share the estimated signature. The probe reads
the equivariant token averaged over windows with its 12 pitch-class axis rolled so that the
estimated output bin sits at 0 (:meth:`Encoder.canonical_token`): a transposition rolls
token and bin alike, so the probe's input, and its decision, do not change. How silence and
noise get no key: :mod:`mt2.inference.key_decision`.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from mt2.frontend import DEFAULT_BACKEND, DEFAULT_COMPRESSION, DEFAULT_OFFSET, HOP_LENGTH, MAX_OFFSET, N_BINS, SAMPLE_RATE, CQTFrontend
from mt2.inference.calibration import Calibration
from mt2.inference.checkpoint import read_checkpoint, resolve, write_checkpoint
from mt2.inference.embedding import Embedding, KeyEstimate, check_readout, readouts_of
from mt2.inference.key_decision import MIN_TONALITY, SILENCE_DB, KeyStatistics, decide_key, key_statistics
from mt2.inference.windows import DEFAULT_BATCH_SIZE, Rows, cut_windows, file_blocks, to_model_rate
from mt2.model import ModelConfig, MT2Model


#: Bin shifts whose group average the key path reads unless told otherwise (:attr:`Encoder.shifts`;
#: ``(0,)``: one pass per window, no average). Measured in docs/key-inference.md.
DEFAULT_SHIFTS: tuple[int, ...] = (0,)


def check_shifts(shifts, offset: int) -> tuple[int, ...]:
    """``shifts`` as a sorted tuple of distinct ints, checked against the 84-bin window's range:
    a window cut ``s`` bins above ``offset`` must still lie inside the 99 CQT bins
    (``0 <= offset + s <= MAX_OFFSET``), and 0 must be among them (the embedding's own window).

    Raises:
        ValueError: an empty set, a shift outside ``[-offset, MAX_OFFSET - offset]``, or no 0.
    """
    values = tuple(sorted({int(s) for s in shifts}))
    low, high = -offset, MAX_OFFSET - offset
    if not values or 0 not in values:
        raise ValueError(f"shifts={tuple(shifts)} must include 0 (the window the embedding reads), e.g. (-2, -1, 0, 1, 2)")
    outside = [s for s in values if not low <= s <= high]
    if outside:
        raise ValueError(
            f"shifts {outside} fall outside the range: the model window starts at CQT bin {offset} and holds 84 of "
            f"{N_BINS} bins, so a shift must lie in [{low}, {high}]; drop them or choose shifts inside it")
    return values


class ModelInput(NamedTuple):
    """One batch of the model's input, as :meth:`Encoder.model_input_batches` cuts it."""

    windows: torch.Tensor  # (B, 84, window_frames) on the encoder's device
    valid_frames: np.ndarray  # (B,) frames of each window that hold audio (the rest is padding)
    rms: np.ndarray  # (B,) RMS of each window's valid samples at 16 kHz
    #: (S, B, 84, window_frames): the same windows cut at each of the ``shifts`` asked for
    #: (:meth:`Encoder.model_input_batches`); None when only ``windows`` was asked for.
    shifted: torch.Tensor | None = None


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
        shifts: the bin shifts whose group average the key path reads (:attr:`shifts`,
            :func:`check_shifts`); ``(0,)`` runs each window once.
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
        shifts=DEFAULT_SHIFTS,
    ) -> None:
        super().__init__()
        if mode_probe is not None and not model.layout.has_pitch_classes:
            raise ValueError(f"a mode probe reads the canonical token of the pitch-class layout; this model's layout is {model.config.layout!r}")
        self.frontend = CQTFrontend(compression=compression, offset=offset, backend=backend)
        self.model = model
        self.mode_probe = mode_probe
        self.calibration = calibration
        self.training_info = dict(training or {})
        self.shifts = shifts
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
    def shifts(self) -> tuple[int, ...]:
        """The bin shifts whose group average the key path reads (:meth:`key`, :meth:`key_statistics`,
        :meth:`key_timeline`; the module docstring): each window is also cut ``s`` bins higher for
        every ``s``, each cut's head softmax and equivariant token are rolled back by ``s`` pitch
        classes and the results averaged. Set it to any set that :func:`check_shifts` accepts."""
        return self._shifts

    @shifts.setter
    def shifts(self, value) -> None:
        self._shifts = check_shifts(value, self.offset)

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
        batch_size: int, keep_frames: bool = True, shifts: tuple[int, ...] = (0,), cut: int = 0,
    ) -> Embedding:
        """The one pass: every window through the model once (once per shift: the cuts of a
        batch go through together), each output written once into arrays preallocated for
        ``expected_samples`` samples at 16 kHz (one window of margin). ``cut``: every window cut
        that many bins higher (:meth:`model_input_batches`' ``shift``; 0 but in :meth:`window_profiles`)."""
        depth, k, per_token = self.config.depth, self.model.num_prefix_tokens, self.config.frames_per_token
        framed = sorted({x % depth for x in (layer, *layers)}) if keep_frames else []
        read = sorted({*framed, layer % depth, depth - 1})
        capacity = -(-expected_samples // self.window_samples) + 1
        shape = (k, self.embedding_size)
        class_rows = {b: Rows(capacity, shape) for b in read}
        frame_rows = {b: Rows(capacity * (self.window_frames // per_token), shape[1:]) for b in framed}
        averaged = len(shifts) > 1 and self.model.equivariant_head is not None
        key_rows = (Rows(capacity, (12,)), Rows(capacity, shape[1:])) if averaged else None
        spectrum, rms, valid_frames = [], [], []
        for batch, valid, level, shifted in self.model_input_batches(blocks, batch_size, cut, shifts if averaged else None):
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
            window_starts=np.arange(len(valid)) * self.window_frames * frame_seconds,
            window_lengths=valid * frame_seconds,
            frame_counts=counts,
            spectrum=np.stack(spectrum),
            rms=np.concatenate(rms),
            key_head=self._key_head if self.model.equivariant_head is not None else None,
            shifts=shifts if averaged else (0,),
            averaged_probabilities=key_rows[0].array() if averaged else None,
            averaged_tokens=key_rows[1].array() if averaged else None,
        )

    def _add_group_average(self, rows: tuple[Rows, Rows], class_tokens: torch.Tensor, shifts: tuple[int, ...]) -> None:
        """Write the group average over ``shifts`` of one batch: ``class_tokens`` ``(S B, K, D)``
        (the last block, shift-major) -> the head softmax ``mean_s roll(p_s, s)`` ``(B, 12)`` and
        the equivariant token ``mean_s roll(t_s, s)`` ``(B, D)``.

        A window cut ``s`` bins higher shows its content ``s`` semitones lower, which rolls the
        profile and the token's 12 pitch-class axis by ``-s`` (exactly, for a circular roll of
        the 84 bins: the equivariant stream commutes with it); rolling by ``+s`` brings each cut
        back to the unshifted window's frame before averaging."""
        tokens = class_tokens[:, self.model.role_index("equivariant")].unflatten(0, (len(shifts), -1))
        probabilities = torch.softmax(self.model.equivariant_head(tokens).float(), dim=-1)
        back = [(torch.roll(probabilities[i], s, dims=-1), self.model.layout.roll(tokens[i], s)) for i, s in enumerate(shifts)]
        rows[0].add(torch.stack([p for p, _ in back]).mean(0).cpu().numpy())
        rows[1].add(torch.stack([t for _, t in back]).float().mean(0).cpu().numpy())

    @torch.inference_mode()
    def _key_head(self, tokens: np.ndarray) -> np.ndarray:
        """``(W, D)`` last-block equivariant tokens -> ``(W, 12)`` softmax of the equivariant head."""
        logits = self.model.equivariant_head(torch.from_numpy(tokens).to(self.device))
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def model_input_batches(
        self, blocks: Iterable[np.ndarray], batch_size: int = DEFAULT_BATCH_SIZE, shift: int = 0, shifts: tuple[int, ...] | None = None,
    ) -> Iterator[ModelInput]:
        """The model's input, batch by batch, from consecutive mono 16-kHz blocks: windows of
        :attr:`window_samples` (:func:`~mt2.inference.windows.cut_windows`), each through the
        frontend on its own (:meth:`mt2.frontend.CQTFrontend.window`). ``shift`` cuts every
        window that many CQT bins above :attr:`offset` (the content ``shift`` semitones lower;
        0, what :meth:`embed` and :meth:`key` use, unless a measure of equivariance asks).
        ``shifts`` also cuts each window ``shift + s`` bins above :attr:`offset` for every ``s``
        (:attr:`ModelInput.shifted`, from the same CQT; :func:`check_shifts`)."""
        if shifts is not None:
            shifts = check_shifts(shifts, self.offset + shift)
        for audio, valid_samples in cut_windows(blocks, self.window_samples, batch_size):
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

    # -- keys ----------------------------------------------------------------------------
    def key(self, audio, sr: int, batch_size: int = DEFAULT_BATCH_SIZE) -> KeyEstimate:
        """Key of audio (any length, rate and channels, as :meth:`embed`), or no key.

        The signature is the argmax of the calibrated equivariant profile; the mode comes
        from the mode probe or the template rule (module docstring).

        **No key.** Silence and noise have none: the estimate has ``has_key`` False and
        label ``"X"`` (:class:`KeyEstimate`) when :func:`mt2.inference.key_decision.is_keyless`
        says so, with this encoder's :attr:`silence_db` and :attr:`min_tonality` (the rule
        and its measurements: :mod:`mt2.inference.key_decision`).

        Raises:
            ValueError: the model has no equivariant class token, or no calibration is stored.
        """
        self.check_key_support()
        return self.decide(self.key_statistics(audio, sr, batch_size))

    def key_file(self, path: str | os.PathLike, batch_size: int = DEFAULT_BATCH_SIZE, block_seconds: float = 60.0) -> KeyEstimate:
        """:meth:`key` of an audio file, decoded block by block (bounded memory)."""
        self.check_key_support()
        return self.decide(self.key_statistics_file(path, batch_size, block_seconds))

    def key_of(self, embedding: Embedding) -> KeyEstimate:
        """:meth:`key` from an :class:`Embedding` of this encoder (no second pass): embed with
        ``shifts=encoder.shifts`` for the key :meth:`key` gives.

        Raises:
            ValueError: the embedding was made with other shifts than :attr:`shifts`.
        """
        self.check_key_support()
        if tuple(embedding.shifts) != self.shifts:
            raise ValueError(
                f"this embedding averages bin shifts {tuple(embedding.shifts)} but the key path reads {self.shifts}: "
                "embed with shifts=encoder.shifts (or set encoder.shifts to the embedding's)")
        return self.decide(self.statistics_of(embedding))

    def key_timeline(self, audio, sr: int, **options):
        """The local key over time as segments (start, end, key, confidence):
        :func:`mt2.inference.timeline.key_timeline` (options: ``switch_penalty``, ``passes``, ``method``)."""
        from mt2.inference.timeline import key_timeline

        return key_timeline(self, audio, sr, **options)

    def key_timeline_file(self, path: str | os.PathLike, **options):
        """:meth:`key_timeline` of an audio file (:func:`mt2.inference.timeline.key_timeline_file`)."""
        from mt2.inference.timeline import key_timeline_file

        return key_timeline_file(self, path, **options)

    def window_profiles(self, audio, sr: int, shift: int = 0, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """``(W, 12)`` the equivariant head's softmax of each window (uncalibrated, output-bin order),
        averaged over :attr:`shifts` as :meth:`key` reads it, with every window cut ``shift`` bins
        higher (content ``shift`` semitones lower: a measure of equivariance; 0 for :meth:`key`'s).

        Raises:
            ValueError: no equivariant token, or ``shift`` with :attr:`shifts` outside the range.
        """
        self._check_equivariant()
        check_shifts(self.shifts, self.offset + shift)
        audio = to_model_rate(audio, sr)
        return self._embed_blocks([audio], len(audio), "average", -1, (), batch_size, False, self.shifts, shift).key_probabilities

    def bin_probabilities(self, audio, sr: int, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """The equivariant head's softmax ``(12,)`` averaged over windows, uncalibrated (output bin order)."""
        return self.key_statistics(audio, sr, batch_size).bin_probabilities

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

    def key_statistics(self, audio, sr: int, batch_size: int = DEFAULT_BATCH_SIZE) -> KeyStatistics:
        """The window averages a key decision reads (:class:`~mt2.inference.key_decision.KeyStatistics`)
        of audio (any length, rate and channels, as :meth:`embed`), from the one pass without frame tokens.

        Raises:
            ValueError: the model has no equivariant class token.
        """
        self._check_equivariant()
        audio = to_model_rate(audio, sr)
        return self.statistics_of(self._embed_blocks([audio], len(audio), "average", -1, (), batch_size, keep_frames=False, shifts=self.shifts))

    def key_statistics_file(self, path: str | os.PathLike, batch_size: int = DEFAULT_BATCH_SIZE, block_seconds: float = 60.0) -> KeyStatistics:
        """:meth:`key_statistics` of an audio file, decoded block by block (bounded memory)."""
        self._check_equivariant()
        blocks, expected = file_blocks(path, block_seconds)
        return self.statistics_of(self._embed_blocks(blocks, expected, "average", -1, (), batch_size, keep_frames=False, shifts=self.shifts))

    def statistics_of(self, embedding: Embedding) -> KeyStatistics:
        """:meth:`key_statistics` of an :class:`Embedding` of this encoder: the equivariant head
        runs on its held last-block equivariant tokens (no second pass), averaged over the
        shifts the embedding was made with (:attr:`Embedding.shifts`)."""
        if embedding.key_probabilities is None:
            raise ValueError(f"this embedding has no equivariant output: its class tokens are {embedding.roles}")
        return key_statistics(embedding.key_probabilities, embedding.key_tokens, embedding.spectrum, embedding.rms, embedding.window_lengths, self.offset)

    def canonical_token(self, token: np.ndarray, output_bin: int) -> np.ndarray:
        """The equivariant token ``(D,)`` with its 12 pitch-class axis rolled back by
        ``output_bin`` (the argmax of the equivariant head): transposing the input rolls the
        token and the bin together, so the result does not change (the mode probe's input).

        Raises:
            ValueError: the model is not in the ``pitch-class`` layout (no 12 axis to roll).
        """
        return self.model.layout.roll(torch.as_tensor(token), -int(output_bin)).numpy()

    def _mode_probabilities(self, stats: KeyStatistics) -> np.ndarray:
        """``(2,)`` major/minor probabilities of the stored mode probe for one clip's statistics."""
        features = self.canonical_token(stats.token, int(np.argmax(stats.bin_probabilities)))
        with torch.inference_mode():
            logits = self.mode_probe(torch.from_numpy(features).to(self.mode_probe.weight))
        return torch.softmax(logits, dim=-1).cpu().numpy()

    def decide(self, stats: KeyStatistics) -> KeyEstimate:
        """The key of one clip's statistics with this encoder's calibration, mode probe and
        no-key thresholds (:func:`mt2.inference.key_decision.decide_key`)."""
        probe = self._mode_probabilities if self.mode_probe is not None else None
        return decide_key(stats, self.calibration, probe, self.silence_db, self.min_tonality)


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

