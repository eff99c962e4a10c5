"""The scaling curve's table and plot (docs/scaling/README.md) from the campaign's measurements.

Reads the study rows of the budget models (``mt2 study --evaluate runs/scaling/models/sS-bB
--corpus data/medium --real data/real --out runs/scaling/study``: corpus key, token 1's
instrument kNN, the real-music measures), each branch's ``metrics.csv`` (training loss: mean
of its last 50 logged steps) and the campaign's piece times (``campaign/sS/pieces.tsv``), and
adds same-track retrieval with 95 % intervals (whole tracks resampled; :mod:`mt2.evaluation.stats`)
on the real test split and on the held-out soundtrack, for every model and, on the same
excerpts, for MFCC statistics, the shipped models and their networks with random weights. Writes ``OUT/curve.json``, ``OUT/curve.md`` and ``OUT/curve.png``.

    python scripts/scaling_table.py --study runs/scaling/study/runs.jsonl --real data/real --out docs/scaling
"""
from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import numpy as np
import soundfile as sf

import mt2
from mt2.bench.baselines import log_mel, mfcc_statistics
from mt2.bench.features import state_hash
from mt2.bench.loading import random_encoder
from mt2.evaluation.real_music import make_excerpts, partner_ranks, read_manifest
from mt2.evaluation.stats import Ratio, interval, resample_counts
from mt2.frontend import SAMPLE_RATE
from mt2.tables import markdown_table

NAME = re.compile(r"s(?P<seed>\d+)-b(?P<budget>\d+)")


def retrieval_intervals(vectors: dict[str, np.ndarray], excerpts, split: str) -> dict[str, dict]:
    """Top-1 and MRR of same-track retrieval among the excerpts of ``split``, with 95 % intervals
    over tracks, for each feature set (standardised with the training excerpts)."""
    chosen = np.array([e.split == split for e in excerpts])
    train = np.array([e.split == "train" for e in excerpts])
    tracks = [e.track for e, c in zip(excerpts, chosen) if c]
    counts = resample_counts(len(tracks), groups=tracks)
    out = {}
    for name, x in vectors.items():
        ranks = partner_ranks(x[chosen], tracks, x[train])
        out[name] = {"top1": interval(Ratio.mean([r == 1 for r in ranks]), counts).to_list(),
                     "mrr": interval(Ratio.mean([1.0 / r for r in ranks]), counts).to_list(), "queries": len(ranks)}
    return out


def training_loss(folder: Path, last: int = 50) -> float | None:
    path = folder / "metrics.csv"
    if not path.is_file():
        return None
    losses = [float(r["loss"]) for r in csv.DictReader(open(path)) if r.get("loss")]
    return float(np.mean(losses[-last:])) if losses else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, default=Path("runs/scaling/study/runs.jsonl"))
    parser.add_argument("--real", type=Path, default=Path("data/real"))
    parser.add_argument("--runs", type=Path, default=Path("runs/scaling"))
    parser.add_argument("--out", type=Path, default=Path("docs/scaling"))
    parser.add_argument("--reference", nargs="*", default=["mt2", "mt2-tiny", "random:mt2", "random:mt2-tiny"],
                        help="systems measured beside on retrieval: shipped names or folders, random:NAME for NAME's "
                        "network with random weights (seed 0)")
    args = parser.parse_args()

    rows = {}
    for line in args.study.read_text().splitlines():
        row = json.loads(line)
        match = NAME.search(Path(row["config"]["folder"]).name)
        if match:
            rows[(int(match["seed"]), int(match["budget"]))] = row  # the latest measurement of a model wins
    root, manifest = read_manifest(args.real)
    excerpts = [e for e in make_excerpts(root, manifest, args.study.parent / "cache", progress=False)
                if e.shift == 0 and e.split in ("train", "test", "holdout")]
    audio = [sf.read(e.path, dtype="float32")[0] for e in excerpts]
    cache = args.study.parent / "vectors"
    cache.mkdir(parents=True, exist_ok=True)
    mfcc_path = cache / f"mfcc-{len(audio)}.npy"
    if not mfcc_path.exists():
        np.save(mfcc_path, np.stack([mfcc_statistics(log_mel(a)) for a in audio]))
    vectors = {"MFCC statistics": np.load(mfcc_path)}
    encoders = {f"s{seed}-b{budget}": mt2.load(args.runs / "models" / f"s{seed}-b{budget}") for seed, budget in sorted(rows)}
    for name in args.reference:
        source = name.removeprefix("random:")
        encoders[name if source == name else f"{source}, random weights"] = (
            random_encoder(mt2.load(source), 0) if source != name else mt2.load(name))
    for name, encoder in encoders.items():  # cached by the weights' hash: an exported model does not change
        path = cache / f"{name.replace(' ', '_').replace(',', '')}-{state_hash(encoder.model)[:12]}-{len(audio)}.npy"
        if not path.exists():
            np.save(path, np.stack([encoder.embed(a, SAMPLE_RATE).clip for a in audio]))
        vectors[name] = np.load(path)
    retrieval = {split: retrieval_intervals(vectors, excerpts, split) for split in ("test", "holdout")}

    curve = []
    for (seed, budget), row in sorted(rows.items()):
        real = row.get("real", {})
        name = f"s{seed}-b{budget}"
        curve.append({
            "seed": seed, "budget": budget, "key_signature": row.get("key_signature"),
            "instrument_knn_token1": row.get("instrument_knn"),
            "followed": real.get("followed"), "mirex_vs_essentia": real.get("essentia_mirex"),
            "soundtrack_knn": real.get("soundtrack_knn"),
            "test_retrieval": retrieval["test"][name], "holdout_retrieval": retrieval["holdout"][name],
            "training_loss": training_loss(args.runs / name),
        })
    args.out.mkdir(parents=True, exist_ok=True)
    references = {name: {split: retrieval[split][name] for split in retrieval} for name in vectors if not NAME.fullmatch(name)}
    (args.out / "curve.json").write_text(json.dumps({"curve": curve, "references": references}, indent=1) + "\n")

    def cell(value, digits=3):
        if value is None:
            return "–"
        if isinstance(value, dict):
            top1 = value["top1"]
            return f"{top1[0]:.3f} [{top1[1]:.3f}, {top1[2]:.3f}]"
        return f"{value:.{digits}f}"

    body = [[str(c["seed"]), f"{c['budget']:,}", cell(c["key_signature"]), cell(c["followed"]), cell(c["mirex_vs_essentia"]),
             cell(c["test_retrieval"]), cell(c["holdout_retrieval"]), cell(c["soundtrack_knn"]),
             cell(c["instrument_knn_token1"]), cell(c["training_loss"])] for c in curve]
    for name in [n for n in vectors if not NAME.fullmatch(n)]:
        body.append([name, "–", "–", "–", "–", cell(retrieval["test"][name]), cell(retrieval["holdout"][name]), "–", "–", "–"])
    header = ["seed / system", "steps", "corpus key sig.", "real: transp. followed", "real: MIREX vs essentia",
              "real test: same-track top-1", "held-out: same-track top-1", "real: soundtrack kNN", "instr. kNN tok1",
              "training loss (last 50)"]
    (args.out / "curve.md").write_text("\n".join(markdown_table(header, body)) + "\n")
    plot(curve, retrieval, args.out / "curve.png")


def plot(curve: list[dict], retrieval: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measures = [("key_signature", "corpus key signature"), ("followed", "real: transpositions followed"),
                ("mirex_vs_essentia", "real: MIREX vs essentia"), ("holdout_retrieval", "held-out: same-track top-1"),
                ("test_retrieval", "real test: same-track top-1"), ("instrument_knn_token1", "instrument kNN, token 1"),
                ("training_loss", "training loss")]
    figure, axes = plt.subplots(2, 4, figsize=(16, 7))
    for axis, (key, title) in zip(axes.flat, measures):
        for seed in sorted({c["seed"] for c in curve}):
            points = [(c["budget"], c[key]) for c in curve if c["seed"] == seed and c[key] is not None]
            if not points:
                continue
            budgets = [b for b, _ in points]
            if isinstance(points[0][1], dict):
                values = np.array([v["top1"] for _, v in points])
                axis.errorbar(budgets, values[:, 0], yerr=[values[:, 0] - values[:, 1], values[:, 2] - values[:, 0]],
                              marker="o", capsize=3, label=f"seed {seed}")
            else:
                axis.plot(budgets, [v for _, v in points], marker="o", label=f"seed {seed}")
        if key in ("holdout_retrieval", "test_retrieval"):
            mfcc = retrieval["holdout" if key == "holdout_retrieval" else "test"]["MFCC statistics"]["top1"][0]
            axis.axhline(mfcc, color="grey", linestyle="--", label="MFCC statistics")
        axis.set_xscale("log")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("training steps")
        axis.legend(fontsize=8)
    axes.flat[-1].axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
