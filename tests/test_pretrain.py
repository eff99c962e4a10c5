"""Pretraining (issue "Pretraining") and its datasets (issue "Data"): sources, shards, the
Lightning run, resume after SIGKILL, non-finite losses, DDP gradients, export."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import webdataset as wds
import yaml

from bad_inputs import BAD, VALID, make_bad_folder
from mt2 import study
from mt2.training.calibrate import reference_audio
from mt2.cli import main
from mt2.corpus.manifest import read_manifest
from mt2.data.batches import TrainBatch
from mt2.data.pretrain import CachedBatches, open_source
from mt2.data.shard_stream import ShardBatches, _epoch_plan, stream_samples
from mt2.data.shards import Shard, find_shards, write_shards
from mt2.model import MT2Model, ModelConfig, build_model, make_config
from mt2.training.config import PretrainConfig, load_config, packaged_config
from mt2.training.step import lr_factor, make_optimizer, train_step
from mt2.data.views import ViewConfig, Views

SHIPPED = Path(__file__).parents[1] / "src" / "mt2" / "weights" / "mt2" / "config.json"

#: A model small enough for CPU tests, on top of the mt2-mini preset.
TINY = {
    "model": {"depth": 1, "pc_channels": 8, "heads": 2, "invariant_width": 16, "projection_dim": 16, "projection_hidden": 32},
    "batch_size": 4,
    "warmup": 2,
    "log_every": 1,
}


def tiny_yaml(folder: Path, **extra) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, **extra}))
    return path


def state_of(checkpoint: Path) -> tuple[int, dict]:
    data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return data["global_step"], data["state_dict"]


# -- configuration ---------------------------------------------------------------------------
def test_default_training_configuration_is_the_packaged_recipe_field_by_field():
    default, recipe = PretrainConfig().to_dict(), load_config("mt2-mini").to_dict()
    assert default.keys() == recipe.keys()
    for name in default:
        assert default[name] == recipe[name], name
    assert ModelConfig() == make_config("mt2-mini", "mt2") == PretrainConfig().model_config()
    assert ViewConfig() == PretrainConfig().view_config()
    # one-token variants leave the two-token-only levers off, whatever the defaults say
    assert not make_config("mt2-mini", "contrastive").detach_summaries


def test_mt2_mini_preset_is_the_shipped_model():
    shipped = json.loads(SHIPPED.read_text())
    assert build_model("mt2-mini").config == ModelConfig.from_dict(shipped["model"])
    assert make_config("mt2-mini").frames_per_token == 4 and make_config("mt2-mini").layout == "pitch-class"
    # the shipped run's own config (which still spelled out the shape) resolves to the same model
    assert PretrainConfig.from_dict(shipped["training"]["pretrain_config"]).model_config() == make_config("mt2-mini")


@pytest.mark.parametrize("preset", ["mt2-mini", "mt2-tiny"])
def test_detached_summaries_belong_to_the_two_token_model(preset):
    """The recipe detaches the equivariant stream's summaries from NT-Xent only where CPSD
    trains that stream; a single-token variant trains everything it has (an override still wins)."""
    assert make_config(preset, "mt2").detach_summaries
    for variant in ("contrastive", "equivariant", "masked"):
        assert not make_config(preset, variant).detach_summaries
    assert make_config(preset, "contrastive", detach_summaries=True).detach_summaries
    assert load_config(preset).contrastive_pair == "CB"


@pytest.mark.parametrize("preset", ["mt2-mini", "mt2-tiny"])
def test_packaged_configs_train_the_preset_shape(preset):
    assert packaged_config(preset)["model"] == {}, "a packaged yaml must not override its preset's model"
    config = load_config(preset)
    assert config.preset == preset and config.model_config() == make_config(preset, config.variant)
    assert config.betas == (0.9, 0.98) and config.grad_clip == 1.0 and config.balance_weight == 0.0


def test_mt2_tiny_is_the_papers_size_at_the_shipped_token_rate():
    shape = load_config("mt2-tiny").model_config()
    assert (shape.layout, shape.frames_per_token, shape.depth, shape.heads, shape.width) == ("pitch-class", 4, 12, 3, 192)


def test_config_layers_merge_and_reject_unknown_keys(tmp_path):
    config = load_config(None, tiny_yaml(tmp_path), variant="equivariant", lr=None)
    assert config.model == TINY["model"]
    assert config.variant == "equivariant" and config.lr == packaged_config("mt2-mini")["lr"] and config.batch_size == 4
    assert config.model_config().roles == ("equivariant",) and config.model_config().frames_per_token == 4
    (tmp_path / "bad.yaml").write_text("learning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate"):
        load_config(None, tmp_path / "bad.yaml")
    with pytest.raises(ValueError, match="model overrides must be a mapping"):
        config.overlaid({"model": "plain"})


def test_study_overlays_change_one_thing_of_the_shipped_recipe():
    shipped = PretrainConfig.from_dict(json.loads(SHIPPED.read_text())["training"]["pretrain_config"])
    pc = study.study_config("pc", 1500)
    assert pc.model_config() == shipped.model_config()
    assert {k: v for k, v in pc.to_dict().items() if k != "model"} == {k: v for k, v in shipped.to_dict().items() if k != "model"}
    plain = study.study_config("plain", 100, seed=3).model_config()
    assert (plain.layout, plain.frames_per_token) == ("plain", 4)  # merged key by key: the token rate stays
    assert study.study_config("pc-no-register", 100).overlaid({"model": {"depth": 1}}).model_config().register == "none"
    for name in study.OVERLAYS:
        config = study.study_config(name, 100, seed=1, real="data/real")
        assert config.max_steps == 100 and config.seed == 1
        assert config.to_dict() != study.recipe(100, 1).to_dict() or name == "pc", name
        assert (config.real_data is not None) == ("real_share" in study.OVERLAYS[name]), name
    assert study.study_config("pc-real50", 100, real="data/real").real_share == 0.5
    assert study.real_share_of(study.study_config("pc-real100", 100, real="data/real")) == 1.0
    assert study.real_share_of(study.study_config("pc", 100, real="data/real")) == 0.0
    with pytest.raises(ValueError, match="--real"):
        study.study_config("pc-real50", 100)
    with pytest.raises(ValueError, match="pc-lr3e-3"):
        study.study_config("pc-lr3e3", 100)


def test_lr_factor_warms_up_linearly_then_decays_to_zero():
    factors = [lr_factor(step, 100, 10) for step in range(101)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factors[10] == 1.0 and factors[55] == pytest.approx(0.5) and factors[100] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))


def test_lightning_steps_are_the_plain_steps():
    """Two steps of :class:`MT2Module` under a Trainer configured as :func:`pretrain` configures it
    (automatic optimisation, clipping by the Trainer) equal two :func:`train_step` calls from the
    same initial weights on the same batches. Two steps, because AdamW's first step hardly depends
    on the gradient's scale (clipping) or on the betas; one thread, because AdamW turns the rounding
    noise of a gradient that is zero in exact arithmetic (a bias before a softmax) into a visible step."""
    import lightning as L
    from torch.utils.data import DataLoader

    from mt2.training.lightning import MT2Module

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        # warm-up 1 and 10 steps: both steps near the peak rate, the second below it; a clip norm
        # below the gradients' norm: the clipping acts
        config = PretrainConfig(model=TINY["model"], batch_size=4, warmup=1, max_steps=10, grad_clip=1e-3, balance_weight=0.1)
        module = MT2Module(config.to_dict())
        model = MT2Model(config.model_config())
        model.load_state_dict(module.model.state_dict())
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        first = _fixed_views(4)
        batches = [first, Views(*(t.flip(-1) for t in (first.a, first.b, first.c)), shift=first.shift, offset=first.offset)]

        model.train()
        optimizer, schedule = make_optimizer(model, config)
        for views in batches:
            losses, grad_norm = train_step(model, views, optimizer, schedule, config)
            assert losses.entropy is not None and grad_norm > 2 * config.grad_clip
        assert schedule.get_last_lr()[0] < config.lr

        trainer = L.Trainer(
            accelerator="cpu", devices=1, max_steps=2, precision="32-true", gradient_clip_val=config.grad_clip,
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        )
        loader = DataLoader([TrainBatch(index=i, views=views) for i, views in enumerate(batches)], batch_size=None)
        trainer.fit(module, train_dataloaders=loader)
    finally:
        torch.set_num_threads(threads)
    assert trainer.global_step == 2
    moved = 0.0
    for name, value in model.state_dict().items():
        torch.testing.assert_close(module.model.state_dict()[name], value, rtol=0, atol=1e-6, msg=name)
        moved = max(moved, float((value - initial[name]).abs().max()))
    assert moved > 1e-4


# -- sources ---------------------------------------------------------------------------------
def write_small_sources(root: Path) -> tuple[Path, Path]:
    """Three 2-s clips (two FLAC, one 16-bit WAV) in ``root/audio`` and a CSV manifest of them."""
    audio = root / "audio"
    (audio / "sub").mkdir(parents=True)
    clips = {"a.flac": (0, "soft"), "sub/b.flac": (5, "bright"), "c.wav": (9, "sawtooth")}
    for name, (tonic, timbre) in clips.items():
        sf.write(audio / name, reference_audio(tonic, timbre)[:32000], 16000, subtype="PCM_16")
    manifest = root / "list.csv"
    manifest.write_text("path,split\n" + "".join(f"audio/{name},train\n" for name in clips))
    return audio, manifest


def test_folder_manifest_and_shards_give_the_same_magnitudes(tmp_path):
    audio, manifest = write_small_sources(tmp_path)
    assert main(["corpus", "shard", str(audio), str(tmp_path / "shards"), "--shard-size", "2"]) == 0
    folder = open_source(audio, tmp_path / "cache-folder")
    listed = open_source(manifest, tmp_path / "cache-manifest")
    shards = open_source(tmp_path / "shards", None)
    assert (folder.kind, listed.kind, shards.kind) == ("folder", "manifest", "shards")
    assert [s.samples for s in shards.shards] == [2, 1]
    by_folder = {f"audio/{k}": v for k, v in folder.magnitudes()}
    by_manifest = dict(listed.magnitudes())
    by_shards = {f"audio/{k}": v for k, v in shards.magnitudes()}
    assert sorted(by_folder) == sorted(by_manifest) == sorted(by_shards) == ["audio/a.flac", "audio/c.wav", "audio/sub/b.flac"]
    for key, magnitude in by_folder.items():  # equal up to the cache's float16 rounding (it batches clips)
        assert magnitude.shape[0] == 99
        np.testing.assert_allclose(by_manifest[key], magnitude, rtol=2**-10, atol=1e-6)
        np.testing.assert_allclose(by_shards[key], magnitude, rtol=2**-10, atol=1e-6)


def test_bad_files_are_skipped_and_counted(tmp_path, caplog):
    make_bad_folder(tmp_path / "bad")
    source = open_source(tmp_path / "bad", tmp_path / "cache")
    assert sorted(source.skipped) == sorted(BAD)
    assert sorted(source.train_keys()) == sorted(VALID)
    shards = write_shards(tmp_path / "bad", tmp_path / "shards", shard_size=10, progress=False)
    index = json.loads((tmp_path / "shards" / "shards.json").read_text())
    assert sorted(index["skipped"]) == sorted(BAD) and shards[0].samples == len(VALID)
    # A shard written elsewhere with one undecodable sample: the batch stays full, the sample is counted.
    with wds.TarWriter(str(tmp_path / "shards" / "shard-000001.tar"), encoder=False) as writer:
        writer.write({"__key__": "broken", "flac": b"not audio", "json": b'{"path": "broken.flac"}'})
    everything = find_shards(tmp_path / "shards" / "shard-000001.tar") + shards
    stream = ShardBatches(everything, batch_size=len(VALID) + 1, views=ViewConfig(), seed=0, rank=0, world=1, start=0)
    batch = next(iter(stream))  # one whole epoch: every sample, in either shard order
    assert batch.views.a.shape[0] == len(VALID) + 1 and batch.unreadable == 1
    assert torch.isfinite(batch.views.a).all()
    assert "broken.flac" in caplog.text


def fake_shards(folder: Path, counts: list[int]) -> list[Shard]:
    """Shards of metadata-only samples ``{"i": global index}``."""
    shards, start = [], 0
    for n, count in enumerate(counts):
        path = folder / f"s{n}.tar"
        with wds.TarWriter(str(path), encoder=False) as writer:
            for i in range(start, start + count):
                writer.write({"__key__": f"{i:05d}", "json": json.dumps({"i": i}).encode()})
        shards.append(Shard(path, count))
        start += count
    return shards


@pytest.mark.parametrize("workers", [1, 2, 3, 6])
def test_shard_streams_split_every_epoch_exactly_and_skip_exactly(tmp_path, workers):
    shards = fake_shards(tmp_path, [3, 4, 2, 5])
    for epoch in range(2):
        seen = []
        for worker in range(workers):
            for shard, selected in _epoch_plan(shards, 0, epoch, worker, workers):
                first = int(shard.path.stem[1:])
                offset = sum(s.samples for s in shards[:first])
                seen += [offset + j for j in (range(shard.samples) if selected is None else selected)]
        assert sorted(seen) == list(range(14))

    def indices(skip, n):
        stream = stream_samples(shards, 0, workers - 1, workers, skip)
        return [json.loads(next(stream)["json"])["i"] for _ in range(n)]

    whole = indices(0, 20)
    assert indices(7, 13) == whole[7:]


def test_cached_batches_are_deterministic_resumable_and_worker_independent(synthetic_corpus):
    _, rows, cache = synthetic_corpus
    keys = [r["path"] for r in rows if r["split"] == "train"]
    make = lambda start: CachedBatches(cache, keys, batch_size=3, views=ViewConfig(), seed=1, rank=0, world=1, start=start)  # noqa: E731
    stream = iter(make(0))
    first = [next(stream) for _ in range(4)]
    resumed = next(iter(make(3)))
    assert resumed.index == 3
    torch.testing.assert_close(resumed.views.a, first[3].views.a, rtol=0, atol=0)
    loader = torch.utils.data.DataLoader(make(0), batch_size=None, num_workers=2)
    for expected, got in zip(first, loader):
        assert got.index == expected.index
        torch.testing.assert_close(got.views.c, expected.views.c, rtol=0, atol=0)
    other_rank = next(iter(CachedBatches(cache, keys, batch_size=3, views=ViewConfig(), seed=1, rank=1, world=2, start=0)))
    assert not torch.equal(other_rank.views.a, first[0].views.a)


def test_wsd_is_constant_then_decays_over_its_last_fraction():
    factors = [lr_factor(step, 100, 10, "wsd", 0.2) for step in range(101)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factors[10:80] == [1.0] * 70 and factors[80] == 1.0 and factors[100] == 0.0
    assert factors[81:100] == pytest.approx([1 - ((s - 80) / 20) ** 0.5 for s in range(81, 100)])
    # a longer run is the same run until its own decay starts: budgets branch off it
    longer = [lr_factor(step, 400, 10, "wsd", 0.2) for step in range(81)]
    assert longer == factors[:80] + [1.0]
    with pytest.raises(ValueError, match="need schedule: wsd"):
        PretrainConfig(budgets=[100], max_steps=200)
    with pytest.raises(ValueError, match="max_steps"):
        PretrainConfig(schedule="wsd", budgets=[300], max_steps=200)


@pytest.mark.slow
def test_a_budget_branched_off_a_wsd_run_sees_its_batches_then_decays(synthetic_corpus, tmp_path):
    """The branch at budget 8 of a 16-step wsd run (decay_fraction 0.25): resumed from the run's
    checkpoint at step 6, it has the run's losses up to there (same batches, same weights) and
    then the decay's learning rates, ending at 0; the long run keeps its constant rate."""
    import csv

    root, _, _ = synthetic_corpus
    config = tiny_yaml(tmp_path, schedule="wsd", decay_fraction=0.25, budgets=[8], warmup=2, probe_every=0,
                       checkpoint_every=4)
    run, branch = tmp_path / "run", tmp_path / "branch-8"
    common = ["--cache-dir", str(root / "cache"), "--threads", "1", "--no-progress"]
    assert main(["pretrain", "--data", str(root), "--config", str(config), "--max-steps", "16", "--out", str(run),
                 "--until", "10", *common]) == 0
    assert state_of(run / "last.ckpt")[0] == 10 and state_of(run / "branch-8.ckpt")[0] == 6
    assert main(["pretrain", "--resume", "--out", str(run), *common]) == 0  # the rest of the run, data from its config
    assert state_of(run / "last.ckpt")[0] == 16
    assert main(["pretrain", "--branch", str(run), "--budget", "8", "--out", str(branch), *common]) == 0
    rows = lambda folder: {int(r["step"]): r for r in csv.DictReader(open(folder / "metrics.csv")) if r.get("lr")}  # noqa: E731
    long, short = rows(run), rows(branch)
    assert state_of(branch / "last.ckpt")[0] == 8
    assert sorted(short) == [6, 7]
    for step in (6, 7):  # the metrics row of step s logs the rate of step s (0-based)
        assert float(short[step]["lr"]) == pytest.approx(1e-3 * lr_factor(step, 8, 2, "wsd", 0.25))
        assert float(long[step]["lr"]) == pytest.approx(1e-3)
    assert float(long[15]["lr"]) == pytest.approx(1e-3 * lr_factor(15, 16, 2, "wsd", 0.25)) and float(long[15]["lr"]) < 1e-3
    assert float(short[6]["loss"]) == pytest.approx(float(long[6]["loss"]), rel=1e-5)
    saved = yaml.safe_load((branch / "config.yaml").read_text())
    assert saved["max_steps"] == 8 and saved["budgets"] == [] and saved["run"]["branched_from"] == str(run)
    with pytest.raises(SystemExit, match="budgets"):
        main(["pretrain", "--branch", str(run), "--budget", "12", "--out", str(tmp_path / "none"), *common])


# -- the Lightning run -----------------------------------------------------------------------
@pytest.mark.slow
def test_pretrain_cli_writes_the_run_and_exports(synthetic_corpus, tmp_path):
    from mt2.inference import Encoder

    root, _, _ = synthetic_corpus
    out = tmp_path / "run"
    args = ["pretrain", "--data", str(root), "--config", str(tiny_yaml(tmp_path, checkpoint_every=2)), "--out", str(out),
            "--cache-dir", str(root / "cache"), "--max-steps", "4", "--probe-every", "4", "--no-progress"]
    assert main(args) == 0
    for name in ("last.ckpt", "best.ckpt", "config.yaml", "metrics.csv", "training_curves.png"):
        assert (out / name).stat().st_size > 0, name
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["run"]["mt2_version"] and len(saved["run"]["data_hash"]) == 64 and saved["run"]["data_kind"] == "manifest"
    assert saved["model"]["depth"] == 1 and saved["max_steps"] == 4 and saved["probe_every"] == 4
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "cpsd", "ntxent", "lr", "probe/best_rotation", "probe/instrument_knn", "probe/score"} <= set(header)
    step, state = state_of(out / "last.ckpt")
    assert step == 4
    with pytest.raises(SystemExit, match="drop --lr"):
        main(["pretrain", "--data", str(root), "--out", str(out), "--resume", "--lr", "0.1"])
    with pytest.raises(FileExistsError, match="--resume"):
        main(args)

    assert main(["export", str(out / "last.ckpt"), str(tmp_path / "exported"), "--no-calibrate"]) == 0
    encoder = Encoder.from_pretrained(tmp_path / "exported")
    model = MT2Model(encoder.config)
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    x = torch.rand(2, 84, 126)
    torch.testing.assert_close(encoder.model(x).tokens, model.eval()(x).tokens)
    assert encoder.training_info["step"] == 4 and encoder.training_info["variant"] == "mt2"
    assert encoder.compression == ViewConfig().compression
    # what it trained on: the run's record and the hours of the training split (no real recordings here)
    data = encoder.training_info["data"]
    assert data["data_hash"] == saved["run"]["data_hash"] and data["real"] is None and data["real_share"] == 0
    train = [r for r in read_manifest(root) if r["split"] == "train"]
    assert data["rendered"]["train_items"] == len(train)
    assert data["rendered"]["train_hours"] == pytest.approx(sum(r["duration"] for r in train) / 3600, abs=1e-3)
    # a mode probe that cannot be fitted (no calibration stored): one error line, no folder written
    assert main(["export", str(out / "last.ckpt"), str(tmp_path / "probed"), "--no-calibrate", "--mode-probe", str(root)]) == 2
    assert not (tmp_path / "probed").exists()


def test_init_starts_a_new_run_from_an_exported_models_weights(synthetic_corpus, tmp_path):
    root, _, _ = synthetic_corpus
    base = ["pretrain", "--data", str(root), "--config", str(tiny_yaml(tmp_path)), "--cache-dir", str(root / "cache"),
            "--probe-every", "0", "--no-progress"]
    first, model, second = tmp_path / "first", tmp_path / "model", tmp_path / "second"
    assert main([*base, "--out", str(first), "--max-steps", "2"]) == 0
    assert main(["export", str(first / "last.ckpt"), str(model), "--no-calibrate"]) == 0
    # learning rate 0: the one step leaves the network where --init put it
    assert main([*base, "--out", str(second), "--max-steps", "1", "--lr", "0", "--init", str(model)]) == 0
    (_, trained), (step, started) = state_of(first / "last.ckpt"), state_of(second / "last.ckpt")
    assert step == 1
    network = [name for name in trained if name.startswith("model.")]
    assert network
    for name in network:
        torch.testing.assert_close(started[name], trained[name], rtol=0, atol=0)
    init = yaml.safe_load((second / "config.yaml").read_text())["run"]["init"]
    assert init["model"] == str(model) and init["step"] == 2 and len(init["weights_sha256"]) == 64
    # another shape (the shipped mt2-mini into a one-block run), a missing folder, a resumed run: refused with the reason
    with pytest.raises(SystemExit, match="depth: 4 in the folder, 1 in the run"):
        main([*base, "--out", str(tmp_path / "other"), "--max-steps", "1", "--init", "mt2"])
    with pytest.raises(SystemExit, match="no such model folder"):
        main([*base, "--out", str(tmp_path / "other"), "--max-steps", "1", "--init", str(tmp_path / "missing")])
    with pytest.raises(SystemExit, match="--resume and --branch"):
        main(["pretrain", "--out", str(second), "--resume", "--init", str(model)])


def test_online_probes_need_a_probe_from_the_caller_and_labelled_clips(synthetic_corpus, tmp_path):
    """The trainer measures with the probe its caller passes (``mt2 pretrain``: the evaluation
    layer's ``online_probe``, logged by the test above); without one, or without labelled clips,
    the run has no probes and says why."""
    from mt2.data.shard_stream import ShardSource
    from mt2.evaluation.model_metrics import online_probe
    from mt2.training.probes import ProbeCallback, probe_callback

    root, _, _ = synthetic_corpus
    config = load_config(None, tiny_yaml(tmp_path, probe_every=4))
    source = open_source(root, root / "cache")
    callback, note = probe_callback(online_probe, source, config)
    assert isinstance(callback, ProbeCallback) and callback.probe is online_probe and note.startswith("probes on the")
    assert {r["split"] for r in callback.rows} == {"train", "test"}
    assert probe_callback(None, source, config) == (None, "no probe was passed to the trainer")
    assert probe_callback(online_probe, source, replace(config, probe_every=0)) == (None, "probe_every is 0")
    assert probe_callback(online_probe, ShardSource([]), config) == (None, "the shards source has no labelled clips to probe")


@pytest.mark.slow
def test_sigkill_then_resume_reaches_the_uninterrupted_weights(synthetic_corpus, tmp_path):
    root, _, _ = synthetic_corpus
    config = tiny_yaml(tmp_path, checkpoint_every=2, probe_every=0)
    common = ["--data", str(root), "--config", str(config), "--cache-dir", str(root / "cache"), "--max-steps", "24",
              "--threads", "1", "--no-progress"]
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "mt2.cli", "pretrain", *common, "--out", str(killed)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (killed / "last.ckpt").exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    step_at_kill, _ = state_of(killed / "last.ckpt")
    assert 0 < step_at_kill < 24
    resume = [sys.executable, "-m", "mt2.cli", "pretrain", "--data", str(root), "--cache-dir", str(root / "cache"), "--out", str(killed),
              "--resume", "--threads", "1", "--no-progress"]
    subprocess.run(resume, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    steps = [int(float(line.split(",")[header_index("step", killed)])) for line in (killed / "metrics.csv").read_text().splitlines()[1:]]
    assert max(steps) == 23 and min(s for s in steps if s >= step_at_kill) == step_at_kill

    torch.set_num_threads(1)
    assert main(["pretrain", *common, "--out", str(tmp_path / "straight")]) == 0
    final_step, resumed = state_of(killed / "last.ckpt")
    assert final_step == 24
    _, straight = state_of(tmp_path / "straight" / "last.ckpt")
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
def test_lightning_ddp_run_on_two_cpu_processes(synthetic_corpus, tmp_path):
    """The production path under DDP (gloo): data split by rank, probes broadcast, checkpoints on rank 0."""
    root, _, _ = synthetic_corpus
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "mt2.cli", "pretrain", "--data", str(root), "--cache-dir", str(root / "cache"),
               "--config", str(tiny_yaml(tmp_path, checkpoint_every=2, probe_every=4)), "--max-steps", "4", "--out", str(out),
               "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--threads", "1", "--no-progress"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    assert state_of(out / "last.ckpt")[0] == 4 and (out / "best.ckpt").exists()
    assert "probe/score" in (out / "metrics.csv").read_text().splitlines()[0]


def header_index(name: str, run: Path) -> int:
    return (run / "metrics.csv").read_text().splitlines()[0].split(",").index(name)


def test_non_finite_losses_skip_steps_then_stop_with_advice(synthetic_corpus, tmp_path, monkeypatch):
    from mt2.training import lightning as trainer_module

    root, _, _ = synthetic_corpus
    calls = {"n": 0}
    real = trainer_module.step_losses

    def sometimes_nan(model, views, config, generator=None):
        calls["n"] += 1
        losses = real(model, views, config, generator)
        if calls["n"] in bad_calls:
            losses.total = losses.total * float("nan")
        return losses

    monkeypatch.setattr(trainer_module, "step_losses", sometimes_nan)
    config = load_config(None, tiny_yaml(tmp_path, probe_every=0, checkpoint_every=10, max_nonfinite=3))
    bad_calls = {2, 3}
    last = trainer_module.pretrain(replace(config, max_steps=4), root, tmp_path / "a", cache_dir=root / "cache", progress=False)
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 4 and checkpoint["mt2"]["nonfinite_total"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())

    calls["n"], bad_calls = 0, set(range(100))  # every step skipped: the weights stay at their initial values
    last = trainer_module.pretrain(replace(config, max_steps=2), root, tmp_path / "b", cache_dir=root / "cache", progress=False)
    torch.manual_seed(config.seed)
    initial = trainer_module.MT2Module(config.to_dict()).state_dict()
    for name, value in state_of(last)[1].items():
        torch.testing.assert_close(value, initial[name], rtol=0, atol=0, msg=name)

    calls["n"] = 0
    with pytest.raises(trainer_module.NonFiniteLossError, match="lower the learning rate"):
        trainer_module.pretrain(replace(config, max_steps=10), root, tmp_path / "c", cache_dir=root / "cache", progress=False)
    assert calls["n"] == 3


# -- DDP -------------------------------------------------------------------------------------
def _fixed_views(batch: int) -> Views:
    generator = torch.Generator().manual_seed(0)
    a, b, c = (torch.rand(batch, 84, 32, generator=generator) for _ in range(3))
    return Views(a=a, b=b, c=c, shift=torch.arange(batch) % 11 + 1, offset=torch.zeros(batch, dtype=torch.long))


def _tiny_model() -> MT2Model:
    torch.manual_seed(0)
    return MT2Model(PretrainConfig(model=TINY["model"]).model_config())


def _local_views(views: Views, rank: int, world: int) -> Views:
    n = views.a.shape[0] // world
    return Views(*(t[rank * n : (rank + 1) * n] for t in (views.a, views.b, views.c, views.shift, views.offset)))


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    from mt2.training.objective import ssl_losses

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = _tiny_model()
    loss = ssl_losses(model, _local_views(_fixed_views(8), rank, world)).total
    loss.backward()
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= world
    total = loss.detach().clone()
    dist.all_reduce(total)
    if rank == 0:
        torch.save({"loss": total / world, "grads": {n: p.grad for n, p in model.named_parameters()}}, out)
    dist.barrier()  # rank 0's result is on disk before either rank leaves
    # Leave without tearing gloo down: on a loaded machine its threads sometimes abort an orderly
    # teardown ("terminate called without an active exception", SIGABRT; 1 fresh run in 3-5, also
    # with a barrier first). The teardown is not under test; an error above still fails the test.
    os._exit(0)


def test_ddp_two_processes_match_one_process_on_the_global_batch(tmp_path):
    from mt2.training.objective import ssl_losses

    world = 2
    torch.multiprocessing.spawn(_ddp_worker, args=(world, str(tmp_path / "store"), str(tmp_path / "ddp.pt")), nprocs=world)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    model = _tiny_model()
    loss = ssl_losses(model, _fixed_views(8)).total
    loss.backward()
    torch.testing.assert_close(ddp["loss"], loss.detach(), rtol=1e-5, atol=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(ddp["grads"][name], p.grad, rtol=1e-4, atol=1e-6, msg=name)
