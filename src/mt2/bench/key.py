"""Global key: 24 classes (12 tonics x major/minor), clip level.

Metric: ``mir_eval.key.weighted_score`` averaged over clips (1 for the right key, 0.5 a
fifth away, 0.3 relative, 0.2 parallel, else 0) and exact accuracy. Baseline:
Krumhansl-Kessler templates on the clip's mean chroma (:func:`mt2.keys.template_key`).
The zero-shot estimate of an encoder (``encoder.key``: token 0, no probe) is scored by
:func:`zero_shot_estimates`.
"""
from __future__ import annotations

import mir_eval
import numpy as np

from mt2.bench.features import NO_KEY_TONIC
from mt2.bench.task import IGNORE, Task, TaskData
from mt2.evaluation.stats import Ratio
from mt2.inference import NO_KEY
from mt2.keys import MODES, key_name, parse_key, template_key

#: Class ``i`` is tonic ``i % 12`` (C = 0) in mode ``MODES[i // 12]``.
KEYS = tuple(key_name(i % 12, MODES[i // 12]) for i in range(24))


def key_index(name: str) -> int:
    """Class of a key name in mir_eval syntax (any spelling: ``"Db major"`` = ``"C# major"``)."""
    tonic, mode = parse_key(name)
    return tonic + 12 * MODES.index(mode)


class KeyTask(Task):
    name = "key"
    family = "tonality"
    level = "clip"
    output = "softmax"
    metrics = ("weighted", "accuracy")
    baseline_name = "chroma + Krumhansl-Kessler templates"

    def labelled(self, labels: dict) -> bool:
        return labels.get("key") is not None

    def classes(self, train):
        return list(KEYS)

    def targets(self, example, features, classes):
        try:
            return np.array(key_index(example.labels["key"]))
        except ValueError:  # a mode other than major/minor: kept for scoring, not for training
            return np.array(IGNORE)

    def decode(self, example, features, probabilities, classes):
        return classes[int(np.argmax(probabilities[0]))]

    def reference(self, example):
        return example.labels["key"]

    def statistics(self, references, estimates):
        weighted = [mir_eval.key.weighted_score(r, e) for r, e in zip(references, estimates)]
        return {"weighted": Ratio.mean(weighted), "accuracy": Ratio.mean([float(w == 1.0) for w in weighted])}

    def baseline(self, splits: dict[str, TaskData], tests: dict[str, TaskData], seed, steps):
        return {name: [key_name(*template_key(f["chroma"].mean(axis=0))[:2]) for f in data.features] for name, data in tests.items()}


def zero_shot_estimates(data: TaskData) -> list[str]:
    """Key names from the ``tonic`` and ``minor`` arrays of the ``zero-shot`` readout (``X``: no key)."""
    return [NO_KEY if f["tonic"][0] == NO_KEY_TONIC else key_name(int(f["tonic"][0]), MODES[int(f["minor"][0])]) for f in data.features]


TASK = KeyTask()
