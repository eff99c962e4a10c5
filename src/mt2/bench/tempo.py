"""Global tempo, frame level: a beat activation read from the frame tokens, then its period.

**Why frame tokens, not the class tokens.** Tempo is a periodicity over time. The class
tokens are one vector per 4-s window, averaged over the clip, and are trained for key
(token 0, pitch-class equivariant) and timbre (token 1, contrastive): nothing asks them to
keep the timing of onsets, and a linear map of a pooled vector reads a tempo only if some
dimension happens to grow with it. Measured on the small corpus, a softmax over 47 tempo
classes read from any class token scored ACC1 0.06-0.17 against 0.89 for the
onset-autocorrelation baseline. So the probe reads each frame token (about 8 per
second, with its timestamp) and outputs a beat activation (sigmoid), trained on the
annotated beats exactly as the beats task's probe is (:func:`mt2.bench.beats.beat_targets`);
the tempo is the period of that activation, interpolated to
:data:`~mt2.bench.baselines.ONSET_RATE` and passed to an autocorrelation tempo estimator
(:func:`mt2.bench.baselines.estimate_tempo`). Probe selection uses ACC1, so the tempo and
beats probes may differ. Clips need both a tempo and beat labels.

Metrics (written here; the usual definitions, Gouyon et al. 2006): **ACC1**, the share of
clips whose estimate lies within 4 % of the reference; **ACC2**, the same allowing the
estimate to match 2, 3, 1/2 or 1/3 times the reference (octave errors). Baseline:
``librosa.feature.tempo`` on librosa's onset strength (:func:`mt2.bench.baselines.librosa_tempo`).
"""
from __future__ import annotations

import numpy as np

from mt2.bench.baselines import ONSET_RATE, estimate_tempo, librosa_tempo
from mt2.bench.beats import beat_targets
from mt2.bench.stats import Ratio
from mt2.bench.task import Task, TaskData, clip_end

TOLERANCE = 0.04
OCTAVE_FACTORS = (1.0, 2.0, 3.0, 1 / 2, 1 / 3)


def tempo_accuracy(reference: float, estimate: float, factors=(1.0,), tolerance: float = TOLERANCE) -> bool:
    """Whether ``estimate`` lies within ``tolerance`` (relative) of ``reference`` times one of ``factors``."""
    return any(abs(estimate - f * reference) <= tolerance * f * reference for f in factors)


class TempoTask(Task):
    name = "tempo"
    family = "rhythm"
    level = "frame"
    output = "sigmoid"
    metrics = ("acc1", "acc2")
    baseline_name = "librosa tempo (onset-strength autocorrelation)"

    def labelled(self, labels: dict) -> bool:
        return bool(labels.get("tempo")) and bool(labels.get("beats"))

    def classes(self, train):
        return ["beat"]

    def targets(self, example, features, classes):
        return beat_targets(np.asarray(example.labels["beats"], np.float64), features["timestamps"])

    def decode(self, example, features, probabilities, classes):
        timestamps = features["timestamps"]
        grid = np.arange(0.0, clip_end(example, timestamps), 1.0 / ONSET_RATE)
        return estimate_tempo(np.interp(grid, timestamps, probabilities[:, 0]), ONSET_RATE)

    def reference(self, example):
        return float(example.labels["tempo"])

    def statistics(self, references, estimates):
        return {
            "acc1": Ratio.mean([tempo_accuracy(r, e) for r, e in zip(references, estimates)]),
            "acc2": Ratio.mean([tempo_accuracy(r, e, OCTAVE_FACTORS) for r, e in zip(references, estimates)]),
        }

    def baseline(self, splits: dict[str, TaskData], tests: dict[str, TaskData], seed, steps):
        return {name: [librosa_tempo(f["librosa_onset"]) for f in data.features] for name, data in tests.items()}


TASK = TempoTask()
