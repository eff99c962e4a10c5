"""Generated tonal pieces: chord progressions that establish a key, melody, bass, drums.

Each piece is composed in C major or C minor from a seed and then transposed to its
target key, so the ``transposition`` label is the tonic's offset from C (-5..+6).
Harmony is diatonic and phrase-based: four-chord phrases alternate between an opening
phrase ending on the dominant (half cadence) and a closing phrase ending V-I (authentic
cadence); minor keys take the dominant and leading-tone chords from harmonic minor.
Harmonic rhythm is one chord per bar, or two when a bar (other than 3/4) lasts longer
than :data:`SLOW_BAR_SECONDS`, so that a 12-s clip holds four chords or more.

Styles (each with its meters and tempo range, tempo in beats per minute of the meter's
beat: a quarter in 3/4 and 4/4, a dotted quarter in 6/8):

- ``block-chords``: chords on every beat under a melody (hymn texture);
- ``arpeggio``: Alberti-style broken chords in eighths, sustained bass;
- ``barcarolle``: 6/8, broken chords in eighths, bass on each beat;
- ``waltz``: 3/4, bass on one, chords on two and three;
- ``pop``: 4/4 with drums (kick, snare, hi-hat), eighth-note bass, sustained chords;
- ``walking-bass``: 4/4 seventh chords, a walking bass approaching each root by step,
  comping on two and four, a ride cymbal in half the pieces.

Every style puts a note onset on every beat. Parts are, lead first: melody, harmony,
bass, optionally a pad (sustained chords), and drums where the style has them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mt2.corpus.piece import Note, Part, Piece
from mt2.keys import CHORD_QUALITIES, chord_name, signature_of

#: A bar longer than this (seconds) gets two chords instead of one.
SLOW_BAR_SECONDS = 2.6
#: Fraction of its written length that a note sounds (legato, with a gap for re-attacks).
ARTICULATION = 0.95
#: Preference of the melody, on strong beats, for chord tones in the tonic triad.
TONIC_WEIGHT = 2.0
#: Probability that a generated piece has a sustained pad part.
PAD_PROBABILITY = 0.3
#: MIDI ranges of the parts in C, before transposition (-5..+6 semitones).
MELODY_RANGE = (62, 81)
HARMONY_LOW = (53, 64)  # the lowest voice of a chord voicing starts in this range
BASS_RANGE = (36, 52)
PAD_LOW = (60, 69)

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)

#: Roman numeral -> (root in C, triad quality, quality in seventh-chord styles). The tonic
#: stays a triad there: its seventh weighs on the leading tone or subtonic and blurs the key.
NUMERALS = {
    "major": {
        "I": (0, "maj", "maj"),
        "ii": (2, "min", "min7"),
        "iii": (4, "min", "min7"),
        "IV": (5, "maj", "maj7"),
        "V": (7, "maj", "7"),
        "V7": (7, "7", "7"),
        "vi": (9, "min", "min7"),
        "viio": (11, "dim", "hdim7"),
    },
    "minor": {
        "i": (0, "min", "min"),
        "iio": (2, "dim", "hdim7"),
        "III": (3, "maj", "maj7"),
        "iv": (5, "min", "min7"),
        "V": (7, "maj", "7"),
        "V7": (7, "7", "7"),
        "VI": (8, "maj", "maj7"),
        "VII": (10, "maj", "7"),
        "viio": (11, "dim", "dim7"),
    },
}
#: Four-chord phrases: "open" ones end on the dominant, "close" ones end V-I.
PHRASES = {
    ("major", "open"): [
        ("I", "IV", "ii", "V"),
        ("I", "vi", "IV", "V"),
        ("I", "iii", "IV", "V"),
        ("I", "IV", "I", "V"),
        ("I", "vi", "ii", "V"),
        ("I", "V", "vi", "V"),
    ],
    ("major", "close"): [
        ("I", "IV", "V7", "I"),
        ("I", "ii", "V", "I"),
        ("vi", "ii", "V7", "I"),
        ("IV", "V", "I", "I"),
        ("I", "vi", "V", "I"),
        ("ii", "viio", "V7", "I"),
    ],
    ("minor", "open"): [
        ("i", "iv", "i", "V"),
        ("i", "VI", "iv", "V"),
        ("i", "VII", "VI", "V"),
        ("i", "III", "iv", "V"),
        ("i", "iv", "iio", "V"),
    ],
    ("minor", "close"): [
        ("i", "iv", "V7", "i"),
        ("i", "VI", "V", "i"),
        ("iv", "V", "i", "i"),
        ("i", "iio", "V7", "i"),
        ("VI", "iv", "V", "i"),
        ("III", "iv", "V7", "i"),
    ],
}
#: Meter name -> (beats per bar, subdivisions of a beat into eighth notes).
METERS = {"4/4": (4, 2), "3/4": (3, 2), "6/8": (2, 3)}


@dataclass(frozen=True)
class Style:
    """Meters a style may take, its tempo range (beats per minute), chance of drums."""

    meters: tuple[str, ...]
    tempo: tuple[int, int]
    drums: float
    sevenths: bool = False


STYLES = {
    "block-chords": Style(("4/4", "3/4"), (60, 110), 0.0),
    "arpeggio": Style(("4/4", "3/4"), (60, 130), 0.0),
    "barcarolle": Style(("6/8",), (50, 90), 0.0),
    "waltz": Style(("3/4",), (100, 180), 0.0),
    "pop": Style(("4/4",), (80, 150), 1.0),
    "walking-bass": Style(("4/4",), (90, 170), 0.5, sevenths=True),
}

#: Melody rhythms per meter: note lengths in eighth notes, negative for rests.
MELODY_RHYTHMS = {
    "4/4": [(2, 2, 2, 2), (4, 2, 2), (2, 2, 4), (3, 1, 2, 2), (1, 1, 2, 2, 2), (8,), (4, 4), (2, 1, 1, 4)],
    "3/4": [(2, 2, 2), (4, 2), (6,), (3, 1, 2), (2, 1, 1, 2)],
    "6/8": [(3, 3), (2, 1, 3), (2, 1, 2, 1), (6,), (1, 1, 1, 3)],
}
POP_RHYTHMS = [(2, 2, -1, 1, 2), (-2, 2, 1, 1, 2), (1, 1, 2, -2, 2), (3, 3, 2), (2, 2, 2, 2)]

# General MIDI percussion keys.
KICK, SNARE, CLOSED_HAT, PEDAL_HAT, CRASH, RIDE = 36, 38, 42, 44, 49, 51


@dataclass(frozen=True)
class Chord:
    """A chord of the progression, in C: root pitch class, quality, span in eighths."""

    root: int
    quality: str
    start: int
    length: int

    @property
    def pitch_classes(self) -> list[int]:
        """Pitch classes of the chord, root first."""
        return [(self.root + i) % 12 for i in CHORD_QUALITIES[self.quality]]


def _choice(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


class _Composer:
    """Writes one piece in C; eighth notes are the time unit until conversion to seconds."""

    def __init__(self, rng: np.random.Generator, mode: str, style: str, meter: str, tempo: int, seconds: float, bars: int | None = None):
        self.rng = rng
        self.mode = mode
        self.style = style
        self.meter = meter
        self.beats_per_bar, self.eighths_per_beat = METERS[meter]
        self.bar = self.beats_per_bar * self.eighths_per_beat
        self.eighth = 60.0 / tempo / self.eighths_per_beat  # seconds
        bar_seconds = self.bar * self.eighth
        self.chord_length = self.bar // 2 if bar_seconds > SLOW_BAR_SECONDS and meter != "3/4" else self.bar
        self.n_bars = math.ceil(seconds / bar_seconds) if bars is None else bars
        self.chords = self._progression()
        self.end = self.n_bars * self.bar

    # -- harmony -------------------------------------------------------------------------
    def _progression(self) -> list[Chord]:
        n_chords = self.n_bars * self.bar // self.chord_length
        numerals: list[str] = []
        kind = "open"
        while len(numerals) < n_chords:
            numerals.extend(_choice(self.rng, PHRASES[(self.mode, kind)]))
            kind = "close" if kind == "open" else "open"
        sevenths = STYLES[self.style].sevenths
        chords = []
        for i, numeral in enumerate(numerals[:n_chords]):
            root, triad, seventh = NUMERALS[self.mode][numeral]
            chords.append(Chord(root, seventh if sevenths else triad, i * self.chord_length, self.chord_length))
        return chords

    def _scale(self, chord: Chord) -> tuple[int, ...]:
        """Melody scale under a chord: harmonic minor over the dominant and leading tone."""
        if self.mode == "major":
            return MAJOR_SCALE
        if chord.root in (7, 11):
            return (0, 2, 3, 5, 7, 8, 11)
        return MINOR_SCALE

    def _voicing(self, chord: Chord, previous: list[int] | None, low: tuple[int, int]) -> list[int]:
        """Close-position voicing whose lowest note lies in ``low``, nearest to ``previous``."""
        classes = chord.pitch_classes
        options = []
        for inversion in range(len(classes)):
            order = classes[inversion:] + classes[:inversion]
            base = next(p for p in range(low[0], low[1] + 12) if p % 12 == order[0])
            voicing = [base]
            for pc in order[1:]:
                voicing.append(voicing[-1] + (pc - voicing[-1]) % 12)
            options.append(voicing)
        if previous is None:
            return options[0]
        centre = np.mean(previous)
        return min(options, key=lambda v: (abs(np.mean(v) - centre), v))

    def _chord_at(self, eighth: int) -> Chord:
        return self.chords[min(eighth // self.chord_length, len(self.chords) - 1)]

    # -- parts -------------------------------------------------------------------------
    def melody(self) -> list[tuple[int, int, int, int]]:
        """(start, length, pitch, velocity) in eighths."""
        notes = []
        pitch = 72
        rhythms = POP_RHYTHMS if self.style == "pop" else MELODY_RHYTHMS[self.meter]
        t = 0
        while t < self.end:
            for length in _choice(self.rng, rhythms):
                if t >= self.end:
                    break
                if length > 0:
                    chord = self._chord_at(t)
                    strong = t % self.eighths_per_beat == 0
                    pitch = self._melody_pitch(pitch, chord, strong, final=t + length >= self.end)
                    notes.append((t, length, pitch, 96 + int(self.rng.integers(-8, 9))))
                t += abs(length)
        return notes

    def _melody_pitch(self, previous: int, chord: Chord, strong: bool, final: bool) -> int:
        low, high = MELODY_RANGE
        if final:
            return min((p for p in range(low, high + 1) if p % 12 == 0), key=lambda p: abs(p - previous))
        if strong:
            options = [p for p in range(low, high + 1) if p % 12 in chord.pitch_classes and abs(p - previous) <= 7]
            tonic_triad = (0, 4, 7) if self.mode == "major" else (0, 3, 7)
            weights = np.array(
                [(TONIC_WEIGHT if p % 12 in tonic_triad else 1.0) / (1 + abs(p - previous)) for p in options]
            )
            return int(options[self.rng.choice(len(options), p=weights / weights.sum())])
        scale = [p for p in range(low, high + 1) if p % 12 in self._scale(chord)]
        index = min(range(len(scale)), key=lambda i: abs(scale[i] - previous))
        step = int(self.rng.choice([-1, 1]))
        if not 0 <= index + step < len(scale):
            step = -step
        return scale[index + step]

    def harmony(self) -> list[tuple[int, int, int, int]]:
        """The accompaniment chords in the style's texture, voice-led, in eighths."""
        notes = []
        voicing = None
        e = self.eighths_per_beat
        for chord in self.chords:
            voicing = self._voicing(chord, voicing, HARMONY_LOW)
            velocity = 70 + int(self.rng.integers(-6, 7))
            if self.style == "block-chords":
                hits = [(t, e) for t in range(chord.start, chord.start + chord.length, e)]
                notes.extend((t, n, p, velocity) for t, n in hits for p in voicing)
            elif self.style in ("arpeggio", "barcarolle"):
                pattern = (0, 2, 1, 2) if self.style == "arpeggio" else (0, 1, 2, 1, 2, 1)
                for k, t in enumerate(range(chord.start, chord.start + chord.length)):
                    notes.append((t, 1, voicing[pattern[k % len(pattern)] % len(voicing)], velocity))
            elif self.style == "waltz":
                for t in range(chord.start, chord.start + chord.length, self.bar):
                    notes.extend((t + b, 1, p, velocity) for b in (2, 4) for p in voicing)
            elif self.style == "pop":
                notes.extend((chord.start, chord.length, p, velocity - 8) for p in voicing)
            elif self.style == "walking-bass":
                for t in range(chord.start, chord.start + chord.length, self.bar // 2):
                    notes.extend((t + e, 1, p, velocity) for p in voicing)
        return notes

    def pad(self) -> list[tuple[int, int, int, int]]:
        """Each chord held for its whole span, above the harmony part."""
        notes = []
        voicing = None
        for chord in self.chords:
            voicing = self._voicing(chord, voicing, PAD_LOW)
            notes.extend((chord.start, chord.length, p, 58) for p in voicing)
        return notes

    def bass(self) -> list[tuple[int, int, int, int]]:
        """Chord roots in the style's rhythm (a walking line in ``walking-bass``)."""
        notes = []
        previous = 43
        e = self.eighths_per_beat
        for index, chord in enumerate(self.chords):
            root = self._nearest(chord.root, previous)
            velocity = 88 + int(self.rng.integers(-6, 7))
            if self.style in ("block-chords", "barcarolle", "arpeggio", "pop"):
                step = {"arpeggio": chord.length, "pop": 1}.get(self.style, e)
                notes.extend((t, step, root, velocity) for t in range(chord.start, chord.start + chord.length, step))
            elif self.style == "waltz":
                for k, t in enumerate(range(chord.start, chord.start + chord.length, self.bar)):
                    pitch = root if k % 2 == 0 else self._nearest((chord.root + 7) % 12, root)
                    notes.append((t, 2, pitch, velocity))
            elif self.style == "walking-bass":
                following = self.chords[index + 1].root if index + 1 < len(self.chords) else 0
                notes.extend(self._walk(chord, root, following, velocity))
            previous = root
        return notes

    def _walk(self, chord: Chord, root: int, following: int, velocity: int):
        """Quarter notes: root, chord tones, then a scale step into the next root."""
        beats = chord.length // self.eighths_per_beat
        pitches = [root]
        tones = chord.pitch_classes[1:]
        while len(pitches) < beats - 1:
            pitches.append(self._nearest(_choice(self.rng, tones), pitches[-1]))
        if beats > 1:
            target = self._nearest(following, pitches[-1])
            scale = [p for p in range(target - 3, target + 4) if p % 12 in self._scale(chord) and p != target]
            pitches.append(min(scale, key=lambda p: (abs(p - target), self.rng.random())))
        e = self.eighths_per_beat
        return [(chord.start + k * e, e, p, velocity) for k, p in enumerate(pitches)]

    @staticmethod
    def _nearest(pitch_class: int, previous: int) -> int:
        low, high = BASS_RANGE
        return min((p for p in range(low, high + 1) if p % 12 == pitch_class), key=lambda p: abs(p - previous))

    def drums(self) -> list[tuple[int, int, int, int]]:
        """GM percussion: a rock beat for ``pop``, ride and pedal hi-hat otherwise."""
        notes = []
        for bar in range(self.n_bars):
            t = bar * self.bar
            if self.style == "pop":
                notes.append((t, 2, CRASH if bar % 4 == 0 else CLOSED_HAT, 90))
                notes.extend((t + k, 1, CLOSED_HAT, 70) for k in range(1 if bar % 4 == 0 else 0, 8))
                notes.extend((t + k, 1, KICK, 100) for k in (0, 4))
                if self.rng.random() < 0.5:
                    notes.append((t + 5, 1, KICK, 90))
                notes.extend((t + k, 1, SNARE, 95) for k in (2, 6))
            else:
                notes.extend((t + k, 2, RIDE, 75) for k in (0, 2, 4, 6))
                notes.extend((t + k, 1, PEDAL_HAT, 70) for k in (2, 6))
        return notes


def generate_piece(
    piece_id: str, rng: np.random.Generator, tonic: int, mode: str, style: str, seconds: float
) -> Piece:
    """Compose a piece of at least ``seconds`` in the key (``tonic``, ``mode``) and ``style``.

    Meter, tempo, progression, melody and the optional pad and drums are drawn from
    ``rng``. The piece is composed in C and transposed by the tonic's offset from C in
    -5..+6, recorded as its ``transposition``. Parts carry no program yet.
    """
    spec = STYLES[style]
    meter = _choice(rng, spec.meters)
    tempo = int(rng.integers(spec.tempo[0], spec.tempo[1] + 1))
    composer = _Composer(rng, mode, style, meter, tempo, seconds)

    def part(role, notes, polyphonic=False, is_drum=False):
        """A Part from (start, length, pitch, velocity) in eighths, played 95% legato."""
        eighth = composer.eighth
        return Part(
            role=role,
            notes=[Note(s * eighth, (s + ARTICULATION * n) * eighth, p, v) for s, n, p, v in notes],
            polyphonic=polyphonic,
            is_drum=is_drum,
        )

    parts = [
        part("melody", composer.melody()),
        part("harmony", composer.harmony(), polyphonic=True),
        part("bass", composer.bass()),
    ]
    if rng.random() < PAD_PROBABILITY:
        parts.append(part("pad", composer.pad(), polyphonic=True))
    if spec.drums and rng.random() < spec.drums:
        parts.append(part("drums", composer.drums(), is_drum=True))

    beat = composer.eighths_per_beat * composer.eighth
    n_beats = composer.n_bars * composer.beats_per_bar
    signature = signature_of(0, mode)
    piece = Piece(
        piece_id=piece_id,
        source="generator",
        style=style,
        tonic=0,
        mode=mode,
        tempo=float(tempo),
        parts=parts,
        beats=[i * beat for i in range(n_beats)],
        downbeats=[i * beat for i in range(0, n_beats, composer.beats_per_bar)],
        chords=[
            (c.start * composer.eighth, (c.start + c.length) * composer.eighth, chord_name(c.root, c.quality, signature))
            for c in composer.chords
        ],
    )
    offset = (tonic + 5) % 12 - 5  # -5..+6
    return piece.transposed(offset)
