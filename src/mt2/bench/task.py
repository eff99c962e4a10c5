"""What a benchmark task is: the examples it uses, its probe targets, how probe outputs
become estimates, its metric and its classical baseline.

A task is probed at one of two levels:

* ``clip``: one input row per example, the clip embedding ``features["clip"]`` (D,);
* ``frame``: one input row per frame token, ``features["frames"]`` (F, D) stamped with
  ``features["timestamps"]`` (F,) in seconds.

Every metric is "higher is better"; ``metrics[0]`` is the headline metric, the one that
selects probe hyper-parameters on the validation split and ranks systems in the summary.
A task writes each metric as a resamplable statistic over its examples
(:meth:`Task.statistics`, :mod:`mt2.evaluation.stats`), which gives both the score and its
bootstrap interval.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mt2.data.real import Example
from mt2.evaluation.stats import Statistic

SPLITS = ("train", "valid", "test")
#: Target value that the probe's softmax loss ignores (no usable label for that row).
IGNORE = -100


@dataclass
class TaskData:
    """The examples of one split and, in the same order, their feature arrays by name."""

    examples: list[Example]
    features: list[dict[str, np.ndarray]]


class Task(ABC):
    """One MIR task. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    #: Table the task is reported in (results.md groups tasks by family).
    family: ClassVar[str]
    level: ClassVar[str]  # "clip" or "frame"
    output: ClassVar[str]  # "softmax" (one class per row) or "sigmoid" (independent outputs)
    metrics: ClassVar[tuple[str, ...]]
    #: What the classical baseline does, in a few words.
    baseline_name: ClassVar[str]
    #: Whether the baseline trains something (then it is run once per probe seed).
    baseline_trained: ClassVar[bool] = False
    #: Tasks naming the same shared probe have the same probe (classes, targets, rows): it is
    #: fitted once per readout, layer and probe seed, and each task decodes its outputs
    #: (:func:`mt2.bench.probe.evaluate_shared_probe`). None: the task has its own probe.
    shared_probe: ClassVar[str | None] = None

    # -- which examples -------------------------------------------------------------------
    @abstractmethod
    def labelled(self, labels: dict) -> bool:
        """Whether an example with these labels can be used."""

    def select(self, dataset: str, examples: list[Example]) -> list[Example]:
        """The examples of ``dataset`` this task uses (tasks may also relabel them)."""
        return [e for e in examples if self.labelled(e.labels)]

    # -- probe targets and decoding ---------------------------------------------------------
    @abstractmethod
    def classes(self, train: list[Example]) -> list:
        """The probe's outputs, in order (fixed, or read from the training examples)."""

    @abstractmethod
    def targets(self, example: Example, features: dict[str, np.ndarray], classes: list) -> np.ndarray:
        """Probe targets: class indices (softmax, :data:`IGNORE` for none) or 0/1 rows
        (sigmoid); one per clip, or one per frame token for frame-level tasks."""

    @abstractmethod
    def decode(self, example: Example, features: dict[str, np.ndarray], probabilities: np.ndarray, classes: list) -> Any:
        """The estimate (what :meth:`score` compares to :meth:`reference`) from the probe's
        probabilities ``(1, C)`` for a clip or ``(F, C)`` for its frame tokens."""

    def selector(self) -> Task:
        """The task whose headline metric selects the probe on the validation split: the task
        itself, or one task for every user of a shared probe."""
        return self

    def inputs(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """The probe's input rows for one example: ``(1, D)`` or ``(F, D)``."""
        return features["clip"][None] if self.level == "clip" else features["frames"]

    # -- evaluation -------------------------------------------------------------------------
    @abstractmethod
    def reference(self, example: Example) -> Any:
        """The ground truth of an example, in the form :meth:`score` takes."""

    @abstractmethod
    def statistics(self, references: list, estimates: list) -> dict[str, Statistic]:
        """Every metric of :attr:`metrics` as a statistic over the examples, in their order."""

    def score(self, references: list, estimates: list) -> dict[str, float]:
        """Every metric of :attr:`metrics` over a set of examples."""
        return {metric: statistic.value() for metric, statistic in self.statistics(references, estimates).items()}

    @abstractmethod
    def baseline(self, splits: dict[str, TaskData], tests: dict[str, TaskData], seed: int, steps: int) -> dict[str, list]:
        """The classical baseline's estimates on every test set of ``tests`` (by name, in
        example order). Every TaskData holds DSP features
        (:func:`mt2.bench.baselines.dsp_features`); ``splits`` (train, valid), ``seed`` and
        ``steps`` serve baselines that train a probe on them."""

    def evaluate(self, data: TaskData, estimates: list) -> dict[str, float]:
        """:meth:`score` of ``estimates`` against the references of ``data``."""
        return self.score([self.reference(e) for e in data.examples], estimates)


def frame_spacing(timestamps: np.ndarray) -> float:
    """Seconds between consecutive frame tokens (1 s if there is only one)."""
    return float(np.median(np.diff(timestamps))) if len(timestamps) > 1 else 1.0


def clip_end(example: Example, timestamps: np.ndarray) -> float:
    """End of the clip in seconds: its ``duration`` label, else half a frame after the last frame."""
    duration = example.labels.get("duration")
    return float(duration) if duration else float(timestamps[-1] + frame_spacing(timestamps) / 2)

