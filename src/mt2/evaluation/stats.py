"""Bootstrap intervals paired between systems: the one bootstrap of the package, which the
benchmark (:mod:`mt2.bench`), the key-timeline measure (:mod:`mt2.study.timeline`) and the docs
scripts (``docs/recipe_round3_paired.py``) all call.

A metric over a test set is written as a **statistic** of per-example data that can be
evaluated on many resamples at once. A resample is a row of a count matrix ``counts``
``(B, n)``: how many times each of the ``n`` test examples was drawn (ones everywhere: the
test set itself). Every statistic maps ``counts`` to ``(B,)`` values:

* :class:`Ratio`: ``sum_i c_i a_i / sum_i c_i b_i`` (accuracies, mean per-clip scores with
  ``b = 1``, duration-pooled chord scores with ``a`` = duration right, ``b`` = duration scored);
* :class:`MacroRocAuc` and :class:`MacroAveragePrecision`: scikit-learn's macro ROC-AUC and
  average precision of a resample (ties as scikit-learn counts them), over the outputs that
  have both a positive and a negative example in the resample;
* :class:`Mean`: the mean of several statistics on the same resample (a metric averaged
  over probe seeds).

:func:`resample_counts` draws the count matrix: examples with replacement, or whole groups
(pieces: clips of one piece are not independent) with replacement. :func:`interval` is the
percentile interval of one statistic; :func:`paired_difference` the interval of ``a - b``
with the **same** resamples for both, which is what decides a comparison
(:func:`verdict`): held when the interval lies above 0, reversed when below, undecided when
it contains 0 (for a metric where lower is better, ``higher_is_better=False`` swaps the sides).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Resamples per interval (every caller's default), and 95 % percentile intervals. 1,000 is the
#: number the benchmark of record (docs/results) and docs/recipe-round3/paired.json were drawn
#: with; the key-timeline figures of docs/timeline/timeline.md were drawn with 2,000 before the
#: timeline measure called this module, so a rerun moves their interval ends by Monte-Carlo noise
#: only (its point values do not depend on the resamples).
RESAMPLES = 1000
LEVEL = 0.95


class Statistic:
    """A metric as a function of resample counts ``(B, n)`` -> values ``(B,)``."""

    n: int

    def values(self, counts: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def value(self) -> float:
        """The metric on the test set itself (every example once)."""
        return float(self.values(np.ones((1, self.n)))[0])


@dataclass
class Ratio(Statistic):
    """``sum(c * numerators) / sum(c * denominators)``; NaN where the denominator sums to 0."""

    numerators: np.ndarray
    denominators: np.ndarray

    def __post_init__(self) -> None:
        self.numerators = np.asarray(self.numerators, np.float64)
        self.denominators = np.asarray(self.denominators, np.float64)
        if self.numerators.shape != self.denominators.shape or self.numerators.ndim != 1:
            raise ValueError(f"numerators {self.numerators.shape} and denominators {self.denominators.shape}: need two (n,) arrays")
        self.n = len(self.numerators)

    @classmethod
    def mean(cls, values) -> "Ratio":
        """The mean of per-example values."""
        values = np.asarray(values, np.float64)
        return cls(values, np.ones_like(values))

    def values(self, counts: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (counts @ self.numerators) / (counts @ self.denominators)


def _tie_bounds(sorted_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position of a sorted column: the first and last position of its tie group."""
    n = len(sorted_scores)
    new = np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]
    starts = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    ends_flag = np.r_[new[1:], True]
    ends = np.minimum.accumulate(np.where(ends_flag, np.arange(n), n)[::-1])[::-1]
    return starts, ends


class _Macro(Statistic):
    """A per-output statistic averaged over the outputs defined on each resample."""

    def __init__(self, truth, scores) -> None:
        truth, scores = np.asarray(truth, bool), np.asarray(scores, np.float64)
        if truth.shape != scores.shape or truth.ndim != 2:
            raise ValueError(f"truth {truth.shape} and scores {scores.shape}: need two (n, outputs) arrays")
        self.truth, self.scores, self.n = truth, scores, len(truth)

    def values(self, counts: np.ndarray) -> np.ndarray:
        counts = np.asarray(counts, np.float64)
        per_output = np.stack([self._column(counts, k) for k in range(self.truth.shape[1])], axis=1)
        if not per_output.size:
            return np.full(len(counts), np.nan)
        with warnings.catch_warnings():  # a resample where no output is defined gives NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(per_output, axis=1)

    def _column(self, counts: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError


class MacroRocAuc(_Macro):
    """Macro ROC-AUC: per output, the weighted share of (positive, negative) pairs ranked
    right, ties counting one half (= ``sklearn.metrics.roc_auc_score``)."""

    def _column(self, counts, k):
        order = np.argsort(self.scores[:, k], kind="stable")
        positive = self.truth[order, k]
        c = counts[:, order]
        starts, ends = _tie_bounds(self.scores[order, k])
        negatives = np.cumsum(c * ~positive, axis=1)
        below = np.where(starts > 0, negatives[:, np.maximum(starts - 1, 0)], 0.0)
        tied = negatives[:, ends] - below
        w_pos, w_neg = (c * positive).sum(axis=1), (c * ~positive).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = (c * positive * (below + 0.5 * tied)).sum(axis=1) / (w_pos * w_neg)
        return np.where((w_pos > 0) & (w_neg > 0), auc, np.nan)


class MacroAveragePrecision(_Macro):
    """Macro average precision: per output, ``sum over thresholds of (recall step) x
    precision`` with thresholds at the distinct scores (= ``sklearn.metrics.average_precision_score``)."""

    def _column(self, counts, k):
        order = np.argsort(-self.scores[:, k], kind="stable")
        positive = self.truth[order, k]
        c = counts[:, order]
        _, ends = _tie_bounds(-self.scores[order, k])
        hits = np.cumsum(c * positive, axis=1)[:, ends]
        drawn = np.cumsum(c, axis=1)[:, ends]
        w_pos, w_neg = (c * positive).sum(axis=1), (c * ~positive).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(drawn > 0, hits / drawn, 0.0)
            ap = (c * positive * precision).sum(axis=1) / w_pos
        return np.where((w_pos > 0) & (w_neg > 0), ap, np.nan)


@dataclass
class Mean(Statistic):
    """The mean of statistics of the same examples, resample by resample (e.g. over probe seeds)."""

    parts: Sequence[Statistic]

    def __post_init__(self) -> None:
        sizes = {p.n for p in self.parts}
        if len(sizes) != 1:
            raise ValueError(f"statistics over different numbers of examples {sorted(sizes)} cannot be averaged")
        self.n = sizes.pop()

    def values(self, counts: np.ndarray) -> np.ndarray:
        return np.mean([p.values(counts) for p in self.parts], axis=0)


# ----------------------------------------------------------------------------- resampling


def resample_counts(n: int, resamples: int = RESAMPLES, seed: int = 0, groups: Sequence | None = None) -> np.ndarray:
    """``(resamples, n)`` counts of a nonparametric bootstrap.

    Without ``groups``: ``n`` examples drawn with replacement. With ``groups`` (one label
    per example, e.g. its piece): as many groups as there are drawn with replacement, each
    drawn group contributing all its examples (a cluster bootstrap).
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64) if n else np.zeros((resamples, 0))
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group labels for {n} examples")
    _, index = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    g = index.max() + 1 if n else 0
    drawn = rng.multinomial(g, np.full(g, 1.0 / g), size=resamples) if g else np.zeros((resamples, 0))
    return drawn[:, index].astype(np.float64)


@dataclass(frozen=True)
class Interval:
    """A point value and its bootstrap percentile interval ``[low, high]``."""

    value: float
    low: float
    high: float

    def to_list(self) -> list[float]:
        return [self.value, self.low, self.high]


def _percentiles(values: np.ndarray, point: float, level: float) -> Interval:
    values = values[~np.isnan(values)]
    if not len(values) or np.isnan(point):
        return Interval(point, float("nan"), float("nan"))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(point), float(low), float(high))


def interval(statistic: Statistic, counts: np.ndarray, level: float = LEVEL) -> Interval:
    """The statistic on the test set and its percentile interval over the resamples ``counts``."""
    return _percentiles(statistic.values(counts), statistic.value(), level)


def paired_difference(a: Statistic, b: Statistic, counts: np.ndarray, level: float = LEVEL) -> Interval:
    """``a - b`` on the test set and its interval, both evaluated on the same resamples.

    Raises:
        ValueError: ``a`` and ``b`` are over different numbers of examples (not paired).
    """
    if a.n != b.n or counts.shape[1] != a.n:
        raise ValueError(f"paired statistics need the same examples: {a.n} and {b.n}, counts over {counts.shape[1]}")
    return _percentiles(a.values(counts) - b.values(counts), a.value() - b.value(), level)


HELD, REVERSED, UNDECIDED = "held", "reversed", "undecided"


def verdict(difference: Interval, higher_is_better: bool = True) -> str:
    """The comparison that ``difference`` (``a - b``, :func:`paired_difference`) decides: ``held``
    when ``a`` is better (the interval above 0; below 0 where lower is better), ``reversed`` when
    ``b`` is, ``undecided`` when the interval contains 0 or is undefined."""
    above, below = difference.low > 0, difference.high < 0
    if above or below:
        return HELD if above == higher_is_better else REVERSED
    return UNDECIDED
