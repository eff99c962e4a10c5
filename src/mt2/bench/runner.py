"""One benchmark run: load the data and the systems, extract features, probe, report.

**Systems.** ``--models`` entries are shipped names or model folders, loaded with
:func:`mt2.load`; ``random:SPEC`` is the network of ``SPEC`` rebuilt by
:func:`mt2.build_model` from its config with random weights (seeded, same frontend, no
calibration). ``--encoder`` entries are other models (:func:`~mt2.bench.features.load_external`).
A system that cannot be loaded is reported as missing, with the reason, and the run goes on.

**Readouts.** Every requested readout the model offers (``equivariant``, ``contrastive``,
``average``, ``frames``) at every requested layer; ``zero-shot`` scores ``encoder.key``
(token 0, no probe) on the key task, for models with an equivariant token and a stored
calibration. Clip-level tasks read every readout's clip vector; frame-level tasks (beats,
chords) read the frame tokens, which come with the ``frames`` readout.

**Data.** ``corpus`` (the embedded corpus, rendered once into the cache folder), a
rendered corpus folder (with ``manifest.jsonl``), or a folder holding real datasets in
sub-folders named as :data:`mt2.data.real.LOADERS` (``giantsteps-key/``, ``ballroom/``,
...), each in its published layout. Every task runs on every dataset that has its labels
and a train, a valid and a test split.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mt2.bench import TASKS
from mt2.bench.baselines import DSPExtractor
from mt2.bench.features import (
    EXTERNAL_READOUT, FRAME_READOUT, ZERO_SHOT, Clip, EncoderExtractor, FeatureCache, Request, extract, load_external,
)
from mt2.bench.key import zero_shot_estimates
from mt2.bench.probe import BATCH_SIZE, GRID, STEPS, evaluate_probe
from mt2.bench.report import BASELINE, write_report
from mt2.bench.task import SPLITS, Task, TaskData
from mt2.data.real import LOADERS, Example, load_dataset
from mt2.inference import READOUTS

DEFAULT_MODELS = ("mt2", "contrastive", "equivariant", "random:mt2")
DEFAULT_READOUTS = (*READOUTS, ZERO_SHOT)
RANDOM_PREFIX = "random:"
CORPUS = "corpus"


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/mt2/bench`` (``~/.cache/mt2/bench``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mt2" / "bench"


@dataclass
class BenchConfig:
    """Everything a run depends on (written to results.json)."""

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    readouts: list[str] = field(default_factory=lambda: list(DEFAULT_READOUTS))
    layers: list[int] = field(default_factory=lambda: [-1])
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    data: str = CORPUS
    out: Path = Path("bench-results")
    cache: Path | None = field(default_factory=default_cache)
    encoders: list[str] = field(default_factory=list)
    seed: int = 0
    probe_steps: int = STEPS
    batch_size: int = 16
    device: str | None = None
    corpus_size: str = "small"
    corpus_seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown tasks {unknown}; known: {', '.join(TASKS)}")
        unknown = [r for r in self.readouts if r not in DEFAULT_READOUTS]
        if unknown:
            raise ValueError(f"unknown readouts {unknown}; known: {', '.join(DEFAULT_READOUTS)}")

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}


@dataclass
class System:
    """A model under test, or why it could not be loaded (``error``)."""

    label: str
    kind: str  # "pretrained", "random" or "external"
    roles: tuple[str, ...] = ()
    extractor: object | None = None
    readouts: tuple[str, ...] = ()
    layers: tuple[int | None, ...] = ()
    parameters: int | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "label": self.label, "kind": self.kind, "status": "missing" if self.error else "ok", "error": self.error,
            "roles": list(self.roles), "readouts": list(self.readouts), "parameters": self.parameters,
            "weights_hash": getattr(self.extractor, "weights_hash", None), "notes": self.notes,
        }


# ----------------------------------------------------------------------------- loading


def random_encoder(source, seed: int):
    """The network of encoder ``source`` rebuilt with random weights (seeded), same frontend, no calibration."""
    from mt2 import Encoder, build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # every config field is overridden, so the preset and variant named here do not matter
        model = build_model("mt2-mini", "mt2", **source.config.to_dict())
    return Encoder(model, compression=source.compression, offset=source.offset, training={"note": f"random weights, seed {seed}"})


def load_systems(config: BenchConfig) -> list[System]:
    """Every ``--models`` and ``--encoder`` entry, loaded or with the reason it is missing."""
    from mt2 import load

    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    systems = []
    for spec in config.models:
        kind = "random" if spec.startswith(RANDOM_PREFIX) else "pretrained"
        try:
            encoder = load(spec.removeprefix(RANDOM_PREFIX))
            if kind == "random":
                encoder = random_encoder(encoder, config.seed)
            encoder = encoder.to(device)
        except (ValueError, OSError) as error:  # CheckpointError is a ValueError
            systems.append(System(spec, kind, error=" ".join(str(error).split())))
            continue
        readouts = [r for r in config.readouts if r in encoder.readouts]
        if ZERO_SHOT in config.readouts and _supports_key(encoder):
            readouts.append(ZERO_SHOT)
        depth = encoder.config.depth
        layers = tuple(layer for layer in config.layers if -depth <= layer < depth)
        notes = [f"layer {layer} left out: the model has {depth} blocks" for layer in config.layers if layer not in layers]
        notes += [f"readout {r!r} left out: " + ("it needs an equivariant class token and a stored calibration"
                  if r == ZERO_SHOT else "the model has no such class token") for r in config.readouts if r not in readouts]
        systems.append(System(
            spec, kind, tuple(encoder.config.roles), EncoderExtractor(spec, encoder, config.batch_size), tuple(readouts), layers,
            sum(p.numel() for p in encoder.parameters()), notes=notes,
        ))
    for spec in config.encoders:
        try:
            extractor = load_external(spec)
        except (ImportError, AttributeError, ValueError, TypeError, OSError) as error:
            systems.append(System(spec, "external", error=f"{type(error).__name__}: {error}"))
            continue
        parameters = sum(p.numel() for p in extractor.model.parameters()) if isinstance(extractor.model, torch.nn.Module) else None
        systems.append(System(spec, "external", (), extractor, (EXTERNAL_READOUT,), (None,), parameters))
    return systems


def _supports_key(encoder) -> bool:
    try:
        encoder.check_key_support()
    except ValueError:
        return False
    return True


def corpus_examples(folder: Path) -> list[Example]:
    """The clips of a rendered corpus as :class:`~mt2.data.real.Example` (labels: the manifest row)."""
    from mt2.corpus import read_manifest

    return [Example(folder / row["path"], row["split"], row) for row in read_manifest(folder)]


def load_datasets(config: BenchConfig) -> dict[str, list[Example]]:
    """``{dataset name: examples}`` for ``config.data`` (module docstring).

    Raises:
        ValueError: a folder that is neither a corpus nor holds any known dataset folder.
    """
    if config.data == CORPUS:
        from mt2.corpus import render_corpus

        folder = (config.cache or config.out) / f"corpus-{config.corpus_size}-seed{config.corpus_seed}"
        if not (folder / "manifest.jsonl").is_file():
            print(f"rendering the {config.corpus_size} corpus into {folder} (once)", file=sys.stderr)
            render_corpus(folder, config.corpus_size, config.corpus_seed, progress=config.progress)
        return {CORPUS: corpus_examples(folder)}
    root = Path(config.data)
    if (root / "manifest.jsonl").is_file():
        return {CORPUS: corpus_examples(root)}
    found = {name: load_dataset(name, root / name) for name in LOADERS if (root / name).is_dir()}
    if not found:
        raise ValueError(f"{root}: neither a corpus folder (manifest.jsonl) nor a folder of datasets ({', '.join(LOADERS)})")
    return found


# ----------------------------------------------------------------------------- the run


@dataclass
class _Plan:
    """The examples each task uses on one dataset, and the clips to extract."""

    selections: dict[str, list[Example]]
    clips: list[Clip]


def _plan(dataset: str, examples: list[Example], tasks: Sequence[Task], skipped: list) -> _Plan:
    """Each task's examples (tasks lacking a labelled split are skipped, with the reason) and
    their union as clips, flagged for frame tokens when a frame-level task uses them."""
    selections = {}
    for task in tasks:
        chosen = task.select(dataset, examples)
        missing = [s for s in SPLITS if not any(e.split == s for e in chosen)]
        if missing:
            reason = "no labelled example" if not chosen else f"no labelled example in split(s) {', '.join(missing)}"
            skipped.append({"task": task.name, "dataset": dataset, "reason": reason})
        else:
            selections[task.name] = chosen
    frames: dict[Path, bool] = {}
    for name, chosen in selections.items():
        for example in chosen:
            frames[example.path] = frames.get(example.path, False) or TASKS[name].level == "frame"
    return _Plan(selections, [Clip(path, flag) for path, flag in frames.items()])


def _splits(examples: list[Example], features: dict[Path, dict | None], need: str) -> dict[str, TaskData]:
    """Examples per split with their features, leaving out those whose features lack ``need``."""
    out = {}
    for split in SPLITS:
        kept = [e for e in examples if e.split == split and features.get(e.path) and need in features[e.path]]
        out[split] = TaskData(kept, [features[e.path] for e in kept])
    return out


def _entry(task: Task, dataset: str, system: str, readout: str, layer, kind: str, metrics: dict, splits, selection=None) -> dict:
    return {
        "task": task.name, "dataset": dataset, "system": system, "readout": readout, "layer": layer, "kind": kind,
        "metrics": metrics, "selection": selection, "counts": {s: len(d.examples) for s, d in splits.items()},
    }


def _check_usable(splits: dict[str, TaskData], need: str) -> None:
    """Raise ValueError naming the splits left without an example that has ``need`` features."""
    empty = [s for s, d in splits.items() if not d.examples]
    if empty:
        raise ValueError(f"no example with {need!r} features in split(s) {', '.join(empty)}")


def run_benchmark(config: BenchConfig) -> dict:
    """Run the benchmark described by ``config``; returns results.json's content (also written,
    with results.md and plots, by :func:`mt2.bench.report.write_report`)."""
    started = time.perf_counter()
    tasks = [TASKS[name] for name in config.tasks]
    cache = FeatureCache(config.cache)
    datasets = load_datasets(config)
    systems = load_systems(config)
    for system in systems:
        if system.error:
            print(f"missing model {system.label}: {system.error}", file=sys.stderr)
    entries, skipped, failed_files, timing = [], [], [], {}
    dataset_info = {}
    for dataset, examples in datasets.items():
        plan = _plan(dataset, examples, tasks, skipped)
        dataset_info[dataset] = {"examples": len(examples), "tasks": {
            name: {s: sum(e.split == s for e in chosen) for s in SPLITS} for name, chosen in plan.selections.items()}}
        if not plan.clips:
            continue
        tick = time.perf_counter()
        baseline_entries, failed = _evaluate_baselines(dataset, plan, cache, config, skipped)
        entries += baseline_entries
        failed_files += failed
        timing[f"{dataset}/{BASELINE}"] = time.perf_counter() - tick
        for system in systems:
            if system.error:
                continue
            tick = time.perf_counter()
            entries += _evaluate_system(system, dataset, plan, cache, config, skipped)
            timing[f"{dataset}/{system.label}"] = time.perf_counter() - tick
    results = {
        "config": config.to_dict(),
        "versions": versions(),
        "seeds": {"probe": config.seed, "random_weights": config.seed, "corpus": config.corpus_seed},
        "protocol": {"probe": "one linear layer on standardised features, zero init, AdamW", "grid": [list(g) for g in GRID],
                     "steps": config.probe_steps, "batch_size": BATCH_SIZE, "selection": "headline metric on the valid split"},
        "tasks": {t.name: {"family": t.family, "level": t.level, "metrics": list(t.metrics), "baseline": t.baseline_name} for t in tasks},
        "datasets": dataset_info,
        "systems": [s.summary() for s in systems],
        "results": entries,
        "skipped": skipped,
        "failed_files": sorted(set(failed_files)),
        "timing_s": {**timing, "total": time.perf_counter() - started},
    }
    write_report(results, config.out)
    return results


def _evaluate_baselines(dataset: str, plan: _Plan, cache: FeatureCache, config: BenchConfig, skipped: list) -> tuple[list[dict], list[str]]:
    """Extract the DSP features on one dataset and score every task's baseline; also
    returns the files that could not be decoded."""
    dsp = DSPExtractor()
    features = dict(zip([c.path for c in plan.clips], extract(dsp, [dsp.request], plan.clips, cache, config.progress)[dsp.request]))
    entries = []
    for name, chosen in plan.selections.items():
        task = TASKS[name]
        splits = _splits(chosen, features, "onset")
        try:
            _check_usable(splits, "onset")
            metrics = task.baseline(splits, config.seed, config.probe_steps)
        except ValueError as error:
            skipped.append({"task": name, "dataset": dataset, "system": BASELINE, "reason": str(error)})
            continue
        entries.append(_entry(task, dataset, BASELINE, task.baseline_name, None, "baseline", metrics, splits))
    return entries, [str(path) for path, f in features.items() if f is None]


def _evaluate_system(system: System, dataset: str, plan: _Plan, cache: FeatureCache, config: BenchConfig, skipped: list) -> list[dict]:
    """Extract one system's features on one dataset and score every (readout, layer, task)."""
    entries = []
    requests = [Request(r, -1 if layer is None else layer) for layer in system.layers for r in system.readouts if r != ZERO_SHOT]
    zero_shot = ZERO_SHOT in system.readouts and "key" in plan.selections
    # one extraction per clip for every readout, the zero-shot key included (from the same pass)
    features = extract(system.extractor, requests + [Request(ZERO_SHOT)] * zero_shot, plan.clips, cache, config.progress)
    paths = [clip.path for clip in plan.clips]
    jobs = [(request, TASKS[name]) for request in requests for name in plan.selections
            if TASKS[name].level == "clip" or request.readout in (FRAME_READOUT, EXTERNAL_READOUT)]
    for request, task in tqdm(jobs, desc=f"{system.label}: probes", unit="probe", disable=not config.progress or None, leave=False):
        layer = None if system.kind == "external" else request.layer
        by_path = dict(zip(paths, features[request]))
        need = "clip" if task.level == "clip" else "frames"
        splits = _splits(plan.selections[task.name], by_path, need)
        try:
            _check_usable(splits, need)
            metrics, selection = evaluate_probe(task, splits, config.seed, config.probe_steps)
        except ValueError as error:
            skipped.append({"task": task.name, "dataset": dataset, "system": system.label, "readout": request.readout, "reason": str(error)})
            continue
        entries.append(_entry(task, dataset, system.label, request.readout, layer, "probe", metrics, splits, selection))
    if zero_shot:  # no training: the test split only
        task = TASKS["key"]
        test = [e for e in plan.selections["key"] if e.split == "test"]
        by_path = dict(zip(paths, features[Request(ZERO_SHOT)]))
        estimated = [by_path[e.path] for e in test]
        kept = [(e, f) for e, f in zip(test, estimated) if f is not None]
        data = TaskData([e for e, _ in kept], [f for _, f in kept])
        if data.examples:
            metrics = task.evaluate(data, zero_shot_estimates(data))
            entries.append(_entry(task, dataset, system.label, ZERO_SHOT, None, "zero-shot", metrics, {"test": data}))
    return entries


def versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages that produce the numbers."""
    import matplotlib
    import mir_eval
    import scipy
    import sklearn

    import mt2

    return {
        "python": platform.python_version(), "platform": platform.platform(), "mt2": mt2.__version__,
        "torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
        "mir_eval": mir_eval.__version__, "matplotlib": matplotlib.__version__,
    }
