"""The NSynth-like subset: one note per (program, pitch), labelled with its MIDI pitch.

Each note is held for :data:`NOTE_SECONDS` and its clip lasts :data:`NOTE_CLIP_SECONDS`,
so the release is heard. Pitches cover each program's playable range
(:mod:`mt2.corpus.instruments`). Splits are balanced per program: the pitches of every
program are shuffled and cut 70/15/15, so each split holds every instrument and no
(program, pitch) pair is in two splits.
"""
from __future__ import annotations

import numpy as np

from mt2.corpus.instruments import INSTRUMENTS
from mt2.corpus.piece import Note, Part, Piece

NOTE_SECONDS = 2.0
NOTE_CLIP_SECONDS = 2.5
#: Velocities a note is drawn from (NSynth uses 25-127 in five steps).
VELOCITIES = (50, 75, 100, 127)


def note_piece_id(program: int, pitch: int) -> str:
    """``"note-000-060"`` for program 0, pitch 60."""
    return f"note-{program:03d}-{pitch:03d}"


def note_pitches(program: int, count: int | None) -> list[int]:
    """All pitches in the program's range, or ``count`` of them evenly spread."""
    instrument = INSTRUMENTS[program]
    every = list(range(instrument.low, instrument.high + 1))
    if count is None or count >= len(every):
        return every
    return sorted({int(round(x)) for x in np.linspace(instrument.low, instrument.high, count)})


def note_splits(pitches: list[int], rng: np.random.Generator) -> dict[int, str]:
    """Split one program's pitches 70/15/15 at random, every split non-empty from 3 pitches."""
    order = [pitches[i] for i in rng.permutation(len(pitches))]
    n = len(order)
    n_valid = max(1, round(0.15 * n)) if n >= 3 else 0
    n_test = max(1, round(0.15 * n)) if n >= 3 else 0
    n_train = n - n_valid - n_test
    labels = ["train"] * n_train + ["valid"] * n_valid + ["test"] * n_test
    return dict(zip(order, labels))


def make_note(program: int, pitch: int, rng: np.random.Generator) -> Piece:
    """A one-note piece: ``pitch`` on ``program`` at a velocity drawn from ``rng``."""
    velocity = int(VELOCITIES[int(rng.integers(len(VELOCITIES)))])
    return Piece(
        piece_id=note_piece_id(program, pitch),
        source="note",
        style="note",
        tonic=None,
        mode=None,
        tempo=None,
        parts=[Part(role="note", notes=[Note(0.0, NOTE_SECONDS, pitch, velocity)], program=program)],
        pitch=pitch,
    )
