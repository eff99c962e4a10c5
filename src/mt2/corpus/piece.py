"""The score data shared by the corpus sources: notes, parts and pieces with their labels.

A :class:`Piece` is what every source produces (generated piece, Bach chorale, single
note) and what the renderer consumes: notes in seconds at a constant tempo, one
:class:`Part` per instrument line, and the labels that come from the score (key, beats,
downbeats, chords). Times are seconds from the start of the piece; pitches are MIDI
numbers. Transposing a piece moves its pitched notes, its key and its chord roots. Key and
chord names, signatures and templates are :mod:`mt2.keys`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from mt2.keys import key_name, parse_key, rank_keys, signature_of, transpose_chord_label

#: A clip keeps a piece-level key label if that key is among this many best
#: Krumhansl-Kessler keys of the clip's notes (Piece.clip_in_key).
KEY_RANK_TOLERANCE = 3


@dataclass(frozen=True)
class Note:
    """One note: onset and offset in seconds, MIDI pitch, MIDI velocity (1-127)."""

    start: float
    end: float
    pitch: int
    velocity: int


@dataclass
class Part:
    """One instrument line: a role name, its notes and, once orchestrated, its program.

    ``polyphonic`` says the part plays chords (only chord-capable programs may take it).
    Drum parts hold GM percussion keys and are never transposed.
    """

    role: str
    notes: list[Note]
    program: int | None = None
    is_drum: bool = False
    polyphonic: bool = False

    def pitch_range(self) -> tuple[int, int]:
        """Lowest and highest pitch of the part."""
        pitches = [n.pitch for n in self.notes]
        return min(pitches), max(pitches)


@dataclass
class Piece:
    """A piece ready to render, with its score-derived labels.

    ``parts[0]`` is the lead (melody, soprano or the single note): its program is the
    clip's ``instrument`` label. ``transposition`` counts the semitones applied to the
    source material so far. ``chords`` are ``(start, end, label)`` in mir_eval syntax.
    ``local_keys`` says the key is the whole piece's and passages may modulate away from
    it (a chorale): the renderer then keeps a clip's key label only where the clip's own
    notes agree with it (see :meth:`clip_in_key`).
    """

    piece_id: str
    source: str
    style: str
    tonic: int | None
    mode: str | None
    tempo: float | None
    parts: list[Part]
    beats: list[float] = field(default_factory=list)
    downbeats: list[float] = field(default_factory=list)
    chords: list[tuple[float, float, str]] = field(default_factory=list)
    transposition: int = 0
    pitch: int | None = None
    local_keys: bool = False
    #: ``(start, end, key)`` per section of a piece that changes key (mir_eval key names); empty otherwise.
    key_segments: list[tuple[float, float, str]] = field(default_factory=list)

    @property
    def end(self) -> float:
        """Time of the last note-off."""
        return max(n.end for part in self.parts for n in part.notes)

    @property
    def signature(self) -> int | None:
        """Key signature as the relative major tonic's pitch class, or None."""
        return None if self.tonic is None else signature_of(self.tonic, self.mode)

    def pitch_class_histogram(self, start: float, end: float) -> np.ndarray:
        """Sounding time of each pitch class in ``[start, end)``, drums excluded."""
        histogram = np.zeros(12)
        for part in self.parts:
            if part.is_drum:
                continue
            for note in part.notes:
                overlap = min(note.end, end) - max(note.start, start)
                if overlap > 0:
                    histogram[note.pitch % 12] += overlap
        return histogram

    def clip_in_key(self, start: float, end: float) -> bool:
        """Whether the key label holds for ``[start, end)``.

        Always true unless ``local_keys``; then the piece's key must be among the
        :data:`KEY_RANK_TOLERANCE` best Krumhansl-Kessler keys of the notes in the window.
        Measured on the chorales, the best key alone matches the verified key of a whole
        chorale only 81% of the time (66 of 81) and of its first 12 s 64%, so a strict
        test would reject many correct labels; the top three reject passages that have
        clearly modulated away (home key 91% in the first 12 s, 77% in middle clips).
        """
        if not self.local_keys or self.tonic is None:
            return True
        ranked = rank_keys(self.pitch_class_histogram(start, end))
        return (self.tonic, self.mode) in ranked[:KEY_RANK_TOLERANCE]

    def transposed(self, semitones: int) -> Piece:
        """A copy moved by ``semitones``: pitched notes, key, chord roots and pitch label."""
        if semitones == 0:
            return self
        parts = [
            part
            if part.is_drum
            else replace(part, notes=[replace(n, pitch=n.pitch + semitones) for n in part.notes])
            for part in self.parts
        ]
        tonic = None if self.tonic is None else (self.tonic + semitones) % 12
        signature = None if tonic is None else signature_of(tonic, self.mode)
        chords = [(s, e, transpose_chord_label(label, semitones, signature)) for s, e, label in self.chords]
        return replace(
            self,
            parts=parts,
            tonic=tonic,
            chords=chords,
            transposition=self.transposition + semitones,
            pitch=None if self.pitch is None else self.pitch + semitones,
            key_segments=[(s, e, key_name((k + semitones) % 12, m)) for s, e, (k, m) in
                          ((s, e, parse_key(key)) for s, e, key in self.key_segments)],
        )
