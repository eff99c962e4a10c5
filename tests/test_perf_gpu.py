"""The GPU check (mt2.perf.gpu) runs end to end; here on CPU, with the small preset and shapes."""
from __future__ import annotations

import json

import torch

from mt2.perf import gpu


def test_the_gpu_check_runs_on_cpu_and_writes_json_and_markdown(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        status = gpu.main([
            "--device", "cpu", "--preset", "mt2-mini", "--shapes", "4x2", "--embed-batch", "2", "--embed-seconds", "5",
            "--warmup", "1", "--budget", "2", "--out", str(tmp_path / "check"),
        ])
    finally:
        torch.set_num_threads(threads)
    assert status == 0
    results = json.loads((tmp_path / "check.json").read_text())
    assert [(r["frames_per_token"], r["batch"], r["precision"]) for r in results["training"]] == [(4, 2, "bf16-mixed"), (4, 2, "32-true")]
    assert all(r["steps_per_second"] > 0 for r in results["training"])
    forward = [r for r in results["embedding"] if r["what"].startswith("model forward")]
    assert len(forward) == 4 and all(r["realtime"] > 0 for r in forward)
    assert any(r["what"].startswith("Encoder.embed") and "realtime" in r for r in results["embedding"])
    text = (tmp_path / "check.md").read_text()
    assert "## Training step of mt2-mini" in text and "| 4 | 2 | bf16-mixed |" in text


def test_shapes_are_parsed():
    assert gpu._shapes("1x32,4x128") == ((1, 32), (4, 128))


def test_timings_are_torch_benchmark_medians_of_the_call():
    """``_timed`` is ``torch.utils.benchmark.Timer.blocked_autorange``: a call that sleeps 10 ms
    times at 10 ms, within 50 % (a sleep overshoots on a loaded machine, never undershoots)."""
    import time

    timing = gpu._timed(lambda: time.sleep(0.01), warmup=1, budget=0.3)
    assert 0.01 <= timing["seconds"] < 0.015 and timing["calls"] >= 5 and timing["warmup_seconds"] >= 0.01
