"""Fitting the calibration (:mod:`mt2.training.calibrate`) and the fitted values it stores
(:class:`mt2.inference.calibration.Calibration`)."""
from __future__ import annotations

import numpy as np
import pytest

from mt2.inference.calibration import Calibration
from mt2.training import calibrate as calibrate_module
from mt2.frontend import SAMPLE_RATE
from mt2.training.calibrate import REFERENCES, TIMBRES, CalibrationError, calibrate, calibrate_encoder
from tiny_encoder import make_encoder, one_thread

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


def _fake_references(monkeypatch, make):
    """Replace the synthetic family by ``(signature, timbre) -> signature, timbre`` so that
    ``predict_bin`` sees which reference it is asked about."""
    monkeypatch.setitem(calibrate_module.REFERENCES, "synthetic", (tuple(TIMBRES), make))


@pytest.mark.parametrize("rotation, direction", [(0, 1), (5, -1), (11, 1)])
def test_calibrate_recovers_rotation_and_direction(monkeypatch, rotation, direction):
    _fake_references(monkeypatch, lambda s, timbre: (s, timbre))
    fitted = calibrate(lambda ref: (direction * ref[0] + rotation) % 12, "synthetic")
    assert (fitted.rotation, fitted.direction, fitted.agreement) == (rotation, direction, 1.0)
    assert set(fitted.votes) == set(TIMBRES)
    probabilities = np.eye(12)[(direction * 3 + rotation) % 12]
    assert int(np.argmax(fitted.signature_probabilities(probabilities))) == 3


def test_calibrate_refuses_a_split_vote(monkeypatch):
    _fake_references(monkeypatch, lambda s, timbre: (s, timbre))
    first = next(iter(TIMBRES))
    with pytest.raises(CalibrationError, match="disagree"):
        calibrate(lambda ref: ref[0] % 12 if ref[1] == first else -ref[0] % 12, "synthetic")
    with pytest.raises(ValueError, match="references"):
        calibrate(lambda ref: 0, "unknown")


def test_calibration_round_trips_through_a_dict():
    calibration = Calibration(rotation=4, direction=-1, votes={"soft": -1}, agreement=0.75, references="rendered")
    assert Calibration.from_dict(calibration.to_dict()) == calibration


def test_calibrate_encoder_stores_its_result():
    encoder = make_encoder()
    encoder.calibration = None
    calibration = calibrate_encoder(encoder, references="synthetic")
    assert encoder.calibration is calibration
    # the stored map explains the share of references it reports, from the encoder's own predictions
    timbres, make = REFERENCES["synthetic"]
    hits = [
        int(calibration.signature_of_bin(int(np.argmax(encoder.bin_probabilities(make(s, timbre), SAMPLE_RATE))))) == s
        for timbre in timbres for s in range(12)
    ]
    assert calibration.agreement == pytest.approx(np.mean(hits))
    assert set(calibration.votes) == set(timbres) and set(calibration.votes.values()) == {calibration.direction}
    assert set(calibration.votes) == set(TIMBRES) and calibration.references == "synthetic"
