"""Generated pieces that change key (the corpus's ``modulations`` size, for the key timeline):
the sections of :func:`mt2.corpus.generator.generate_piece`'s composer, each in its own
key, joined at bar lines, with the keys and their times in ``key_segments``."""
from __future__ import annotations

import math

import numpy as np

from mt2.corpus.generator import ARTICULATION, METERS, PAD_PROBABILITY, STYLES, _choice, _Composer
from mt2.corpus.piece import Note, Part, Piece
from mt2.keys import chord_name, key_name, signature_of


#: Key changes of :func:`generate_modulating_piece`: name -> (tonic move in semitones, new mode)
#: from a major key and from a minor key (None: the mode stays).
MODULATIONS = {
    "dominant": {"major": (7, None), "minor": (7, None)},
    "relative": {"major": (-3, "minor"), "minor": (3, "major")},
    "step-up": {"major": (2, None), "minor": (2, None)},
}


def modulated_keys(tonic: int, mode: str, changes: tuple[str, ...]) -> list[tuple[int, str]]:
    """The keys ``(tonic, mode)`` of the sections: the home key, then one per change of :data:`MODULATIONS`."""
    keys = [(tonic % 12, mode)]
    for change in changes:
        move, new_mode = MODULATIONS[change][keys[-1][1]]
        keys.append(((keys[-1][0] + move) % 12, new_mode or keys[-1][1]))
    return keys


def generate_modulating_piece(
    piece_id: str, rng: np.random.Generator, tonic: int, mode: str, style: str, seconds: float, changes: tuple[str, ...]
) -> Piece:
    """A piece of at least ``seconds`` that starts in (``tonic``, ``mode``) and changes key at
    bar lines once per entry of ``changes`` (names of :data:`MODULATIONS`; none: one key throughout).

    Meter, tempo, pad and drums are drawn once for the piece; the bars are cut into
    ``len(changes) + 1`` sections of nearly equal length (a boundary moves by up to one bar at
    random), and each section is composed like :func:`generate_piece` in its own key (its
    progression opens on its tonic and its melody ends on it) and transposed there
    (-5..+6 semitones from C). ``key_segments`` holds ``(start, end, key)`` per section in
    seconds; ``tonic``, ``mode`` and ``transposition`` are the home key's.
    """
    spec = STYLES[style]
    meter = _choice(rng, spec.meters)
    tempo = int(rng.integers(spec.tempo[0], spec.tempo[1] + 1))
    beats_per_bar, eighths_per_beat = METERS[meter]
    bar = beats_per_bar * eighths_per_beat
    eighth = 60.0 / tempo / eighths_per_beat
    n_bars = math.ceil(seconds / (bar * eighth))
    sections = len(changes) + 1
    if n_bars < 2 * sections:
        raise ValueError(f"{seconds} s hold {n_bars} bars: too few for {sections} sections of 2 bars or more")
    cuts = [0]
    for k in range(1, sections):
        ideal = round(n_bars * k / sections) + int(rng.integers(-1, 2))
        cuts.append(min(max(ideal, cuts[-1] + 2), n_bars - 2 * (sections - k)))
    cuts.append(n_bars)
    has_pad = rng.random() < PAD_PROBABILITY
    has_drums = bool(spec.drums and rng.random() < spec.drums)
    roles = {"melody": [], "harmony": [], "bass": [], "pad": [], "drums": []}
    chords, key_segments = [], []
    for (section_tonic, section_mode), first, last in zip(modulated_keys(tonic, mode, changes), cuts, cuts[1:]):
        composer = _Composer(rng, section_mode, style, meter, tempo, 0.0, bars=last - first)
        offset = (section_tonic + 5) % 12 - 5
        start = first * bar
        voices = {"melody": composer.melody(), "harmony": composer.harmony(), "bass": composer.bass()}
        if has_pad:
            voices["pad"] = composer.pad()
        if has_drums:
            voices["drums"] = composer.drums()
        for role, notes in voices.items():
            move = 0 if role == "drums" else offset
            roles[role].extend((start + s, n, p + move, v) for s, n, p, v in notes)
        signature = signature_of(section_tonic, section_mode)
        chords.extend(
            ((start + c.start) * eighth, (start + c.start + c.length) * eighth, chord_name(c.root + offset, c.quality, signature))
            for c in composer.chords
        )
        key_segments.append((start * eighth, last * bar * eighth, key_name(section_tonic, section_mode)))

    def part(role, polyphonic=False, is_drum=False):
        notes = [Note(s * eighth, (s + ARTICULATION * n) * eighth, p, v) for s, n, p, v in roles[role]]
        return Part(role=role, notes=notes, polyphonic=polyphonic, is_drum=is_drum)

    parts = [part("melody"), part("harmony", polyphonic=True), part("bass")]
    if has_pad:
        parts.append(part("pad", polyphonic=True))
    if has_drums:
        parts.append(part("drums", is_drum=True))
    beat = eighths_per_beat * eighth
    n_beats = n_bars * beats_per_bar
    return Piece(
        piece_id=piece_id,
        source="generator",
        style=style,
        tonic=tonic % 12,
        mode=mode,
        tempo=float(tempo),
        parts=parts,
        beats=[i * beat for i in range(n_beats)],
        downbeats=[i * beat for i in range(0, n_beats, beats_per_bar)],
        chords=chords,
        transposition=(tonic + 5) % 12 - 5,
        key_segments=key_segments,
    )
