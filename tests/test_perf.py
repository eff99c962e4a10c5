"""``mt2 perf``: a quick end-to-end run of every section, and the MERT-shaped baseline."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mt2.cli import main
from mt2.perf.mert_shape import QUICK_CONFIG, MertShape


def test_quick_perf_run_writes_report_and_json(tmp_path, capsys):
    report, data = tmp_path / "perf.md", tmp_path / "perf.json"
    status = main([
        "perf", "--quick", "--threads", "1", "--seconds", "2", "--repeats", "1", "--minutes", "0.03,0.06",
        "--train-batch", "2", "--train-steps", "1", "--report", str(report), "--json", str(data),
    ])
    assert status == 0
    results = json.loads(data.read_text())
    assert set(results["sections"]) == {"cqt", "embed", "memory", "training", "levers"}
    embed = results["sections"]["embed"]["result"]
    assert {row["backend"] for row in embed["rows"]} == {"nnaudio", "fast", "-"}
    mert = next(row for row in embed["rows"] if row["backend"] == "-")
    for row in embed["rows"]:
        assert row["realtime"] * row["seconds"] == pytest.approx(2.0)  # --seconds 2 of audio per timed call
        assert row["vs_mert"] == pytest.approx(mert["seconds"] / row["seconds"])
        assert row["gflop_per_second"] > 0
    by_model = {}
    for row in embed["rows"]:  # the backend changes the CQT's code, not the model or its counted work
        by_model.setdefault(row["model"], set()).add((row["parameters"], row["gflop_per_second"]))
    assert all(len(values) == 1 for values in by_model.values())
    assert all(row["within_tolerance"] for row in results["sections"]["cqt"]["result"]["agreement"])
    memory = results["sections"]["memory"]["result"]
    assert [row["minutes"] for row in memory] == [0.03, 0.06, 0.06, 0.06]  # every layout at the longest
    assert all(row["peak_rss_mb"] > row["ready_rss_mb"] * 0.99 > 0 for row in memory)
    training = results["sections"]["training"]["result"]
    assert training["training"][0]["steps_per_second"] > 0 and len(training["pipeline"]) == 3
    levers = results["sections"]["levers"]["result"]
    assert levers["rows"][0]["name"] == "today" and all(row["step_seconds"] > 0 for row in levers["rows"])
    assert "## Levers of one training step" in report.read_text()
    text = report.read_text()
    assert "## Targets" in text and "## What was tried" in text and (tmp_path / "perf.png").is_file()
    if not torch.cuda.is_available():
        assert "No GPU was measured" in text


def test_mert_shape_layout():
    """MERT-95M's size (HuBERT base: about 94.4 M without its masking vector) and 75 frames per second."""
    with torch.device("meta"):
        network = MertShape()
    assert 94e6 < sum(p.numel() for p in network.parameters()) < 95e6
    assert network.config.total_stride == 320
    quick = MertShape(QUICK_CONFIG).eval()
    frames = quick.embed(np.zeros(16_000, np.float32), 16_000)
    assert frames.shape == (374, QUICK_CONFIG.width)  # one zero-padded 5-s window: 75 frames/s less the conv edges


def test_perf_cli_defaults_are_the_options_defaults():
    """`mt2 perf` with no flags builds the default PerfOptions (no default restated as a literal)."""
    import argparse

    from mt2.cli import perf as cli_perf
    from mt2.perf.run import PerfOptions

    parser = argparse.ArgumentParser()
    cli_perf.register(parser.add_subparsers())
    args = parser.parse_args(["perf"])
    defaults = PerfOptions()
    for name in ("seconds", "threads", "repeats", "minutes", "train_steps", "train_batch"):
        assert getattr(args, name) == getattr(defaults, name), name
