"""GPU check of ``mt2-tiny`` (issue 21, part 4): bf16 training steps per second and embedding throughput.

One command on a machine with one CUDA GPU, a few minutes (``--budget`` seconds, default 240,
shared by the measurements; each stops early when its share is spent)::

    scripts/gpu_check.sh                    # installs the package with pip if needed, then:
    python -m mt2.perf.gpu --out gpu-check  # writes gpu-check.json and gpu-check.md

What it measures, on random weights (weights do not change the cost) and synthetic input:

* training: the one training step (:func:`mt2.training.step.train_step`: MT2 objective,
  backward, clipping, AdamW) of ``mt2-tiny`` under bf16 autocast (the packaged
  ``precision: auto`` on a GPU) and in float32, at 1 and 4 frames per token and batch 32 and
  128 tracks (each track: views A, B, C of 4 s); steps per second after warm-up, synchronised;
* embedding: the model's forward pass on batches of 4-s windows (bf16 and float32, no
  autograd): windows per second and the realtime factor (seconds of audio per second), and
  ``Encoder.embed`` end to end (CQT included) on 60 s of audio with each CQT backend that runs
  on the device.

It runs on CPU too, as a smoke test with small shapes (the numbers are then CPU numbers)::

    python -m mt2.perf.gpu --device cpu --preset mt2-mini --shapes 4x2 --embed-batch 2 --embed-seconds 8 --warmup 1 --budget 10
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.benchmark import Timer, timer

from mt2.frontend import N_BINS, SAMPLE_RATE, WINDOW_BINS, WINDOW_FRAMES, WINDOW_SECONDS

#: The shapes timed: (frames per token, batch of tracks).
TRAINING_SHAPES = ((1, 32), (1, 128), (4, 32), (4, 128))
EMBED_BATCH = 64


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _timed(work, warmup: int, budget: float) -> dict:
    """Run ``work`` ``warmup`` times, then time it with ``torch.utils.benchmark.Timer``
    (``blocked_autorange`` for what is left of ``budget`` seconds, at least one block; the
    accelerator is synchronised around each block, at torch's thread count): the median
    seconds per call, the calls timed and the seconds of warm-up."""
    start = timer()
    for _ in range(warmup):
        work()
    warm = timer() - start
    measured = Timer("work()", globals={"work": work}, num_threads=torch.get_num_threads()).blocked_autorange(
        min_run_time=max(budget - warm, 0.0))
    return {"seconds": float(measured.median), "calls": measured.number_per_run * len(measured.raw_times), "warmup_seconds": warm}


def _views(batch: int, device: torch.device, seed: int = 0):
    from mt2.data.views import Views, sample_views
    from mt2.training.config import load_config

    generator = np.random.default_rng(seed)
    clips = [generator.random((N_BINS, 400)).astype(np.float32) ** 2 for _ in range(8)]
    views = sample_views([clips[i] for i in generator.integers(8, size=batch)], load_config("mt2-tiny").view_config(), generator)
    return Views(*(t.to(device) for t in (views.a, views.b, views.c, views.shift, views.offset)))


def training_rows(
    device: torch.device, budget: float, compile_model: bool = False, shapes=TRAINING_SHAPES, warmup: int = 3, preset: str = "mt2-tiny",
) -> list[dict]:
    """Steps per second of the training step of ``mt2-tiny`` per (frames per token, batch,
    precision); a shape that does not fit the device's memory is reported as such."""
    from mt2.model import MT2Model
    from mt2.training.config import load_config
    from mt2.training.step import make_optimizer, train_step

    settings = [(fpt, batch, bf16) for fpt, batch in shapes for bf16 in (True, False)]
    rows = []
    for fpt, batch, bf16 in settings:
        row = {"frames_per_token": fpt, "batch": batch, "precision": "bf16-mixed" if bf16 else "32-true", "compiled": compile_model}
        try:
            config = load_config(preset, batch_size=batch, model={"frames_per_token": fpt})
            torch.manual_seed(0)
            model = MT2Model(config.model_config()).to(device).train()
            if compile_model:
                for block in model.blocks:
                    block.compile()
            optimizer, schedule = make_optimizer(model, config)
            views = _views(batch, device)

            def step() -> None:
                with _autocast(device, bf16):
                    train_step(model, views, optimizer, schedule, config)

            timing = _timed(step, warmup=warmup, budget=budget / len(settings))
            row.update(timing, steps_per_second=1 / timing["seconds"], tracks_per_second=batch / timing["seconds"])
        except torch.cuda.OutOfMemoryError:
            row["error"] = "out of memory"
        finally:
            model = optimizer = views = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rows.append(row)
    return rows


def embedding_rows(
    device: torch.device, budget: float, batch: int = EMBED_BATCH, seconds: float = 60.0, warmup: int = 3, preset: str = "mt2-tiny",
) -> list[dict]:
    """Forward passes of ``mt2-tiny`` on batches of 4-s windows (no autograd), per frames per
    token and precision; then ``Encoder.embed`` on 60 s of audio per CQT backend."""
    from mt2.frontend import BACKENDS, CQTFrontend
    from mt2.inference import Encoder
    from mt2.model import build_model

    rows = []
    for fpt in (1, 4):
        model = build_model(preset, "mt2", frames_per_token=fpt).to(device).eval()
        windows = torch.rand(batch, WINDOW_BINS, WINDOW_FRAMES, device=device)
        for bf16 in (True, False):
            def forward() -> None:
                with torch.inference_mode(), _autocast(device, bf16):
                    model(windows)

            timing = _timed(forward, warmup=warmup, budget=budget / 8)
            rows.append({
                "what": f"model forward, {batch} windows of 4 s", "frames_per_token": fpt, "precision": "bf16" if bf16 else "float32",
                **timing, "realtime": batch * WINDOW_SECONDS / timing["seconds"],
            })
    audio = np.random.default_rng(0).standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32) * 0.1
    encoder_rate = build_model(preset, "mt2").config.frames_per_token
    for backend in BACKENDS:
        row = {"what": f"Encoder.embed, {seconds:g} s, {backend} CQT", "frames_per_token": encoder_rate, "precision": "float32"}
        try:
            encoder = Encoder(build_model(preset, "mt2"))
            encoder.frontend = CQTFrontend(compression=encoder.compression, backend=backend)
            encoder = encoder.to(device)
            timing = _timed(lambda: encoder.embed(audio, SAMPLE_RATE), warmup=1, budget=budget / 8)
            row.update(timing, realtime=seconds / timing["seconds"])
        except Exception as error:  # a backend that does not run on this device is reported, not fatal
            row["error"] = f"{type(error).__name__}: {error}"[:200]
        rows.append(row)
    return rows


def run_check(
    device: str | None = None, budget: float = 240.0, compile_model: bool = False, log=print,
    shapes=TRAINING_SHAPES, embed_batch: int = EMBED_BATCH, embed_seconds: float = 60.0, warmup: int = 3, preset: str = "mt2-tiny",
) -> dict:
    """Every measurement of the module docstring, within about ``budget`` seconds after imports."""
    chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if chosen.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # float32 rows: TF32 products, as a GPU run would use
        torch.backends.cudnn.allow_tf32 = True
    info = {
        "device": str(chosen),
        "device_name": torch.cuda.get_device_name(chosen) if chosen.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "bf16_supported": bool(chosen.type != "cuda" or torch.cuda.is_bf16_supported()),
        "python": platform.python_version(),
        "budget_seconds": budget,
        "preset": preset,
    }
    log(f"GPU check on {info['device_name']} ({chosen}), torch {info['torch']}, budget {budget:.0f} s")
    start = time.perf_counter()
    log(f"training steps of {preset} ...")
    training = training_rows(chosen, 0.65 * budget, compile_model, shapes, warmup, preset)
    log(f"embedding throughput of {preset} ...")
    embedding = embedding_rows(chosen, 0.35 * budget, embed_batch, embed_seconds, warmup, preset)
    info["wall_seconds"] = time.perf_counter() - start
    return {"environment": info, "training": training, "embedding": embedding}


def render(results: dict) -> str:
    """A Markdown page of :func:`run_check`'s results."""
    env = results["environment"]
    lines = [
        "# MT2 GPU check (`python -m mt2.perf.gpu`)\n",
        f"{env['device_name']} ({env['device']}), torch {env['torch']} (CUDA {env['cuda']}), Python {env['python']}; "
        f"took {env['wall_seconds']:.0f} s. Random weights, synthetic input; medians after warm-up.\n",
        f"## Training step of {env['preset']} (views A, B, C of 4 s per track)\n",
        "| frames per token | batch | precision | s per step | steps per s | tracks per s | note |",
        "|---:|---:|---|---:|---:|---:|---|",
    ]
    for row in results["training"]:
        if "error" in row:
            lines.append(f"| {row['frames_per_token']} | {row['batch']} | {row['precision']} | - | - | - | {row['error']} |")
        else:
            lines.append(f"| {row['frames_per_token']} | {row['batch']} | {row['precision']} | {row['seconds']:.4f} | "
                         f"{row['steps_per_second']:.2f} | {row['tracks_per_second']:.0f} | {row['calls']} steps |")
    lines += [f"\n## Embedding throughput of {env['preset']}\n", "| what | frames per token | precision | s per call | realtime | note |", "|---|---:|---|---:|---:|---|"]
    for row in results["embedding"]:
        if "error" in row:
            lines.append(f"| {row['what']} | {row['frames_per_token']} | {row['precision']} | - | - | {row['error']} |")
        else:
            lines.append(f"| {row['what']} | {row['frames_per_token']} | {row['precision']} | {row['seconds']:.4f} | {row['realtime']:.0f}x | {row['calls']} calls |")
    return "\n".join(lines) + "\n"


def _shapes(text: str) -> tuple[tuple[int, int], ...]:
    try:
        return tuple(tuple(int(v) for v in item.split("x")) for item in text.split(","))  # type: ignore[misc]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FPTxBATCH,..., e.g. 1x32,4x128; got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mt2.perf.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check"), help="output stem: writes STEM.json and STEM.md (default: gpu-check)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds shared by the measurements (default: 240)")
    parser.add_argument("--compile", action="store_true", help="torch.compile every block of the training models (compilation is part of the warm-up, inside the budget)")
    parser.add_argument("--shapes", type=_shapes, default=TRAINING_SHAPES,
                        help="training shapes FPTxBATCH, comma-separated (default: 1x32,1x128,4x32,4x128)")
    parser.add_argument("--embed-batch", type=int, default=EMBED_BATCH, help=f"4-s windows per forward pass (default: {EMBED_BATCH})")
    parser.add_argument("--embed-seconds", type=float, default=60.0, help="seconds of audio for Encoder.embed (default: 60)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before timing (default: 3)")
    parser.add_argument("--preset", default="mt2-tiny", help="model preset (default: mt2-tiny; mt2-mini for a fast smoke test)")
    args = parser.parse_args(argv)
    results = run_check(
        args.device, args.budget, args.compile, lambda m: print(m, file=sys.stderr, flush=True),
        args.shapes, args.embed_batch, args.embed_seconds, args.warmup, args.preset,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    text = render(results)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
