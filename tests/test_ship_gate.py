"""The ship gate (``mt2 bench --gate``, :mod:`mt2.bench.gate`): its rule on constructed results,
and a whole gate run on a tiny corpus with two tiny models made here."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import soundfile as sf
from tiny_encoder import make_encoder, one_thread

from mt2.bench.claims import CLAIMS
from mt2.bench.gate import GATED_CLAIMS, decide, gate_models, gate_pairs

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)

SHIPPED, CANDIDATE = "mt2", "runs/new/mt2"
MT2_CLAIM = "MT2 beats its equivariant-only variant"


# ----------------------------------------------------------------------------- the rule


def _paired(verdict: str) -> dict:
    difference = {"held": [0.05, 0.01, 0.09], "reversed": [-0.05, -0.09, -0.01], "undecided": [0.0, -0.04, 0.04]}[verdict]
    return {"difference": difference, "verdict": verdict}


def _claim(text: str, verdicts: list[str], cross_font: tuple[str, ...] = ()) -> dict:
    comparisons = [{"task": f"t{i}", "dataset": "corpus", "cross_font": False, "verdict": v} for i, v in enumerate(verdicts)]
    comparisons += [{"task": f"t{i}", "dataset": "corpus/merlin", "cross_font": True, "verdict": v} for i, v in enumerate(cross_font)]
    held, reversed_ = verdicts.count("held"), verdicts.count("reversed")
    status = "held" if held > len(verdicts) / 2 else "not held" if reversed_ > len(verdicts) / 2 else "undecided"
    return {"claim": text, "status": status, "comparisons": comparisons}


def gate_results(real: str = "undecided", key: str = "undecided", shipped_claim=None, candidate_claim=None) -> dict:
    """A gate run's results, every paired verdict ``real`` (real-music rows) or ``key`` (corpus key rows)."""
    shipped_claim = shipped_claim or ["held", "held", "held", "reversed", "reversed", "reversed", "undecided"]
    candidate_claim = candidate_claim or shipped_claim
    roles = {"roles": ["equivariant", "contrastive"], "readouts": ["equivariant", "contrastive", "average", "frames", "zero-shot"]}
    value = [0.5, 0.4, 0.6]

    def rows(metric: str) -> dict:
        return {f"{SHIPPED} average": {metric: value},
                f"{CANDIDATE} average": {metric: value, "paired": {"against": f"{SHIPPED} average", metric: _paired(real)}}}

    return {
        "systems": [{"label": SHIPPED, "status": "ok", "kind": "pretrained", **roles},
                    {"label": CANDIDATE, "status": "ok", "kind": "pretrained", **roles}],
        "real": {
            "excerpts": {"by_split": {"train": 9, "valid": 6, "test": 6, "holdout": 4}},
            "identification": rows("accuracy"), "retrieval": rows("top1"), "holdout_retrieval": rows("top1"),
            "key": {SHIPPED: {"followed": value},
                    CANDIDATE: {"followed": value, "paired": {"against": SHIPPED, "followed": _paired(real)}}},
            "reference": {"systems": {SHIPPED: {"mirex": value},
                                      CANDIDATE: {"mirex": value, "paired": {"against": SHIPPED, "mirex": _paired(real)}}}},
        },
        "gate": {
            "pairs": [[CANDIDATE, SHIPPED]],
            "key": [{"candidate": CANDIDATE, "shipped": SHIPPED, "dataset": dataset, "cross_font": dataset != "corpus",
                     "readout": readout, "metric": "weighted", "shipped_value": value, "candidate_value": value,
                     "difference": _paired(key)["difference"], "verdict": key}
                    for dataset in ("corpus", "corpus/merlin") for readout in ("average", "zero-shot")],
            "claims": {"shipped": [_claim(MT2_CLAIM, shipped_claim)], "candidate": [_claim(MT2_CLAIM, candidate_claim)]},
        },
    }


def test_gate_accepts_when_nothing_is_reversed_and_no_claim_gets_worse():
    decision = decide(gate_results(), [(CANDIDATE, SHIPPED)])
    print("\n".join(decision.lines()))
    assert decision.accepted
    kinds = [c.kind for c in decision.checks]
    # identification, retrieval, held-out retrieval, followed, MIREX vs essentia; 2 test sets x 2 readouts; one claim
    assert kinds == ["real music"] * 5 + ["corpus key"] * 4 + ["claim"]
    assert decision.lines()[0].startswith("ship gate: ACCEPTED runs/new/mt2 in place of mt2")
    line = decision.checks[0].line()
    assert "soundtrack identification accuracy (average)" in line and "shipped 0.500 [0.400, 0.600]" in line
    assert "candidate - shipped 0.000 [-0.040, 0.040] | undecided" in line
    # held and undecided verdicts improve nothing the rule needs: still accepted
    assert decide(gate_results(real="held", key="held"), [(CANDIDATE, SHIPPED)]).accepted


@pytest.mark.parametrize("change, refused", [
    (dict(real="reversed"), "real music"),
    (dict(key="reversed"), "corpus key"),
    # a new reversal, though the net count holds: 3 held 3 reversed -> 4 held 4 reversed
    (dict(candidate_claim=["held"] * 4 + ["reversed"] * 3 + ["reversed"]), "claim"),
    # the net count falls without a new reversal: 3 - 3 -> 2 - 3
    (dict(candidate_claim=["held", "held", "undecided", "reversed", "reversed", "reversed", "undecided"]), "claim"),
])
def test_gate_refuses_a_reversal_or_a_claim_that_gets_worse(change, refused):
    decision = decide(gate_results(**change), [(CANDIDATE, SHIPPED)])
    print("\n".join(decision.lines()))
    assert not decision.accepted and decision.lines()[0].startswith("ship gate: REFUSED")
    assert {c.kind for c in decision.checks if c.refuses} == {refused}
    assert all(c.line().startswith("REFUSE") == c.refuses for c in decision.checks)


def test_claim_rule_counts_own_test_sets_and_allows_trading_held_for_fewer_reversals():
    # 3 held 3 reversed -> 2 held 0 reversed: net +2, no new reversal; a cross-font reversal is not counted
    better = ["held", "held", "undecided", "undecided", "undecided", "undecided", "undecided"]
    results = gate_results(candidate_claim=better)
    results["gate"]["claims"]["candidate"] = [_claim(MT2_CLAIM, better, cross_font=("reversed",) * 3)]
    decision = decide(results, [(CANDIDATE, SHIPPED)])
    claim = decision.checks[-1]
    assert decision.accepted and claim.verdict == "not worse"
    assert claim.shipped == "undecided: held 3, reversed 3 of 7" and claim.difference == "held -1, reversed -3, net +2"


def test_gate_refuses_what_it_did_not_measure():
    results = gate_results()
    del results["real"]["retrieval"][f"{CANDIDATE} average"]["paired"]  # the candidate's row lacks its paired difference
    results["real"]["reference"] = {"skipped": "essentia is not installed"}
    results["gate"]["claims"]["candidate"][0]["status"] = "not tested"
    decision = decide(results, [(CANDIDATE, SHIPPED)])
    refusals = {c.measure: c.verdict for c in decision.checks if c.refuses}
    assert refusals == {"same-track retrieval top-1 (average)": "missing for the candidate",
                        "MIREX against essentia (encoder.key, 30-s excerpts)": "not measured: essentia is not installed",
                        MT2_CLAIM: "no longer tested"}
    del results["real"]
    assert [c.verdict for c in decide(results, [(CANDIDATE, SHIPPED)]).checks if c.kind == "real music"] == ["the run had no --real"]
    with pytest.raises(ValueError, match="--gate other --against mt2"):
        decide(results, [("other", SHIPPED)])


def test_gated_claims_leave_out_the_anchors_and_the_claims_that_mt2_is_beaten():
    texts = [c.text for c in CLAIMS]
    assert MT2_CLAIM in GATED_CLAIMS and "training beats random weights (sanity check)" in GATED_CLAIMS
    assert not [t for t in GATED_CLAIMS if t.startswith("anchor") or t.startswith("the paper-sized MT2")]
    assert len(GATED_CLAIMS) == len(texts) - 3


def test_gate_pairs_and_models():
    assert gate_pairs(["a", "b"], ["mt2", "equivariant"]) == [("a", "mt2"), ("b", "equivariant")]
    with pytest.raises(ValueError, match="one shipped model per candidate"):
        gate_pairs(["a", "b"], ["mt2"])
    with pytest.raises(ValueError, match="another name"):
        gate_pairs(["mt2"], ["mt2"])
    assert gate_models(["mt2", "equivariant", "random:mt2"], [("new", "mt2")]) == ["mt2", "new", "equivariant", "random:mt2"]


# ----------------------------------------------------------------------------- a whole run


def _soundtracks(root):
    """Three 'soundtracks' of four 16-s tracks (sine chords, square chords, noisy pulses) as a real-music corpus."""
    from mt2.corpus.real import build_real_corpus

    sr = 22050
    t = np.arange(16 * sr) / sr
    for kind, album in enumerate(("sines", "squares", "pulses")):
        (root / "mine" / album).mkdir(parents=True)
        for i in range(4):
            chord = sum(np.sin(2 * np.pi * 110 * 2 ** (i / 5) * r * t) for r in (1, 1.26, 1.5))
            chord = [chord, np.sign(chord) * 0.5, chord * (np.sin(4 * np.pi * t) > 0)][kind]
            sf.write(root / "mine" / album / f"t{i}.flac", (0.2 * chord).astype(np.float32), sr)
    build_real_corpus(root / "real", folder=root / "mine", seed=0, log=lambda _: None)
    return root / "real"


def test_gate_run_accepts_the_same_weights_and_refuses_from_a_reversed_results_json(tmp_path, monkeypatch, capsys):
    """Two tiny models with the same weights: every paired difference is 0, so the gate accepts; the
    same results.json with one real-music row reversed is refused by ``--from`` (exit 1)."""
    from mt2.bench import real as bench_real
    from mt2.cli import main
    from mt2.corpus import render_corpus
    from mt2.evaluation import real_music

    corpus = render_corpus(tmp_path / "corpus", size="tiny", seed=11).parent
    real = _soundtracks(tmp_path)
    monkeypatch.setattr(bench_real, "EXTRAS", {})  # no essentia or madmom rows (madmom: seconds a clip)
    monkeypatch.setattr(real_music, "essentia_key_estimator", lambda: ((lambda audio: "C major"), "fake-edma"))
    shipped, candidate = tmp_path / "shipped", tmp_path / "candidate"
    make_encoder().save_pretrained(shipped)
    make_encoder().save_pretrained(candidate)
    out = tmp_path / "gate"
    args = ["bench", "--gate", str(candidate), "--against", str(shipped)]
    status = main([*args, "--models", "--tasks", "key", "--readouts", "average", "zero-shot", "--data", str(corpus),
                   "--real", str(real), "--out", str(out), "--cache", str(tmp_path / "cache"), "--seeds", "0",
                   "--probe-steps", "30", "--resamples", "100"])
    printed = capsys.readouterr().out
    with capsys.disabled():
        print(printed[printed.index("ship gate:"):])
    assert status == 0 and f"ship gate: ACCEPTED {candidate} in place of {shipped}" in printed
    results = json.loads((out / "results.json").read_text())
    assert [s["label"] for s in results["systems"]] == [str(shipped), str(candidate)]
    checks = [line for line in printed.splitlines() if line.startswith(("ok", "REFUSE"))]
    for measure in ("soundtrack identification accuracy (average)", "same-track retrieval top-1 (average)",
                    "transpositions followed", "MIREX against essentia", "weighted on corpus (average)", "weighted on corpus (zero-shot)",
                    "MT2 beats the classical DSP baselines"):
        assert any(measure in line for line in checks), measure
    assert all(line.startswith("ok") for line in checks)
    assert all(row["difference"][0] == 0 for row in results["gate"]["key"])

    assert main([*args, "--from", str(out / "results.json")]) == 0
    assert capsys.readouterr().out.strip() == printed[printed.index("ship gate:"):].strip()

    reversed_ = copy.deepcopy(results)
    row = reversed_["real"]["identification"][f"{candidate} average"]
    row["accuracy"], row["paired"]["accuracy"] = [0.7, 0.5, 0.9], {"difference": [-0.3, -0.5, -0.1], "verdict": "reversed"}
    (tmp_path / "reversed.json").write_text(json.dumps(reversed_))
    assert main([*args, "--from", str(tmp_path / "reversed.json")]) == 1
    refused = capsys.readouterr().out
    with capsys.disabled():
        print(refused)
    assert refused.startswith("ship gate: REFUSED") and "REFUSE  real music: soundtrack identification accuracy (average)" in refused
    assert main(["bench", "--gate", str(candidate), "--against", "mt2", "--from", str(out / "results.json")]) == 2
    assert "--gate" in capsys.readouterr().err
