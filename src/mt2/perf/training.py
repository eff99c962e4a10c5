"""Training speed and whether the data pipeline keeps up with it.

A timed step is the one training step, :func:`mt2.training.step.train_step` (the step of
``mt2 pretrain`` and of the recipe study): views A, B, C of ``batch`` tracks
(:func:`mt2.data.views.sample_views`), the MT2 objective, backward, gradient clipping,
AdamW and the schedule, under the packaged pretraining config of the row's preset with the
row's model overrides (:class:`mt2.perf.models.ModelSpec`). The views are made before the
clock starts, so that the step time is the model's alone. A step consumes ``batch``
tracks, and from each two 4-s segments (A and B; C is A cut at another offset), which is
what "audio seconds per second" counts.

The data pipeline is timed apart, per track, in its two forms (:mod:`mt2.data.pretrain`,
:mod:`mt2.data.shard_stream`):

* ``cached``: magnitudes read from the CQT cache (float16) and cut into views;
* ``decode + CQT``: a file decoded and transformed on the fly (the shard path,
  :func:`mt2.data.shard_stream.magnitude_of`), with each CQT backend, then cut into views.

``ratio`` is the tracks per second the pipeline makes over the tracks per second a
training step consumes: at 3 or more, the pipeline can keep the trainer busy while using a
third of the CPU time or less.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mt2.audio import load_audio
from mt2.data.shard_stream import magnitude_of
from mt2.frontend import BACKENDS, HOP_LENGTH, SAMPLE_RATE, CQTFrontend
from mt2.model import count_parameters
from mt2.model import MT2Model
from mt2.model.pitch_class import kernel_options
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


# -- the levers of one training step (issue 21) -------------------------------------------

#: Today's implementation (before issue 21): every kernel lever of mt2.model.fourier off.
TODAY_KERNELS = {"split_pair0": False, "sliced_gelu": False, "bf16_math_attention": False}
#: The target of a training step of mt2-tiny at batch 32 on 2 cores (issue 21).
STEP_TARGET_SECONDS, STEP_TARGET_BATCH = 3.0, 32


@dataclass(frozen=True)
class Lever:
    """One way to run the same training step, timed against :data:`TODAY` in the same rounds.

    ``kernels``: :func:`mt2.model.pitch_class.kernel_options` (how, never what: ``drop_in``);
    ``bf16``: CPU autocast to bfloat16 (mixed precision: rounding changes, so a choice for
    the run, ``precision: bf16-mixed``); ``compile``: ``torch.compile`` of every block;
    ``sdpa``: the ``scaled_dot_product_attention`` backend (``torch.nn.attention.SDPBackend``
    name); ``overrides``: model config fields (``frames_per_token`` changes the model: a
    choice for the run, not a drop-in).
    """

    name: str
    description: str
    kernels: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    bf16: bool = False
    compile: bool = False
    sdpa: str | None = None

    @property
    def drop_in(self) -> bool:
        """The same arithmetic as today's step up to float32 rounding (tested equal)."""
        return not (self.bf16 or self.overrides)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(kernel_options(**self.kernels))
            if self.bf16:
                stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
            if self.sdpa:
                from torch.nn.attention import SDPBackend, sdpa_kernel

                stack.enter_context(sdpa_kernel(getattr(SDPBackend, self.sdpa)))
            yield


TODAY = Lever("today", "the step before issue 21: float32, kernel levers off, the preset's frames per token", dict(TODAY_KERNELS))


def training_levers(compile_model: bool = False) -> list[Lever]:
    """The levers timed side by side: today's step first (the baseline), each lever alone, the
    shipped defaults, then the choices that change the run (bf16, frames per token) and their
    combinations; ``torch.compile`` when ``compile_model`` (it compiles for minutes)."""
    levers = [
        TODAY,
        Lever("sliced GELU", "the MLP's pitch-class GELU round trip in cache-sized slices (float32)", {**TODAY_KERNELS, "sliced_gelu": True}),
        Lever("pair 0 unpadded", "frequencies 0 and 6 as two real blocks, not one padded 2c' x 2c block", {**TODAY_KERNELS, "split_pair0": True}),
        Lever("SDPA math", "scaled_dot_product_attention through its math backend instead of the flash kernel", dict(TODAY_KERNELS), sdpa="MATH"),
        Lever("defaults", "the kernel levers as shipped (mt2.model.pitch_class.KernelOptions defaults)"),
        Lever("bf16, flash attention", "bf16 autocast on CPU (precision: bf16-mixed), attention through the flash kernel", {"bf16_math_attention": False}, bf16=True),
        Lever("bf16", "bf16 autocast on CPU (precision: bf16-mixed), shipped kernel defaults (attention through the math backend)", bf16=True),
        Lever("2 fpt", "2 frames per token (half the tokens)", overrides={"frames_per_token": 2}),
        Lever("4 fpt", "4 frames per token (a quarter of the tokens)", overrides={"frames_per_token": 4}),
        Lever("bf16 + 2 fpt", "bf16 autocast, 2 frames per token", overrides={"frames_per_token": 2}, bf16=True),
        Lever("bf16 + 4 fpt", "bf16 autocast, 4 frames per token", overrides={"frames_per_token": 4}, bf16=True),
    ]
    if compile_model:
        levers += [
            Lever("compile", "torch.compile of every block (Inductor, C++ on CPU), today's kernels (no custom autograd function to break the graph)",
                  dict(TODAY_KERNELS), compile=True),
            Lever("compile + bf16", "torch.compile of every block under bf16 autocast, today's kernels", dict(TODAY_KERNELS), bf16=True, compile=True),
        ]
    return levers


def lever_speed(
    preset: str, levers: list[Lever], batch_size: int, rounds: int, clips: list[np.ndarray], seed: int = 0, shape: dict | None = None,
) -> list[dict]:
    """Each of ``levers`` on one training step of ``preset`` (:func:`~mt2.training.step.train_step`
    under the packaged config, ``batch_size`` tracks, the same views for every lever), timed in
    ``rounds`` rounds that each run every lever once, in turn, so that a change of load hits all
    alike. The first (untimed) step of each is reported apart: it includes compilation.
    Rows: ``step_seconds`` (best wall time), ``cpu_seconds`` (best process CPU time; with one
    thread it hardly depends on the load), ``median_seconds`` and the ratios over the first
    lever (``speedup``: wall, ``cpu_speedup``: CPU). ``shape``: overrides of the preset's shape
    under every lever's own."""
    generator = np.random.default_rng(seed)
    base = load_config(preset, batch_size=batch_size)
    views = sample_views([clips[i] for i in generator.integers(len(clips), size=batch_size)], base.view_config(), generator)
    runs = {}
    for lever in levers:
        config = load_config(preset, batch_size=batch_size, model={**(shape or {}), **lever.overrides})
        torch.manual_seed(seed)
        model = MT2Model(config.model_config()).train()
        if lever.compile:
            for block in model.blocks:
                block.compile()
        optimizer, schedule = make_optimizer(model, config)

        def step(model=model, optimizer=optimizer, schedule=schedule, config=config, lever=lever) -> None:
            with lever.active():
                train_step(model, views, optimizer, schedule, config)

        start = time.perf_counter()
        step()
        runs[lever.name] = {"step": step, "first": time.perf_counter() - start, "model": model, "wall": [], "cpu": []}
    for _ in range(max(1, rounds)):
        for lever in levers:
            run = runs[lever.name]
            wall, cpu = time.perf_counter(), time.process_time()
            run["step"]()
            run["cpu"].append(time.process_time() - cpu)
            run["wall"].append(time.perf_counter() - wall)
    rows = []
    for lever in levers:
        run = runs[lever.name]
        rows.append({
            "name": lever.name,
            "description": lever.description,
            "drop_in": lever.drop_in,
            "kernels": dict(lever.kernels),
            "overrides": dict(lever.overrides),
            "bf16": lever.bf16,
            "compile": lever.compile,
            "sdpa": lever.sdpa,
            "frames_per_token": run["model"].config.frames_per_token,
            "batch": batch_size,
            "first_step_seconds": run["first"],
            "step_seconds": min(run["wall"]),
            "median_seconds": statistics.median(run["wall"]),
            "cpu_seconds": min(run["cpu"]),
            "steps_timed": len(run["wall"]),
        })
    for row in rows:
        row["speedup"] = rows[0]["step_seconds"] / row["step_seconds"]
        row["cpu_speedup"] = rows[0]["cpu_seconds"] / row["cpu_seconds"]
    return rows
