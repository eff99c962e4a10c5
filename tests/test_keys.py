"""Key names, signatures and the clip-level key metrics of :mod:`mt2.keys`."""
from __future__ import annotations

import math

import mir_eval
import pytest

from mt2.keys import fifths_distance, key_scores, parse_key, signature_of


def test_signature_is_the_relative_major():
    assert signature_of(*parse_key("A minor")) == signature_of(*parse_key("C major")) == 0
    assert signature_of(*parse_key("F# minor")) == signature_of(*parse_key("A major")) == 9


def test_fifths_distance_is_a_metric_on_the_circle():
    for a in range(12):
        assert fifths_distance(a, a) == 0
        assert fifths_distance(a, (a + 7) % 12) == fifths_distance(a, (a + 5) % 12) == 1
        for b in range(12):
            assert fifths_distance(a, b) == fifths_distance(b, a) <= 6


def test_key_scores_agree_with_mir_eval_and_count_signatures():
    references = ["C major", "C major", "C major", "A minor", "C major"]
    estimates = ["C major", "A minor", "G major", "C minor", "F# major"]
    scores = key_scores(references, estimates)
    weighted = [mir_eval.key.weighted_score(r, e) for r, e in zip(references, estimates)]
    assert scores["weighted"] == pytest.approx(sum(weighted) / 5)
    assert scores["accuracy"] == pytest.approx(1 / 5)
    # signatures: C, C (relative), G (one fifth), Eb vs C (three fifths), F# (six)
    assert scores["signature"] == pytest.approx(2 / 5)
    assert scores["within_fifth"] == pytest.approx(3 / 5)
    assert scores["mode"] == pytest.approx(1 / 2)  # right signature: C major (right mode), A minor (wrong)
    assert scores["clips"] == 5


def test_key_scores_leave_other_modes_out_of_the_signature():
    scores = key_scores(["D other", "C major"], ["D minor", "C major"])
    assert scores["signature"] == 1.0 and scores["clips"] == 2
    assert math.isnan(key_scores(["D other"], ["D minor"])["signature"])


def test_key_scores_refuse_mismatched_or_empty_input():
    with pytest.raises(ValueError, match="2 references but 1 estimates"):
        key_scores(["C major", "D major"], ["C major"])
    with pytest.raises(ValueError, match="no clips"):
        key_scores([], [])
