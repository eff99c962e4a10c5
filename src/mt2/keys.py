"""Music theory, the one definition of each: pitch names, keys, key signatures, chord
labels, the Krumhansl-Kessler templates and the template key of a CQT window.

A key is ``(tonic, mode)`` with ``tonic`` a pitch class (C = 0) and ``mode`` ``major`` or
``minor``; its name follows mir_eval (``"A minor"``). Its **key signature** is the pitch
class of the relative major tonic (A minor -> 0, like C major): the 12 classes that the
equivariant token can tell apart, since a key and its relative share their notes. Names are
spelled by signature: flats in the flat signatures (F, Bb, Eb, Ab, Db), sharps otherwise, so
every key and chord root has one spelling (``"Db major"``, ``"G# minor"``, ``"F# major"``).

The template key: chroma ``c`` (12,) and the 24 key profiles ``p_k`` (the Krumhansl-Kessler
probe-tone ratings rolled to each tonic) score ``s_k = corr(c, p_k)`` (Pearson); the key is
``argmax_k s_k``. Chroma of a CQT window ``X`` (bins, T) cut at bin ``offset``: bin ``b``
is MIDI pitch ``midi_of_bin0 + offset + b``, and ``c[q] = sum over bins of pitch class q of
mean_t X[b, t]``.
"""
from __future__ import annotations

import numpy as np

PITCH_NAMES_SHARP = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
PITCH_NAMES_FLAT = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
#: Key signatures (relative major tonic pitch classes) spelled with flats.
FLAT_SIGNATURES = frozenset({5, 10, 3, 8, 1})
MODES = ("major", "minor")
_NATURALS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

#: Krumhansl-Kessler probe-tone profiles, tonic first.
KRUMHANSL_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KRUMHANSL_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

#: Chord qualities (mir_eval shorthand) and their intervals above the root.
CHORD_QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "hdim7": (0, 3, 6, 10),
    "dim7": (0, 3, 6, 9),
}
NO_CHORD = "N"
UNKNOWN_CHORD = "X"


# -- names -----------------------------------------------------------------------------------
def signature_of(tonic: int, mode: str) -> int:
    """Pitch class of the relative major tonic: the key signature (A minor -> 0)."""
    return (tonic + (3 if mode == "minor" else 0)) % 12


def tonic_of(signature: int, mode: str) -> int:
    """The tonic of the key in ``mode`` whose signature is ``signature`` (the inverse of :func:`signature_of`)."""
    return (signature - (3 if mode == "minor" else 0)) % 12


def pitch_name(pitch_class: int, signature: int) -> str:
    """Name of a pitch class, spelled with flats in flat key signatures."""
    names = PITCH_NAMES_FLAT if signature % 12 in FLAT_SIGNATURES else PITCH_NAMES_SHARP
    return names[pitch_class % 12]


def key_name(tonic: int, mode: str) -> str:
    """mir_eval key label, e.g. ``"A minor"``, ``"Eb major"``, spelled by :func:`pitch_name`."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} must be one of {MODES}")
    return f"{pitch_name(tonic, signature_of(tonic, mode))} {mode}"


def pitch_class_of(name: str) -> int:
    """``"Eb"`` -> 3: a letter A-G followed by any number of ``#`` and ``b``."""
    letter, accidentals = name[:1], name[1:]
    if letter not in _NATURALS or accidentals.strip("#b"):
        raise ValueError(f"not a pitch name (letter A-G, then # or b): {name!r}")
    return (_NATURALS[letter] + accidentals.count("#") - accidentals.count("b")) % 12


def parse_key(name: str) -> tuple[int, str]:
    """``"A minor"`` -> ``(9, "minor")``; accepts sharps and flats."""
    parts = name.strip().split()
    if len(parts) != 2 or parts[1] not in MODES:
        raise ValueError(f"cannot read key {name!r}: expected '<tonic> major|minor', e.g. 'F# minor'")
    try:
        return pitch_class_of(parts[0]), parts[1]
    except ValueError:
        raise ValueError(f"cannot read key {name!r}: expected '<tonic> major|minor', e.g. 'F# minor'") from None


def signature_name(signature: int) -> str:
    """``0`` -> ``"C major / A minor (0 sharps)"``; sharps and flats by the shorter spelling."""
    fifths = (7 * signature) % 12  # steps clockwise on the circle of fifths
    count = f"{fifths} sharps" if fifths <= 6 else f"{12 - fifths} flats"
    return f"{key_name(signature, 'major')} / {key_name((signature - 3) % 12, 'minor')} ({count})"


def fifths_distance(a: int, b: int) -> int:
    """Steps between two signatures on the circle of fifths (0..6)."""
    d = (7 * (a - b)) % 12
    return min(d, 12 - d)


# -- chords ----------------------------------------------------------------------------------
def chord_name(root: int, quality: str, signature: int) -> str:
    """mir_eval chord label, e.g. ``"G:maj"``, ``"Bb:min7"``."""
    return f"{pitch_name(root, signature)}:{quality}"


def label_sonority(pitches: list[int], signature: int) -> str:
    """Chord label of a set of sounding pitches, by exact pitch-class-set match.

    The pitch-class set must equal one of :data:`CHORD_QUALITIES` on some root; when
    several roots match (diminished sevenths, augmented triads) the one in the bass is
    preferred. No pitches give ``"N"``, anything else (dyads, non-chord tones) ``"X"``.
    """
    if not pitches:
        return NO_CHORD
    classes = {p % 12 for p in pitches}
    bass = min(pitches) % 12
    for root in sorted(classes, key=lambda pc: (pc != bass, pc)):
        intervals = {(pc - root) % 12 for pc in classes}
        for quality, template in CHORD_QUALITIES.items():
            if intervals == set(template):
                return chord_name(root, quality, signature)
    return UNKNOWN_CHORD


def transpose_chord_label(label: str, semitones: int, signature: int) -> str:
    """Move the root of a mir_eval chord label by ``semitones``, spelled in ``signature``; ``N``/``X`` stay."""
    if label in (NO_CHORD, UNKNOWN_CHORD):
        return label
    root, quality = label.split(":", 1)
    return chord_name(pitch_class_of(root) + semitones, quality, signature)


# -- templates -------------------------------------------------------------------------------
def key_templates() -> np.ndarray:
    """``(24, 12)`` z-scored templates: rows 0-11 major keys C..B, rows 12-23 minor keys."""
    rows = [np.roll(KRUMHANSL_MAJOR, t) for t in range(12)] + [np.roll(KRUMHANSL_MINOR, t) for t in range(12)]
    rows = np.array(rows)
    return (rows - rows.mean(axis=1, keepdims=True)) / rows.std(axis=1, keepdims=True)


def template_scores(chroma: np.ndarray) -> np.ndarray:
    """Pearson correlations ``(..., 24)`` of chroma ``(..., 12)`` (C = 0) with the 24 templates of
    :func:`key_templates` (majors C..B, then minors C..B)."""
    chroma = np.asarray(chroma, dtype=np.float64)
    z = (chroma - chroma.mean(axis=-1, keepdims=True)) / (chroma.std(axis=-1, keepdims=True) + 1e-12)
    return z @ key_templates().T / 12


def template_key(chroma: np.ndarray) -> tuple[int, str, np.ndarray]:
    """Key with the highest Pearson correlation to the chroma ``(12,)`` (C = 0): tonic, mode, scores (24,)."""
    scores = template_scores(chroma)
    best = int(np.argmax(scores))
    return best % 12, MODES[best // 12], scores


def rank_keys(chroma: np.ndarray) -> list[tuple[int, str]]:
    """The 24 keys ``(tonic, mode)``, best first, by the scores of :func:`template_key`
    (ties: major before minor, then lower tonic)."""
    scores = template_key(chroma)[2]
    return [(int(k) % 12, MODES[int(k) // 12]) for k in np.argsort(-scores, kind="stable")]


def template_mode(chroma: np.ndarray, signature: int) -> str:
    """Major or minor for a known ``signature``: the better-correlated template of the two keys
    that share it (the major key on ``signature``, the minor three semitones below)."""
    scores = template_key(chroma)[2]  # rows 0-11 major keys C..B, 12-23 minor keys
    return "major" if scores[signature] >= scores[12 + (signature - 3) % 12] else "minor"


def chroma_from_window(window: np.ndarray, offset: int, midi_of_bin0: int = 21) -> np.ndarray:
    """Fold a CQT window ``(bins, T)`` cut at ``offset`` into a 12-bin chroma (C = 0), time-averaged."""
    window = np.asarray(window)
    profile = window.mean(axis=-1)
    pitch_classes = (midi_of_bin0 + offset + np.arange(profile.shape[0])) % 12
    return np.bincount(pitch_classes, weights=profile, minlength=12)


def template_key_of_window(window: np.ndarray, offset: int, midi_of_bin0: int = 21) -> tuple[int, str, np.ndarray]:
    """The template key of a CQT window ``(bins, T)`` cut at ``offset``: ``template_key(chroma_from_window(...))``."""
    return template_key(chroma_from_window(window, offset, midi_of_bin0))


# -- metrics ---------------------------------------------------------------------------------
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
    import mir_eval  # the [bench] extra: scoring, not estimating

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
