"""Pitch of single notes (NSynth-like), clip level: 128 classes, the MIDI numbers.

Metrics: accuracy (exact MIDI number) and chroma accuracy (right pitch class, octave errors
forgiven). Baseline: harmonic summation over the mean CQT spectrum
(:func:`mt2.bench.baselines.harmonic_pitch`).
"""
from __future__ import annotations

import numpy as np

from mt2.bench.baselines import harmonic_pitch
from mt2.bench.task import Task, TaskData
from mt2.evaluation.stats import Ratio

MIDI_PITCHES = tuple(range(128))


class PitchTask(Task):
    name = "pitch"
    family = "notes"
    level = "clip"
    output = "softmax"
    metrics = ("accuracy", "chroma_accuracy")
    baseline_name = "CQT harmonic summation"

    def labelled(self, labels: dict) -> bool:
        return labels.get("pitch") is not None

    def classes(self, train):
        return list(MIDI_PITCHES)

    def targets(self, example, features, classes):
        return np.array(int(example.labels["pitch"]))

    def decode(self, example, features, probabilities, classes):
        return classes[int(np.argmax(probabilities[0]))]

    def reference(self, example):
        return int(example.labels["pitch"])

    def statistics(self, references, estimates):
        references, estimates = np.asarray(references), np.asarray(estimates)
        return {
            "accuracy": Ratio.mean(references == estimates),
            "chroma_accuracy": Ratio.mean(references % 12 == estimates % 12),
        }

    def baseline(self, splits: dict[str, TaskData], tests: dict[str, TaskData], seed, steps):
        return {name: [harmonic_pitch(f["spectrum"]) for f in data.features] for name, data in tests.items()}


TASK = PitchTask()
