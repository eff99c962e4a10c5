"""NSynth (Engel et al., 2017): 305,979 four-second notes at 16 kHz, with their synthesis labels.

Expected layout (the three ``nsynth-*.jsonwav.tar.gz`` archives extracted side by side)::

    ROOT/
      nsynth-train/examples.json   {note_str: {"pitch": 22, "velocity": 50,
      nsynth-train/audio/<note_str>.wav          "instrument_str": "bass_synthetic_033",
      nsynth-valid/...                           "instrument_family_str": "bass",
      nsynth-test/...                            "instrument_source_str": "synthetic",
                                                 "qualities_str": [...], ...}, ...}

Labels: ``pitch`` (MIDI int), ``velocity`` (int), ``instrument`` (the instrument id string,
e.g. ``"bass_synthetic_033"``), ``family`` (one of 11, e.g. ``"bass"``), ``source``
(``"acoustic"``, ``"electronic"`` or ``"synthetic"``), ``qualities`` (list of str).

Splits: the published ones, one folder each. A missing split folder is reported with a
warning (the training set alone is 22 GB), and an error if all three are missing.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from mt2.data.real._common import (
    SPLITS,
    AnnotationError,
    DatasetLayoutError,
    Example,
    SkippedExamplesWarning,
    require_file,
    sort_examples,
    warn_skipped,
)

DATASET = "NSynth"

#: label name -> (examples.json field, type)
FIELDS = {
    "pitch": ("pitch", int),
    "velocity": ("velocity", int),
    "instrument": ("instrument_str", str),
    "family": ("instrument_family_str", str),
    "source": ("instrument_source_str", str),
    "qualities": ("qualities_str", list),
}


def read_examples_json(path: Path) -> dict[str, dict]:
    """``{note_str: labels}`` from one ``examples.json``."""
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)
    except json.JSONDecodeError as error:
        raise AnnotationError(path, error.lineno, f"invalid JSON ({error.msg})") from None
    if not isinstance(entries, dict):
        raise AnnotationError(path, None, "expected a JSON object keyed by note_str")
    notes = {}
    for note_str, entry in entries.items():
        labels = {}
        for label, (field, kind) in FIELDS.items():
            value = entry.get(field) if isinstance(entry, dict) else None
            if not isinstance(value, kind) or isinstance(value, bool):
                problem = f"field {field!r} missing or not {kind.__name__}"
                raise AnnotationError(path, None, f"entry {note_str!r}: {problem}")
            labels[label] = value
        notes[note_str] = labels
    return notes


def load(root: str | Path) -> list[Example]:
    """All notes of the split folders present, sorted by path."""
    root = Path(root)
    folders = {split: root / f"nsynth-{split}" for split in SPLITS}
    present = {split: folder for split, folder in folders.items() if folder.is_dir()}
    if not present:
        raise DatasetLayoutError(
            f"{DATASET}: expected split folders at {root}/nsynth-{{train,valid,test}}/; found none"
        )
    absent = [str(folder) for split, folder in folders.items() if split not in present]
    if absent:
        warnings.warn(
            f"{DATASET}: split folder(s) not found, loading without them: {', '.join(absent)}",
            SkippedExamplesWarning,
            stacklevel=2,
        )
    examples = []
    for split, folder in present.items():
        notes = read_examples_json(require_file(DATASET, "labels", folder / "examples.json"))
        missing = []
        for note_str, labels in notes.items():
            audio = folder / "audio" / f"{note_str}.wav"
            if audio.is_file():
                examples.append(Example(audio, split, labels))
            else:
                missing.append(audio)
        warn_skipped(f"{DATASET} {split}", "audio missing", missing, len(notes))
    return sort_examples(examples)
