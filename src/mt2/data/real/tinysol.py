"""TinySOL (Cella et al., 2020): 2,913 isolated notes of 14 instruments, ordinary technique.

Expected layout (the Zenodo record 3685367: ``TinySOL.tar.gz`` extracted next to
``TinySOL_metadata.csv``)::

    ROOT/
      TinySOL_metadata.csv   comma-separated, header: Path, Fold, Family,
                             Instrument (abbr.), Instrument (in full), Technique (abbr.),
                             Technique (in full), Pitch, Pitch ID, Dynamics, Dynamics ID,
                             Instance ID, String ID (if applicable), Needed digital retuning
      TinySOL/<Family>/<Instrument>/<Technique>/<file>.wav
                             Path is relative to TinySOL/, e.g.
                             "Brass/Bass_Tuba/ordinario/BTb-ord-F#1-pp-N-N.wav"

Labels: ``pitch`` (MIDI int, "Pitch ID"), ``pitch_name`` ("Pitch", e.g. ``"F#1"``),
``instrument`` ("Instrument (in full)", e.g. ``"Bass Tuba"``), ``family`` (``"Brass"``,
``"Keyboards"``, ``"Strings"`` or ``"Winds"``), ``technique`` ("Technique (in full)"),
``dynamics`` (``"pp"`` ... ``"ff"``), ``fold`` (int).

Splits: the published five folds (0-4) rotated: fold ``test_fold`` is test, the next fold
valid, the other three train (60/20/20).
"""
from __future__ import annotations

from pathlib import Path

from mt2.data.real._common import (
    AnnotationError,
    Example,
    fold_split,
    parse_int,
    parse_value,
    read_table,
    require_dir,
    require_file,
    sort_examples,
    warn_skipped,
)

DATASET = "TinySOL"
FOLDS = (0, 1, 2, 3, 4)

#: label name -> (metadata column, parser)
COLUMNS = {
    "pitch": ("Pitch ID", parse_int),
    "pitch_name": ("Pitch", str),
    "instrument": ("Instrument (in full)", str),
    "family": ("Family", str),
    "technique": ("Technique (in full)", str),
    "dynamics": ("Dynamics", str),
    "fold": ("Fold", parse_int),
}


def load(root: str | Path, test_fold: int = 0) -> list[Example]:
    """All notes listed in the metadata whose audio is present, sorted by path."""
    if test_fold not in FOLDS:
        raise ValueError(f"{DATASET}: test_fold must be one of {FOLDS}, not {test_fold!r}")
    root = Path(root)
    metadata = require_file(DATASET, "metadata", root / "TinySOL_metadata.csv")
    audio_dir = require_dir(DATASET, "audio", root / "TinySOL")
    required = ["Path", *(column for column, _ in COLUMNS.values())]
    _, rows = read_table(metadata, required, delimiter=",")
    examples, missing = [], []
    for line, row in rows:
        labels = {
            label: parse_value(row[column], parse, metadata, line, f"column {column!r}")
            for label, (column, parse) in COLUMNS.items()
        }
        if labels["fold"] not in FOLDS:
            raise AnnotationError(metadata, line, f"fold {labels['fold']} is not one of {FOLDS}")
        audio = audio_dir / row["Path"]
        if audio.is_file():
            examples.append(Example(audio, fold_split(labels["fold"], test_fold, FOLDS), labels))
        else:
            missing.append(audio)
    warn_skipped(DATASET, "audio missing", missing, len(rows))
    return sort_examples(examples)
