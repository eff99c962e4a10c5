"""Track lists: the audio files of a folder (recursive), a manifest file, or a rendered corpus.

- **folder** of audio, searched recursively (:data:`AUDIO_SUFFIXES`);
- **manifest**: a ``.jsonl`` (one JSON object per line) or ``.csv`` file with a ``path``
  column (relative to the manifest's folder, or absolute) and an optional ``split`` column;
- a folder that holds a ``manifest.jsonl`` (a corpus rendered by ``mt2 corpus render``) is
  read as its manifest.

Both the pretraining sources (:mod:`mt2.data.pretrain`) and the shard writer
(:mod:`mt2.data.shards`) list their tracks here.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".opus")
MANIFEST_NAME = "manifest.jsonl"


@dataclass
class TrackList:
    """Audio files of a folder or manifest: ``rows[i]["path"]`` is relative to ``root``."""

    kind: str  # "folder" or "manifest"
    root: Path
    rows: list[dict]

    def training_rows(self) -> list[dict]:
        """Rows of the ``train`` split; every row when the source has no splits."""
        rows = [r for r in self.rows if r.get("split") in (None, "", "train")]
        if not rows:
            raise ValueError(f"{self.root}: no rows of split 'train' to pretrain on")
        return rows


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if rows and "path" not in rows[0]:
        raise ValueError(f"{path}: a manifest needs a 'path' column (got {list(rows[0])})")
    return rows


def list_tracks(source: str | os.PathLike) -> TrackList:
    """The tracks of an audio folder (recursive), a corpus folder or a manifest file."""
    source = Path(source)
    if source.is_dir() and (source / MANIFEST_NAME).exists():
        source = source / MANIFEST_NAME
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        rows = [{"path": str(p.relative_to(source))} for p in files]
        kind, root = "folder", source
    elif source.suffix.lower() in (".jsonl", ".json"):
        from mt2.corpus import read_manifest

        rows, kind, root = read_manifest(source), "manifest", source.parent
    elif source.suffix.lower() == ".csv":
        rows, kind, root = _read_csv(source), "manifest", source.parent
    else:
        raise ValueError(f"{source}: expected a folder of audio, a manifest (.jsonl or .csv) or a folder of .tar shards")
    if not rows:
        raise ValueError(f"{source}: no audio files listed")
    return TrackList(kind, root, rows)
