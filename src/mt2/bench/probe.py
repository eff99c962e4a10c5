"""The linear probe: one linear layer on frozen features (the paper's protocol).

Inputs are standardised with the training split's mean and standard deviation. The layer
starts at zero and is trained with AdamW for a fixed number of steps on mini-batches drawn
by a seeded generator, so a run is deterministic: a softmax with cross-entropy for one
class per row, sigmoids with binary cross-entropy for independent outputs (multi-label
tags, beat activations). Frame-level tasks give one row per frame token.

Each point of a small grid of learning rate x weight decay (:data:`GRID`) is trained on
the train split and scored on the validation split with the task's own headline metric
(after decoding, e.g. beat tracking on the probe's activation); the best point (the first
on ties) is scored once on the test split.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mt2.bench.task import IGNORE, Task, TaskData

LEARNING_RATES = (1e-3, 1e-2)
WEIGHT_DECAYS = (0.0, 1e-2, 1.0)
#: ``(learning rate, weight decay)`` pairs tried on the validation split.
GRID = tuple((lr, wd) for lr in LEARNING_RATES for wd in WEIGHT_DECAYS)
STEPS = 300
BATCH_SIZE = 256


@dataclass
class LinearProbe:
    """Standardisation + one linear layer; :meth:`probabilities` applies the output function."""

    mean: np.ndarray
    std: np.ndarray
    weight: torch.Tensor  # (C, D)
    bias: torch.Tensor  # (C,)
    output: str  # "softmax" or "sigmoid"

    def logits(self, x: np.ndarray) -> torch.Tensor:
        """``(N, C)`` scores before the output function."""
        x = torch.from_numpy(((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32))
        return x @ self.weight.T + self.bias

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """``(N, C)`` class probabilities (softmax) or output activations (sigmoid)."""
        with torch.no_grad():
            logits = self.logits(x)
            out = torch.softmax(logits, dim=-1) if self.output == "softmax" else torch.sigmoid(logits)
        return out.numpy()


def train_probe(
    x: np.ndarray, y: np.ndarray, output: str, n_outputs: int, lr: float, weight_decay: float,
    seed: int = 0, steps: int = STEPS, batch_size: int = BATCH_SIZE,
) -> LinearProbe:
    """Fit a :class:`LinearProbe` to rows ``x`` (N, D).

    Args:
        y: class indices (N,) for ``softmax`` (:data:`~mt2.bench.task.IGNORE` rows are left
            out), or 0/1 targets (N, n_outputs) for ``sigmoid``.

    Raises:
        ValueError: no row has a target.
    """
    if output not in ("softmax", "sigmoid"):
        raise ValueError(f"output={output!r} must be 'softmax' or 'sigmoid'")
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    if output == "softmax":
        keep = y != IGNORE
        x, y = x[keep], y[keep]
    if len(x) == 0:
        raise ValueError("no training row has a target")
    mean = x.mean(axis=0)
    std = np.maximum(x.std(axis=0), 1e-6)
    inputs = torch.from_numpy((x - mean) / std)
    targets = torch.from_numpy(y.astype(np.int64) if output == "softmax" else y.astype(np.float32))
    weight = torch.zeros(n_outputs, x.shape[1], requires_grad=True)
    bias = torch.zeros(n_outputs, requires_grad=True)
    optimizer = torch.optim.AdamW([weight, bias], lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = F.cross_entropy if output == "softmax" else F.binary_cross_entropy_with_logits
    for _ in range(steps):
        rows = torch.randint(len(inputs), (batch_size,), generator=generator) if len(inputs) > batch_size else slice(None)
        loss = loss_fn(inputs[rows] @ weight.T + bias, targets[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return LinearProbe(mean, std, weight.detach(), bias.detach(), output)


@dataclass
class Selection:
    """The chosen probe and how every grid point scored on the validation split."""

    probe: LinearProbe
    lr: float
    weight_decay: float
    valid_score: float
    grid: list[dict]

    def summary(self) -> dict:
        """JSON-ready: the chosen point, its validation score and the whole grid."""
        return {"lr": self.lr, "weight_decay": self.weight_decay, "valid_score": self.valid_score, "grid": self.grid}


def select_probe(
    x: np.ndarray, y: np.ndarray, output: str, n_outputs: int, validate: Callable[[LinearProbe], float],
    grid=GRID, seed: int = 0, steps: int = STEPS,
) -> Selection:
    """Train one probe per ``(lr, weight_decay)`` of ``grid``; keep the best by ``validate``
    (a NaN validation score ranks below every number; the first point wins ties)."""
    def rank(score: float) -> float:
        return -np.inf if np.isnan(score) else score

    best, table = None, []
    for lr, weight_decay in grid:
        probe = train_probe(x, y, output, n_outputs, lr, weight_decay, seed, steps)
        score = float(validate(probe))
        table.append({"lr": lr, "weight_decay": weight_decay, "valid_score": score})
        if best is None or rank(score) > rank(best.valid_score):
            best = Selection(probe, lr, weight_decay, score, table)
    return best


def design(task: Task, data: TaskData, classes: list) -> tuple[np.ndarray, np.ndarray]:
    """Stacked probe inputs and targets of a split (one row per clip or per frame token)."""
    x = np.concatenate([task.inputs(f) for f in data.features])
    y = np.concatenate([np.atleast_1d(task.targets(e, f, classes)) if task.output == "softmax"
                        else np.atleast_2d(task.targets(e, f, classes)) for e, f in zip(data.examples, data.features)])
    return x, y


def predict(task: Task, probe: LinearProbe, data: TaskData, classes: list) -> list:
    """The task's estimates for every example of a split."""
    rows = [task.inputs(f) for f in data.features]
    probabilities = probe.probabilities(np.concatenate(rows))
    bounds = np.cumsum([0] + [len(r) for r in rows])
    return [task.decode(e, f, probabilities[a:b], classes)
            for e, f, a, b in zip(data.examples, data.features, bounds[:-1], bounds[1:])]


def evaluate_probe(
    task: Task, splits: dict[str, TaskData], tests: dict[str, TaskData], seed: int = 0, steps: int = STEPS, grid=GRID,
) -> tuple[dict[str, list], dict]:
    """The estimates on every test set of ``tests`` (by name) of the probe trained on
    ``splits["train"]`` and selected on ``splits["valid"]``, and the selection summary."""
    return evaluate_shared_probe([task], {task.name: splits}, {task.name: tests}, seed, steps, grid)[task.name]


def _union(parts: list[TaskData]) -> TaskData:
    """The examples of ``parts`` in order, each path once."""
    seen, examples, features = set(), [], []
    for part in parts:
        for example, feature in zip(part.examples, part.features):
            if example.path not in seen:
                seen.add(example.path)
                examples.append(example)
                features.append(feature)
    return TaskData(examples, features)


def evaluate_shared_probe(
    tasks: list[Task], splits: dict[str, dict[str, TaskData]], tests: dict[str, dict[str, TaskData]],
    seed: int = 0, steps: int = STEPS, grid=GRID,
) -> dict[str, tuple[dict[str, list], dict]]:
    """One probe for ``tasks`` that share it (same :attr:`~mt2.bench.task.Task.shared_probe`,
    or one task): trained once on the union of their train splits, selected on the union of
    their valid splits by the headline metric of their :meth:`~mt2.bench.task.Task.selector`;
    then each task decodes it on its own test sets. Returns, by task name, the estimates by
    test set and the (common) selection summary. ``splits`` and ``tests`` are by task name."""
    first = tasks[0]
    if len({task.shared_probe for task in tasks}) != 1 or (len(tasks) > 1 and first.shared_probe is None):
        raise ValueError(f"tasks {[t.name for t in tasks]} do not share a probe")
    selector = first.selector()
    train = _union([splits[t.name]["train"] for t in tasks])
    valid = _union([splits[t.name]["valid"] for t in tasks])
    classes = first.classes(train.examples)
    x, y = design(first, train, classes)
    headline = selector.metrics[0]
    selection = select_probe(
        x, y, first.output, len(classes),
        lambda probe: selector.evaluate(valid, predict(selector, probe, valid, classes))[headline],
        grid, seed, steps,
    )
    summary = selection.summary()
    return {task.name: ({name: predict(task, selection.probe, data, classes) for name, data in tests[task.name].items()}, summary)
            for task in tasks}


def evaluate_feature_probe(
    task: Task, splits: dict[str, TaskData], tests: dict[str, TaskData], feature: str, seed: int = 0, steps: int = STEPS,
) -> dict[str, list]:
    """Test estimates of a probe reading ``features[feature]`` as the clip vector (the MFCC baselines)."""
    def view(data: TaskData) -> TaskData:
        return TaskData(data.examples, [{"clip": f[feature]} for f in data.features])

    return evaluate_probe(task, {k: view(v) for k, v in splits.items()}, {k: view(v) for k, v in tests.items()}, seed, steps)[0]
