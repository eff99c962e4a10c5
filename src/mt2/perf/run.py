"""``mt2 perf``: every measurement in one process, with one thread count, on one decoded audio."""
from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import mt2
from mt2.model import make_config
from mt2.audio import load_audio
from mt2.data.shard_stream import magnitude_of
from mt2.frontend import DEFAULT_BACKEND, SAMPLE_RATE, WINDOW_SECONDS, CQTFrontend
from mt2.perf import SECTIONS
from mt2.perf.cqt_check import TOLERANCE_MAX_ABS, TOLERANCE_MEAN_ABS, backend_speed, compare_backends
from mt2.perf.embedding import embed_profile, embed_speed, embed_trials
from mt2.perf.measure import load_average, torch_threads
from mt2.perf.memory import long_file_memory
from mt2.perf.models import model_specs, training_specs
from mt2.perf.mert_shape import QUICK_CONFIG, MertShapeConfig
from mt2.perf.signals import harmonic_tone, music_files, real_music, synthetic_music
from mt2.perf.training import lever_speed, pipeline_speed, training_levers, training_speed

PIPELINE_FILES = 8
SYNTHETIC_CLIP_SECONDS = 12.0
#: Audio for the profile and the trials, which compare settings with each other.
TRIAL_SECONDS = 20.0
#: Environment variables that change how torch's threads behave, recorded with the results.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")


@dataclass
class PerfOptions:
    """What ``mt2 perf`` measures; ``mt2 perf --help`` explains each field."""

    seconds: float = 60.0
    threads: int = 2
    repeats: int = 3
    audio: Path | None = None
    minutes: tuple[float, ...] = (10.0, 30.0, 60.0)
    train_steps: int = 3
    train_batch: int = 32
    compile_model: bool = False
    quick: bool = False
    sections: tuple[str, ...] = SECTIONS

    def __post_init__(self) -> None:
        unknown = set(self.sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
        if self.seconds <= 0 or self.threads < 1 or self.repeats < 1:
            raise ValueError("seconds must be positive, threads and repeats at least 1")

    @property
    def preset(self) -> str:
        """The MT2 size whose embedding is timed: ``mt2-tiny`` (``mt2-mini`` when quick)."""
        return "mt2-mini" if self.quick else "mt2-tiny"

    @property
    def mert(self) -> MertShapeConfig:
        """The baseline's layout: MERT-95M's (a small one of the same layout when quick)."""
        return QUICK_CONFIG if self.quick else MertShapeConfig()

    @property
    def train_presets(self) -> tuple[str, ...]:
        """The sizes whose training steps are timed."""
        return ("mt2-mini",) if self.quick else ("mt2-mini", "mt2-tiny")


def run_perf(options: PerfOptions, log: Callable[[str], None] = print) -> dict:
    """Run the requested sections and return every measurement as a JSON-ready dict."""
    results: dict = {"options": _jsonable(asdict(options)), "environment": environment(options), "sections": {}}
    with torch_threads(options.threads), tempfile.TemporaryDirectory(prefix="mt2-perf-") as scratch:
        scratch = Path(scratch)
        source = str(options.audio) if options.audio else "synthetic scales and cadences (mt2.training.calibrate)"
        log(f"decoding {options.seconds:g} s of music from {source}")
        music = real_music(options.audio, options.seconds) if options.audio else synthetic_music(options.seconds)
        results["audio"] = {"source": source, "seconds": music.size / SAMPLE_RATE}
        specs = model_specs(options.preset)
        steps = {
            "cqt": lambda: _cqt_section(music, options),
            "embed": lambda: _embed_section(specs, music, options, scratch, log),
            # the dense reference is left out: memory does not depend on the basis, and time is measured above
            "memory": lambda: long_file_memory(options.minutes, music, [s for s in specs if "pc_basis" not in s.overrides], DEFAULT_BACKEND, options.threads, scratch),
            "training": lambda: _training_section(options, scratch, log),
            "levers": lambda: _levers_section(options, scratch, log),
        }
        for name in options.sections:
            before = load_average()
            log(f"[{name}] load average {before}")
            start = time.perf_counter()
            result = steps[name]()
            results["sections"][name] = {
                "result": result, "load_before": before, "load_after": load_average(), "wall_seconds": time.perf_counter() - start,
            }
    results["environment"]["load_average_end"] = load_average()
    return results


def environment(options: PerfOptions) -> dict:
    """The machine and software the numbers belong to."""
    return {
        "date": datetime.now().isoformat(timespec="minutes"),
        "mt2_version": mt2.__version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "logical_cpus": _cpu_count(),
        "threads": options.threads,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "thread_environment": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "load_average_start": load_average(),
    }


def _cqt_section(music: np.ndarray, options: PerfOptions) -> dict:
    two_windows = 2 * WINDOW_SECONDS  # tones fill whole windows: no zero padding
    signals = {
        "tone A1 (MIDI 33)": harmonic_tone(33, two_windows),
        "tone C4 (MIDI 60)": harmonic_tone(60, two_windows),
        "tone C7 (MIDI 96)": harmonic_tone(96, two_windows),
        "chord C3 E4 G4 C5": harmonic_tone([48, 64, 67, 72], two_windows),
        "music": music,
    }
    return {
        "tolerance": {"max_abs": TOLERANCE_MAX_ABS, "mean_abs": TOLERANCE_MEAN_ABS},
        "agreement": compare_backends(signals),
        "speed": backend_speed(music, options.repeats),
    }


def _embed_section(specs, music: np.ndarray, options: PerfOptions, scratch: Path, log) -> dict:
    log("timing Encoder.embed and the MERT-shaped network")
    rows = embed_speed(specs, options.mert, music, options.repeats)
    excerpt = music[: int(TRIAL_SECONDS * SAMPLE_RATE)]
    log("profiling Encoder.embed")
    profile = embed_profile(specs[0], excerpt)
    log("trying threads, OpenMP wait policies, batch sizes, autograd modes" + (" and torch.compile" if options.compile_model else ""))
    trials = embed_trials(specs[0], excerpt, options.repeats, options.threads, options.compile_model, scratch)
    return {
        "rows": rows, "profile_model": specs[0].name, "profile": profile, "trials": trials,
        "trial_seconds": excerpt.size / SAMPLE_RATE,
    }


def _training_section(options: PerfOptions, scratch: Path, log) -> dict:
    count = 2 if options.quick else PIPELINE_FILES
    files = _pipeline_files(options, scratch, count)
    fast = CQTFrontend(backend="fast")
    clips = [magnitude_of(fast, load_audio(path, SAMPLE_RATE)) for path in files]
    rows = []
    for spec in training_specs(options.train_presets):
        log(f"timing training steps of {spec.name}")
        rows.append(training_speed(spec, options.train_batch, options.train_steps, clips))
    log("timing the data pipeline")
    pipeline = pipeline_speed(files, options.train_batch, options.repeats)
    return {"files": [str(p) for p in files], "training": rows, "pipeline": pipeline}


def _levers_section(options: PerfOptions, scratch: Path, log) -> dict:
    files = _pipeline_files(options, scratch, 2 if options.quick else PIPELINE_FILES)
    fast = CQTFrontend(backend="fast")
    clips = [magnitude_of(fast, load_audio(path, SAMPLE_RATE)) for path in files]
    preset = options.train_presets[-1]
    own_rate = make_config(preset).frames_per_token
    levers = [lever for lever in training_levers(options.compile_model) if lever.overrides.get("frames_per_token") != own_rate]
    log(f"timing {len(levers)} ways to run a training step of {preset}, batch {options.train_batch}, in alternation"
        + (" (torch.compile compiles first: minutes)" if options.compile_model else ""))
    rows = lever_speed(preset, levers, options.train_batch, options.train_steps, clips)
    return {"preset": preset, "batch": options.train_batch, "threads": options.threads, "rows": rows}


def _pipeline_files(options: PerfOptions, scratch: Path, count: int) -> list[Path]:
    """``count`` files spread over ``--audio``, or synthetic 12-s clips written to ``scratch``."""
    if options.audio:
        files = music_files(options.audio)
        return files[:: max(1, len(files) // count)][:count]
    music = synthetic_music(count * SYNTHETIC_CLIP_SECONDS)
    size = int(SYNTHETIC_CLIP_SECONDS * SAMPLE_RATE)
    paths = []
    for i in range(count):
        path = scratch / f"clip-{i}.flac"
        sf.write(path, music[i * size : (i + 1) * size], SAMPLE_RATE)
        paths.append(path)
    return paths


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
