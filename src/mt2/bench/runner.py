"""One benchmark run: load the data and the systems, extract features, probe, report.

**Systems.** ``--models`` entries are shipped names or model folders, loaded with
:func:`mt2.load`; ``random:SPEC`` is the network of ``SPEC`` rebuilt by
:func:`mt2.build_model` from its config with random weights (seeded, same frontend, no
calibration). ``--encoder`` entries are other models (:func:`~mt2.bench.features.load_external`).
``key_estimators`` (``--key-estimators``) adds the field's key estimators as zero-shot systems
of the key task, read on its test clips only (:mod:`mt2.bench.key_estimators`). External
systems also enter the real-recordings section (identification, retrieval).
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
and a train, a valid and a test split. A corpus folder's ``fonts/<name>/`` (its test split
rendered in another soundfont, :func:`mt2.corpus.render_corpus`) is a further test set,
``<dataset>/<name>``, scored with the probes trained on the dataset: the cross-font test.

**Seeds and intervals.** Every probe (and trained baseline) is fitted once per probe seed
(``seeds``); a row's metric is the mean over seeds, reported with the seeds' spread and a
bootstrap 95 % interval over test clips (whole pieces resampled, :mod:`mt2.evaluation.stats`;
each resample scores the mean over seeds). The paper's claims are paired comparisons on the
same resamples (:mod:`mt2.bench.claims`). With ``gate_pairs`` (the ship gate,
:mod:`mt2.bench.gate`), results.json also holds each candidate's rows paired with its shipped model's.
"""
from __future__ import annotations

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
from mt2.bench.claims import BASELINE, assess_claims
from mt2.bench.config import BenchConfig
from mt2.bench.features import EXTERNAL_READOUT, FRAME_READOUT, ZERO_SHOT, Clip, FeatureCache, Request, extract
from mt2.bench.gate import gate_section
from mt2.bench.key import zero_shot_estimates
from mt2.bench.key_estimators import load_key_estimators
from mt2.bench.loading import Dataset, System, load_datasets, load_systems
from mt2.bench.probe import BATCH_SIZE, GRID, evaluate_shared_probe
from mt2.bench.report import write_report
from mt2.bench.task import SPLITS, Task, TaskData
from mt2.data.real import Example
from mt2.evaluation.stats import LEVEL, Mean, interval, resample_counts


# ----------------------------------------------------------------------------- the run


@dataclass
class _Plan:
    """The examples each task uses on one dataset and its further test sets, and the clips to extract."""

    selections: dict[str, list[Example]]
    cross: dict[str, dict[str, list[Example]]]  # test set -> task -> test examples
    clips: list[Clip]


@dataclass
class Outcome:
    """One row's estimates on one test set, per probe seed, in the order of ``examples``."""

    task: str
    test_set: str
    system: str
    readout: str
    layer: int | None
    kind: str  # "probe", "zero-shot" or "baseline"
    examples: list[Example]
    estimates: list[list]  # one list per seed
    selections: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _plan(dataset: Dataset, tasks: Sequence[Task], skipped: list) -> _Plan:
    """Each task's examples (tasks lacking a labelled split are skipped, with the reason),
    their test examples in the further test sets, and the union as clips, flagged for frame
    tokens when a frame-level task uses them."""
    selections = {}
    for task in tasks:
        chosen = task.select(dataset.name, dataset.examples)
        missing = [s for s in SPLITS if not any(e.split == s for e in chosen)]
        if missing:
            reason = "no labelled example" if not chosen else f"no labelled example in split(s) {', '.join(missing)}"
            skipped.append({"task": task.name, "dataset": dataset.name, "reason": reason})
        else:
            selections[task.name] = chosen
    cross = {name: {task: [e for e in TASKS[task].select(dataset.name, examples) if e.split == "test"] for task in selections}
             for name, examples in dataset.cross_tests.items()}
    frames: dict[Path, bool] = {}
    for name, chosen in [*selections.items(), *((t, c) for sets in cross.values() for t, c in sets.items())]:
        for example in chosen:
            frames[example.path] = frames.get(example.path, False) or TASKS[name].level == "frame"
    return _Plan(selections, cross, [Clip(path, flag) for path, flag in frames.items()])


def _usable(examples: list[Example], features: dict[Path, dict | None], need: str) -> TaskData:
    kept = [e for e in examples if features.get(e.path) and need in features[e.path]]
    return TaskData(kept, [features[e.path] for e in kept])


def _splits(examples: list[Example], features: dict[Path, dict | None], need: str) -> dict[str, TaskData]:
    """Examples per split with their features, leaving out those whose features lack ``need``."""
    return {split: _usable([e for e in examples if e.split == split], features, need) for split in SPLITS}


def _tests(dataset: str, plan: _Plan, task: str, splits: dict[str, TaskData], features, need: str) -> dict[str, TaskData]:
    """The test sets of a task: the dataset's test split, then each further test set that has examples."""
    tests = {dataset: splits["test"]}
    for name, sets in plan.cross.items():
        data = _usable(sets.get(task, []), features, need)
        if data.examples:
            tests[name] = data
    return tests


def _check_usable(splits: dict[str, TaskData], need: str) -> None:
    """Raise ValueError naming the splits left without an example that has ``need`` features."""
    empty = [s for s, d in splits.items() if not d.examples]
    if empty:
        raise ValueError(f"no example with {need!r} features in split(s) {', '.join(empty)}")


def _outcomes(task: Task, tests: dict[str, TaskData], row: tuple, kind: str, runs: list[tuple[dict, dict | None]], splits) -> list[Outcome]:
    """One Outcome per test set from ``runs``: one ``(estimates by test set, selection)`` per seed."""
    counts = {s: len(d.examples) for s, d in splits.items()} if splits else {}
    return [Outcome(task.name, name, *row, kind, data.examples, [estimates[name] for estimates, _ in runs],
                    [selection for _, selection in runs if selection is not None], {**counts, "test": len(data.examples)})
            for name, data in tests.items()]


def run_benchmark(config: BenchConfig) -> dict:
    """Run the benchmark described by ``config``; returns results.json's content (also written,
    with results.md and plots, by :func:`mt2.bench.report.write_report`)."""
    started = time.perf_counter()
    tasks = [TASKS[name] for name in config.tasks]
    cache = FeatureCache(config.cache)
    datasets = [] if config.real_only else load_datasets(config)
    systems = load_systems(config) + load_key_estimators(config.key_estimators)
    for system in systems:
        if system.error:
            print(f"missing model {system.label}: {system.error}", file=sys.stderr)
    outcomes, skipped, failed_files, timing = [], [], [], {}
    dataset_info = {}
    for dataset in datasets:
        plan = _plan(dataset, tasks, skipped)
        dataset_info[dataset.name] = {"examples": len(dataset.examples), "cross_font": False, "corpus": dataset.corpus, "tasks": {
            name: {s: sum(e.split == s for e in chosen) for s in SPLITS} for name, chosen in plan.selections.items()}}
        for name, sets in plan.cross.items():
            dataset_info[name] = {"examples": len(dataset.cross_tests[name]), "cross_font": True, "trained_on": dataset.name,
                                  "tasks": {task: {"test": len(chosen)} for task, chosen in sets.items()}}
        if not plan.clips:
            continue
        tick = time.perf_counter()
        baseline_outcomes, failed = _evaluate_baselines(dataset.name, plan, cache, config, skipped)
        outcomes += baseline_outcomes
        failed_files += failed
        timing[f"{dataset.name}/{BASELINE}"] = time.perf_counter() - tick
        for system in systems:
            if system.error:
                continue
            tick = time.perf_counter()
            outcomes += _evaluate_system(system, dataset.name, plan, cache, config, skipped)
            timing[f"{dataset.name}/{system.label}"] = time.perf_counter() - tick
    tick = time.perf_counter()
    entries, statistics = summarise(outcomes, config.resamples, config.seeds[0])
    results = {
        "config": config.to_dict(),
        "versions": versions(),
        "seeds": {"probe": list(config.seeds), "random_weights": config.seeds[0], "corpus": config.corpus_seed,
                  "bootstrap": config.seeds[0]},
        "protocol": {"probe": "one linear layer on standardised features, zero init, AdamW", "grid": [list(g) for g in GRID],
                     "steps": config.probe_steps, "batch_size": BATCH_SIZE, "selection": "headline metric on the valid split",
                     "shared": "tempo and beats: one beat-activation probe, fitted once, selected by the beat F-measure",
                     "seeds": "every probe fitted once per probe seed; metric: mean over seeds",
                     "intervals": f"{LEVEL:.0%} percentile bootstrap, {config.resamples} resamples of whole pieces "
                                  "(clips of a piece together), the same resamples for every row of a test set"},
        "tasks": {t.name: {"family": t.family, "level": t.level, "metrics": list(t.metrics), "baseline": t.baseline_name} for t in tasks},
        "datasets": dataset_info,
        "systems": [s.summary() for s in systems],
        "results": entries,
        "skipped": skipped,
        "failed_files": sorted(set(failed_files)),
    }
    results["claims"] = assess_claims(results, statistics)
    if config.gate_pairs:
        results["gate"] = gate_section(results, statistics, config.gate_pairs)
    if config.real is not None:
        results["real"] = _real_section(systems, config, cache)
    timing["statistics"] = time.perf_counter() - tick
    results["timing_s"] = {**timing, "total": time.perf_counter() - started}
    write_report(results, config.out)
    return results


def _real_section(systems: list[System], config: BenchConfig, cache: FeatureCache) -> dict:
    """The real-recordings section (:mod:`mt2.bench.real`) for the loaded pretrained models."""
    from mt2.bench.real import RealSettings, run_real

    tick = time.perf_counter()
    encoders = {s.label: s.extractor.encoder for s in systems if not s.error and s.kind == "pretrained"}
    externals = {s.label: s.extractor for s in systems if not s.error and s.kind == "external"}
    settings = RealSettings(config.real, list(config.seeds), config.resamples, config.probe_steps, progress=config.progress,
                            pairs=[list(pair) for pair in config.gate_pairs])
    section = run_real(encoders, settings, cache, Path(config.cache or config.out), externals)
    section["seconds"] = time.perf_counter() - tick
    return section


def _groups(examples: list[Example]) -> list[str]:
    """The resampling unit of each example: its piece (``piece_id`` label), else the example itself."""
    return [str(e.labels.get("piece_id") or e.path) for e in examples]


def summarise(outcomes: list[Outcome], resamples: int, seed: int) -> tuple[list[dict], dict]:
    """results.json entries of the outcomes (metric: mean over seeds; per-seed values, their
    standard deviation, the bootstrap interval), and ``{(task, test set, row): (example
    paths, {metric: Statistic}, resample counts)}`` for the paired comparisons. Rows of a
    test set with the same examples share their resamples."""
    entries, statistics, counts_of = [], {}, {}
    for outcome in outcomes:
        task = TASKS[outcome.task]
        references = [task.reference(e) for e in outcome.examples]
        per_seed = [task.statistics(references, estimates) for estimates in outcome.estimates]
        stats = {metric: Mean([s[metric] for s in per_seed]) for metric in task.metrics}
        paths = tuple(str(e.path) for e in outcome.examples)
        key = (outcome.task, outcome.test_set, paths)
        if key not in counts_of:
            counts_of[key] = resample_counts(len(paths), resamples, seed, _groups(outcome.examples))
        counts = counts_of[key]
        intervals = {metric: interval(stat, counts) for metric, stat in stats.items()}
        seeds = {metric: [s[metric].value() for s in per_seed] for metric in task.metrics}
        row = (outcome.system, outcome.readout, outcome.layer)
        statistics[(outcome.task, outcome.test_set, row)] = (paths, stats, counts)
        entries.append({
            "task": outcome.task, "dataset": outcome.test_set, "system": outcome.system, "readout": outcome.readout,
            "layer": outcome.layer, "kind": outcome.kind,
            "metrics": {metric: i.value for metric, i in intervals.items()},
            "interval": {metric: [i.low, i.high] for metric, i in intervals.items()},
            "seeds": seeds,
            "spread": {metric: float(np.std(values)) if len(values) > 1 else None for metric, values in seeds.items()},
            "selection": outcome.selections or None, "counts": outcome.counts,
        })
    return entries, statistics


def _evaluate_baselines(dataset: str, plan: _Plan, cache: FeatureCache, config: BenchConfig, skipped: list) -> tuple[list[Outcome], list[str]]:
    """Extract the DSP features on one dataset and run every task's baseline (once, or once
    per seed when it trains a probe); also returns the files that could not be decoded."""
    dsp = DSPExtractor()
    features = dict(zip([c.path for c in plan.clips], extract(dsp, [dsp.request], plan.clips, cache, config.progress)[dsp.request]))
    outcomes = []
    for name, chosen in plan.selections.items():
        task = TASKS[name]
        splits = _splits(chosen, features, "onset")
        try:
            _check_usable(splits, "onset")
            tests = _tests(dataset, plan, name, splits, features, "onset")
            seeds = config.seeds if task.baseline_trained else config.seeds[:1]
            runs = [(task.baseline(splits, tests, seed, config.probe_steps), None) for seed in seeds]
        except ValueError as error:
            skipped.append({"task": name, "dataset": dataset, "system": BASELINE, "reason": str(error)})
            continue
        outcomes += _outcomes(task, tests, (BASELINE, task.baseline_name, None), "baseline", runs, splits)
    return outcomes, [str(path) for path, f in features.items() if f is None]


def _evaluate_system(system: System, dataset: str, plan: _Plan, cache: FeatureCache, config: BenchConfig, skipped: list) -> list[Outcome]:
    """Extract one system's features on one dataset and probe every (readout, layer, task), once per seed."""
    outcomes = []
    requests = [Request(r, -1 if layer is None else layer) for layer in system.layers for r in system.readouts if r != ZERO_SHOT]
    zero_shot = ZERO_SHOT in system.readouts and "key" in plan.selections
    # one extraction per clip for every readout, the zero-shot key included (from the same pass); a zero-shot-only
    # system (a key estimator) reads the key test clips alone
    clips = plan.clips
    if not requests and zero_shot:
        tested = {e.path for e in plan.selections["key"] if e.split == "test"} | {e.path for sets in plan.cross.values() for e in sets.get("key", [])}
        clips = [clip for clip in plan.clips if clip.path in tested]
    features = extract(system.extractor, requests + [Request(ZERO_SHOT)] * zero_shot, clips, cache, config.progress)
    paths = [clip.path for clip in clips]
    jobs = [(request, TASKS[name]) for request in requests for name in plan.selections
            if TASKS[name].level == "clip" or request.readout in (FRAME_READOUT, EXTERNAL_READOUT)]
    groups: dict[tuple, list[Task]] = {}  # tasks sharing a probe (tempo, beats) are one job: one fit per seed
    for request, task in jobs:
        groups.setdefault((request, task.shared_probe or task.name), []).append(task)
    for (request, _), group in tqdm(groups.items(), desc=f"{system.label}: probes", unit="probe", disable=not config.progress or None, leave=False):
        layer = None if system.kind == "external" else request.layer
        by_path = dict(zip(paths, features[request]))
        need = "clip" if group[0].level == "clip" else "frames"
        splits, tests = {}, {}
        for task in group:
            try:
                splits[task.name] = _splits(plan.selections[task.name], by_path, need)
                _check_usable(splits[task.name], need)
                tests[task.name] = _tests(dataset, plan, task.name, splits[task.name], by_path, need)
            except ValueError as error:
                skipped.append({"task": task.name, "dataset": dataset, "system": system.label, "readout": request.readout, "reason": str(error)})
        group = [task for task in group if task.name in tests]
        if not group:
            continue
        try:
            runs = [evaluate_shared_probe(group, splits, tests, seed, config.probe_steps) for seed in config.seeds]
        except ValueError as error:
            skipped += [{"task": task.name, "dataset": dataset, "system": system.label, "readout": request.readout, "reason": str(error)}
                        for task in group]
            continue
        for task in group:
            outcomes += _outcomes(task, tests[task.name], (system.label, request.readout, layer), "probe",
                                  [run[task.name] for run in runs], splits[task.name])
    if zero_shot:  # no training: the test sets only, from the same extraction as every readout
        task = TASKS["key"]
        sets = {dataset: [e for e in plan.selections["key"] if e.split == "test"],
                **{name: chosen["key"] for name, chosen in plan.cross.items() if chosen.get("key")}}
        estimated = dict(zip(paths, features[Request(ZERO_SHOT)]))
        tests = {name: data for name, examples in sets.items() if (data := _usable(examples, estimated, "tonic")).examples}
        runs = [({name: zero_shot_estimates(data) for name, data in tests.items()}, None)]
        outcomes += _outcomes(task, tests, (system.label, ZERO_SHOT, None), "zero-shot", runs, None)
    return outcomes


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
