"""MagnaTagATune (Law et al., ISMIR 2009): 25,863 clips of about 29 s, 188 binary tags.

Expected layout (``annotations_final.csv`` and the ``mp3.zip.001``-``003`` archive unzipped
next to it)::

    ROOT/
      annotations_final.csv   tab-separated (fields may be double-quoted); header
                              "clip_id", 188 tag columns, "mp3_path"; tag values 0 or 1
      0/ 1/ ... f/<name>.mp3  mp3_path is relative to ROOT,
                              e.g. "f/<artist>-<album>-01-<title>-30-59.mp3"

Labels: ``tags``, the clip's tags among the ``top_k`` (default 50) most frequent tags of the
whole csv (ties broken by column order), listed in that frequency order; ``clip_id`` (int).
Clips with none of the top tags are kept, with an empty list.

Splits: the standard one by the first hex folder of ``mp3_path`` (Dieleman & Schrauwen,
2014): ``0``-``b`` train, ``c`` valid, ``d``-``f`` test.
"""
from __future__ import annotations

from pathlib import Path

from mt2.data.real._common import (
    AnnotationError,
    Example,
    parse_value,
    read_table,
    require_file,
    sort_examples,
    warn_skipped,
)

DATASET = "MagnaTagATune"
ID_COLUMN, PATH_COLUMN = "clip_id", "mp3_path"
SPLIT_OF_FOLDER = {
    **{folder: "train" for folder in "0123456789ab"},
    "c": "valid",
    **{folder: "test" for folder in "def"},
}


def count_tags(path: Path, tags: list[str], rows: list[tuple[int, dict[str, str]]]) -> dict:
    """``{tag: number of clips}``, checking every value is 0 or 1."""
    counts = dict.fromkeys(tags, 0)
    for line, row in rows:
        for tag in tags:
            value = row[tag]
            if value == "1":
                counts[tag] += 1
            elif value != "0":
                raise AnnotationError(path, line, f"tag {tag!r} is {value!r}, expected 0 or 1")
    return counts


def load(root: str | Path, top_k: int = 50) -> list[Example]:
    """All clips whose mp3 is present, sorted by path."""
    root = Path(root)
    csv_path = require_file(DATASET, "tag annotations", root / "annotations_final.csv")
    header, rows = read_table(csv_path, [ID_COLUMN, PATH_COLUMN], delimiter="\t")
    columns = [column for column in header if column not in (ID_COLUMN, PATH_COLUMN)]
    counts = count_tags(csv_path, columns, rows)
    vocabulary = sorted(columns, key=lambda tag: -counts[tag])[:top_k]
    examples, missing = [], []
    for line, row in rows:
        folder = row[PATH_COLUMN].split("/")[0]
        if folder not in SPLIT_OF_FOLDER:
            raise AnnotationError(csv_path, line, f"mp3_path {row[PATH_COLUMN]!r} not in 0/-f/")
        audio = root / row[PATH_COLUMN]
        if not audio.is_file():
            missing.append(audio)
            continue
        labels = {
            "tags": [tag for tag in vocabulary if row[tag] == "1"],
            "clip_id": parse_value(row[ID_COLUMN], int, csv_path, line, "a clip_id"),
        }
        examples.append(Example(audio, SPLIT_OF_FOLDER[folder], labels))
    warn_skipped(DATASET, "audio missing", missing, len(rows))
    return sort_examples(examples)
