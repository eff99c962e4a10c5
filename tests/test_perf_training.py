"""``mt2 perf`` training rows: the shared training step, under the packaged config with per-row model overrides."""
from __future__ import annotations

import numpy as np
import torch

from mt2.perf import training as perf_training
from mt2.perf.models import ModelSpec, model_specs, training_specs
from mt2.training import step

SMALL = {"depth": 1, "pc_channels": 8, "heads": 2, "invariant_width": 16, "projection_dim": 16, "projection_hidden": 32}


def test_training_rows_time_the_shared_step_with_model_overrides(monkeypatch):
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[4].model)  # the config's model overrides
        return step.train_step(*args, **kwargs)

    monkeypatch.setattr(perf_training, "train_step", counted)
    clips = [np.random.default_rng(i).random((99, 400)).astype(np.float32) for i in range(3)]
    rows = [perf_training.training_speed(spec, 2, 2, clips) for spec in (
        ModelSpec("small", "mt2-mini", SMALL), ModelSpec("small 1 fpt", "mt2-mini", {**SMALL, "frames_per_token": 1}),
    )]
    assert len(calls) == 2 * 3 and calls[0] == SMALL  # one untimed step, then the timed ones, per row
    assert [row["frames_per_token"] for row in rows] == [4, 1] and rows[0]["overrides"] == SMALL
    assert all(row["steps_per_second"] > 0 and row["audio_seconds_per_second"] > 0 for row in rows)
    assert perf_training.training_config(ModelSpec("x", "mt2-tiny"), 8).model_config().frames_per_token == 4


def test_spec_lists_follow_the_preset():
    mini, tiny = model_specs("mt2-mini"), model_specs("mt2-tiny")
    dense = {"pc_basis": "dense"}
    assert [s.overrides for s in mini] == [{}, dense, {"layout": "plain"}, {"frames_per_token": 1}]
    assert [s.overrides for s in tiny] == [{}, dense, {"layout": "plain"}, {"frames_per_token": 1}, {}]
    assert tiny[-1].preset == "mt2-mini"  # the shipped recipe's shape is timed beside the paper's
    assert [(s.preset, s.overrides) for s in training_specs(("mt2-mini", "mt2-tiny"))] == [
        ("mt2-mini", {}), ("mt2-mini", dense), ("mt2-tiny", {}), ("mt2-tiny", dense),
    ]


def test_levers_run_in_alternation_on_the_same_views_and_report_ratios(monkeypatch):
    seen = []

    def recorded(model, views, *args, **kwargs):
        seen.append((model.config.frames_per_token, views.a.data_ptr(), torch.is_autocast_enabled("cpu")))
        return step.train_step(model, views, *args, **kwargs)

    monkeypatch.setattr(perf_training, "train_step", recorded)
    clips = [np.random.default_rng(i).random((99, 400)).astype(np.float32) for i in range(3)]
    levers = [perf_training.TODAY, perf_training.Lever("b", "bf16, 2 fpt", overrides={"frames_per_token": 2}, bf16=True)]
    rows = perf_training.lever_speed("mt2-mini", levers, 2, 2, clips, shape=SMALL)
    assert [s[0] for s in seen] == [4, 2, 4, 2, 4, 2]  # one untimed step each, then rounds that alternate
    assert len({s[1] for s in seen}) == 1  # the same views for every lever
    assert [s[2] for s in seen] == [False, True] * 3
    assert rows[0]["speedup"] == 1.0 and rows[0]["drop_in"] and not rows[1]["drop_in"]
    assert all(row["step_seconds"] > 0 and row["cpu_seconds"] >= 0 and row["steps_timed"] == 2 for row in rows)


def test_the_lever_list_starts_with_today_and_compiles_only_when_asked():
    levers = perf_training.training_levers()
    assert levers[0] is perf_training.TODAY and levers[0].kernels == perf_training.TODAY_KERNELS
    assert not any(lever.compile for lever in levers)
    assert any(lever.compile for lever in perf_training.training_levers(compile_model=True))
    assert {lever.name for lever in levers if lever.drop_in} >= {"today", "sliced GELU", "pair 0 unpadded", "defaults"}
