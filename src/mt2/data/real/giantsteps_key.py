"""GiantSteps Key (Knees et al., ISMIR 2015): 604 two-minute EDM previews, one global key each.

Expected layout (the GitHub repository ``GiantSteps/giantsteps-key-dataset`` with its
``audio_dl.sh`` run; ``convert_audio.sh`` output in ``.wav`` works too)::

    ROOT/
      audio/<id>.LOFI.mp3            (or <id>.LOFI.wav)
      annotations/key/<id>.LOFI.key  one line, e.g. "Bb major" or "C# minor"

Labels: ``key``, normalised to one spelling per pitch class in mir_eval syntax, the
spelling of :func:`mt2.keys.key_name` (``"Db minor"`` -> ``"C# minor"``, ``"E# major"``
-> ``"F major"``; see :func:`normalize_key`).

Splits: the dataset is published as an evaluation set without a split. The loader assigns
a documented deterministic split stratified by key (:func:`stratified_split`, 70/10/20).
To follow the original protocol (train elsewhere, e.g. on GiantSteps MTG Key, test on all
604), relabel: ``[dataclasses.replace(e, split="test") for e in load(root)]``.
"""
from __future__ import annotations

from pathlib import Path

from mt2.data.real._common import (
    AnnotationError,
    Example,
    annotated_audio,
    normalize_key,
    read_single_value,
    sort_examples,
    stratified_split,
)

DATASET = "GiantSteps key"
AUDIO_EXTENSIONS = (".mp3", ".wav")


def read_key(path: Path) -> str:
    """The normalised key of one ``.key`` file."""
    line, text = read_single_value(path)
    try:
        return normalize_key(text)
    except ValueError as error:
        raise AnnotationError(path, line, str(error)) from None


def load(root: str | Path) -> list[Example]:
    """All annotated tracks with audio, sorted by path."""
    root = Path(root)
    pairs = annotated_audio(
        DATASET, root / "annotations" / "key", ".key", root / "audio", AUDIO_EXTENSIONS
    )
    keys = {audio: read_key(annotation) for annotation, audio in pairs}
    splits = stratified_split({audio.name: key for audio, key in keys.items()})
    return sort_examples(
        Example(audio, splits[audio.name], {"key": key}) for audio, key in keys.items()
    )
