"""Training speed and whether the data pipeline keeps up with it.

A timed step is the one training step, :func:`mt2.training.step.train_step` (the step of
``mt2 pretrain`` and of the recipe study): views A, B, C of ``batch`` tracks
(:func:`mt2.data.views.sample_views`), the MT2 objective, backward, gradient clipping,
AdamW and the schedule, under the packaged pretraining config of the row's preset with the
row's model overrides (:class:`mt2.perf.models.ModelSpec`). The views are made before the
clock starts, so that the step time is the model's alone. A step consumes ``batch``
tracks, and from each two 4-s segments (A and B; C is A cut at another offset), which is
what "audio seconds per second" counts.

The data pipeline is timed apart, per track, in its two forms (:mod:`mt2.data.pretrain`):

* ``cached``: magnitudes read from the CQT cache (float16) and cut into views;
* ``decode + CQT``: a file decoded and transformed on the fly (the shard path,
  :func:`mt2.data.pretrain.magnitude_of`), with each CQT backend, then cut into views.

``ratio`` is the tracks per second the pipeline makes over the tracks per second a
training step consumes: at 3 or more, the pipeline can keep the trainer busy while using a
third of the CPU time or less.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from mt2.audio import load_audio
from mt2.data.pretrain import magnitude_of
from mt2.frontend import BACKENDS, HOP_LENGTH, SAMPLE_RATE, CQTFrontend
from mt2.model import count_parameters
from mt2.model import MT2Model
from mt2.perf.measure import best_time, best_times
from mt2.perf.models import ModelSpec
from mt2.training.config import PretrainConfig, load_config
from mt2.training.step import make_optimizer, train_step
from mt2.data.views import ViewConfig, sample_views


def segment_seconds(view_config: ViewConfig) -> float:
    """Duration of one training segment (view A or B)."""
    return view_config.segment_frames * HOP_LENGTH / SAMPLE_RATE


def training_config(spec: ModelSpec, batch_size: int) -> PretrainConfig:
    """The config a row times: the packaged config of ``spec.preset``, ``model`` overlaid by
    ``spec.overrides``, ``batch_size`` tracks per step."""
    return load_config(spec.preset, batch_size=batch_size, model=dict(spec.overrides))


def training_speed(spec: ModelSpec, batch_size: int, steps: int, clips: list[np.ndarray], seed: int = 0) -> dict:
    """Median time of ``steps`` calls of :func:`~mt2.training.step.train_step` (after one untimed
    call) under :func:`training_config`, on views cut from the magnitudes ``clips``; the views
    are made before the clock starts."""
    config = training_config(spec, batch_size)
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    model = MT2Model(config.model_config()).train()
    view_config = config.view_config()
    optimizer, schedule = make_optimizer(model, config)
    batches = [sample_views([clips[i] for i in generator.integers(len(clips), size=batch_size)], view_config, generator) for _ in range(2)]
    train_step(model, batches[0], optimizer, schedule, config)
    times = []
    for i in range(max(1, steps)):
        start = time.perf_counter()
        train_step(model, batches[i % 2], optimizer, schedule, config)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {
        "name": spec.name,
        "preset": spec.preset,
        "overrides": dict(spec.overrides),
        "frames_per_token": model.config.frames_per_token,
        "parameters": count_parameters(model),
        "batch": batch_size,
        "steps_timed": len(times),
        "step_seconds": seconds,
        "steps_per_second": 1 / seconds,
        "tracks_per_second": batch_size / seconds,
        "audio_seconds_per_second": batch_size * 2 * segment_seconds(view_config) / seconds,
    }


def pipeline_speed(files: list[Path], batch_size: int, repeats: int, seed: int = 0) -> list[dict]:
    """Seconds per track of the data pipeline in each form (module docstring), measured on
    ``files``; rows ``source``, ``seconds_per_track``, ``tracks_per_second`` and, for the
    decoding forms, ``audio_seconds_per_second`` (audio decoded and transformed per second)."""
    view_config = load_config("mt2-mini").view_config()
    generator = np.random.default_rng(seed)
    audio = [load_audio(path, SAMPLE_RATE) for path in files]
    fast = CQTFrontend(backend="fast")
    cached = [magnitude_of(fast, clip).astype(np.float16) for clip in audio]

    chosen = generator.integers(len(cached), size=batch_size)
    batch_views = best_time(lambda: sample_views([np.asarray(cached[i], dtype=np.float32) for i in chosen], view_config, generator), repeats)
    cut = batch_views / batch_size  # seconds to cut one track's views out of cached magnitudes
    rows = [{"source": "cached", "seconds_per_track": cut, "tracks_per_second": 1 / cut}]
    audio_seconds = sum(clip.size for clip in audio) / SAMPLE_RATE

    def decode_all(frontend: CQTFrontend) -> None:
        for path in files:
            magnitude_of(frontend, load_audio(path, SAMPLE_RATE))

    frontends = {backend: CQTFrontend(backend=backend) for backend in BACKENDS}
    decoding = best_times({backend: (lambda f=frontend: decode_all(f)) for backend, frontend in frontends.items()}, repeats)
    for backend, seconds in decoding.items():
        per_track = seconds / len(files) + cut
        rows.append({
            "source": f"decode + CQT ({backend})",
            "seconds_per_track": per_track,
            "tracks_per_second": 1 / per_track,
            "audio_seconds_per_second": audio_seconds / len(files) / per_track,
        })
    return rows
