"""Tempo and beats, frame level: one beat-activation probe, two decoders.

**The probe.** It reads each frame token (with its timestamp) and outputs a beat
activation (sigmoid); its target is 1 on the token nearest to each annotated beat (within
half a token) and 0 elsewhere (:func:`beat_targets`). Tempo and beats have the same
targets on the same examples, so the probe is fitted once per readout, layer and probe
seed, on the training clips of both tasks, and selected on the validation split by the
beat F-measure (the activation's own quality; :func:`mt2.bench.probe.evaluate_shared_probe`).
Each task then decodes the same activation, interpolated to
:data:`~mt2.bench.baselines.ONSET_RATE`:

* **tempo**: the activation's period, by an autocorrelation tempo estimator
  (:func:`mt2.bench.baselines.estimate_tempo`). Clips need both a tempo and beat labels.
  Metrics (the usual definitions, Gouyon et al. 2006): **ACC1**, the share of clips whose
  estimate lies within 4 % of the reference; **ACC2**, the same allowing the estimate to
  match 2, 3, 1/2 or 1/3 times the reference (octave errors). Baseline:
  ``librosa.feature.tempo`` on librosa's onset strength (:func:`mt2.bench.baselines.librosa_tempo`).
* **beats**: beat times by the same dynamic-programming tracker as the baseline
  (:func:`mt2.bench.baselines.track_beats`), the usual post-processing of a beat
  activation. Metric: ``mir_eval.beat.f_measure`` (70 ms window) per clip, averaged over
  clips, on untrimmed beats (clips are short, so the first 5 s are not dropped as
  ``mir_eval.beat.evaluate`` would). Baseline: ``librosa.beat.beat_track`` on librosa's
  onset strength (:func:`mt2.bench.baselines.librosa_beats`).

**Why frame tokens, not the class tokens.** Tempo is a periodicity over time. The class
tokens are one vector per 4-s window, averaged over the clip, and are trained for key
(token 0, pitch-class equivariant) and timbre (token 1, contrastive): nothing asks them to
keep the timing of onsets. Measured on the small corpus, a softmax over 47 tempo classes
read from any class token scored ACC1 0.06-0.17 against 0.89 for the onset-autocorrelation
baseline.
"""
from __future__ import annotations

import warnings
from abc import abstractmethod
from typing import Any

import mir_eval
import numpy as np

from mt2.bench.baselines import ONSET_RATE, estimate_tempo, librosa_beats, librosa_tempo, track_beats
from mt2.bench.task import Task, TaskData, clip_end, frame_spacing
from mt2.evaluation.stats import Ratio

TOLERANCE = 0.04
OCTAVE_FACTORS = (1.0, 2.0, 3.0, 1 / 2, 1 / 3)


def beat_targets(beats: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """``(F, 1)``: 1 on the frame nearest to each beat lying within half a frame of it."""
    targets = np.zeros((len(timestamps), 1), np.float32)
    if len(timestamps) == 0 or len(beats) == 0:
        return targets
    nearest = np.abs(np.asarray(beats)[:, None] - timestamps[None, :]).argmin(axis=1)
    close = np.abs(timestamps[nearest] - beats) <= frame_spacing(timestamps) / 2
    targets[nearest[close], 0] = 1.0
    return targets


def tempo_accuracy(reference: float, estimate: float, factors=(1.0,), tolerance: float = TOLERANCE) -> bool:
    """Whether ``estimate`` lies within ``tolerance`` (relative) of ``reference`` times one of ``factors``."""
    return any(abs(estimate - f * reference) <= tolerance * f * reference for f in factors)


class BeatActivationTask(Task):
    """A decoder of the shared beat-activation probe: targets, rows and outputs are common;
    a subclass decodes the activation (:meth:`decode_activation`) and scores it."""

    family = "rhythm"
    level = "frame"
    output = "sigmoid"
    shared_probe = "beat activation"

    def classes(self, train):
        return ["beat"]

    def targets(self, example, features, classes):
        return beat_targets(np.asarray(example.labels["beats"], np.float64), features["timestamps"])

    def selector(self) -> Task:
        return BEATS

    def decode(self, example, features, probabilities, classes):
        timestamps = features["timestamps"]
        grid = np.arange(0.0, clip_end(example, timestamps), 1.0 / ONSET_RATE)
        return self.decode_activation(np.interp(grid, timestamps, probabilities[:, 0]))

    @abstractmethod
    def decode_activation(self, activation: np.ndarray) -> Any:
        """The estimate from the beat activation sampled at :data:`~mt2.bench.baselines.ONSET_RATE`."""


class TempoTask(BeatActivationTask):
    name = "tempo"
    metrics = ("acc1", "acc2")
    baseline_name = "librosa tempo (onset-strength autocorrelation)"

    def labelled(self, labels: dict) -> bool:
        return bool(labels.get("tempo")) and bool(labels.get("beats"))

    def decode_activation(self, activation):
        return estimate_tempo(activation, ONSET_RATE)

    def reference(self, example):
        return float(example.labels["tempo"])

    def statistics(self, references, estimates):
        return {
            "acc1": Ratio.mean([tempo_accuracy(r, e) for r, e in zip(references, estimates)]),
            "acc2": Ratio.mean([tempo_accuracy(r, e, OCTAVE_FACTORS) for r, e in zip(references, estimates)]),
        }

    def baseline(self, splits: dict[str, TaskData], tests: dict[str, TaskData], seed, steps):
        return {name: [librosa_tempo(f["librosa_onset"]) for f in data.features] for name, data in tests.items()}


class BeatsTask(BeatActivationTask):
    name = "beats"
    metrics = ("f_measure",)
    baseline_name = "librosa beat_track (onset strength + dynamic programming)"

    def labelled(self, labels: dict) -> bool:
        return bool(labels.get("beats"))

    def decode_activation(self, activation):
        return track_beats(activation, ONSET_RATE)

    def reference(self, example):
        return np.asarray(example.labels["beats"], np.float64)

    def statistics(self, references, estimates):
        with warnings.catch_warnings():  # mir_eval warns about empty estimates, which score 0
            warnings.simplefilter("ignore", UserWarning)
            values = [mir_eval.beat.f_measure(r, np.asarray(e, np.float64)) for r, e in zip(references, estimates)]
        return {"f_measure": Ratio.mean(values)}

    def baseline(self, splits: dict[str, TaskData], tests: dict[str, TaskData], seed, steps):
        return {name: [librosa_beats(f["librosa_onset"]) for f in data.features] for name, data in tests.items()}


TEMPO = TempoTask()
BEATS = BeatsTask()
