"""The one bootstrap (mt2.evaluation.stats): agreement with a naive loop over resampled lists,
paired differences that decide only what they should, cluster resampling."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from mt2.evaluation.stats import (
    HELD, REVERSED, UNDECIDED, Interval, MacroAveragePrecision, MacroRocAuc, Mean, Ratio, interval, paired_difference,
    resample_counts, verdict,
)


def _indices(counts_row: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(counts_row)), counts_row.astype(int))


def test_ratio_agrees_with_a_naive_loop_over_resampled_examples():
    rng = np.random.default_rng(0)
    right, total = rng.uniform(0, 5, 40), rng.uniform(5, 10, 40)
    counts = resample_counts(40, 50, seed=1)
    fast = Ratio(right, total).values(counts)
    naive = [right[_indices(row)].sum() / total[_indices(row)].sum() for row in counts]
    np.testing.assert_allclose(fast, naive)
    assert Ratio.mean(right).value() == pytest.approx(right.mean())


@pytest.mark.parametrize("ties", [False, True])
def test_macro_aucs_agree_with_sklearn_on_every_resample(ties):
    rng = np.random.default_rng(2)
    truth = rng.random((60, 4)) < 0.3
    truth[:, 3] = False
    truth[0, 3] = True  # an output with one positive: undefined in resamples that miss it
    scores = truth * 0.5 + rng.random((60, 4))
    if ties:
        scores = np.round(scores, 1)
    counts = resample_counts(60, 40, seed=3)
    roc, ap = MacroRocAuc(truth, scores).values(counts), MacroAveragePrecision(truth, scores).values(counts)
    for b, row in enumerate(counts):
        idx = _indices(row)
        t, s = truth[idx], scores[idx]
        usable = (t.min(axis=0) == 0) & (t.max(axis=0) == 1)
        assert roc[b] == pytest.approx(roc_auc_score(t[:, usable], s[:, usable], average="macro"))
        assert ap[b] == pytest.approx(average_precision_score(t[:, usable], s[:, usable], average="macro"))


def test_identical_systems_give_a_difference_interval_containing_zero():
    rng = np.random.default_rng(4)
    for trial in range(20):
        correct = (rng.random(300) < 0.7).astype(float)
        counts = resample_counts(300, 500, seed=trial)
        difference = paired_difference(Ratio.mean(correct), Ratio.mean(correct.copy()), counts)
        assert difference.low <= 0.0 <= difference.high and verdict(difference) == UNDECIDED


def test_a_large_true_difference_is_decided_and_pairing_narrows_the_interval():
    rng = np.random.default_rng(5)
    difficulty = rng.random(300)
    a = (difficulty < 0.75).astype(float)  # the same hard examples, b fails 10 % more of them
    b = (difficulty < 0.65).astype(float)
    counts = resample_counts(300, 1000, seed=6)
    forward, backward = paired_difference(Ratio.mean(a), Ratio.mean(b), counts), paired_difference(Ratio.mean(b), Ratio.mean(a), counts)
    assert verdict(forward) == HELD and verdict(backward) == REVERSED
    assert forward.value == pytest.approx(a.mean() - b.mean())
    ia, ib = interval(Ratio.mean(a), counts), interval(Ratio.mean(b), counts)
    assert forward.high - forward.low < 0.5 * ((ia.high - ia.low) + (ib.high - ib.low))
    assert ib.high > ia.low  # unpaired intervals overlap: only the paired one decides


def test_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    covered = 0
    for trial in range(200):
        sample = (rng.random(200) < 0.6).astype(float)
        result = interval(Ratio.mean(sample), resample_counts(200, 400, seed=trial))
        covered += result.low <= 0.6 <= result.high
    assert 0.88 <= covered / 200 <= 0.99


def test_cluster_resampling_draws_whole_groups_and_widens_intervals_of_correlated_clips():
    groups = np.repeat(np.arange(30), 10)  # 30 pieces of 10 clips
    counts = resample_counts(300, 200, seed=8, groups=groups)
    by_group = counts.reshape(200, 30, 10)
    assert (by_group == by_group[:, :, :1]).all() and (counts.sum(axis=1) % 10 == 0).all()
    piece_correct = np.random.default_rng(9).random(30) < 0.5
    clips = Ratio.mean(np.repeat(piece_correct, 10).astype(float))
    clustered = interval(clips, counts)
    naive = interval(clips, resample_counts(300, 200, seed=8))
    assert clustered.high - clustered.low > 2 * (naive.high - naive.low)


def test_mean_over_seeds_and_its_checks():
    a, b = Ratio.mean([1.0, 0.0, 1.0]), Ratio.mean([0.0, 0.0, 1.0])
    assert Mean([a, b]).value() == pytest.approx((2 / 3 + 1 / 3) / 2)
    with pytest.raises(ValueError, match="different numbers"):
        Mean([a, Ratio.mean([1.0])])
    with pytest.raises(ValueError, match="same examples"):
        paired_difference(a, Ratio.mean([1.0]), resample_counts(3, 5))
    assert verdict(Interval(0.1, float("nan"), float("nan"))) == UNDECIDED


def test_the_verdict_reads_the_direction_of_the_metric():
    """An error (lower is better): a difference below 0 is a win for ``a``."""
    below, above = Interval(-1.0, -1.5, -0.5), Interval(1.0, 0.5, 1.5)
    assert verdict(below, higher_is_better=False) == HELD and verdict(above, higher_is_better=False) == REVERSED
    assert verdict(Interval(0.0, -0.5, 0.5), higher_is_better=False) == UNDECIDED


def test_claims_are_decided_per_task_from_paired_intervals_and_wait_for_missing_systems():
    from mt2.bench.claims import BASELINE, assess_claims

    rng = np.random.default_rng(10)
    n = 300
    counts = resample_counts(n, 500, seed=11)
    paths = tuple(f"clip{i}" for i in range(n))
    difficulty = rng.random(n)

    def stats(threshold):
        return (paths, {"accuracy": Ratio.mean(difficulty < threshold)}, counts)

    systems = [{"label": "mt2", "kind": "pretrained", "status": "ok", "roles": ["equivariant", "contrastive"]},
               {"label": "equivariant", "kind": "pretrained", "status": "ok", "roles": ["equivariant"]}]
    results = {"systems": systems, "config": {"layers": [-1]}, "datasets": {"corpus": {}, "corpus/merlin": {"cross_font": True}},
               "tasks": {"pitch": {"level": "clip", "metrics": ["accuracy"]}, "instrument": {"level": "clip", "metrics": ["accuracy"]},
                         "tagging": {"level": "clip", "metrics": ["accuracy"]}}}
    statistics = {
        ("pitch", "corpus", ("mt2", "average", -1)): stats(0.8), ("pitch", "corpus", ("equivariant", "equivariant", -1)): stats(0.6),
        ("instrument", "corpus", ("mt2", "average", -1)): stats(0.7), ("instrument", "corpus", ("equivariant", "equivariant", -1)): stats(0.7),
        ("tagging", "corpus", ("mt2", "average", -1)): stats(0.5), ("tagging", "corpus", ("equivariant", "equivariant", -1)): stats(0.5),
        ("pitch", "corpus/merlin", ("mt2", "average", -1)): stats(0.2), ("pitch", "corpus/merlin", ("equivariant", "equivariant", -1)): stats(0.6),
        ("pitch", "corpus", (BASELINE, "harmonic", None)): stats(0.9),
    }
    claims = {c["claim"]: c for c in assess_claims(results, statistics)}
    variant = claims["MT2 beats its equivariant-only variant"]
    verdicts = {(c["task"], c["dataset"]): c["verdict"] for c in variant["comparisons"]}
    assert verdicts == {("pitch", "corpus"): HELD, ("instrument", "corpus"): UNDECIDED, ("tagging", "corpus"): UNDECIDED,
                        ("pitch", "corpus/merlin"): REVERSED}
    assert variant["status"] == "undecided"  # held on 1 of 3 counted tasks; the cross-font reversal is listed, not counted
    assert claims["MT2 beats the classical DSP baselines (sanity check)"]["status"] == "not held"  # reversed on its one task
    assert claims["MT2 beats its contrastive-only variant"]["status"] == "not tested"


def test_a_variant_given_as_a_folder_is_found_by_its_kind_and_tokens():
    from mt2.bench.claims import CLAIMS

    masked = next(c.b for c in CLAIMS if "masked variant" in c.text)
    folder = {"label": "runs/scaling/models/s0-masked-b6000", "kind": "pretrained", "roles": ["masked"], "status": "ok"}
    shipped = {**folder, "label": "masked"}
    assert masked.find([folder])["label"] == folder["label"]
    assert masked.find([folder, shipped])["label"] == "masked"  # the name wins over a folder of the same kind
    assert masked.find([{**folder, "roles": ["contrastive"]}]) is None
    assert masked.find([{**folder, "status": "missing"}]) is None
