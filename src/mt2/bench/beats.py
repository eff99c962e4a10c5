"""Beat tracking, frame level.

The probe reads each frame token and outputs a beat activation (sigmoid); its target is 1
on the token nearest to each annotated beat (within half a token) and 0 elsewhere. The
activation is interpolated to :data:`~mt2.bench.baselines.ONSET_RATE` and decoded into
beat times by the same dynamic-programming tracker as the baseline
(:func:`mt2.bench.baselines.track_beats`), the usual post-processing of a beat activation.

Metric: ``mir_eval.beat.f_measure`` (70 ms window) per clip, averaged over clips, on
untrimmed beats (clips are short, so the first 5 s are not dropped as
``mir_eval.beat.evaluate`` would). Baseline: ``librosa.beat.beat_track`` on librosa's onset
strength (:func:`mt2.bench.baselines.librosa_beats`).
"""
from __future__ import annotations

import warnings

import mir_eval
import numpy as np

from mt2.bench.baselines import ONSET_RATE, librosa_beats, track_beats
from mt2.bench.stats import Ratio
from mt2.bench.task import Task, TaskData, clip_end, frame_spacing


def beat_targets(beats: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """``(F, 1)``: 1 on the frame nearest to each beat lying within half a frame of it."""
    targets = np.zeros((len(timestamps), 1), np.float32)
    if len(timestamps) == 0 or len(beats) == 0:
        return targets
    nearest = np.abs(np.asarray(beats)[:, None] - timestamps[None, :]).argmin(axis=1)
    close = np.abs(timestamps[nearest] - beats) <= frame_spacing(timestamps) / 2
    targets[nearest[close], 0] = 1.0
    return targets


class BeatsTask(Task):
    name = "beats"
    family = "rhythm"
    level = "frame"
    output = "sigmoid"
    metrics = ("f_measure",)
    baseline_name = "librosa beat_track (onset strength + dynamic programming)"

    def labelled(self, labels: dict) -> bool:
        return bool(labels.get("beats"))

    def classes(self, train):
        return ["beat"]

    def targets(self, example, features, classes):
        return beat_targets(np.asarray(example.labels["beats"], np.float64), features["timestamps"])

    def decode(self, example, features, probabilities, classes):
        timestamps = features["timestamps"]
        grid = np.arange(0.0, clip_end(example, timestamps), 1.0 / ONSET_RATE)
        return track_beats(np.interp(grid, timestamps, probabilities[:, 0]), ONSET_RATE)

    def reference(self, example):
        return np.asarray(example.labels["beats"], np.float64)

    def statistics(self, references, estimates):
        with warnings.catch_warnings():  # mir_eval warns about empty estimates, which score 0
            warnings.simplefilter("ignore", UserWarning)
            values = [mir_eval.beat.f_measure(r, np.asarray(e, np.float64)) for r, e in zip(references, estimates)]
        return {"f_measure": Ratio.mean(values)}

    def baseline(self, splits: dict[str, TaskData], tests: dict[str, TaskData], seed, steps):
        return {name: [librosa_beats(f["librosa_onset"]) for f in data.features] for name, data in tests.items()}


TASK = BeatsTask()
