"""The GPU run of issue 32: CQT bundles (:mod:`mt2.data.bundle`, the bundle source of
:func:`mt2.data.pretrain.open_source`), their builder ``scripts/gpu_bundle.py``, and
``scripts/gpu_train.sh --dry-run`` (the device path on CPU)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mt2.data.bundle import BYTES_PER_FRAME, read_bundle, write_bundle
from mt2.data.pretrain import CROP_FRAMES, BundleSource, open_source
from mt2.data.views import ViewConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_bundle  # noqa: E402


def _magnitudes(rng, frames: int) -> np.ndarray:
    return rng.gamma(1.0, 0.01, size=(99, frames)).astype(np.float32)


def _bundle(path: Path, rendered: int = 5, real: int = 3) -> dict:
    rng = np.random.default_rng(0)
    parts = {"rendered": {f"clip{i}": _magnitudes(rng, 300 + i) for i in range(rendered)},
             "real": {f"crop{i}": _magnitudes(rng, CROP_FRAMES) for i in range(real)}}
    write_bundle(path, parts, {"test": True})
    return parts


def test_bundle_round_trip_in_float16(tmp_path):
    parts = _bundle(tmp_path / "b.safetensors")
    read, source = read_bundle(tmp_path / "b.safetensors")
    assert source == {"test": True} and read["rendered"].keys() == list(parts["rendered"])
    np.testing.assert_array_equal(read["rendered"]["clip3"], parts["rendered"]["clip3"].astype(np.float16).astype(np.float32))
    assert read["rendered"].frames("clip3") == 303 and read["real"]["crop1"].dtype == np.float32
    np.testing.assert_array_equal(read["real"].crop("crop1", 400, 100), read["real"]["crop1"][:, 400:])  # fewer at its end
    expected = BYTES_PER_FRAME * (sum(300 + i for i in range(5)) + 3 * CROP_FRAMES)
    assert expected < (tmp_path / "b.safetensors").stat().st_size < expected + 4096  # the header: the index


def test_bundle_source_mixes_real_crops_at_the_run_share(tmp_path):
    path = tmp_path / "b.safetensors"
    _bundle(path)
    source = open_source(path, tmp_path / "cache", real=tmp_path / "not-read", real_share=0.25)
    assert isinstance(source, BundleSource) and source.real_count(8) == 2 and "5 rendered clips, 3 real crops" in source.describe()
    batches = iter(source.batches(batch_size=8, views=ViewConfig(), seed=0, rank=0, world=1, start=5))
    batch = next(batches)
    assert batch.index == 5 and batch.views.a.shape[0] == 8
    again = next(iter(source.batches(batch_size=8, views=ViewConfig(), seed=0, rank=0, world=1, start=5)))
    np.testing.assert_array_equal(batch.views.a, again.views.a)  # batch i is a function of (seed, i, rank)
    assert open_source(path, tmp_path / "cache").real_count(8) == 0  # no real_data: the rendered clips alone
    assert len(source.fingerprint()) == 64 and len(list(source.magnitudes())) == 8


def test_bundle_errors_name_the_fix(tmp_path):
    _bundle(tmp_path / "rendered.safetensors", real=0)
    with pytest.raises(ValueError, match="holds no real crops"):
        open_source(tmp_path / "rendered.safetensors", tmp_path, real="data/real", real_share=0.25)
    from safetensors.numpy import save_file

    save_file({"weight": np.zeros(3, np.float32)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="no CQT bundle"):
        open_source(tmp_path / "model.safetensors", tmp_path)


def test_gpu_bundle_samples_a_mixed_run_within_its_budget(tmp_path, synthetic_corpus):
    """A run on a rendered corpus with real recordings mixed in: the bundle holds real crops for
    the run's share of the frames, whole rendered training clips for the rest, within the budget."""
    from mt2.corpus.real import build_real_corpus
    from mt2.training.config import load_config, save_config

    root, rows, _ = synthetic_corpus
    sr = 16000
    for album in range(3):
        (tmp_path / "mine" / f"a{album}").mkdir(parents=True)
        for i in range(3):
            t = np.arange(40 * sr) / sr
            tone = 0.2 * np.sin(2 * np.pi * 110 * (album + i + 1) * t)
            sf.write(tmp_path / "mine" / f"a{album}" / f"t{i}.flac", tone.astype(np.float32), sr)
    build_real_corpus(tmp_path / "real", folder=tmp_path / "mine", seed=0, log=lambda _: None)
    run = tmp_path / "run"
    run.mkdir()
    save_config(load_config("mt2-mini", real_data=str(tmp_path / "real"), real_share=0.25), run / "config.yaml", data=str(root))
    budget_mib = 0.6
    assert gpu_bundle.main([str(tmp_path / "b.safetensors"), "--run", str(run), "--cache-dir", str(tmp_path / "cache"),
                            "--mib", str(budget_mib)]) == 0
    parts, source = read_bundle(tmp_path / "b.safetensors")
    real_frames = sum(map(parts["real"].frames, parts["real"].keys()))
    rendered_frames = sum(map(parts["rendered"].frames, parts["rendered"].keys()))
    budget = budget_mib * (1 << 20) / BYTES_PER_FRAME
    assert len(parts["real"]) == int(budget * 0.25) // CROP_FRAMES and real_frames == len(parts["real"]) * CROP_FRAMES
    assert 0 < rendered_frames <= budget - real_frames
    training = {r["path"] for r in rows if r["split"] == "train"}
    assert set(parts["rendered"].keys()) <= training
    assert source["real_share"] == 0.25 and source["data"] == str(root)


def test_steps_per_second_reads_from_the_rewritten_metrics():
    import gpu_train

    # the carried metrics.csv ends at step 1609, the checkpoint is at 1500: the trainer rewrites it, then logs on
    assert gpu_train.steps_per_second([(2.0, 1609), (30.0, 1509), (40.0, 1609), (50.0, 1709)]) == pytest.approx(10.0)
    assert gpu_train.steps_per_second([(2.0, 1609)]) is None and gpu_train.steps_per_second([]) is None


def test_gpu_train_dry_run(tmp_path):
    """scripts/gpu_train.sh --dry-run: a tiny run continued on CPU for a few seconds, its budget-10
    branch finished; $OUT gets the weights, the metrics and a short log."""
    env = {**os.environ, "OUT": str(tmp_path / "out"), "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    done = subprocess.run([str(ROOT / "scripts" / "gpu_train.sh"), "--dry-run"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"] == "cpu" and summary["start_step"] == 9 and summary["end_step"] > 9
    assert summary["carried_branches"] == [10] and summary["branch"]["budget"] == 10 and summary["branch"]["finished"]
    assert sorted(p.name for p in out.iterdir()) == sorted(summary["files"])
    assert {"last.ckpt", "config.yaml", "metrics.csv", "b10.ckpt", "summary.json", "gpu_train.log"} <= set(summary["files"])
    text = (out / "gpu_train.log").read_text()
    assert "train: step 9 -> " in text and "branch: budget 10 -> step 10" in text and "metrics (last rows)" in text
    assert "bundle " in text and "real crops" in text
