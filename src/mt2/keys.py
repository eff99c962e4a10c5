"""Keys, key signatures and the classical template baseline.

A key is ``(tonic, mode)`` with ``tonic`` a pitch class (C = 0) and ``mode`` ``major`` or
``minor``; its name follows mir_eval (``"A minor"``). Its **key signature** is the pitch
class of the relative major tonic (A minor -> 0, like C major): the 12 classes that the
equivariant token can tell apart, since a key and its relative share their notes.
"""
from __future__ import annotations

import numpy as np

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")
_NAME_TO_PC = {name: pc for pc, name in enumerate(PITCH_NAMES)} | {
    "Db": 1, "D#": 3, "Gb": 6, "G#": 8, "A#": 10, "Cb": 11, "B#": 0, "E#": 5, "Fb": 4,
}

#: Krumhansl-Kessler probe-tone profiles, tonic first.
KRUMHANSL_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KRUMHANSL_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def key_name(tonic: int, mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} must be one of {MODES}")
    return f"{PITCH_NAMES[tonic % 12]} {mode}"


def parse_key(name: str) -> tuple[int, str]:
    """``"A minor"`` -> ``(9, "minor")``; accepts sharps and flats."""
    parts = name.strip().split()
    if len(parts) != 2 or parts[0] not in _NAME_TO_PC or parts[1] not in MODES:
        raise ValueError(f"cannot read key {name!r}: expected '<tonic> major|minor', e.g. 'F# minor'")
    return _NAME_TO_PC[parts[0]], parts[1]


def signature_of(tonic: int, mode: str) -> int:
    """Pitch class of the relative major tonic (the key signature)."""
    return (tonic + (3 if mode == "minor" else 0)) % 12


def signature_name(signature: int) -> str:
    """``0`` -> ``"C major / A minor (0 sharps)"``; sharps and flats by the shorter spelling."""
    fifths = (7 * signature) % 12  # steps clockwise on the circle of fifths
    count = f"{fifths} sharps" if fifths <= 6 else f"{12 - fifths} flats"
    return f"{PITCH_NAMES[signature]} major / {PITCH_NAMES[(signature - 3) % 12]} minor ({count})"


def fifths_distance(a: int, b: int) -> int:
    """Steps between two signatures on the circle of fifths (0..6)."""
    d = (7 * (a - b)) % 12
    return min(d, 12 - d)


def key_templates() -> np.ndarray:
    """``(24, 12)`` z-scored templates: rows 0-11 major keys C..B, rows 12-23 minor keys."""
    rows = [np.roll(KRUMHANSL_MAJOR, t) for t in range(12)] + [np.roll(KRUMHANSL_MINOR, t) for t in range(12)]
    rows = np.array(rows)
    return (rows - rows.mean(axis=1, keepdims=True)) / rows.std(axis=1, keepdims=True)


def template_key(chroma: np.ndarray) -> tuple[int, str, np.ndarray]:
    """Key with the highest Pearson correlation to the chroma ``(12,)`` (C = 0): tonic, mode, scores (24,)."""
    chroma = np.asarray(chroma, dtype=np.float64)
    z = (chroma - chroma.mean()) / (chroma.std() + 1e-12)
    scores = key_templates() @ z / 12
    best = int(np.argmax(scores))
    return best % 12, MODES[best // 12], scores


def chroma_from_window(window: np.ndarray, offset: int, midi_of_bin0: int = 21) -> np.ndarray:
    """Fold a CQT window ``(bins, T)`` cut at ``offset`` into a 12-bin chroma (C = 0), time-averaged."""
    window = np.asarray(window)
    profile = window.mean(axis=-1)
    pitch_classes = (midi_of_bin0 + offset + np.arange(profile.shape[0])) % 12
    return np.bincount(pitch_classes, weights=profile, minlength=12)


def key_scores(references: list[str], estimates: list[str]) -> dict[str, float]:
    """Clip-level key metrics of estimated against reference key names (mir_eval syntax).

    - ``weighted``: the MIREX score, ``mir_eval.key.weighted_score`` averaged over clips
      (1 same key, 0.5 a fifth away, 0.3 relative, 0.2 parallel, else 0);
    - ``accuracy``: share of exact keys;
    - ``signature``: share with the right key signature (the key or its relative, what the
      equivariant token can know, :func:`signature_of`);
    - ``within_fifth``: share with the signature at most one step away on the circle of fifths;
    - ``mode``: share of exact keys among the clips with the right signature (how well the
      major/minor decision does where the signature is known; NaN if none is right);
    - ``clips``: how many pairs were scored.

    The two signature metrics count only references in major or minor (mir_eval's ``other``
    mode and ``X`` have no signature); NaN if there is none.
    """
    import mir_eval

    if len(references) != len(estimates):
        raise ValueError(f"{len(references)} references but {len(estimates)} estimates")
    if not references:
        raise ValueError("no clips to score: every reference key is missing")
    weighted = np.array([mir_eval.key.weighted_score(r, e) for r, e in zip(references, estimates)])
    distances = np.array([_signature_distance(r, e) for r, e in zip(references, estimates)])
    known = distances[~np.isnan(distances)]
    right_signature = distances == 0
    return {
        "weighted": float(weighted.mean()),
        "accuracy": float(np.mean(weighted == 1.0)),
        "signature": float(np.mean(known == 0)) if known.size else float("nan"),
        "within_fifth": float(np.mean(known <= 1)) if known.size else float("nan"),
        "mode": float(np.mean(weighted[right_signature] == 1.0)) if right_signature.any() else float("nan"),
        "clips": len(references),
    }


def _signature_distance(reference: str, estimate: str) -> float:
    """Circle-of-fifths steps between the two signatures; NaN if the reference is not
    major/minor, infinite if only the estimate is not (no key, ``X``, for a keyed clip is wrong)."""
    try:
        reference_signature = signature_of(*parse_key(reference))
    except ValueError:
        return float("nan")
    try:
        return float(fifths_distance(reference_signature, signature_of(*parse_key(estimate))))
    except ValueError:
        return float("inf")
