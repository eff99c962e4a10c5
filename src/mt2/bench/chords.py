"""Chord recognition in the majmin vocabulary, frame level.

The probe reads each frame token and chooses one of the 25 classes of
:data:`~mt2.bench.baselines.MAJMIN_LABELS` (no chord, 12 major, 12 minor triads). A
token's target is the reference chord at its timestamp reduced as ``mir_eval.chord.majmin``
reduces it (root + the triad part of the quality: ``F#:min7`` -> ``F#:min``, ``G:7`` ->
``G:maj``); chords outside the vocabulary (``X``, ``dim``, ``sus4``, ...) give no target.
Consecutive tokens become intervals split halfway between their timestamps.

Metric: ``mir_eval.chord.majmin`` comparisons weighted by duration after mir_eval's own
alignment (``adjust_intervals``, ``merge_labeled_intervals``), pooled over clips: the
total duration labelled right over the total duration in the vocabulary, which for one
clip equals ``mir_eval.chord.evaluate(...)["majmin"]``. Baseline: triad templates on the
chroma (:func:`mt2.bench.baselines.template_chords`).
"""
from __future__ import annotations

import mir_eval
import numpy as np

from mt2.bench.baselines import CHROMA_FRAMES, MAJMIN_LABELS, template_chords
from mt2.bench.task import IGNORE, Task, TaskData, clip_end
from mt2.evaluation.stats import Ratio
from mt2.frontend import FRAME_RATE

_MAJ = np.array(mir_eval.chord.QUALITIES["maj"][:8])
_MIN = np.array(mir_eval.chord.QUALITIES["min"][:8])


def majmin_class(label: str) -> int:
    """Index in :data:`MAJMIN_LABELS` of a mir_eval chord label, or :data:`IGNORE` outside the vocabulary."""
    root, semitones, _ = mir_eval.chord.encode(label, reduce_extended_chords=False)
    if root < 0:
        return 0 if label == mir_eval.chord.NO_CHORD else IGNORE
    if np.array_equal(semitones[:8], _MAJ):
        return 1 + root
    if np.array_equal(semitones[:8], _MIN):
        return 13 + root
    return IGNORE


def labels_to_intervals(times: np.ndarray, labels: list[str], end: float) -> tuple[np.ndarray, list[str]]:
    """Intervals ``(n, 2)`` and labels from labels at increasing ``times``: each label holds
    from halfway after the previous time to halfway before the next; the first from 0, the
    last until ``end``. Runs of one label are merged."""
    bounds = np.concatenate([[0.0], (times[1:] + times[:-1]) / 2, [max(end, times[-1])]])
    starts = [0] + [i for i in range(1, len(labels)) if labels[i] != labels[i - 1]]
    stops = starts[1:] + [len(labels)]
    intervals = np.array([[bounds[a], bounds[b]] for a, b in zip(starts, stops)])
    return intervals, [labels[a] for a in starts]


def majmin_durations(reference: tuple, estimate: tuple) -> tuple[float, float]:
    """``(duration labelled right, duration in the majmin vocabulary)`` of one clip, each a
    ``(intervals, labels)`` pair, aligned and compared exactly as ``mir_eval.chord.evaluate`` does."""
    ref_intervals, ref_labels = reference
    est_intervals, est_labels = mir_eval.util.adjust_intervals(
        np.asarray(estimate[0]), list(estimate[1]), ref_intervals.min(), ref_intervals.max(),
        mir_eval.chord.NO_CHORD, mir_eval.chord.NO_CHORD,
    )
    intervals, ref, est = mir_eval.util.merge_labeled_intervals(ref_intervals, ref_labels, est_intervals, est_labels)
    durations = mir_eval.util.intervals_to_durations(intervals)
    comparisons = mir_eval.chord.majmin(ref, est)
    scored = comparisons >= 0
    return float(np.sum(durations[scored] * comparisons[scored])), float(np.sum(durations[scored]))


class ChordsTask(Task):
    name = "chords"
    family = "tonality"
    level = "frame"
    output = "softmax"
    metrics = ("majmin",)
    baseline_name = "chroma + triad templates"

    def labelled(self, labels: dict) -> bool:
        return any(majmin_class(label) != IGNORE for _, _, label in labels.get("chords") or [])

    def classes(self, train):
        return list(MAJMIN_LABELS)

    def targets(self, example, features, classes):
        intervals, labels = self.reference(example)
        timestamps = features["timestamps"]
        inside = (intervals[:, 0][None] <= timestamps[:, None]) & (timestamps[:, None] < intervals[:, 1][None])
        return np.array([majmin_class(labels[row.argmax()]) if row.any() else IGNORE for row in inside])

    def decode(self, example, features, probabilities, classes):
        timestamps = features["timestamps"]
        labels = [classes[i] for i in probabilities.argmax(axis=1)]
        return labels_to_intervals(timestamps, labels, clip_end(example, timestamps))

    def reference(self, example):
        chords = example.labels["chords"]
        return np.array([[start, end] for start, end, _ in chords], np.float64), [label for _, _, label in chords]

    def statistics(self, references, estimates):
        """Duration right over duration scored, pooled over clips (NaN when nothing is scored)."""
        durations = np.array([majmin_durations(r, e) for r, e in zip(references, estimates)]).reshape(-1, 2)
        return {"majmin": Ratio(durations[:, 0], durations[:, 1])}

    def baseline(self, splits: dict[str, TaskData], tests: dict[str, TaskData], seed, steps):
        return {name: [self._template_estimate(e, f) for e, f in zip(data.examples, data.features)] for name, data in tests.items()}

    @staticmethod
    def _template_estimate(example, features):
        chroma = features["chroma"]
        times = (np.arange(len(chroma)) * CHROMA_FRAMES + (CHROMA_FRAMES - 1) / 2) / FRAME_RATE
        return labels_to_intervals(times, template_chords(chroma), clip_end(example, times))


TASK = ChordsTask()
