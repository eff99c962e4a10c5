"""Embedding speed: MT2's public ``Encoder.embed`` against a MERT-95M-shaped network.

Every number comes from the same decoded audio, in one process, with the caller's thread
count. MT2 is timed through :meth:`mt2.inference.Encoder.embed` (resampling check, 4-s
windows, CQT, model, readouts: what a user calls), once per CQT backend; the baseline
through :meth:`mt2.perf.mert_shape.MertShape.embed` (resampling to 24 kHz, 5-s windows,
network). Times are the best of several rounds in which every compared setting runs once
(:func:`mt2.perf.measure.best_times`), so that ratios hold even when the load of the
machine changes during the measurement.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from mt2.frontend import BACKENDS, SAMPLE_RATE
from mt2.inference import Encoder
from mt2.model import count_parameters
from mt2.perf.measure import best_times, count_flops, torch_threads, top_operators
from mt2.perf.memory import embed_in_child
from mt2.perf.models import ModelSpec
from mt2.perf.mert_shape import MertShape, MertShapeConfig

MERT_NAME = "MERT-95M shape"
#: Most rounds of the OpenMP wait-policy trial (each starts one child process per policy).
POLICY_ROUNDS = 2


def embed_speed(specs: list[ModelSpec], mert: MertShapeConfig, audio: np.ndarray, repeats: int) -> list[dict]:
    """One row per MT2 model and CQT backend, and one for the MERT-shaped network.

    Rows: ``model``, ``description``, ``backend``, ``parameters``, ``gflop_per_second``
    (FLOPs per second of audio, counted with the nnAudio backend, whose convolutions the
    counter sees), ``seconds`` (best time for the whole audio), ``realtime`` (audio
    seconds per second) and ``vs_mert`` (MERT's time over this row's).
    """
    duration = audio.size / SAMPLE_RATE
    encoders = {(spec.name, backend): spec.encoder(backend) for spec in specs for backend in BACKENDS}
    network = MertShape(mert).eval()
    works = {key: (lambda e=encoder: e.embed(audio, SAMPLE_RATE)) for key, encoder in encoders.items()}
    works[MERT_NAME] = lambda: network.embed(audio, SAMPLE_RATE)
    seconds = best_times(works, repeats)
    flops = {spec.name: count_flops(works[spec.name, "nnaudio"]) for spec in specs}
    flops[MERT_NAME] = count_flops(works[MERT_NAME])
    rows = [
        {
            "model": spec.name, "description": spec.description, "backend": backend,
            "parameters": count_parameters(encoders[spec.name, backend].model),
            "gflop_per_second": flops[spec.name] / duration / 1e9, "seconds": seconds[spec.name, backend],
        }
        for spec in specs
        for backend in BACKENDS
    ]
    rows.append({
        "model": MERT_NAME if mert == MertShapeConfig() else f"{MERT_NAME} (quick: smaller)",
        "description": "HuBERT-base layout on 24 kHz audio, random weights, 5-s windows",
        "backend": "-", "parameters": count_parameters(network), "gflop_per_second": flops[MERT_NAME] / duration / 1e9,
        "seconds": seconds[MERT_NAME],
    })
    for row in rows:
        row["realtime"] = duration / row["seconds"]
        row["vs_mert"] = seconds[MERT_NAME] / row["seconds"]
    return rows


def embed_profile(spec: ModelSpec, audio: np.ndarray, count: int = 5) -> dict[str, list[dict]]:
    """The operators that take the most time in ``Encoder.embed``, per CQT backend."""
    profiles = {}
    for backend in BACKENDS:
        encoder = spec.encoder(backend)
        encoder.embed(audio, SAMPLE_RATE)
        profiles[backend] = top_operators(lambda: encoder.embed(audio, SAMPLE_RATE), count)
    return profiles


def embed_trials(spec: ModelSpec, audio: np.ndarray, repeats: int, threads: int, compile_model: bool, scratch: Path) -> list[dict]:
    """What else was tried to make ``spec``'s embedding faster (fast CQT backend throughout).
    Settings compared with each other are timed in alternation (:func:`best_times`).

    * ``threads``: ``Encoder.embed`` with 1 thread and with ``threads``;
    * ``OpenMP wait policy``: ``Encoder.embed_file`` of the audio in a child process with
      ``threads`` threads, ``OMP_WAIT_POLICY`` unset (libgomp spins a while at each barrier)
      and ``PASSIVE`` (waiting threads sleep, which helps when other work shares the cores);
    * ``batch``: windows per forward pass in ``Encoder.embed``;
    * ``autograd``: the model on 16 windows with autograd on, under ``no_grad`` and under
      ``inference_mode`` (what the encoder uses);
    * ``compile``: the same forward pass eager and through ``torch.compile`` (only with
      ``compile_model``; the compilation time is reported apart).

    Rows: ``trial``, ``setting``, ``seconds`` (best time), ``realtime``, and ``note``.
    """
    duration = audio.size / SAMPLE_RATE
    encoder = spec.encoder("fast")
    rows = []

    def add(trial: str, times: dict[str, float], covered: float = duration, notes: dict[str, str] | None = None) -> None:
        for setting, seconds in times.items():
            note = (notes or {}).get(setting, "")
            rows.append({"trial": trial, "setting": setting, "seconds": seconds, "realtime": covered / seconds, "note": note})

    def embed_with(count: int) -> None:
        with torch_threads(count):
            encoder.embed(audio, SAMPLE_RATE)

    add("threads", best_times({str(n): (lambda n=n: embed_with(n)) for n in sorted({1, threads})}, repeats))

    path = scratch / "trial.wav"
    sf.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    policies = {"unset": None, "PASSIVE": "PASSIVE"}
    best = {name: float("inf") for name in policies}
    for _ in range(min(POLICY_ROUNDS, repeats)):
        for name, policy in policies.items():
            result = embed_in_child(path, spec, "fast", threads, repeats, env={"OMP_WAIT_POLICY": policy})
            best[name] = min(best[name], result["seconds"])
    note = f"{threads} thread(s), embed_file in a child process"
    add("OpenMP wait policy", best, notes={name: note for name in policies})

    batches = {str(size): (lambda size=size: encoder.embed(audio, SAMPLE_RATE, batch_size=size)) for size in (1, 4, 16, 64)}
    add("batch", best_times(batches, repeats))

    windows = _model_inputs(encoder, audio, 16)
    covered = windows.shape[0] * encoder.window_samples / SAMPLE_RATE

    def forward_in(mode) -> None:
        with mode():
            encoder.model.forward_intermediates(windows, [-1])

    modes = {"enabled": torch.enable_grad, "no_grad": torch.no_grad, "inference_mode": torch.inference_mode}
    add("autograd", best_times({name: (lambda mode=mode: forward_in(mode)) for name, mode in modes.items()}, repeats), covered)
    if compile_model:
        compiled = torch.compile(encoder.model.forward_intermediates)
        start = time.perf_counter()
        with torch.inference_mode():
            compiled(windows, [-1])
        compile_seconds = time.perf_counter() - start
        with torch.inference_mode():
            times = best_times({"eager": lambda: encoder.model.forward_intermediates(windows, [-1]), "torch.compile": lambda: compiled(windows, [-1])}, repeats)
        add("compile", times, covered, {"torch.compile": f"first call (compilation; torch may reuse its on-disk cache) {compile_seconds:.0f} s"})
    return rows


def _model_inputs(encoder: Encoder, audio: np.ndarray, count: int) -> torch.Tensor:
    """The first ``count`` model windows of ``audio`` (fewer if it is shorter), as the encoder makes them."""
    return encoder.model_inputs(audio[: count * encoder.window_samples], SAMPLE_RATE, batch_size=count)
