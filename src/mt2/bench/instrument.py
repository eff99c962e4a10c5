"""Instrument recognition, clip level: one class per instrument seen in training.

Labels: in the embedded corpus, the General MIDI program of clips played by one
instrument (single notes and solo pieces; ensembles are left out, since their ``instrument``
label names only the lead); in NSynth, the instrument family (11 classes: its instrument
ids do not recur across splits); elsewhere (TinySOL) the ``instrument`` label. A test
label never seen in training counts as an error.

Metric: accuracy. Baseline: a linear probe on MFCC statistics
(:func:`mt2.bench.baselines.mfcc_statistics`), trained and selected like the models' probes.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from mt2.bench.probe import evaluate_feature_probe
from mt2.bench.task import IGNORE, Task, TaskData
from mt2.data.real import Example
from mt2.evaluation.stats import Ratio

#: Datasets whose instrument label is another label key.
LABEL_KEYS = {"nsynth": "family"}


class InstrumentTask(Task):
    name = "instrument"
    family = "notes"
    level = "clip"
    output = "softmax"
    metrics = ("accuracy",)
    baseline_name = "MFCC statistics + linear probe"
    baseline_trained = True

    def labelled(self, labels: dict) -> bool:
        return labels.get("instrument") is not None and len(labels.get("instruments") or [None]) == 1

    def select(self, dataset: str, examples: list[Example]) -> list[Example]:
        key = LABEL_KEYS.get(dataset)
        if key is not None:
            examples = [dataclasses.replace(e, labels={**e.labels, "instrument": e.labels.get(key)}) for e in examples]
        return super().select(dataset, examples)

    def classes(self, train):
        return sorted({e.labels["instrument"] for e in train}, key=str)

    def targets(self, example, features, classes):
        label = example.labels["instrument"]
        return np.array(classes.index(label) if label in classes else IGNORE)

    def decode(self, example, features, probabilities, classes):
        return classes[int(np.argmax(probabilities[0]))]

    def reference(self, example):
        return example.labels["instrument"]

    def statistics(self, references, estimates):
        return {"accuracy": Ratio.mean([r == e for r, e in zip(references, estimates)])}

    def baseline(self, splits: dict[str, TaskData], tests: dict[str, TaskData], seed, steps):
        return evaluate_feature_probe(self, splits, tests, "mfcc", seed, steps)


TASK = InstrumentTask()
