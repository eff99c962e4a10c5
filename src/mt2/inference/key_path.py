"""The key path of the :class:`~mt2.inference.Encoder` (issue 30): its own pass over the audio,
the transposition average, overlapping windows, and the one key decision.

:class:`KeyPath` is the half of :class:`~mt2.inference.Encoder` that turns audio into keys; the
encoder's module docstring says what it reads. Both settings are measured in
docs/key-inference.md:

* :attr:`KeyPath.shifts` (:data:`DEFAULT_SHIFTS`): each window is also cut ``s`` bins higher
  for every shift ``s`` (:func:`check_shifts`), each cut's head softmax and equivariant token
  rolled back by ``s`` and averaged (:meth:`KeyPath._add_group_average`);
* :attr:`KeyPath.passes` (:data:`DEFAULT_PASSES`): the windows start every ``1 / passes`` of a
  window (:func:`mt2.inference.windows.cut_windows`' ``hop``), as the key timeline's.
"""
from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import torch

from mt2.frontend import MAX_OFFSET, N_BINS
from mt2.inference.embedding import Embedding, KeyEstimate
from mt2.inference.key_decision import KeyStatistics, decide_key, key_statistics
from mt2.inference.windows import DEFAULT_BATCH_SIZE, Rows, file_blocks, to_model_rate

#: Bin shifts whose group average the key path reads unless told otherwise (:attr:`Encoder.shifts`;
#: ``(0,)``: one cut per window). Chosen without labels on real music (docs/key-inference.md):
#: on the copies of real training excerpts resampled by -3, -1, +2, +4 semitones, the key follows
#: the shift 0.515 of the time with one cut, 0.626 with -2..2 and no more with wider sets (0.627 at
#: -7..7), so the cheapest set at the plateau; it keeps 2 bins from the range's edges (-7..8).
DEFAULT_SHIFTS: tuple[int, ...] = (-2, -1, 0, 1, 2)
#: Offset passes of the key path's windows unless told otherwise (:attr:`Encoder.passes`): with 2,
#: ``mt2 key`` and the key timeline's main key (4 passes) agree on 0.951 of 144 rendered one-key
#: clips (1 pass: 0.931; 4: 0.979 at twice the cost), and the real measures are the best of the three
#: (docs/key-inference.md).
DEFAULT_PASSES = 2


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


def default_shifts(offset: int) -> tuple[int, ...]:
    """:data:`DEFAULT_SHIFTS` cut at the range's edges on purpose: those ``s`` with
    ``0 <= offset + s <= MAX_OFFSET`` (all of them at the shipped offset 7; at offset 0 only 0..2)."""
    return tuple(s for s in DEFAULT_SHIFTS if 0 <= offset + s <= MAX_OFFSET)


class KeyPath:
    """Keys from audio: the methods of :class:`~mt2.inference.Encoder` that estimate them (a mixin:
    it reads the encoder's ``model``, ``calibration``, ``mode_probe``, ``offset``, window size and
    its one pass ``_embed_blocks``)."""

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
    def passes(self) -> int:
        """The key path's windows start every ``window_samples / passes`` samples (``passes``
        interleaved passes of non-overlapping windows, as the key timeline's windows): the key
        decision pools them (:func:`mt2.inference.key_decision.decide_key`); 1: one pass."""
        return self._passes

    @passes.setter
    def passes(self, value: int) -> None:
        self._passes = self._checked_passes(value)

    def _checked_passes(self, value) -> int:
        """``value`` as an int, when it is a positive integer that divides the window's samples.

        Raises:
            ValueError: it is not.
        """
        if int(value) != value or not 1 <= value or self.window_samples % int(value):
            raise ValueError(f"passes={value!r} must be a positive integer dividing the window's {self.window_samples} samples (e.g. 1, 2, 4)")
        return int(value)

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
        if (tuple(embedding.shifts), embedding.passes) != (self.shifts, self.passes):
            raise ValueError(
                f"this embedding has bin shifts {tuple(embedding.shifts)} and {embedding.passes} pass(es) but the key path reads "
                f"shifts {self.shifts} and {self.passes} pass(es): call encoder.key(audio, sr) (or set encoder.shifts and "
                "encoder.passes to the embedding's)")
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
        return self.statistics_of(self._key_embedding([audio], len(audio), batch_size))

    def key_statistics_file(self, path: str | os.PathLike, batch_size: int = DEFAULT_BATCH_SIZE, block_seconds: float = 60.0) -> KeyStatistics:
        """:meth:`key_statistics` of an audio file, decoded block by block (bounded memory)."""
        self._check_equivariant()
        blocks, expected = file_blocks(path, block_seconds)
        return self.statistics_of(self._key_embedding(blocks, expected, batch_size))

    def _key_embedding(self, blocks: Iterable[np.ndarray], expected_samples: int, batch_size: int, passes: int | None = None) -> Embedding:
        """The key path's pass: no frame tokens, ``passes`` (:attr:`passes`) overlapping windows, :attr:`shifts` averaged."""
        return self._embed_blocks(blocks, expected_samples, "average", -1, (), batch_size, keep_frames=False, shifts=self.shifts,
                                  passes=self.passes if passes is None else passes)

    def key_embedding(self, audio, sr: int, passes: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> Embedding:
        """The key path's pass over audio (any rate and channels, as :meth:`embed`): an
        :class:`Embedding` without frame tokens whose windows start every ``1 / passes`` of a
        window (default :attr:`passes`), its key outputs averaged over :attr:`shifts` (what
        :meth:`key` and the key timeline read)."""
        self._check_equivariant()
        passes = None if passes is None else self._checked_passes(passes)
        audio = to_model_rate(audio, sr)
        return self._key_embedding([audio], len(audio), batch_size, passes)

    def statistics_of(self, embedding: Embedding) -> KeyStatistics:
        """:meth:`key_statistics` of an :class:`Embedding` of this encoder: the equivariant head
        runs on its held last-block equivariant tokens (no second pass), averaged over the
        shifts the embedding was made with (:attr:`Embedding.shifts`)."""
        if embedding.key_probabilities is None:
            raise ValueError(f"this embedding has no equivariant output: its class tokens are {embedding.roles}")
        return key_statistics(embedding.key_probabilities, embedding.key_tokens, embedding.spectrum, embedding.rms, embedding.window_lengths,
                              self.offset, embedding.window_starts, embedding.passes)

    def canonical_token(self, token: np.ndarray, output_bin: int) -> np.ndarray:
        """The equivariant token ``(D,)`` with its 12 pitch-class axis rolled back by
        ``output_bin`` (the argmax of the equivariant head): transposing the input rolls the
        token and the bin together, so the result does not change (the mode probe's input).

        Raises:
            ValueError: the model is not in the ``pitch-class`` layout (no 12 axis to roll).
        """
        return self.model.layout.roll(torch.as_tensor(token), -int(output_bin)).numpy()

    def signature_probe(self, tokens: np.ndarray):
        """None without a mode probe; else ``s -> (W, 2)``: the probe's major/minor probabilities
        of equivariant tokens ``(W, D)``, each rolled so that the output bin of signature ``s``
        (through the calibration) sits at 0 (:meth:`canonical_token`): the probe's part of
        :func:`mt2.inference.key_decision.mode_given_signature`."""
        if self.mode_probe is None:
            return None
        tokens = torch.as_tensor(np.asarray(tokens, np.float32))

        def probe(signature: int) -> np.ndarray:
            features = self.model.layout.roll(tokens, -int(self.calibration.bin_of_signature(signature)))
            with torch.inference_mode():
                logits = self.mode_probe(features.to(self.mode_probe.weight))
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()

        return probe

    def decide(self, stats: KeyStatistics) -> KeyEstimate:
        """The key of one clip's statistics with this encoder's calibration, mode probe and
        no-key thresholds (:func:`mt2.inference.key_decision.decide_key`, the one decision)."""
        return decide_key(stats, self.calibration, self.signature_probe, self.silence_db, self.min_tonality)

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
