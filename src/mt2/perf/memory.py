"""``Encoder.embed_file`` in a fresh child process: peak memory, time, and settings that only
take effect at process start.

A child process starts with nothing allocated, so its peak resident set size
(:func:`peak_rss_mb`) is the memory that embedding one file needs: Python, torch, the model,
the decoding and CQT buffers of one batch of windows, and the returned
:class:`~mt2.inference.Embedding`, which holds one vector per frame token and so grows with
the duration (reported as ``output_mb``). ``ready_rss_mb`` is the peak before the file is
opened (imports and model). A child also runs with its own environment, which is how
OpenMP settings (read once, when torch loads) are compared.
"""
from __future__ import annotations

import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mt2.perf.models import ModelSpec
from mt2.perf.signals import write_long_file


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Read from ``VmHWM`` in ``/proc/self/status`` on Linux: ``ru_maxrss`` survives ``exec``,
    so a child started from a large parent would report the parent's size at fork.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 2**20 if sys.platform == "darwin" else 2**10  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def embed_in_child(path: Path, spec: ModelSpec, backend: str, threads: int, repeats: int = 1, env: dict | None = None) -> dict:
    """Embed ``path`` with ``Encoder.embed_file`` in a new Python process. ``env`` sets
    environment variables for it (a value of None removes one). Returns ``seconds`` (best of
    ``repeats`` calls), ``peak_rss_mb``, ``ready_rss_mb``, ``output_mb`` and ``frames``."""
    arguments = {"path": str(path), "spec": dataclasses.asdict(spec), "backend": backend, "threads": threads, "repeats": repeats}
    command = [sys.executable, "-c", "import sys; from mt2.perf.memory import child; child(sys.argv[1])", json.dumps(arguments)]
    environment = {name: value for name, value in {**os.environ, **(env or {})}.items() if value is not None}
    process = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    if process.returncode != 0:
        raise RuntimeError(f"the embed_file child process failed ({process.returncode}): {process.stderr[-2000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def long_file_memory(minutes: tuple[float, ...], music: np.ndarray, specs: list[ModelSpec], backend: str, threads: int, folder: Path) -> list[dict]:
    """Embed long files in child processes (:func:`embed_in_child`): ``specs[0]`` at every
    duration (is the cost linear?), the other specs at the longest (is memory bounded for
    every layout?). Each file, a stereo 44.1 kHz FLAC of ``music`` repeated, is written under
    ``folder`` and deleted after use. Rows add ``model``, ``minutes`` and ``realtime``."""
    rows = []
    for duration in minutes:
        chosen = specs if duration == max(minutes) else specs[:1]
        path = write_long_file(folder / f"perf-{duration:g}min.flac", duration, music)
        try:
            for spec in chosen:
                result = embed_in_child(path, spec, backend, threads)
                rows.append({"model": spec.name, "minutes": duration, **result, "realtime": duration * 60 / result["seconds"]})
        finally:
            path.unlink()
    return rows


def child(arguments: str) -> None:
    """Child process body: embed one file and print one JSON line of measurements."""
    options = json.loads(arguments)
    torch.set_num_threads(options["threads"])
    encoder = ModelSpec(**options["spec"]).encoder(options["backend"])
    ready = peak_rss_mb()
    times = []
    for _ in range(options["repeats"]):
        start = time.perf_counter()
        embedding = encoder.embed_file(options["path"])
        times.append(time.perf_counter() - start)
    print(json.dumps({
        "seconds": min(times),
        "peak_rss_mb": peak_rss_mb(),
        "ready_rss_mb": ready,
        "output_mb": sum(array.nbytes for array in embedding.arrays().values()) / 2**20,
        "frames": int(embedding.frames.shape[0]),
    }))
