"""Global tempo, clip level, as classification over log-spaced tempo classes.

The probe chooses one of :data:`TEMPI`: 40 to 250 BPM in steps of 4 % (ratio 1.04), so
every reference lies within 2 % of a class and a right class counts under ACC1. The
reference's class is the nearest one on a log scale.

Metrics (written here; the usual definitions, Gouyon et al. 2006): **ACC1**, the share of
clips whose estimate lies within 4 % of the reference; **ACC2**, the same allowing the
estimate to match 2, 3, 1/2 or 1/3 times the reference (octave errors). Baseline: the
autocorrelation of the onset strength (:func:`mt2.bench.baselines.estimate_tempo`).
"""
from __future__ import annotations

import numpy as np

from mt2.bench.baselines import ONSET_RATE, estimate_tempo
from mt2.bench.task import Task, TaskData

TEMPO_RATIO = 1.04
TEMPI = tuple(float(t) for t in 40.0 * TEMPO_RATIO ** np.arange(int(np.ceil(np.log(250 / 40) / np.log(TEMPO_RATIO))) + 1))
TOLERANCE = 0.04
OCTAVE_FACTORS = (1.0, 2.0, 3.0, 1 / 2, 1 / 3)


def tempo_accuracy(reference: float, estimate: float, factors=(1.0,), tolerance: float = TOLERANCE) -> bool:
    """Whether ``estimate`` lies within ``tolerance`` (relative) of ``reference`` times one of ``factors``."""
    return any(abs(estimate - f * reference) <= tolerance * f * reference for f in factors)


class TempoTask(Task):
    name = "tempo"
    family = "rhythm"
    level = "clip"
    output = "softmax"
    metrics = ("acc1", "acc2")
    baseline_name = "onset-strength autocorrelation"

    def labelled(self, labels: dict) -> bool:
        return bool(labels.get("tempo"))

    def classes(self, train):
        return list(TEMPI)

    def targets(self, example, features, classes):
        return np.array(int(np.argmin(np.abs(np.log(np.array(classes) / example.labels["tempo"])))))

    def decode(self, example, features, probabilities, classes):
        return classes[int(np.argmax(probabilities[0]))]

    def reference(self, example):
        return float(example.labels["tempo"])

    def score(self, references, estimates):
        return {
            "acc1": float(np.mean([tempo_accuracy(r, e) for r, e in zip(references, estimates)])),
            "acc2": float(np.mean([tempo_accuracy(r, e, OCTAVE_FACTORS) for r, e in zip(references, estimates)])),
        }

    def baseline(self, splits: dict[str, TaskData], seed, steps):
        test = splits["test"]
        return self.evaluate(test, [estimate_tempo(f["onset"], ONSET_RATE) for f in test.features])


TASK = TempoTask()
