"""Ballroom (Gouyon et al., 2006): 30-second excerpts of ballroom dance music, 10 style folders,
with the beat and downbeat annotations of Krebs, Boeck & Widmer (ISMIR 2013).

Expected layout (``data1.tar.gz`` of the ISMIR 2004 tempo contest, and the repository
``CPJKU/BallroomAnnotations`` beside it)::

    ROOT/
      BallroomData/<Style>/<name>.wav    Style: ChaChaCha, Jive, Quickstep, Rumba-American,
                                         Rumba-International, Rumba-Misc, Samba, Tango,
                                         VienneseWaltz, Waltz
      BallroomAnnotations/<name>.beats   one beat per line: "<time in s> <beat number in bar>",
                                         e.g. "1.86 1" (a downbeat)

Labels: ``beats`` and ``downbeats`` (seconds; downbeats are the beats numbered 1),
``tempo`` (BPM, 60 / the median inter-beat interval), ``style`` (the folder name) and
``genre`` (the style with the three Rumba folders merged into ``"Rumba"``: the 8 classes
of ballroom genre classification).

The annotations leave out the 13 duplicated excerpts (685 of 698 are annotated): audio
without a ``.beats`` file, like a ``.beats`` file without audio, is skipped with a warning.

Splits: none is published; a documented deterministic split stratified by style, 70/10/20
per style (:func:`stratified_split`).
"""
from __future__ import annotations

import statistics
from pathlib import Path

from mt2.data.real._common import (
    AnnotationError,
    Example,
    parse_int,
    parse_value,
    read_lines,
    require_glob,
    sort_examples,
    stratified_split,
    warn_skipped,
)

DATASET = "Ballroom"


def read_beats(path: Path) -> tuple[list[float], list[int]]:
    """Beat times and their numbers in the bar from one ``.beats`` file."""
    times: list[float] = []
    numbers: list[int] = []
    for line, text in read_lines(path):
        fields = text.split()
        if len(fields) != 2:
            raise AnnotationError(path, line, f"expected '<time> <beat number>', got {text!r}")
        time = parse_value(fields[0], float, path, line, "a beat time")
        number = parse_value(fields[1], parse_int, path, line, "a beat number")
        if times and time <= times[-1]:
            raise AnnotationError(path, line, f"beat at {time} s is not after {times[-1]} s")
        if number < 1:
            raise AnnotationError(path, line, f"beat number {number} < 1")
        times.append(time)
        numbers.append(number)
    if len(times) < 2:
        raise AnnotationError(path, None, "fewer than two beats, no tempo can be derived")
    return times, numbers


def beat_labels(path: Path) -> dict:
    """``beats``, ``downbeats`` and ``tempo`` of one ``.beats`` file."""
    times, numbers = read_beats(path)
    intervals = [later - earlier for earlier, later in zip(times, times[1:])]
    return {
        "beats": times,
        "downbeats": [time for time, number in zip(times, numbers) if number == 1],
        "tempo": 60.0 / statistics.median(intervals),
    }


def load(root: str | Path) -> list[Example]:
    """All excerpts with both audio and beat annotations, sorted by path."""
    root = Path(root)
    audio = {p.stem: p for p in require_glob(DATASET, "audio", root / "BallroomData", "*/*.wav")}
    beats = {
        p.stem: p
        for p in require_glob(DATASET, "beat annotations", root / "BallroomAnnotations", "*.beats")
    }
    names = sorted(audio.keys() & beats.keys())
    total = len(audio.keys() | beats.keys())
    warn_skipped(DATASET, "no .beats file", sorted(audio.keys() - beats.keys()), total)
    warn_skipped(DATASET, "audio missing", sorted(beats.keys() - audio.keys()), total)
    splits = stratified_split({name: audio[name].parent.name for name in names})
    examples = []
    for name in names:
        style = audio[name].parent.name
        labels = {
            **beat_labels(beats[name]),
            "style": style,
            "genre": "Rumba" if style.startswith("Rumba") else style,
        }
        examples.append(Example(audio[name], splits[name], labels))
    return sort_examples(examples)
