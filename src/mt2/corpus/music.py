"""Symbolic music shared by the corpus sources: notes, parts, pieces, keys and chord names.

A :class:`Piece` is what every source produces (generated piece, Bach chorale, single
note) and what the renderer consumes: notes in seconds at a constant tempo, one
:class:`Part` per instrument line, and the labels that come from the score (key, beats,
downbeats, chords). Times are seconds from the start of the piece; pitches are MIDI
numbers. Transposing a piece moves its pitched notes, its key and its chord roots.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

PITCH_NAMES_SHARP = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
PITCH_NAMES_FLAT = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
#: Key signatures (relative major tonic pitch classes) spelled with flats.
FLAT_SIGNATURES = frozenset({5, 10, 3, 8, 1})
MODES = ("major", "minor")

#: Chord qualities (mir_eval shorthand) and their intervals above the root.
CHORD_QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "hdim7": (0, 3, 6, 10),
    "dim7": (0, 3, 6, 9),
}
NO_CHORD = "N"
UNKNOWN_CHORD = "X"

#: A clip keeps a piece-level key label if that key is among this many best
#: Krumhansl-Kessler keys of the clip's notes (Piece.clip_in_key).
KEY_RANK_TOLERANCE = 3
#: Krumhansl-Kessler key profiles (probe-tone ratings), tonic first.
KK_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
KK_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)


def signature_of(tonic: int, mode: str) -> int:
    """Pitch class of the relative major tonic: the key signature (A minor -> 0)."""
    return tonic % 12 if mode == "major" else (tonic + 3) % 12


def pitch_name(pitch_class: int, signature: int) -> str:
    """Name of a pitch class, spelled with flats in flat key signatures."""
    names = PITCH_NAMES_FLAT if signature in FLAT_SIGNATURES else PITCH_NAMES_SHARP
    return names[pitch_class % 12]


def key_name(tonic: int, mode: str) -> str:
    """mir_eval key label, e.g. ``"A minor"``, ``"Eb major"``."""
    return f"{pitch_name(tonic, signature_of(tonic, mode))} {mode}"


def chord_name(root: int, quality: str, signature: int) -> str:
    """mir_eval chord label, e.g. ``"G:maj"``, ``"Bb:min7"``."""
    return f"{pitch_name(root, signature)}:{quality}"


def label_sonority(pitches: list[int], signature: int) -> str:
    """Chord label of a set of sounding pitches, by exact pitch-class-set match.

    The pitch-class set must equal one of :data:`CHORD_QUALITIES` on some root; when
    several roots match (diminished sevenths, augmented triads) the one in the bass is
    preferred. No pitches give ``"N"``, anything else (dyads, non-chord tones) ``"X"``.
    """
    if not pitches:
        return NO_CHORD
    classes = {p % 12 for p in pitches}
    bass = min(pitches) % 12
    matches = []
    for root in sorted(classes, key=lambda pc: (pc != bass, pc)):
        intervals = {(pc - root) % 12 for pc in classes}
        for quality, template in CHORD_QUALITIES.items():
            if intervals == set(template):
                matches.append((root, quality))
    if not matches:
        return UNKNOWN_CHORD
    root, quality = matches[0]
    return chord_name(root, quality, signature)


def rank_keys(histogram) -> list[tuple[int, str]]:
    """The 24 keys ``(tonic, mode)``, best first, by Krumhansl-Kessler correlation.

    Each key's profile (rotated to its tonic) is correlated with the 12-bin pitch-class
    histogram.
    """
    histogram = np.asarray(histogram, dtype=float)
    scores = []
    for mode, profile in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        for tonic in range(12):
            scores.append((-float(np.corrcoef(histogram, np.roll(profile, tonic))[0, 1]), mode != "major", tonic))
    return [(tonic, "minor" if minor else "major") for _, minor, tonic in sorted(scores)]


def transpose_chord_label(label: str, semitones: int, signature: int) -> str:
    """Move the root of a mir_eval chord label by ``semitones``; ``N``/``X`` stay."""
    if label in (NO_CHORD, UNKNOWN_CHORD):
        return label
    root, quality = label.split(":", 1)
    names = PITCH_NAMES_FLAT if "b" in root[1:] else PITCH_NAMES_SHARP
    return chord_name(names.index(root) + semitones, quality, signature)


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
        )
