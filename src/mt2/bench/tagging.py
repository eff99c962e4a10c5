"""Auto-tagging, clip level, multi-label: one sigmoid per tag seen in training.

Labels: the ``tags`` list (the embedded corpus: instrument families, solo/ensemble, tempo
class, mode, style; MagnaTagATune: its top 50 tags).

Metrics: ROC-AUC and PR-AUC (average precision), macro-averaged over the tags that have both
a positive and a negative clip in the evaluated split (or resample), as scikit-learn's
``roc_auc_score`` and ``average_precision_score`` compute them (:mod:`mt2.evaluation.stats`).
Baseline: a linear probe on MFCC statistics, trained and selected like the models' probes.
"""
from __future__ import annotations

import numpy as np

from mt2.bench.probe import evaluate_feature_probe
from mt2.bench.task import Task, TaskData
from mt2.evaluation.stats import MacroAveragePrecision, MacroRocAuc


class TaggingTask(Task):
    name = "tagging"
    family = "tags"
    level = "clip"
    output = "sigmoid"
    metrics = ("roc_auc", "pr_auc")
    baseline_name = "MFCC statistics + linear probe"
    baseline_trained = True

    def labelled(self, labels: dict) -> bool:
        return bool(labels.get("tags"))

    def classes(self, train):
        return sorted({tag for e in train for tag in e.labels["tags"]})

    def targets(self, example, features, classes):
        return np.isin(classes, example.labels["tags"]).astype(np.float32)

    def decode(self, example, features, probabilities, classes):
        return dict(zip(classes, probabilities[0].tolist()))

    def reference(self, example):
        return list(example.labels["tags"])

    def statistics(self, references, estimates):
        """Estimates map tags to scores; tags an estimate lacks score 0. Tags: those of the estimates."""
        tags = sorted({tag for e in estimates for tag in e})
        truth = np.array([[tag in r for tag in tags] for r in references], dtype=bool).reshape(len(references), len(tags))
        scores = np.array([[e.get(tag, 0.0) for tag in tags] for e in estimates], dtype=np.float64).reshape(truth.shape)
        return {"roc_auc": MacroRocAuc(truth, scores), "pr_auc": MacroAveragePrecision(truth, scores)}

    def baseline(self, splits: dict[str, TaskData], tests: dict[str, TaskData], seed, steps):
        return evaluate_feature_probe(self, splits, tests, "mfcc", seed, steps)


TASK = TaggingTask()
