"""Fitting the calibration of the equivariant token (:class:`~mt2.inference.calibration.Calibration`).

Self-supervised training fixes the 12 outputs only up to a rotation ``r`` (which bin is
C major / A minor) and, in principle, a direction ``d`` (docs/design.md section 5). After
training both are read from reference audio made here, with no labelled recording, in each
of the 12 key signatures and in several timbres (:data:`REFERENCES`):

* ``rendered`` (the default): pieces of our own generator
  (:func:`mt2.corpus.generator.generate_piece`, fixed seeds), in eight variants of General
  MIDI program, style and mode (:data:`RENDERED_VARIANTS`), each transposed to the 12 key
  signatures and rendered through the packaged soundfont;
* ``synthetic``: harmonic tones (as PESTO calibrates) playing a major scale and a
  I-IV-V-I cadence.

Signature ``s`` is expected at bin ``q = (d s + r) mod 12``, so ``s = d (q - r) mod 12``.
Each timbre votes for a direction; a split vote raises :class:`CalibrationError` instead of
guessing. The recipe study measured that the scale-and-cadence references put real music
one fifth off (docs/recipe.md), hence music-like references by default.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from mt2.frontend import SAMPLE_RATE
from mt2.inference.calibration import Calibration
from mt2.keys import tonic_of

#: Relative harmonic amplitudes of the reference timbres (``h`` = 1, 2, ...).
TIMBRES: dict[str, callable] = {
    "soft": lambda h: 1.0 / h**2,
    "sawtooth": lambda h: 1.0 / h,
    "clarinet": lambda h: (1.0 / h) * (h % 2 == 1),
    "bright": lambda h: 1.0 / np.sqrt(h),
}
#: General MIDI programs of the rendered references.
RENDERED_PROGRAMS = {"piano": 0, "organ": 19, "strings": 48, "flute": 73}
#: Rendered reference variants: name -> (program name, generator style, mode).
RENDERED_VARIANTS = {
    "piano-block-chords-major": ("piano", "block-chords", "major"),
    "organ-arpeggio-minor": ("organ", "arpeggio", "minor"),
    "strings-waltz-major": ("strings", "waltz", "major"),
    "flute-barcarolle-minor": ("flute", "barcarolle", "minor"),
    "piano-walking-bass-major": ("piano", "walking-bass", "major"),
    "strings-block-chords-minor": ("strings", "block-chords", "minor"),
    "organ-pop-major": ("organ", "pop", "major"),
    "flute-arpeggio-major": ("flute", "arpeggio", "major"),
}
REFERENCE_SEED = 20250712
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11, 12)
_CADENCE = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7))  # I IV V I


class CalibrationError(RuntimeError):
    """The references disagree on the direction of the equivariant output."""


def _tone(midi: float, seconds: float, timbre, sample_rate: int) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    out = np.zeros_like(t)
    for h in range(1, 40):
        if h * f0 >= sample_rate / 2 - 200:
            break
        out += timbre(h) * np.sin(2 * np.pi * h * f0 * t)
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-1.5 * t)
    return out * envelope


def reference_audio(tonic: int, timbre: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A major scale up and a I-IV-V-I cadence in the key whose tonic (and so signature) is
    pitch class ``tonic``, in one of the synthetic :data:`TIMBRES`."""
    shape = TIMBRES[timbre]
    base = 48 + tonic  # tonic between C3 and B3
    parts = [_tone(base + step, 0.3, shape, sample_rate) for step in _MAJOR_SCALE]
    for chord in _CADENCE:
        notes = [base + 12 + n for n in chord] + [base + chord[0] - 12]
        parts.append(sum(_tone(m, 0.8, shape, sample_rate) for m in notes))
    audio = np.concatenate(parts)
    return (0.9 * audio / np.abs(audio).max()).astype(np.float32)


def rendered_reference(signature: int, variant: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The generated reference piece of ``variant`` (:data:`RENDERED_VARIANTS`) in the key of
    its mode whose signature is ``signature``; the same composition for every signature."""
    from mt2.corpus.build import default_soundfont  # deferred: the synthetic references need no corpus
    from mt2.corpus.generator import generate_piece
    from mt2.corpus.render import synthesize

    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"rendered references are made at {SAMPLE_RATE} Hz, not {sample_rate}")
    instrument, style, mode = RENDERED_VARIANTS[variant]
    seed = REFERENCE_SEED + list(RENDERED_VARIANTS).index(variant)
    piece = generate_piece("calibration", np.random.default_rng(seed), tonic_of(signature, mode), mode, style, 12.0)
    program = RENDERED_PROGRAMS[instrument]
    piece = replace(piece, parts=[replace(p, program=program) for p in piece.parts if not p.is_drum])
    audio = synthesize(piece, default_soundfont().read_bytes(), 12.0)
    return (0.9 * audio / max(1e-9, float(np.abs(audio).max()))).astype(np.float32)


#: Reference families: timbre names and the function ``(tonic, timbre) -> audio``.
REFERENCES = {
    "rendered": (tuple(RENDERED_VARIANTS), rendered_reference),
    "synthetic": (tuple(TIMBRES), reference_audio),
}


def calibrate(predict_bin, references: str = "rendered") -> Calibration:
    """Fit ``q = (d s + r) mod 12`` to ``predict_bin(audio) -> int`` on a family of :data:`REFERENCES`.

    Each timbre votes for the direction whose best rotation explains more of its 12 keys;
    the votes must be unanimous.
    """
    if references not in REFERENCES:
        raise ValueError(f"references={references!r} is not one of {sorted(REFERENCES)}")
    timbres, make = REFERENCES[references]
    observed = {name: np.array([predict_bin(make(s, name)) for s in range(12)]) for name in timbres}
    signatures = np.arange(12)
    votes = {}
    for name, bins in observed.items():
        up, down = _best_rotation(bins, signatures, 1)[1], _best_rotation(bins, signatures, -1)[1]
        votes[name] = 1 if up > down else -1 if down > up else 0
    if len(set(votes.values())) != 1 or 0 in votes.values():
        raise CalibrationError(f"reference timbres disagree on the output direction: votes {votes} (+1 up, -1 down, 0 tie)")
    direction = next(iter(votes.values()))
    all_bins = np.concatenate(list(observed.values()))
    rotation, hits = _best_rotation(all_bins, np.tile(signatures, len(timbres)), direction)
    return Calibration(rotation=rotation, direction=direction, votes=votes, agreement=hits / all_bins.size, references=references)


def _best_rotation(bins: np.ndarray, signatures: np.ndarray, direction: int) -> tuple[int, int]:
    """The rotation ``r`` for which ``(d s + r) mod 12`` matches most observed bins, and the count."""
    hits = [int(((direction * signatures + r) % 12 == bins).sum()) for r in range(12)]
    return int(np.argmax(hits)), max(hits)


def calibrate_encoder(encoder, references: str = "rendered") -> Calibration:
    """Fit and store ``encoder.calibration`` (an :class:`~mt2.inference.Encoder`) from its own
    predictions on a family of :data:`REFERENCES` (no labelled audio); returns it.

    Raises:
        CalibrationError: the reference timbres disagree on the direction.
    """
    encoder.calibration = calibrate(encoder_bin_predictor(encoder), references)
    return encoder.calibration


def encoder_bin_predictor(encoder):
    """``audio (16 kHz) -> output bin`` of an :class:`~mt2.inference.Encoder`: the argmax of
    :meth:`~mt2.inference.Encoder.bin_probabilities` (its windows, model input and key
    statistics: the path ``mt2 key`` runs), in eval mode; the model's mode is restored after."""

    def predict_bin(audio: np.ndarray) -> int:
        was_training = encoder.model.training
        encoder.model.eval()
        try:
            return int(np.argmax(encoder.bin_probabilities(audio, SAMPLE_RATE)))
        finally:
            encoder.model.train(was_training)

    return predict_bin
