"""Bach chorales from the music21 corpus, converted to :class:`~mt2.corpus.piece.Piece`.

Labels come from the score:

- **key**: the tonic is the final bass note (chorales close on the tonic, major or with a
  Picardy third) and it must be the tonic of one of the two most likely keys of
  music21's Krumhansl-Schmuckler analysis, which gives the mode. Chorales that end
  elsewhere (modal or half-cadence endings) raise :class:`ChoraleRejected` and are left
  out, so every key label is one that two independent readings agree on. A 12-s clip
  of a chorale that has modulated away (the chorale's key is not among the three
  Krumhansl-Kessler keys that best fit the clip's notes) gets a null key label. The written
  key signature is not used: many minor chorales carry a Dorian signature (one flat
  fewer), and the modes in the files are the encoders' guesses.
- **beats and downbeats**: from the measures and time signatures of the soprano part,
  pickups included (a pickup has beats but no downbeat).
- **chords**: one label per beat, read off the pitches sounding at the beat by exact
  pitch-class-set match (:func:`~mt2.keys.label_sonority`); sonorities that are
  not a listed triad or seventh chord get ``"X"``. These are derived from the score, not
  a human harmonic analysis.
- **tempo**: the chorales carry no tempo of their own, so one is drawn from the seed
  (the labelled tempo is the one rendered, in beats per minute of the time signature's
  beat).

Fermatas and repeats are not performed: the score is played once, in strict time.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from mt2.corpus.piece import Note, Part, Piece
from mt2.keys import label_sonority, signature_of

#: The four voices, lead first, as named in the music21 chorale files.
VOICES = ("Soprano", "Alto", "Tenor", "Bass")
#: Quarter notes per minute drawn for a chorale (a common range for chorale tempos).
QUARTER_TEMPO = (60, 100)
_EPS = 1e-6


class ChoraleRejected(ValueError):
    """A chorale left out on purpose: no four ordered voices, or a key that does not verify."""


@lru_cache(maxsize=1)
def chorale_names() -> tuple[str, ...]:
    """music21 corpus names of the Riemenschneider chorales, duplicates removed, in order."""
    from music21.corpus import chorales

    names = chorales.Iterator(returnType="filename")
    return tuple(dict.fromkeys(names))


def piece_id_of(name: str) -> str:
    """``"bach/bwv269"`` -> ``"bach-bwv269"``."""
    return "bach-" + name.rsplit("/", 1)[-1]


def _voices(score) -> list:
    """The four voice parts, soprano first: by name, else the only four parts in score order."""
    by_name = {}
    for part in score.parts:
        words = (part.partName or "").split()
        if words and words[0] in VOICES and words[0] not in by_name:
            by_name[words[0]] = part
    if len(by_name) == len(VOICES):
        voices = [by_name[v] for v in VOICES]
    elif len(score.parts) == len(VOICES):
        voices = list(score.parts)
    else:
        raise ChoraleRejected(f"no four voice parts among {[p.partName for p in score.parts]}")
    means = [np.mean([p.midi for n in v.flatten().notes for p in n.pitches]) for v in voices]
    if means != sorted(means, reverse=True):
        raise ChoraleRejected("voices are not ordered soprano to bass")
    return voices


def _verified_key(score, bass) -> tuple[int, str]:
    """The best of music21's two most likely keys whose tonic is the final bass note."""
    analysed = score.analyze("key")
    last = bass.flatten().notes.last()
    final = min(p.midi for p in last.pitches) % 12
    for reading in [analysed, *analysed.alternateInterpretations[:1]]:
        if reading.tonic.pitchClass == final and reading.mode in ("major", "minor"):
            return final, reading.mode
    raise ChoraleRejected(
        f"final bass note (pitch class {final}) is the tonic of neither {analysed} "
        f"nor {analysed.alternateInterpretations[0]} (modal or half-cadence ending)"
    )


def _beat_grid(part) -> tuple[list[float], list[float]]:
    """Beat and downbeat positions in quarter notes, from measures and time signatures."""
    beats, downbeats = [], []
    signature = None
    for measure in part.getElementsByClass("Measure"):
        signature = measure.timeSignature or signature
        if signature is None:
            raise ChoraleRejected("no time signature")
        beat = signature.beatDuration.quarterLength
        start = float(measure.offset)
        nominal = start - float(measure.paddingLeft)
        end = start + float(measure.duration.quarterLength)
        if measure.paddingLeft == 0:
            downbeats.append(start)
        for k in range(signature.beatCount):
            t = nominal + k * beat
            if start - _EPS <= t < end - _EPS:
                beats.append(t)
    return beats, downbeats


def _notes(part) -> list[tuple[float, float, int]]:
    """(onset, offset, pitch) in quarter notes, ties merged, grace notes dropped."""
    notes = []
    for element in part.stripTies().flatten().notes:
        length = float(element.duration.quarterLength)
        if length <= 0:
            continue
        onset = float(element.offset)
        notes.extend((onset, onset + length, p.midi) for p in element.pitches)
    return notes


def _chords(voices: list[list[tuple[float, float, int]]], beats: list[float], end: float, signature: int):
    """Beat-level chord labels (in quarter notes), consecutive repeats merged."""
    spans = []
    for i, t in enumerate(beats):
        stop = beats[i + 1] if i + 1 < len(beats) else end
        sounding = [p for notes in voices for s, e, p in notes if s <= t + _EPS < e]
        label = label_sonority(sounding, signature)
        if spans and spans[-1][2] == label:
            spans[-1][1] = stop
        else:
            spans.append([t, stop, label])
    return spans


def load_chorale(name: str, rng: np.random.Generator) -> Piece:
    """Parse a chorale and convert it to a Piece at a tempo drawn from ``rng``.

    Parts are the four voices, soprano first (the lead), with no program yet.

    Raises:
        ChoraleRejected: not four voices, or the key does not verify.
    """
    from music21 import corpus

    score = corpus.parse(name)
    voices = _voices(score)
    tonic, mode = _verified_key(score, voices[-1])
    beats_q, downbeats_q = _beat_grid(voices[0])
    quarter_bpm = int(rng.integers(QUARTER_TEMPO[0], QUARTER_TEMPO[1] + 1))
    seconds = 60.0 / quarter_bpm  # per quarter note
    first_signature = voices[0].recurse().getElementsByClass("TimeSignature").first()
    beat_quarters = float(first_signature.beatDuration.quarterLength)

    notes_q = [_notes(voice) for voice in voices]
    end_q = max(e for notes in notes_q for _, e, _ in notes)
    chords_q = _chords(notes_q, beats_q, end_q, signature_of(tonic, mode))
    parts = []
    for role, notes in zip(VOICES, notes_q):
        loudness = 90 if role == "Soprano" else 78
        parts.append(
            Part(
                role=role.lower(),
                notes=[
                    Note(s * seconds, e * seconds, p, int(np.clip(loudness + rng.integers(-6, 7), 1, 127)))
                    for s, e, p in notes
                ],
            )
        )
    return Piece(
        piece_id=piece_id_of(name),
        source="bach",
        style="chorale",
        tonic=tonic,
        mode=mode,
        tempo=quarter_bpm / beat_quarters,
        parts=parts,
        beats=[t * seconds for t in beats_q],
        downbeats=[t * seconds for t in downbeats_q],
        chords=[(s * seconds, e * seconds, label) for s, e, label in chords_q],
        local_keys=True,
    )
