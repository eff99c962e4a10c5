"""The music-theory module :mod:`mt2.keys`: names, signatures, chords, templates, key metrics."""
from __future__ import annotations

import math

import mir_eval
import numpy as np
import pytest

from mt2.keys import (
    KRUMHANSL_MAJOR,
    KRUMHANSL_MINOR,
    MODES,
    chord_name,
    chroma_from_window,
    fifths_distance,
    key_name,
    key_scores,
    label_sonority,
    parse_key,
    rank_keys,
    signature_name,
    signature_of,
    template_key,
    template_key_of_window,
    template_mode,
    tonic_of,
    transpose_chord_label,
)


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


def test_every_key_has_one_spelling_that_reads_back():
    names = {key_name(t, m) for t in range(12) for m in MODES}
    assert len(names) == 24
    for tonic in range(12):
        for mode in MODES:
            name = key_name(tonic, mode)
            assert parse_key(name) == (tonic, mode)
            assert mir_eval.key.split_key_string(name) == (tonic, mode)
            assert tonic_of(signature_of(tonic, mode), mode) == tonic
    # flats in flat signatures, sharps otherwise
    assert [key_name(1, "major"), key_name(3, "minor"), key_name(8, "minor"), key_name(6, "major")] == [
        "Db major", "D# minor", "G# minor", "F# major"]
    assert parse_key("Cb major") == (11, "major") and parse_key("E# minor") == (5, "minor")
    with pytest.raises(ValueError, match="cannot read key"):
        parse_key("H major")


def test_signature_name_spells_both_keys_of_the_signature():
    assert signature_name(0) == "C major / A minor (0 sharps)"
    assert signature_name(1) == "Db major / Bb minor (5 flats)"
    assert signature_name(6) == "F# major / D# minor (6 sharps)"


def test_chord_labels_round_trip_through_transposition():
    assert label_sonority([55, 59, 62], 0) == "G:maj" and label_sonority([], 0) == "N"
    assert label_sonority([60, 62], 0) == "X"
    assert label_sonority([58, 62, 65, 68], 3) == "Bb:7"
    for root in range(12):
        label = chord_name(root, "min7", 0)
        up = transpose_chord_label(label, 5, 5)
        assert mir_eval.chord.encode(up)[0] == (root + 5) % 12
        assert mir_eval.chord.encode(transpose_chord_label(up, -5, 0))[0] == root
    assert transpose_chord_label("N", 3, 0) == "N"


@pytest.mark.parametrize("tonic", range(12))
def test_template_key_finds_every_profile(tonic):
    for mode, profile in zip(MODES, (KRUMHANSL_MAJOR, KRUMHANSL_MINOR)):
        chroma = np.roll(profile, tonic)
        assert template_key(chroma)[:2] == (tonic, mode)
        assert rank_keys(chroma)[0] == (tonic, mode)
        assert template_mode(chroma, signature_of(tonic, mode)) == mode


def test_rank_keys_orders_all_24_by_template_score():
    chroma = np.random.default_rng(0).random(12)
    ranked = rank_keys(chroma)
    scores = template_key(chroma)[2]
    assert sorted(ranked) == sorted((t, m) for t in range(12) for m in MODES)
    ordered = [scores[t + 12 * MODES.index(m)] for t, m in ranked]
    assert ordered == sorted(ordered, reverse=True)


@pytest.mark.parametrize("offset", [0, 7, 15])
def test_template_key_of_window_reads_the_pitch_of_each_bin(offset):
    """A window whose bins carry the E minor profile by MIDI pitch (bin b = MIDI 21 + offset + b)."""
    profile = np.roll(KRUMHANSL_MINOR, 4)
    window = np.tile(profile[(21 + offset + np.arange(84)) % 12][:, None], (1, 10))
    np.testing.assert_allclose(chroma_from_window(window, offset), 7 * profile)
    tonic, mode, scores = template_key_of_window(window, offset)
    assert (tonic, mode) == (4, "minor") and scores.shape == (24,)
    assert template_key_of_window(window, (offset + 1) % 16)[:2] != (4, "minor")
