"""The ``mt2 perf`` report: a Markdown page with tables and one figure, and the raw JSON."""
from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from mt2.perf.models import RECIPE_PRESET
from mt2.tables import markdown_table

#: Targets on 2 CPU cores (the "Performance" issue).
REALTIME_TARGET, REALTIME_AIM = 100.0, 150.0
MERT_TARGET, MERT_AIM = 25.0, 40.0
RSS_TARGET_MB = 1024.0
LINEAR_TOLERANCE = 0.15  # a time ratio may differ from the duration ratio by 15%
PIPELINE_TARGET = 3.0
RECIPE_REALTIME_TARGET = 250.0  # the shipped recipe's shape (mt2-mini, 4 frames per token)
#: Training steps per second of the Fourier basis over the dense maps, per preset (issue 14).
TRAINING_SPEEDUP_TARGETS = {"mt2-mini": 2.0, "mt2-tiny": 3.0}
#: One training step of mt2-tiny at batch 32 on 2 cores (issue 21).
STEP_TARGET_PRESET, STEP_TARGET_SECONDS, STEP_TARGET_BATCH = "mt2-tiny", 3.0, 32


def write_report(results: dict, markdown: Path, json_path: Path) -> None:
    """Write ``markdown`` (with its figure beside it, same name, ``.png``) and ``json_path``."""
    markdown.parent.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    figure = markdown.with_suffix(".png")
    plot(results, figure)
    markdown.write_text(render(results, figure.name))
    json_path.write_text(json.dumps(results, indent=1) + "\n")


def render(results: dict, figure_name: str) -> str:
    """The Markdown page."""
    sections = results["sections"]
    parts = [_header(results), _targets(sections)]
    writers = {"embed": _embed, "cqt": _cqt, "memory": _memory, "training": _training, "levers": _levers}
    for name, writer in writers.items():
        if name in sections:
            parts.append(writer(sections[name]))
    if "embed" in sections:
        parts.append(_trials(sections["embed"]["result"]))
    parts.append(f"![Realtime factors and long-file memory]({figure_name})\n")
    return "\n".join(parts)


def _header(results: dict) -> str:
    env, audio = results["environment"], results["audio"]
    gpu = (
        f"GPU present ({env['gpu']}) but every number here is CPU"
        if env["gpu"] else "**No GPU was measured**: no GPU was available to this run; every number is CPU"
    )
    settings = [f"`{name}={value}`" for name, value in env["thread_environment"].items() if value is not None]
    threading = ", ".join(settings) if settings else "no OpenMP or MKL variable set (library defaults)"
    return (
        "# MT2 performance\n\n"
        f"Written by `mt2 perf` (mt2 {env['mt2_version']}, torch {env['torch_version']}, Python {env['python']}) "
        f"on {env['date']}, {env['cpu']}, {env['logical_cpus']} logical CPUs, **torch threads: {env['threads']}**. {gpu}.\n\n"
        f"Load average (1 min) {env['load_average_start']} at the start and {env['load_average_end']} at the end "
        "(per section below). This run accounts for up to its thread count; anything above means other work shared "
        "the cores, and times are longer than on an idle machine. Times are the best of several repetitions "
        "unless said otherwise; settings that are compared run in alternation, so that their ratios hold under a "
        "changing load.\n\n"
        f"Thread environment: {threading}.\n\n"
        f"Audio: {audio['source']}, {audio['seconds']:.0f} s, decoded once at 16 kHz and used by every measurement.\n"
    )


def _load(section: dict) -> str:
    return f"_Load average {section['load_before']} before, {section['load_after']} after; section took {section['wall_seconds']:.0f} s._\n"


def _mark(value: float, target: float, higher: bool = True) -> str:
    return "yes" if (value >= target if higher else value <= target) else "no"


def _targets(sections: dict) -> str:
    rows = []
    if "embed" in sections:
        for row in sections["embed"]["result"]["rows"]:
            if row["backend"] == "-" or row["model"].endswith(" dense"):  # the dense maps are the reference, not a target
                continue
            label = f"{row['model']}, {row['backend']} CQT"
            if row["model"] == RECIPE_PRESET:
                rows.append((f"embedding >= {RECIPE_REALTIME_TARGET:.0f}x realtime: {label} (the shipped recipe)",
                             f"{row['realtime']:.0f}x", _mark(row["realtime"], RECIPE_REALTIME_TARGET)))
                continue
            rows.append((f"embedding >= {REALTIME_TARGET:.0f}x realtime (aim {REALTIME_AIM:.0f}x): {label}",
                         f"{row['realtime']:.0f}x", _mark(row["realtime"], REALTIME_TARGET)))
            rows.append((f">= {MERT_TARGET:.0f}x faster than MERT-95M shape (aim {MERT_AIM:.0f}x): {label}",
                         f"{row['vs_mert']:.1f}x", _mark(row["vs_mert"], MERT_TARGET)))
    if "memory" in sections:
        memory = sections["memory"]["result"]
        longest = max(row["minutes"] for row in memory)
        for row in memory:
            if row["minutes"] == longest:
                rows.append((f"peak RSS of a {longest:g}-minute file < 1 GB: {row['model']}", f"{row['peak_rss_mb']:.0f} MiB",
                             _mark(row["peak_rss_mb"], RSS_TARGET_MB, higher=False)))
        for ratio in _time_ratios(memory):
            linear = abs(ratio["ratio"] / ratio["expected"] - 1) <= LINEAR_TOLERANCE
            rows.append((f"time linear in duration: {ratio['label']} (expected {ratio['expected']:g})",
                         f"{ratio['ratio']:.2f}", "yes" if linear else "no"))
    if "training" in sections:
        result = sections["training"]["result"]
        steps = {row["name"]: row["steps_per_second"] for row in result["training"]}
        for preset, target in TRAINING_SPEEDUP_TARGETS.items():
            if preset in steps and f"{preset} dense" in steps:
                ratio = steps[preset] / steps[f"{preset} dense"]
                rows.append((f"training steps per second, Fourier basis >= {target:g}x dense maps: {preset}", f"{ratio:.2f}x", _mark(ratio, target)))
        for train in result["training"]:
            for source in result["pipeline"]:
                ratio = source["tracks_per_second"] / train["tracks_per_second"]
                rows.append((f"data pipeline >= {PIPELINE_TARGET:.0f}x training: {source['source']} for {train['name']}",
                             f"{ratio:.1f}x", _mark(ratio, PIPELINE_TARGET)))
        for train in result["training"]:
            if train["name"] == STEP_TARGET_PRESET and train["batch"] == STEP_TARGET_BATCH:
                rows.append(_step_target(f"{train['name']} as packaged", train["step_seconds"]))
    if "levers" in sections:
        levers = sections["levers"]["result"]
        if levers["preset"] == STEP_TARGET_PRESET and levers["batch"] == STEP_TARGET_BATCH:
            for row in levers["rows"]:
                rows.append(_step_target(f"{levers['preset']}, {row['name']}" + ("" if row["drop_in"] else " (changes the run)"), row["step_seconds"]))
    lines = ["## Targets (set for 2 CPU cores)\n", *markdown_table(("target", "measured", "met"), rows, list("lrl"))]
    return "\n".join(lines) + "\n"


def _step_target(label: str, seconds: float) -> tuple[str, str, str]:
    met = seconds <= STEP_TARGET_SECONDS
    note = "yes" if met else f"no ({seconds / STEP_TARGET_SECONDS:.1f}x too slow)"
    return (f"training step at batch {STEP_TARGET_BATCH} <= {STEP_TARGET_SECONDS:g} s: {label}", f"{seconds:.2f} s", note)


def _time_ratios(rows: list[dict]) -> list[dict]:
    """Time ratio of each long file to the previous one, for the model timed at every duration,
    with the duration ratio it should equal."""
    rows = [row for row in rows if row["model"] == rows[0]["model"]]
    return [
        {"label": f"{b['minutes']:g} min / {a['minutes']:g} min", "ratio": b["seconds"] / a["seconds"], "expected": b["minutes"] / a["minutes"]}
        for a, b in zip(rows, rows[1:])
    ]


def _embed(section: dict) -> str:
    result = section["result"]
    lines = [
        "## Embedding speed: `Encoder.embed` against a MERT-95M-shaped network\n",
        _load(section),
        "Same audio, same process, same threads. MT2 through its public `Encoder.embed` (4-s windows, 16 per "
        "batch, CQT included) with each CQT backend; the MERT-shaped network (`mt2.perf.mert_shape`, random "
        "weights) resamples to 24 kHz and runs 5-s windows, 4 per batch. FLOPs are counted by "
        "`torch.utils.flop_counter.FlopCounterMode` (matrix products, convolutions, attention; MT2's with the "
        "nnAudio CQT, whose convolutions it sees) per second of audio.\n",
        *markdown_table(
            ("model", "what", "CQT backend", "parameters", "GFLOP per audio s", "time (s)", "realtime", "x faster than MERT"),
            [
                (row["model"], row["description"], row["backend"], f"{row['parameters'] / 1e6:.2f} M", f"{row['gflop_per_second']:.2f}",
                 f"{row['seconds']:.2f}", f"{row['realtime']:.1f}x", f"{row['vs_mert']:.1f}")
                for row in result["rows"]
            ],
            list("lllrrrrr"),
        ),
    ]
    lines.append(
        "\nThe pitch-class layout keeps 12 x 48 equivariant channels per token. By default (`pc_basis=\"fourier\"`) "
        "each roll-commuting map runs block-diagonally in the real Fourier basis of the 12 axis (7 small products); "
        "the `dense` rows run the same weights as expanded 12c x 12c' matrices (the reference), which costs like a "
        "ViT of width 576 + 96. The plain layout is the width-192 ViT-Tiny; four frames per token cut the token "
        "count by four. Ratios between rows of one table hold under load; realtime factors do not (see the load "
        "average of the section).\n"
    )
    return "\n".join(lines)


def _cqt(section: dict) -> str:
    result = section["result"]
    lines = [
        "## CQT: the `fast` backend against nnAudio `CQT2010v2`\n",
        _load(section),
        "`CQTFrontend(backend=\"fast\")` (`mt2.fast_cqt`) applies nnAudio's own CQT2010v2 kernels and decimation "
        "filters (sr 16000, hop 512, fmin 27.5 Hz, 99 bins, 12 per octave): the decimations as FFT correlations in "
        "float64, the kernel bank as one float32 matrix product per octave. Errors are on the model windows "
        "(`mt2.frontend.model_window`: 84 bins at the inference offset, sqrt, divided by the window mean), so they "
        "are in units of the window mean; the relative error is over values above 1% of the mean. 'exact' is "
        "nnAudio's transform evaluated in float64. nnAudio's float32 result leaves a rounding floor about 1e-7 below "
        "the loudest component in every bin, which the square root and the division by a small window mean (a pure "
        "high tone) lift: on such signals the backends differ by nnAudio's own rounding error, and the fast backend "
        "is the closer of the two to the exact transform. Tolerance: the fast backend no farther from the exact "
        "transform than nnAudio, and within max abs "
        f"{result['tolerance']['max_abs']:g} and mean abs {result['tolerance']['mean_abs']:g} of nnAudio.\n",
        *markdown_table(
            ("signal", "windows", "max abs error", "mean abs error", "max relative error", "within tolerance",
             "nnAudio vs exact (max abs)", "fast vs exact (max abs)"),
            [
                (row["signal"], row["windows"], f"{row['max_abs']:.1e}", f"{row['mean_abs']:.1e}", f"{row['max_rel']:.1e}",
                 "yes" if row["within_tolerance"] else "no", f"{row['nnaudio_vs_exact']:.1e}", f"{row['fast_vs_exact']:.1e}")
                for row in result["agreement"]
            ],
            list("lrrrrlrr"),
        ),
        "\nSpeed of `CQTFrontend.magnitude` alone (4.03-s windows):\n",
        *markdown_table(
            ("windows per call", "nnAudio (ms per window)", "fast (ms per window)", "nnAudio realtime", "fast realtime", "speed-up"),
            [
                (row["batch"], f"{1e3 * row['nnaudio_s_per_window']:.1f}", f"{1e3 * row['fast_s_per_window']:.1f}",
                 f"{row['nnaudio_realtime']:.0f}x", f"{row['fast_realtime']:.0f}x", f"{row['speedup']:.1f}x")
                for row in result["speed"]
            ],
            list("rrrrrr"),
        ),
    ]
    return "\n".join(lines) + "\n"


def _memory(section: dict) -> str:
    rows = section["result"]
    lines = [
        "## Long files: `Encoder.embed_file`, one child process per file\n",
        _load(section),
        "Generated stereo 44.1 kHz FLAC files (the measured music, repeated), embedded with the default (fast) "
        "CQT by the preset's default model at every duration and by the other shapes at the longest (the dense "
        "reference maps are left out: memory does not depend on the basis). Peak RSS is "
        "the child's high-water mark (`VmHWM`); 'before the file' is its peak after imports and model construction; "
        "the output is the returned arrays (one vector per frame token), the only part of the result that grows "
        "with the duration. 'growth / output' is the peak above 'before the file' over the size of those arrays: "
        "the fixed buffers of decoding and of one batch (the frame tokens are written once, into an array "
        "preallocated from the file's length).\n",
        *markdown_table(
            ("model", "minutes", "time (s)", "realtime", "peak RSS (MiB)", "before the file (MiB)", "output arrays (MiB)",
             "growth / output", "frame tokens"),
            [
                (row["model"], f"{row['minutes']:g}", f"{row['seconds']:.1f}", f"{row['realtime']:.1f}x", f"{row['peak_rss_mb']:.0f}",
                 f"{row['ready_rss_mb']:.0f}", f"{row['output_mb']:.0f}",
                 f"{(row['peak_rss_mb'] - row['ready_rss_mb']) / max(row['output_mb'], 1e-9):.1f}", row["frames"])
                for row in rows
            ],
        ),
        "",
    ]
    lines += [f"Time ratio {r['label']}: {r['ratio']:.2f} (linear cost: {r['expected']:g})." for r in _time_ratios(rows)]
    return "\n".join(lines) + "\n"


def _training(section: dict) -> str:
    result = section["result"]
    lines = [
        "## Training on CPU and the data pipeline\n",
        _load(section),
        "One step: `mt2.training.step.train_step` (the step of `mt2 pretrain` and the study: `ssl_losses`, "
        "backward, clipping, AdamW, schedule) on views made before the clock starts (`sample_views`), under "
        "the packaged pretraining config of each row's preset with the row's model overrides. "
        "Median of the timed steps after one warm-up step. Audio seconds per second counts the two 4-s segments "
        "(A and B) of every track.\n",
        *markdown_table(
            ("model", "frames per token", "parameters", "batch", "s per step", "steps per s", "tracks per s", "audio s per s"),
            [
                (row["name"], row["frames_per_token"], f"{row['parameters'] / 1e6:.2f} M", row["batch"], f"{row['step_seconds']:.2f}",
                 f"{row['steps_per_second']:.3f}", f"{row['tracks_per_second']:.1f}", f"{row['audio_seconds_per_second']:.0f}")
                for row in result["training"]
            ],
        ),
        f"\nData pipeline per track, measured on {len(result['files'])} files (best of repetitions), and its "
        "throughput over what a training step consumes (tracks per second). Cut views always come from cached "
        "magnitudes; the decoding forms add decoding and the CQT of the whole file (the shard path).\n",
        *markdown_table(
            ("source", "ms per track", "tracks per s", "audio s per s", *(f"x {row['name']} training" for row in result["training"])),
            [
                (source["source"], f"{1e3 * source['seconds_per_track']:.1f}", f"{source['tracks_per_second']:.1f}",
                 "-" if source.get("audio_seconds_per_second") is None else f"{source['audio_seconds_per_second']:.0f}",
                 *(f"{source['tracks_per_second'] / row['tracks_per_second']:.1f}" for row in result["training"]))
                for source in result["pipeline"]
            ],
        ),
    ]
    lines.append(
        "\nOn 2 cores the pipeline and the trainer share the CPU (DataLoader workers are processes): a ratio of r "
        "means the pipeline takes about 1/r of the time the trainer does.\n"
    )
    return "\n".join(lines)


def _levers(section: dict) -> str:
    result = section["result"]
    rows = result["rows"]
    base = rows[0]["name"]
    lines = [
        f"## Levers of one training step: `{result['preset']}`, batch {result['batch']}, {result['threads']} thread(s)\n",
        _load(section),
        "The one training step (`mt2.training.step.train_step`) on the same views, run in rounds: each round runs "
        f"every setting once, in turn, so that a change of load hits all alike; ratios are over `{base}` (the step "
        "before issue 21). 's per step' is the best wall time of the rounds, 'CPU s' the best CPU time of the "
        "process (with 1 thread it hardly depends on the load), 'first step' the untimed first step (it includes "
        "compilation). 'drop-in': the same arithmetic up to float32 rounding (tests/test_kernel_levers.py checks "
        "outputs and gradients against today's path and the dense reference); the others change the run (bf16 "
        "rounding; frames per token change the model) and are choices for a training run, with their cost.\n",
        *markdown_table(
            ("setting", "what", "drop-in", "frames per token", "s per step", "CPU s", "first step (s)", f"x {base}", f"x {base} (CPU)"),
            [
                (row["name"], row["description"], "yes" if row["drop_in"] else "no", row["frames_per_token"], f"{row['step_seconds']:.2f}",
                 f"{row['cpu_seconds']:.2f}", f"{row['first_step_seconds']:.1f}", f"{row['speedup']:.2f}", f"{row['cpu_speedup']:.2f}")
                for row in rows
            ],
            list("lllrrrrrr"),
        ),
    ]
    return "\n".join(lines) + "\n"


def _trials(result: dict) -> str:
    lines = [
        "## What was tried\n",
        f"On `{result['profile_model']}` and the first {result['trial_seconds']:.0f} s of the audio. Profile of one "
        "`Encoder.embed` call (operators with the most self CPU time):\n",
        *markdown_table(
            ("CQT backend", "operator", "share", "ms"),
            [(backend, f"`{op['name']}`", f"{100 * op['share']:.0f}%", f"{op['ms']:.0f}")
             for backend, operators in result["profile"].items() for op in operators],
            list("llrr"),
        ),
    ]
    fastest: dict[str, float] = {}
    for row in result["trials"]:
        fastest[row["trial"]] = min(fastest.get(row["trial"], float("inf")), row["seconds"])
    lines += [
        "\nOther settings, fast CQT backend (`threads` and `batch`: whole `Encoder.embed`; `autograd` and `compile`: "
        "the model's forward pass on 16 windows):\n",
        *markdown_table(
            ("trial", "setting", "time (s)", "realtime", "time / best of the trial", "note"),
            [
                (row["trial"], row["setting"], f"{row['seconds']:.3f}", f"{row['realtime']:.1f}x",
                 f"{row['seconds'] / fastest[row['trial']]:.2f}", row["note"])
                for row in result["trials"]
            ],
            list("llrrrl"),
        ),
    ]
    if not any(row["trial"] == "compile" for row in result["trials"]):
        lines.append("\n`torch.compile` was not tried in this run (`mt2 perf --compile` tries it).")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Realtime factor of every embedding row (log scale) and peak RSS against file duration."""
    sections = results["sections"]
    fig = Figure(figsize=(12, 4.5))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    if "embed" in sections:
        rows = sections["embed"]["result"]["rows"]
        labels = [row["model"] + ("" if row["backend"] == "-" else f"\n{row['backend']} CQT") for row in rows]
        left.barh(range(len(rows)), [row["realtime"] for row in rows], color=["tab:gray" if row["backend"] == "-" else "tab:blue" for row in rows])
        left.set_yticks(range(len(rows)), labels, fontsize=8)
        left.invert_yaxis()
        left.set_xscale("log")
        left.axvline(REALTIME_TARGET, color="tab:red", linestyle="--", label=f"target {REALTIME_TARGET:.0f}x")
        left.set_xlabel("realtime factor (audio seconds per second)")
        left.legend(loc="lower right")
    left.set_title(f"Embedding, {results['environment']['threads']} CPU threads")
    right.set_title("Encoder.embed_file memory")
    if "memory" in sections:
        every = sections["memory"]["result"]
        rows = [row for row in every if row["model"] == every[0]["model"]]
        minutes = [row["minutes"] for row in rows]
        right.plot(minutes, [row["peak_rss_mb"] for row in rows], "o-", label="peak RSS")
        right.plot(minutes, [row["ready_rss_mb"] for row in rows], "^:", label="before the file")
        right.plot(minutes, [row["output_mb"] for row in rows], "s--", label="returned arrays")
        right.axhline(RSS_TARGET_MB, color="tab:red", linestyle="--", label="1 GB")
        right.set_title(f"Encoder.embed_file memory, {rows[0]['model']}")
        right.set_xlabel("file duration (minutes)")
        right.set_ylabel("MiB")
        right.set_ylim(bottom=0)
        right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
