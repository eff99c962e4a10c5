"""Paired 95 % intervals between the rows of recipe round 3 (docs/recipe.md, "Round 3").

    python docs/recipe_round3_paired.py --real data/real --corpus data/medium --cache runs/round3/cache \
        --out runs/round3/paired.json BASE=FOLDER NAME=FOLDER ...

For each model folder (``mt2.load``-able; the first is the base): on the real-music test
excerpts of ``mt2.evaluation.real_music`` (the study's ``real`` columns, same excerpts),
transpositions followed (per (excerpt, shift) pair) and same-track top-1 (per query); on the
corpus test clips with a key label, the key signature of ``encoder.key`` on the whole clip (not
the study's ``key sig.`` column, which scores its own windows; this one is per clip, so it can
be paired); on the key reference's 30-s excerpts of the valid and test tracks
(``mt2.evaluation.real_music.reference_excerpts``), ``encoder.key`` against essentia's key:
the MIREX score and whether the key signatures agree. Each measure of each model minus the
base's, resampled by whole tracks (real) or whole pieces (corpus), with the package's one
bootstrap (``mt2.evaluation.stats``, its 1,000 resamples by default).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import mt2
from mt2.corpus import read_manifest as read_corpus
from mt2.evaluation.real_music import (
    against_reference, excerpt_keys, make_excerpts, moved_right, partner_ranks, read_manifest, reference_excerpts, reference_keys,
    test_keys,
)
from mt2.evaluation.stats import RESAMPLES, Ratio, interval, paired_difference, resample_counts, verdict
from mt2.frontend import SAMPLE_RATE


def per_example(encoder, excerpts, corpus_root: Path, corpus_rows: list[dict], reference: list, references: list[str]) -> dict:
    load = lambda path: sf.read(path, dtype="float32")[0]  # noqa: E731
    key_set = [e for e in excerpts if e.split == "test"]
    estimates, originals, pairs = test_keys(encoder, excerpts)
    plain = [e for e in excerpts if e.shift == 0 and e.split in ("train", "test")]
    vectors = np.stack([encoder.embed(load(e.path), SAMPLE_RATE).clip for e in plain])
    train = np.array([e.split == "train" for e in plain])
    test = [e for e in plain if e.split == "test"]
    ranks = partner_ranks(vectors[~train], [e.track for e in test], vectors[train])
    corpus = []
    for row in corpus_rows:
        audio, rate = sf.read(corpus_root / row["path"], dtype="float32")
        estimate = encoder.key(audio, rate)
        corpus.append(bool(estimate.has_key and estimate.signature == row["signature"]))
    scores = against_reference(excerpt_keys(encoder, reference), references)
    return {"essentia_mirex": scores["mirex"], "essentia_signature": scores["signature"], "reference_tracks": [e.track for e in reference],
            "followed": moved_right(estimates, pairs), "pair_tracks": [key_set[o].track for o, _, _ in pairs],
            "no_key": [estimates[i] is None for i in originals],
            "top1": [r == 1 for r in ranks], "query_tracks": [e.track for e in test],
            "corpus_signature": corpus, "corpus_pieces": [r.get("piece_id", r["path"]) for r in corpus_rows]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="NAME=FOLDER, the first is the base")
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resamples", type=int, default=RESAMPLES)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root, rows = read_manifest(args.real)
    excerpts = make_excerpts(root, rows, args.cache, progress=False)
    reference = reference_excerpts(root, rows, args.cache)
    references, _ = reference_keys(reference)
    corpus_rows = [r for r in read_corpus(args.corpus / "manifest.jsonl") if r["split"] == "test" and r.get("signature") is not None]
    data = {}
    for item in args.models:
        name, folder = item.split("=", 1)
        data[name] = per_example(mt2.load(folder), excerpts, args.corpus, corpus_rows, reference, references)
        print(name, {k: float(np.mean(v)) for k, v in data[name].items() if not k.endswith(("tracks", "pieces"))}, flush=True)
    base = next(iter(data))
    groups = {"followed": "pair_tracks", "top1": "query_tracks", "corpus_signature": "corpus_pieces",
              "essentia_mirex": "reference_tracks", "essentia_signature": "reference_tracks"}
    report = {"base": base, "models": dict(item.split("=", 1) for item in args.models), "measures": {}}
    for measure, group in groups.items():
        counts = resample_counts(len(data[base][measure]), args.resamples, 0, data[base][group])
        rows_out = {}
        for name, values in data.items():
            row = {"value": interval(Ratio.mean(values[measure]), counts).to_list(), "n": len(values[measure])}
            if name != base:
                diff = paired_difference(Ratio.mean(values[measure]), Ratio.mean(data[base][measure]), counts)
                row["minus_base"] = diff.to_list()
                row["verdict"] = verdict(diff)
            rows_out[name] = row
        report["measures"][measure] = rows_out
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report["measures"], indent=1))


if __name__ == "__main__":
    main()
