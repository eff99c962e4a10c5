"""``mt2 bench``: the linear-probe benchmark over seven MIR tasks, with baselines, seeds and intervals.

The benchmark of record (docs/results) runs on the ``bench`` corpus:

    mt2 corpus render data/bench --size bench --seed 2026
    mt2 bench --data data/bench --out docs/results --threads 2

``mt2 bench --data data/small`` is the quick check on the small corpus.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from mt2.bench import TASKS
    from mt2.bench.probe import STEPS
    from mt2.bench.runner import DEFAULT_MODELS, DEFAULT_READOUTS, DEFAULT_SEEDS, default_cache
    from mt2.bench.stats import RESAMPLES
    from mt2.corpus import SIZES

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
        "--models", nargs="*", default=list(DEFAULT_MODELS), metavar="MODEL",
        help="shipped model names or folders written by save_pretrained; random:MODEL is the same network with random "
        f"weights (default: {' '.join(DEFAULT_MODELS)})",
    )
    parser.add_argument(
        "--readouts", nargs="+", default=list(DEFAULT_READOUTS), choices=DEFAULT_READOUTS, metavar="READOUT",
        help="equivariant / contrastive (one class token), average (their mean), frames (mean of the frame tokens; "
        "frame-level tasks need it), zero-shot (encoder.key on the key task, no probe); readouts a model lacks are "
        f"left out (default: all: {' '.join(DEFAULT_READOUTS)})",
    )
    parser.add_argument(
        "--layers", nargs="+", type=int, default=[-1], metavar="LAYER",
        help="transformer blocks to read, negative counts from the end; several give per-layer curves (default: -1)",
    )
    parser.add_argument(
        "--tasks", nargs="+", default=list(TASKS), choices=list(TASKS), metavar="TASK",
        help=f"tasks to run (default: all: {' '.join(TASKS)})",
    )
    parser.add_argument(
        "--data", default="corpus",
        help="'corpus' (the embedded corpus, rendered once into the cache folder), a rendered corpus folder "
        "(with manifest.jsonl; data/bench from mt2 corpus render --size bench for the benchmark of record), or a folder of real datasets in sub-folders named giantsteps-key, giantsteps-tempo, "
        "ballroom, nsynth, tinysol, magnatagatune, gtzan (default: corpus)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="output folder (default: bench-results)")
    parser.add_argument(
        "--encoder", action="append", default=[], metavar="MODULE[:CALLABLE]", dest="encoders",
        help="another model to benchmark, repeatable: MODULE:CALLABLE returning an object with embed(audio, sr), "
        "or a HEAR-API module (load_model, get_scene_embeddings, get_timestamp_embeddings); MODULE is imported from "
        "the current folder or the Python path",
    )
    parser.add_argument("--cache", type=Path, default=default_cache(), help=f"feature cache folder (default: {default_cache()})")
    parser.add_argument("--no-cache", action="store_true", help="extract every feature again and store nothing")
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS), metavar="SEED",
        help="probe seeds: every probe is fitted once per seed, the metric is their mean and their spread is reported; "
        f"the first also seeds random-weight models and the bootstrap (default: {' '.join(map(str, DEFAULT_SEEDS))})",
    )
    parser.add_argument(
        "--resamples", type=int, default=RESAMPLES, help=f"bootstrap resamples per interval (default: {RESAMPLES})"
    )
    parser.add_argument("--probe-steps", type=int, default=STEPS, help=f"optimiser steps per probe fit (default: {STEPS})")
    parser.add_argument(
        "--corpus-size", default="small", choices=list(SIZES),
        help="size of the embedded corpus rendered for --data corpus (default: small)",
    )
    parser.add_argument("--corpus-seed", type=int, default=0, help="seed of the embedded corpus for --data corpus (default: 0)")
    parser.add_argument("--batch-size", type=int, default=16, help="4-s windows per forward pass (default: 16)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if available, else cpu)")
    parser.add_argument("--real", default=None, metavar="DIR",
                        help="a real-music corpus written by `mt2 corpus real DIR`: adds the real-recordings section "
                        "(soundtrack identification against MFCC, same-track retrieval, key without labels: transpositions "
                        "followed, no-key rate, agreement with essentia and madmom where installed); skipped with a "
                        "message when DIR holds no corpus")
    parser.add_argument("--real-only", action="store_true", help="with --real: only the real-recordings section (no corpus tasks)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from mt2.bench.runner import BenchConfig, run_benchmark

    if os.getcwd() not in sys.path:  # --encoder modules may live in the current folder
        sys.path.insert(0, os.getcwd())
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = BenchConfig(
            models=args.models, readouts=args.readouts, layers=args.layers, tasks=args.tasks, data=args.data, out=args.out,
            cache=None if args.no_cache else args.cache, encoders=args.encoders, seeds=args.seeds,
            probe_steps=args.probe_steps, resamples=args.resamples, batch_size=args.batch_size, device=args.device,
            corpus_size=args.corpus_size, corpus_seed=args.corpus_seed, real=args.real, real_only=args.real_only,
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
    return 0
