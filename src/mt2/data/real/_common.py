"""Pieces shared by the real-dataset loaders: the record, the errors, file and split helpers.

Nothing here decodes audio: loaders only list files and parse annotations, so they run in
milliseconds even on the full datasets, and a file that cannot be decoded is the decoding
stage's business (docs/design.md section 4).
"""
from __future__ import annotations

import csv
import hashlib
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mt2.keys import key_name, pitch_class_of

SPLITS = ("train", "valid", "test")

#: Train/valid/test fractions of the documented deterministic split, used where a dataset
#: publishes no split of its own.
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)

_MODES = {"major": "major", "maj": "major", "minor": "minor", "min": "minor"}


@dataclass(frozen=True)
class Example:
    """One labelled audio file.

    ``labels`` uses the same key for the same meaning across datasets: ``key`` (mir_eval
    syntax, e.g. ``"A minor"``), ``tempo`` (BPM, float), ``beats`` / ``downbeats`` (seconds),
    ``genre``, ``tags`` (list of str), ``pitch`` (MIDI int), ``instrument``, ``family``.
    """

    path: Path
    split: str
    labels: dict


class DatasetLayoutError(FileNotFoundError):
    """A folder or file that the dataset's published layout requires is not there."""


class AnnotationError(ValueError):
    """An annotation that cannot be parsed; the message names the file and the line."""

    def __init__(self, path: Path, line: int | None, problem: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line


class SkippedExamplesWarning(UserWarning):
    """Some examples were left out (e.g. their audio is missing); the message counts them."""


# --------------------------------------------------------------------------- layout checks


def require_dir(dataset: str, what: str, folder: Path) -> Path:
    """Return ``folder``, or raise :class:`DatasetLayoutError` saying ``what`` was expected."""
    if not folder.is_dir():
        raise DatasetLayoutError(f"{dataset}: expected {what} at {folder}/; folder not found")
    return folder


def require_file(dataset: str, what: str, path: Path) -> Path:
    """Return ``path``, or raise :class:`DatasetLayoutError` saying ``what`` was expected."""
    if not path.is_file():
        raise DatasetLayoutError(f"{dataset}: expected {what} at {path}; file not found")
    return path


def require_glob(dataset: str, what: str, folder: Path, pattern: str) -> list[Path]:
    """Sorted files matching ``folder/pattern``; raise if the folder is missing or none match."""
    matches = sorted(p for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else []
    if not matches:
        raise DatasetLayoutError(f"{dataset}: expected {what} at {folder / pattern}; found none")
    return matches


def find_audio(base: Path, extensions: Sequence[str]) -> Path | None:
    """The first existing ``base + ext`` (``base`` may itself contain dots, e.g. ``1.LOFI``)."""
    for ext in extensions:
        candidate = base.parent / (base.name + ext)
        if candidate.is_file():
            return candidate
    return None


def warn_skipped(dataset: str, reason: str, items: Sequence[object], total: int) -> None:
    """Warn once that ``len(items)`` of ``total`` examples were skipped, naming a few."""
    if not items:
        return
    shown = ", ".join(str(item) for item in items[:3])
    more = f", ... ({len(items) - 3} more)" if len(items) > 3 else ""
    warnings.warn(
        f"{dataset}: skipped {len(items)} of {total} examples ({reason}): {shown}{more}",
        SkippedExamplesWarning,
        stacklevel=3,
    )


def annotated_audio(
    dataset: str, annotation_dir: Path, suffix: str, audio_dir: Path, extensions: Sequence[str]
) -> list[tuple[Path, Path]]:
    """Pair every ``annotation_dir/*suffix`` file with ``audio_dir/<same name><ext>``.

    Returns ``(annotation, audio)`` pairs sorted by annotation; annotations whose audio is
    missing are skipped with one :class:`SkippedExamplesWarning`.
    """
    annotations = require_glob(dataset, "annotations", annotation_dir, f"*{suffix}")
    pairs, missing = [], []
    for annotation in annotations:
        base = audio_dir / annotation.name[: -len(suffix)]
        audio = find_audio(base, extensions)
        if audio is None:
            missing.append(f"{base}{{{','.join(extensions)}}}")
        else:
            pairs.append((annotation, audio))
    warn_skipped(dataset, "audio missing", missing, len(annotations))
    return pairs


# --------------------------------------------------------------------------- text and tables


def read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines of a text file, stripped, with their 1-based line numbers."""
    with open(path, encoding="utf-8-sig") as handle:
        return [(number, line.strip()) for number, line in enumerate(handle, 1) if line.strip()]


def read_single_value(path: Path) -> tuple[int, str]:
    """The one non-blank line of a one-value annotation file (e.g. a ``.key`` or ``.bpm``)."""
    lines = read_lines(path)
    if len(lines) != 1:
        line = lines[1][0] if lines else None
        raise AnnotationError(path, line, f"expected exactly one value, found {len(lines)} lines")
    return lines[0]


def parse_value(text: str, parse: Callable[[str], object], path: Path, line: int, what: str):
    """``parse(text)``, turning a ``ValueError`` into an :class:`AnnotationError`."""
    try:
        return parse(text)
    except ValueError as error:
        raise AnnotationError(path, line, f"cannot read {what} from {text!r} ({error})") from None


def parse_int(text: str) -> int:
    """An integer written as ``"3"`` or ``"3.0"``; anything with a fractional part fails."""
    value = float(text)
    if not value.is_integer():
        raise ValueError("not an integer")
    return int(value)


def read_table(
    path: Path, required: Iterable[str], delimiter: str
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and ``(line number, row)`` pairs of a delimited file with a header line.

    A leading byte-order mark and blank rows are ignored. Raises :class:`AnnotationError`
    for a header lacking a ``required`` column or a row whose number of fields differs from
    the header's.
    """
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, [])
        absent = [column for column in required if column not in header]
        if absent:
            raise AnnotationError(path, 1, f"header lacks column(s) {absent}; found {header}")
        rows = []
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            if len(fields) != len(header):
                raise AnnotationError(
                    path, reader.line_num, f"{len(fields)} fields, header has {len(header)}"
                )
            rows.append((reader.line_num, dict(zip(header, fields))))
    return header, rows


# --------------------------------------------------------------------------- labels and splits


def normalize_key(text: str) -> str:
    """A key label in canonical ``mir_eval`` syntax: ``"db MIN"`` -> ``"C# minor"``.

    Accepts ``<tonic> <mode>`` with any number of ``#``/``b`` accidentals (so ``E#``, ``Cb``
    and double accidentals work) and modes ``major``/``maj``/``minor``/``min`` in any case.
    Every key gets the one spelling of :func:`mt2.keys.key_name`, the spelling the
    embedded corpus uses, so equal keys compare equal as strings. Raises ``ValueError``
    otherwise.
    """
    parts = text.split()
    if len(parts) != 2 or parts[1].lower() not in _MODES:
        raise ValueError(f"not a key of the form '<tonic> major|minor': {text!r}")
    tonic = parts[0][:1].upper() + parts[0][1:]
    return key_name(pitch_class_of(tonic), _MODES[parts[1].lower()])


def _stable_rank(item_id: str) -> tuple[str, str]:
    return hashlib.sha1(item_id.encode("utf-8")).hexdigest(), item_id


def stratified_split(
    strata: Mapping[str, str], fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> dict[str, str]:
    """Deterministic stratified train/valid/test assignment, ``{item id: split}``.

    Within each stratum (e.g. a genre) items are ordered by the SHA-1 of their id, and the
    first ``round(f_train * n)`` go to train, the items up to ``round((f_train + f_valid) * n)``
    to valid, the rest to test. An item's split depends only on its id and its stratum's
    members, never on the order files were listed in or on the machine.
    """
    members: dict[str, list[str]] = defaultdict(list)
    for item_id, stratum in strata.items():
        members[stratum].append(item_id)
    train_end, valid_end = fractions[0], fractions[0] + fractions[1]
    splits = {}
    for ids in members.values():
        ids.sort(key=_stable_rank)
        n = len(ids)
        n_train, n_train_valid = int(train_end * n + 0.5), int(valid_end * n + 0.5)
        for rank, item_id in enumerate(ids):
            splits[item_id] = (
                "train" if rank < n_train else "valid" if rank < n_train_valid else "test"
            )
    return splits


def fold_split(fold: object, test_fold: object, folds: Sequence[object]) -> str:
    """Split of ``fold`` in a k-fold rotation: ``test_fold`` is test, the next fold valid."""
    if test_fold not in folds:
        raise ValueError(f"test fold {test_fold!r} is not one of the folds {list(folds)}")
    valid_fold = folds[(list(folds).index(test_fold) + 1) % len(folds)]
    return "test" if fold == test_fold else "valid" if fold == valid_fold else "train"


def sort_examples(examples: Iterable[Example]) -> list[Example]:
    """Examples in the order every loader returns them: by path."""
    return sorted(examples, key=lambda example: str(example.path))
