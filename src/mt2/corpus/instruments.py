"""The General MIDI programs the corpus draws from, with playable ranges and families.

Programs span the GM families (piano, chromatic percussion, organ, guitar, bass,
strings, ensemble, brass, reed, pipe, synth lead, synth pad). Ranges are the usual
written ranges of the real instruments (MIDI note numbers), trimmed where TimGM6mb is
out of tune (measured: every program's fundamental is within 10 cents of its label
over the range kept); they decide which program may play which part and which pitches the
single-note subset covers. The GM percussion kit (channel 10) is program
:data:`DRUM_PROGRAM` = 128 in this package (a convention: GM programs are 0-127).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pretty_midi

from mt2.corpus.piece import Piece

#: Program number used for the GM percussion kit (channel 10).
DRUM_PROGRAM = 128


@dataclass(frozen=True)
class Instrument:
    """One GM program: its playable range and whether it plays chords naturally."""

    program: int
    low: int
    high: int
    polyphonic: bool

    @property
    def name(self) -> str:
        """The General MIDI name, e.g. ``"Acoustic Grand Piano"``."""
        if self.program == DRUM_PROGRAM:
            return "Standard Drum Kit"
        return pretty_midi.program_to_instrument_name(self.program)

    @property
    def family(self) -> str:
        """The GM family as a tag, e.g. ``"piano"``, ``"synth-lead"``, ``"drums"``."""
        return family_of(self.program)

    def covers(self, low: int, high: int) -> bool:
        """Whether every pitch in ``[low, high]`` lies in the playable range."""
        return self.low <= low and high <= self.high

    def describe(self) -> dict:
        """The manifest form: ``{"program", "family", "name"}``."""
        return {"program": self.program, "family": self.family, "name": self.name}


def family_of(program: int) -> str:
    """GM family tag of a program (``"drums"`` for :data:`DRUM_PROGRAM`)."""
    if program == DRUM_PROGRAM:
        return "drums"
    return pretty_midi.program_to_instrument_class(program).lower().replace(" ", "-")


_TABLE = [
    # program, low, high, polyphonic
    (0, 21, 108, True),  # Acoustic Grand Piano
    (4, 28, 103, True),  # Electric Piano 1
    (6, 29, 89, True),  # Harpsichord
    (11, 53, 89, True),  # Vibraphone
    (12, 45, 96, True),  # Marimba
    (16, 36, 96, True),  # Drawbar Organ
    (19, 24, 96, True),  # Church Organ
    (21, 53, 71, True),  # Accordion (TimGM6mb is 45-70 cents flat above 71)
    (24, 40, 84, True),  # Acoustic Guitar (nylon)
    (25, 40, 84, True),  # Acoustic Guitar (steel)
    (26, 40, 86, True),  # Electric Guitar (jazz)
    (32, 28, 60, False),  # Acoustic Bass
    (33, 28, 62, False),  # Electric Bass (finger)
    (38, 28, 64, False),  # Synth Bass 1
    (40, 55, 100, False),  # Violin
    (41, 48, 88, False),  # Viola
    (42, 36, 76, False),  # Cello
    (43, 28, 60, False),  # Contrabass
    (46, 24, 103, True),  # Orchestral Harp
    (48, 28, 96, True),  # String Ensemble 1
    (52, 48, 79, True),  # Choir Aahs
    (56, 55, 82, False),  # Trumpet
    (57, 40, 72, False),  # Trombone
    (58, 28, 58, False),  # Tuba
    (60, 41, 77, False),  # French Horn
    (61, 36, 84, True),  # Brass Section
    (64, 56, 87, False),  # Soprano Sax
    (65, 49, 81, False),  # Alto Sax
    (66, 44, 76, False),  # Tenor Sax
    (68, 58, 91, False),  # Oboe
    (70, 34, 72, False),  # Bassoon
    (71, 50, 91, False),  # Clarinet
    (73, 60, 96, False),  # Flute
    (74, 60, 96, False),  # Recorder
    (75, 60, 96, False),  # Pan Flute
    (80, 36, 96, False),  # Lead 1 (square)
    (81, 36, 90, False),  # Lead 2 (sawtooth) (TimGM6mb is 80 cents flat above 90)
    (88, 36, 96, True),  # Pad 1 (new age)
    (89, 36, 96, True),  # Pad 2 (warm)
    (90, 36, 96, True),  # Pad 3 (polysynth)
]

#: Every program the corpus uses, by program number.
INSTRUMENTS: dict[int, Instrument] = {row[0]: Instrument(*row) for row in _TABLE}
#: The percussion kit (not in INSTRUMENTS: it has no pitch range).
DRUMS = Instrument(DRUM_PROGRAM, 35, 81, True)


def instrument(program: int) -> Instrument:
    """The Instrument for a program (``DRUMS`` for 128); KeyError if not in the table."""
    return DRUMS if program == DRUM_PROGRAM else INSTRUMENTS[program]


def candidates(low: int, high: int, polyphonic: bool) -> list[int]:
    """Programs that cover ``[low, high]`` (and play chords, if ``polyphonic``), sorted."""
    return [p for p, inst in INSTRUMENTS.items() if inst.covers(low, high) and (inst.polyphonic or not polyphonic)]


def orchestrate(piece: Piece, rng: np.random.Generator, max_programs: int = 4) -> Piece:
    """Give every part a program, drawn from ``rng``.

    The pitched parts (lead first) are cut into 1..``max_programs`` contiguous groups;
    each group gets one program whose range covers all its notes (and that plays chords
    if the group has more than one part or a chordal part), distinct from the other
    groups' programs where possible. Drum parts get :data:`DRUM_PROGRAM`.

    Raises:
        ValueError: no program in the table covers a group's range.
    """
    pitched = [i for i, part in enumerate(piece.parts) if not part.is_drum]
    n_groups = int(rng.integers(1, min(max_programs, len(pitched)) + 1))
    cuts = sorted(int(c) for c in rng.choice(np.arange(1, len(pitched)), size=n_groups - 1, replace=False))
    bounds = [0, *cuts, len(pitched)]
    programs: dict[int, int] = {}
    for a, b in zip(bounds, bounds[1:]):
        group = [piece.parts[i] for i in pitched[a:b]]
        low = min(part.pitch_range()[0] for part in group)
        high = max(part.pitch_range()[1] for part in group)
        chordal = len(group) > 1 or any(part.polyphonic for part in group)
        allowed = candidates(low, high, chordal)
        if not allowed:
            raise ValueError(f"no program covers pitches {low}-{high}")
        fresh = [p for p in allowed if p not in programs.values()] or allowed
        program = fresh[int(rng.integers(len(fresh)))]
        programs.update({i: program for i in pitched[a:b]})
    parts = [
        replace(part, program=DRUM_PROGRAM if part.is_drum else programs[i]) for i, part in enumerate(piece.parts)
    ]
    return replace(piece, parts=parts)
