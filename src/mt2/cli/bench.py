"""``mt2 bench``: the linear-probe benchmark over seven MIR tasks, with baselines, seeds and intervals.

The benchmark of record (docs/results) runs on the ``bench`` corpus:

    mt2 corpus render data/bench --size bench --seed 2026
    mt2 bench --data data/bench --out docs/results --threads 2

``mt2 bench --data data/small`` is the quick check on the small corpus.

The ship gate (:mod:`mt2.bench.gate`) compares a candidate with the shipped weights in one run,
and exits 1 when its rule refuses:

    mt2 bench --gate runs/new/mt2 --against mt2 --data data/bench --real data/real --out runs/gate --threads 2
    mt2 bench --gate runs/new/mt2 --against mt2 --from runs/gate/results.json   # the verdict again, no run
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from mt2.bench.config import DEFAULT_READOUTS, KEY_ESTIMATORS, BenchConfig
    from mt2.corpus import SIZES

    default = _defaults(BenchConfig)

    parser = sub.add_parser(
        "bench",
        help="linear-probe benchmark (key, chords, tempo, beats, pitch, instrument, tagging) with baselines",
        description="Benchmark frozen encoders with one linear layer per task (trained once per probe seed, selected "
        "on the valid split, scored once on test), beside classical DSP baselines and zero-shot key estimates measured "
        "in the same run. Every metric gets a bootstrap 95% interval (test pieces resampled) and the paper's claims are "
        "decided from paired intervals of differences. A corpus folder's fonts/NAME/ (its test split in another "
        "soundfont) is scored as a cross-font test set. Writes OUT/results.json (every number, config, versions, "
        "seeds), OUT/results.md (tables with intervals, seed spread, mean ranks, claims: held / reversed / undecided) "
        "and OUT/scores.png with error bars (and layers.png with several layers). "
        "Features are cached per (model weights, readout, layer, clip list). A model that cannot be loaded is "
        "reported as missing and the run goes on.",
    )
    parser.add_argument(
        "--models", nargs="*", default=default["models"], metavar="MODEL",
        help="shipped model names or folders written by save_pretrained; random:MODEL is the same network with random "
        f"weights (default: {' '.join(default['models'])})",
    )
    parser.add_argument(
        "--readouts", nargs="+", default=default["readouts"], choices=DEFAULT_READOUTS, metavar="READOUT",
        help="equivariant / contrastive (one class token), average (their mean), frames (mean of the frame tokens; "
        "frame-level tasks need it), zero-shot (encoder.key on the key task, no probe); readouts a model lacks are "
        f"left out (default: {' '.join(default['readouts'])})",
    )
    parser.add_argument(
        "--layers", nargs="+", type=int, default=default["layers"], metavar="LAYER",
        help="transformer blocks to read, negative counts from the end; several give per-layer curves "
        f"(default: {' '.join(map(str, default['layers']))})",
    )
    parser.add_argument(
        "--tasks", nargs="+", default=default["tasks"], choices=default["tasks"], metavar="TASK",
        help=f"tasks to run (default: all: {' '.join(default['tasks'])})",
    )
    parser.add_argument(
        "--data", default=default["data"],
        help="'corpus' (the embedded corpus, rendered once into the cache folder), a rendered corpus folder "
        "(with manifest.jsonl; data/bench from mt2 corpus render --size bench for the benchmark of record), or a folder of real datasets in sub-folders named giantsteps-key, giantsteps-tempo, "
        f"ballroom, nsynth, tinysol, magnatagatune, gtzan (default: {default['data']})",
    )
    parser.add_argument("--out", type=Path, default=default["out"], help=f"output folder (default: {default['out']})")
    parser.add_argument(
        "--encoder", action="append", default=default["encoders"], metavar="MODULE[:CALLABLE]", dest="encoders",
        help="another model to benchmark, repeatable: MODULE:CALLABLE returning an object with embed(audio, sr), "
        "or a HEAR-API module (load_model, get_scene_embeddings, get_timestamp_embeddings); MODULE is imported from "
        "the current folder or the Python path",
    )
    parser.add_argument("--cache", type=Path, default=default["cache"], help=f"feature cache folder (default: {default['cache']})")
    parser.add_argument("--no-cache", action="store_true", help="extract every feature again and store nothing")
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=default["seeds"], metavar="SEED",
        help="probe seeds: every probe is fitted once per seed, the metric is their mean and their spread is reported; "
        f"the first also seeds random-weight models and the bootstrap (default: {' '.join(map(str, default['seeds']))})",
    )
    parser.add_argument(
        "--resamples", type=int, default=default["resamples"], help=f"bootstrap resamples per interval (default: {default['resamples']})"
    )
    parser.add_argument("--probe-steps", type=int, default=default["probe_steps"],
                        help=f"optimiser steps per probe fit (default: {default['probe_steps']})")
    parser.add_argument(
        "--corpus-size", default=default["corpus_size"], choices=list(SIZES),
        help=f"size of the embedded corpus rendered for --data corpus (default: {default['corpus_size']})",
    )
    parser.add_argument("--corpus-seed", type=int, default=default["corpus_seed"],
                        help=f"seed of the embedded corpus for --data corpus (default: {default['corpus_seed']})")
    parser.add_argument("--batch-size", type=int, default=default["batch_size"],
                        help=f"4-s windows per forward pass (default: {default['batch_size']})")
    parser.add_argument("--device", default=default["device"], help="torch device, e.g. cpu or cuda (default: cuda if available, else cpu)")
    parser.add_argument("--real", default=default["real"], metavar="DIR",
                        help="a real-music corpus written by `mt2 corpus real DIR`: adds the real-recordings section "
                        "(soundtrack identification against MFCC, same-track retrieval, key without labels: transpositions "
                        "followed, no-key rate, agreement with essentia and madmom where installed); skipped with a "
                        "message when DIR holds no corpus")
    parser.add_argument("--real-only", action="store_true", help="with --real: only the real-recordings section (no corpus tasks)")
    parser.add_argument(
        "--key-estimators", nargs="+", default=default["key_estimators"], choices=KEY_ESTIMATORS, metavar="ESTIMATOR",
        help="the field's key estimators as zero-shot rows of the key task, on its test clips at 44.1 kHz: "
        f"{', '.join(KEY_ESTIMATORS)} (the [real] extra; madmom takes about 3 s per 12-s clip) (default: none)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--gate", nargs="+", metavar="CANDIDATE",
        help="the ship gate: benchmark these model folders beside the shipped models of --against (first) and the other "
        "--models in one run (needs --real), then accept or refuse them by the gate's rule (mt2.bench.gate: nothing "
        "reversed on the real-music measures or the corpus key task, no claim worse); prints one line per check and "
        "exits 1 on a refusal",
    )
    parser.add_argument("--against", nargs="+", default=["mt2"], metavar="SHIPPED",
                        help="with --gate: the shipped model each candidate would replace, in order (default: mt2)")
    parser.add_argument("--from", dest="gate_from", type=Path, metavar="RESULTS_JSON",
                        help="with --gate: decide from the results.json of an earlier gate run of the same pairs, without running")
    parser.set_defaults(func=run)


def _defaults(config_type) -> dict:
    """Each field's default of a dataclass (its factory called), for the flags that set it."""
    return {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default for f in dataclasses.fields(config_type)}


def run(args: argparse.Namespace) -> int:
    import torch

    from mt2.bench.config import BenchConfig
    from mt2.bench.gate import gate_models, gate_pairs
    from mt2.bench.runner import run_benchmark

    if args.gate_from and not args.gate:
        print("error: --from RESULTS_JSON goes with --gate CANDIDATE", file=sys.stderr)
        return 2
    try:
        pairs = gate_pairs(args.gate, args.against) if args.gate else []
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.gate_from:
        return _gate_verdict(json.loads(args.gate_from.read_text()), pairs)
    if os.getcwd() not in sys.path:  # --encoder modules may live in the current folder
        sys.path.insert(0, os.getcwd())
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = BenchConfig(
            models=gate_models(args.models, pairs), readouts=args.readouts, layers=args.layers, tasks=args.tasks, data=args.data,
            out=args.out, cache=None if args.no_cache else args.cache, encoders=args.encoders, seeds=args.seeds,
            probe_steps=args.probe_steps, resamples=args.resamples, batch_size=args.batch_size, device=args.device,
            corpus_size=args.corpus_size, corpus_seed=args.corpus_seed, real=args.real, real_only=args.real_only,
            key_estimators=args.key_estimators, gate_pairs=pairs,
        )
        results = run_benchmark(config)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    measured = [s for s in results["systems"] if s["status"] == "ok"]
    print(f"{len(results['results'])} results from {len(measured)} of {len(results['systems'])} models and the DSP baselines "
          f"in {results['timing_s']['total']:.0f} s -> {args.out / 'results.md'}")
    for claim in results["claims"]:
        print(f"  {claim['claim']}: {claim['status']}")
    return _gate_verdict(results, pairs) if pairs else 0


def _gate_verdict(results: dict, pairs: list[tuple[str, str]]) -> int:
    """Print the gate's verdict; 0 when it accepts, 1 when it refuses, 2 when ``results`` is no gate run of ``pairs``."""
    from mt2.bench.gate import decide

    try:
        decision = decide(results, pairs)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(decision.lines()))
    return 0 if decision.accepted else 1
