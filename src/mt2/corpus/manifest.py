"""The corpus manifest: one JSON object per clip, keys in a fixed order, sorted by clip id.

Fields (:data:`FIELDS`, in this order):

- ``path``: the FLAC file, relative to the corpus folder; ``clip_id``; ``piece_id`` (all
  clips and transpositions of a piece share it and its split); ``source``
  (``generator``, ``bach`` or ``note``); ``split`` (``train``, ``valid``, ``test``);
  ``duration`` (seconds) and ``sample_rate``.
- ``key`` (mir_eval syntax, e.g. ``"A minor"``), ``tonic`` (pitch class, C = 0),
  ``mode`` (``major``/``minor``), ``signature`` (pitch class of the relative major tonic:
  A minor -> 0); all null for single notes and for chorale clips that modulate away
  from the chorale's key (see :mod:`mt2.corpus.bach`). ``transposition``: semitones applied to the
  source material.
- ``tempo`` (beats per minute of the meter's beat; null for notes), ``beats`` and
  ``downbeats`` (seconds from the clip start), ``chords`` (``[start, end, label]`` in
  mir_eval chord syntax covering the clip, ``"N"`` for no chord, ``"X"`` for a sonority
  that is not a triad or seventh chord); empty lists for notes.
- ``instruments`` (``{program, family, name}``, lead first; program 128 is the GM drum
  kit), ``instrument`` and ``family`` (the lead's), ``pitch`` (MIDI number of a single
  note, else null).
- ``tags``: instrument families, ``solo`` or ``small-ensemble``, tempo class (``slow``
  below 90 BPM, ``fast`` from 130, else ``medium``), mode, style; ``style``.

Clips of pieces that change key (the ``modulations`` size, :func:`mt2.corpus.modulation.generate_modulating_piece`)
add a last field, ``key_segments``: ``[start, end, key]`` per section, seconds from the clip
start, covering the clip; their ``key`` is the opening key. Other clips do not have the field.
"""
from __future__ import annotations

import json
from pathlib import Path

from mt2.corpus.piece import Piece
from mt2.keys import key_name

FIELDS = (
    "path",
    "clip_id",
    "piece_id",
    "source",
    "split",
    "duration",
    "sample_rate",
    "key",
    "tonic",
    "mode",
    "signature",
    "transposition",
    "tempo",
    "beats",
    "downbeats",
    "chords",
    "instruments",
    "instrument",
    "family",
    "pitch",
    "tags",
    "style",
)
SOURCES = ("generator", "bach", "note")
SPLITS = ("train", "valid", "test")
SLOW_BELOW, FAST_FROM = 90.0, 130.0
#: Decimals kept for times in seconds (0.1 ms).
TIME_DECIMALS = 4


def tempo_class(tempo: float) -> str:
    """``slow``, ``medium`` or ``fast``."""
    return "slow" if tempo < SLOW_BELOW else "fast" if tempo >= FAST_FROM else "medium"


def _t(x: float) -> float:
    return round(float(x), TIME_DECIMALS)


def make_record(
    piece: Piece,
    *,
    path: str,
    clip_id: str,
    split: str,
    duration: float,
    sample_rate: int,
    beats: list[float],
    downbeats: list[float],
    chords: list[list],
    instruments: list[dict],
    key_holds: bool = True,
    key_segments: list[list] | None = None,
) -> dict:
    """One manifest record, keys in :data:`FIELDS` order, times rounded to 0.1 ms.

    With ``key_holds`` false (a passage that left the piece's key) the key fields and the
    mode tag are null/absent.
    """
    tonic = piece.tonic if key_holds else None
    extra = {} if key_segments is None else {"key_segments": [[_t(s), _t(e), key] for s, e, key in key_segments]}
    families = list(dict.fromkeys(i["family"] for i in instruments))
    tags = [*families, "solo" if len(instruments) == 1 else "small-ensemble"]
    if piece.tempo is not None:
        tags.append(tempo_class(piece.tempo))
    if tonic is not None:
        tags.append(piece.mode)
    tags.append(piece.style)
    return {
        "path": path,
        "clip_id": clip_id,
        "piece_id": piece.piece_id,
        "source": piece.source,
        "split": split,
        "duration": _t(duration),
        "sample_rate": sample_rate,
        "key": None if tonic is None else key_name(tonic, piece.mode),
        "tonic": tonic,
        "mode": None if tonic is None else piece.mode,
        "signature": None if tonic is None else piece.signature,
        "transposition": piece.transposition,
        "tempo": None if piece.tempo is None else round(float(piece.tempo), 2),
        "beats": [_t(b) for b in beats],
        "downbeats": [_t(b) for b in downbeats],
        "chords": [[_t(s), _t(e), label] for s, e, label in chords],
        "instruments": instruments,
        "instrument": instruments[0]["program"],
        "family": instruments[0]["family"],
        "pitch": piece.pitch,
        "tags": tags,
        "style": piece.style,
        **extra,
    }


def write_manifest(records: list[dict], path: str | Path) -> Path:
    """Write records sorted by clip id, one JSON object per line; return the path."""
    path = Path(path)
    lines = [json.dumps(r, ensure_ascii=False) for r in sorted(records, key=lambda r: r["clip_id"])]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_manifest(path: str | Path) -> list[dict]:
    """Read a manifest (a ``manifest.jsonl`` file, or the corpus folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
