"""GiantSteps Tempo (Knees et al., ISMIR 2015): 664 two-minute EDM previews, one tempo each.

Expected layout (the GitHub repository ``GiantSteps/giantsteps-tempo-dataset`` with its
``audio_dl.sh`` run; ``.wav`` audio works too)::

    ROOT/
      audio/<id>.LOFI.mp3                 (or <id>.LOFI.wav)
      annotations/tempo/<id>.LOFI.bpm     one number, e.g. "171.419"   (version "v1")
      annotations_v2/tempo/<id>.LOFI.bpm  crowd-sourced revision of Schreiber & Mueller,
                                          ISMIR 2018                    (version "v2")
      splits/fold01.txt ... fold10.txt    one audio file name per line, e.g. "3661855.LOFI.mp3"

Labels: ``tempo`` (BPM, float). The v2 annotations mark three tracks without a tempo as
``0.0``; those are skipped with a warning.

Splits: the repository's ten folds. Fold ``test_fold`` is test, the next one valid, the
other eight train (80/10/10). A track in no fold is skipped with a warning.
"""
from __future__ import annotations

from pathlib import Path

from mt2.data.real._common import (
    AnnotationError,
    Example,
    annotated_audio,
    fold_split,
    parse_value,
    read_lines,
    read_single_value,
    require_glob,
    sort_examples,
    warn_skipped,
)

DATASET = "GiantSteps tempo"
AUDIO_EXTENSIONS = (".mp3", ".wav")
ANNOTATION_DIRS = {"v1": "annotations", "v2": "annotations_v2"}


def read_tempo(path: Path) -> float:
    """The tempo of one ``.bpm`` file (0.0 means "no tempo" in v2)."""
    line, text = read_single_value(path)
    tempo = parse_value(text, float, path, line, "a tempo in BPM")
    if tempo < 0:
        raise AnnotationError(path, line, f"negative tempo {tempo}")
    return tempo


def read_folds(root: Path) -> dict[str, int]:
    """``{audio file stem: fold number}`` from ``splits/foldNN.txt``."""
    folds: dict[str, int] = {}
    for path in require_glob(DATASET, "fold lists", root / "splits", "fold*.txt"):
        fold = parse_value(path.stem[len("fold"):], int, path, 1, "a fold number from the name")
        for line, text in read_lines(path):
            stem = Path(text).stem
            if stem in folds:
                raise AnnotationError(path, line, f"{text} is already in fold {folds[stem]}")
            folds[stem] = fold
    return folds


def load(root: str | Path, version: str = "v1", test_fold: int = 1) -> list[Example]:
    """All annotated tracks with audio and a fold, sorted by path.

    ``version`` picks the original (``"v1"``) or the revised (``"v2"``) annotations.
    """
    if version not in ANNOTATION_DIRS:
        raise ValueError(f"{DATASET}: version must be one of {sorted(ANNOTATION_DIRS)}")
    root = Path(root)
    pairs = annotated_audio(
        DATASET, root / ANNOTATION_DIRS[version] / "tempo", ".bpm", root / "audio",
        AUDIO_EXTENSIONS,
    )
    folds = read_folds(root)
    fold_numbers = sorted(set(folds.values()))
    examples, untempoed, unfolded = [], [], []
    for annotation, audio in pairs:
        tempo = read_tempo(annotation)
        if tempo == 0:
            untempoed.append(annotation)
        elif audio.stem not in folds:
            unfolded.append(audio)
        else:
            split = fold_split(folds[audio.stem], test_fold, fold_numbers)
            examples.append(Example(audio, split, {"tempo": tempo}))
    warn_skipped(DATASET, "annotated tempo 0.0, i.e. none", untempoed, len(pairs))
    warn_skipped(DATASET, "in no splits/fold*.txt", unfolded, len(pairs))
    return sort_examples(examples)
