"""The recipe study: train small models on the embedded corpus for a fixed number of steps and
measure whether the equivariant token learned key and the contrastive token instrument.

``mt2 study --corpus DIR --configs NAME,... --steps N`` appends one JSON line per run to
``OUT/runs.jsonl`` and rewrites ``OUT/table.md``. Every configuration is a named overlay of
:data:`OVERLAYS` on the shipped recipe (the packaged ``mt2-mini`` pretraining config, whose
model is the preset :data:`mt2.model.PRESETS` ``["mt2-mini"]``), merged like
:func:`mt2.training.config.load_config` merges a user file, so a row of the table is
reproducible by name, and ``mt2 pretrain --config`` with the same overrides trains the same
recipe. Training is the one step of :mod:`mt2.training.step`; the metrics are
:func:`mt2.evaluation.model_metrics.evaluate` (its docstring defines each column). With
``transpositions`` pieces, each run also gets the transposition consistency of its key estimate
(:mod:`mt2.study.transposition`), under ``transpositions`` in its JSON line and as the
``transp.`` columns of the table. With a real-music corpus (``real``, from ``mt2 corpus real``),
each run also gets the real-music measures of :func:`mt2.evaluation.real_music.real_measures`
(transpositions followed, no-key rate, same-track retrieval, soundtrack kNN; the excerpts of
``mt2 bench --real``), under ``real`` and as the ``real`` columns: a change that helps the corpus
split and hurts real music shows in the same row.

Batches come from the data path of ``mt2 pretrain``: :func:`training_source` opens the corpus
with :func:`mt2.data.pretrain.open_source` and :func:`train` reads ``source.batches(...)`` on
one rank from step 0, so a study row draws the batches of ``mt2 pretrain --data CORPUS`` with
the same config (one device, ``num_workers`` 0; batch ``i`` from ``default_rng([seed, i, 0])``).
A row with a real share (``pc-real25``, ``pc-real50``, ``pc-real100``: the overlay holds only ``real_share``)
is trained on ``round(B x real_share)`` random crops of the training tracks of the real-music
corpus per batch (:class:`~mt2.data.pretrain.MixedSource`) and the rest rendered clips; its
``real_data`` is the folder given as ``real`` (``--real``), which the same row is measured on
(test tracks only are measured; no test track is trained on). Rows before recipe round 3 drew
their batches from one generator seeded once, so they are not reproduced batch for batch.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from mt2.data.pretrain import CachedSource, open_source
from mt2.evaluation.model_metrics import evaluate
from mt2.evaluation.real_music import real_measures
from mt2.inference import Encoder
from mt2.inference.calibration import Calibration
from mt2.losses import TRIVIAL_FLOOR
from mt2.model import MT2Model
from mt2.tables import markdown_table
from mt2.training.config import PretrainConfig, load_config
from mt2.training.step import make_optimizer, train_step

#: The study's configurations: overrides of the shipped recipe (:func:`recipe`). ``pc`` is the
#: recipe itself (pitch-class layout, 4 frames per token, CB pairs, summaries detached); the
#: others change one thing. Rows named before recipe round 2 (docs/recipe.md) were overlays of
#: the round-1 recipe: their ``pc`` is ``pc-round1``, their ``pc-cb`` is ``pc-attached``, their
#: ``pc-cb-detach`` is ``pc``, their ``pc-no-register-detach`` is ``pc-round1-no-register-detach``.
OVERLAYS: dict[str, dict] = {
    "pc": {},
    "plain": {"model": {"layout": "plain"}},
    "plain-freq": {"model": {"layout": "plain", "embedding": "freq"}},
    "pc-params": {"model": {"pc_channels": 32}},
    "pc-no-register": {"model": {"register": "none"}},
    "pc-ab": {"contrastive_pair": "AB"},
    "pc-attached": {"model": {"detach_summaries": False}},
    "pc-round1": {"contrastive_pair": "AB", "model": {"detach_summaries": False}},
    "pc-round1-no-register-detach": {"contrastive_pair": "AB", "model": {"register": "none"}},
    "pc-fpt1": {"model": {"frames_per_token": 1}},
    "pc-fpt2": {"model": {"frames_per_token": 2}},
    "pc-log": {"views": {"compression": "log"}},
    "pc-linear": {"views": {"compression": "linear"}},
    "pc-no-augment": {"views": {"augment": False}},
    "pc-lr3e-4": {"lr": 3e-4},
    "pc-lr3e-3": {"lr": 3e-3},
    "pc-balance": {"balance_weight": 0.1},
    "pc-class-mean": {"model": {"class_token_mean": True}},
    "pc-equivariant": {"variant": "equivariant"},
    "pc-contrastive": {"variant": "contrastive"},
    # recipe round 3: the share of each batch cut from real recordings (``real_data`` is filled
    # from the study's --real, see study_config); the recipe itself (``pc``) has none.
    "pc-real25": {"real_share": 0.25},
    "pc-real50": {"real_share": 0.5},
    "pc-real100": {"real_share": 1.0},
}


def recipe(steps: int, seed: int = 0) -> PretrainConfig:
    """The shipped recipe (packaged ``mt2-mini`` config) for a run of ``steps`` steps from ``seed``
    (the cosine schedule ends at ``steps``)."""
    return load_config("mt2-mini", max_steps=steps, seed=seed)


def study_config(name: str, steps: int, seed: int = 0, real: str | Path | None = None) -> PretrainConfig:
    """The configuration of the study row ``name``: :data:`OVERLAYS` ``[name]`` on :func:`recipe`.

    An overlay that sets ``real_share`` without ``real_data`` trains on the real-music corpus
    ``real`` (the study's ``--real``) at that share.

    Raises:
        ValueError: an unknown name, or a real share without ``real``.
    """
    if name not in OVERLAYS:
        raise ValueError(f"unknown study configuration {name!r}; choose from {sorted(OVERLAYS)}")
    overrides = dict(OVERLAYS[name])
    if "real_share" in overrides and overrides.get("real_data") is None:
        if real is None:
            raise ValueError(f"study configuration {name!r} trains on real recordings: give the real-music corpus (--real FOLDER)")
        overrides["real_data"] = str(real)
    return recipe(steps, seed).overlaid(overrides)


def training_source(corpus: Path, config: PretrainConfig, cache_dir: Path) -> CachedSource:
    """The pretraining source of ``mt2 pretrain --data corpus`` under ``config``
    (:func:`mt2.data.pretrain.open_source`: the rendered corpus, mixed with ``config.real_data``
    at ``config.real_share`` when it names one), cached under ``cache_dir``."""
    return open_source(corpus, cache_dir, config.real_data, config.real_share)


def real_share_of(config: PretrainConfig) -> float:
    """The share of each training batch cut from real recordings (0 without ``real_data``)."""
    return config.real_share if config.real_data else 0.0


def train(config: PretrainConfig, source, log_every: int = 25, log=print) -> tuple[MT2Model, list[dict]]:
    """Train a fresh model of ``config`` for ``config.max_steps`` steps of
    :func:`~mt2.training.step.train_step` on the batches of the pretraining ``source``
    (:func:`training_source`, or any :mod:`mt2.data.pretrain` source): ``source.batches`` of
    ``config.batch_size`` tracks from ``config.seed``, rank 0 of 1, from step 0, as ``mt2
    pretrain`` reads them; return the model (eval mode) and its curve."""
    torch.manual_seed(config.seed)
    model = MT2Model(config.model_config())
    optimizer, schedule = make_optimizer(model, config)
    batches = iter(source.batches(batch_size=config.batch_size, views=config.view_config(), seed=config.seed, rank=0, world=1, start=0))
    curve, start = [], time.time()
    model.train()
    for step in range(config.max_steps):
        views = next(batches).views
        losses, grad_norm = train_step(model, views, optimizer, schedule, config)
        record = {
            "step": step + 1,
            "seconds": round(time.time() - start, 2),
            "loss": losses.total.item(),
            "cpsd": None if losses.cpsd is None else losses.cpsd.item(),
            "ntxent": None if losses.ntxent is None else losses.ntxent.item(),
            "grad_norm": grad_norm.item(),
        }
        curve.append(record)
        if (step + 1) % log_every == 0 or step == 0:
            log(json.dumps(record))
    return model.eval(), curve


def load_corpus(corpus: Path) -> tuple[list[dict], Path]:
    """The manifest of a rendered corpus and its resolved root (the root that ``open_source``
    caches under, and the folder :func:`~mt2.evaluation.model_metrics.evaluate` reads the clips from)."""
    from mt2.corpus import read_manifest

    corpus = Path(corpus).resolve()
    return read_manifest(corpus / "manifest.jsonl"), corpus


def run_study(corpus: Path, names: list[str], steps: int, out: Path, seed: int = 0, log=print, transpositions: int = 0,
              real: Path | None = None) -> list[dict]:
    """Train and evaluate each named configuration (:func:`study_config`); append results to
    ``out/runs.jsonl``, keep each model in ``out/models/NAME-sSEED-STEPS`` and rewrite ``out/table.md``.
    With ``transpositions`` > 0, add :func:`transposition_measure` on that many pieces (the
    model's key estimate uses the calibration that :func:`~mt2.evaluation.model_metrics.evaluate` fitted)."""
    configs = {name: study_config(name, steps, seed, real) for name in names}  # unknown names fail before any work
    _check_pieces(transpositions)
    out.mkdir(parents=True, exist_ok=True)
    manifest, root = load_corpus(corpus)
    results = []
    for name, config in configs.items():
        source = training_source(root, config, out / "cache")
        start = time.time()
        model, curve = train(config, source, log=lambda s: log(f"[{name}] {s}"))
        train_seconds = time.time() - start
        tail = curve[-min(50, len(curve)) :]
        cpsd_tail = [r["cpsd"] for r in tail if r["cpsd"] is not None]
        result = {
            "name": name,
            "overlay": OVERLAYS[name],
            "config": config.to_dict(),
            "steps": steps,
            "seed": seed,
            "real_share": real_share_of(config),
            "train_data": source.describe(),
            "train_seconds": round(train_seconds, 1),
            "final_loss": float(np.mean([r["loss"] for r in tail])),
            "final_cpsd": float(np.mean(cpsd_tail)) if cpsd_tail else None,
            "cpsd_floor": TRIVIAL_FLOOR,
            **evaluate(model, root, manifest, config.view_config().compression, seed),
            "curve": curve[:: max(1, len(curve) // 100)],
        }
        fitted = result.get("calibration", {})
        calibration = Calibration.from_dict(fitted) if "rotation" in fitted else None
        encoder = Encoder(model, calibration=calibration, compression=config.view_config().compression,
                          training={"pretrain_config": config.to_dict(), "step": steps, "study": name})
        if transpositions:
            result["transpositions"] = transposition_measure(encoder, transpositions, seed)
        if real is not None:
            result["real"] = real_measures(encoder, real, out / "cache")
        save_run(encoder, out / "models" / f"{name}-s{seed}-{steps}")
        results.append(_record(result, out, log))
    return results


def evaluate_pretrained(corpus: Path, folders: list[Path], out: Path, log=print, seed: int = 0, transpositions: int = 0,
                        real: Path | None = None) -> list[dict]:
    """Study metrics of exported models (``mt2 export`` folders) on the corpus test split, appended
    to ``out/runs.jsonl`` like trained configurations (``steps`` from the folder's training record).
    With ``transpositions`` > 0, add :func:`transposition_measure` on that many pieces."""
    _check_pieces(transpositions)
    out.mkdir(parents=True, exist_ok=True)
    manifest, root = load_corpus(corpus)
    results = []
    for folder in folders:
        encoder = Encoder.from_pretrained(folder)
        model = encoder.model.eval()
        training = encoder.training_info or {}
        result = {
            "name": f"{Path(folder).name} (mt2 pretrain)",
            "config": {"folder": str(folder), "model": model.config.to_dict()},
            "steps": training.get("global_step") or training.get("step"),
            "train_seconds": training.get("train_seconds"),
            **evaluate(model, root, manifest, encoder.compression, seed),
        }
        if transpositions:
            result["transpositions"] = transposition_measure(encoder, transpositions, seed)
        if real is not None:
            result["real"] = real_measures(encoder, real, out / "cache")
        results.append(_record(result, out, log))
    return results


def _record(result: dict, out: Path, log) -> dict:
    """Append a run to ``out/runs.jsonl``, log it (without its curve and config) and rewrite the table."""
    with open(out / "runs.jsonl", "a") as handle:
        handle.write(json.dumps(result) + "\n")
    log(json.dumps({k: v for k, v in result.items() if k not in ("curve", "config")}))
    write_table(out)
    return result


def _check_pieces(transpositions: int) -> None:
    if transpositions < 0:
        raise ValueError(f"transpositions={transpositions}: give a number of pieces to measure, or 0 for no measure")


def transposition_measure(encoder: Encoder, pieces: int, seed: int) -> dict:
    """:func:`~mt2.study.transposition.transposition_consistency` of ``encoder`` on ``pieces``
    pieces in both fonts, or ``{"error": why}`` when it cannot estimate keys (no equivariant
    token, no calibration)."""
    from mt2.study.transposition import transposition_consistency  # deferred: the renderer is needed only here

    try:
        encoder.check_key_support()
    except ValueError as error:
        return {"error": str(error)}
    return transposition_consistency(encoder, pieces, seed)


def save_run(encoder: Encoder, folder: Path) -> None:
    """Keep a study model as a model folder (:meth:`~mt2.inference.Encoder.save_pretrained`:
    ``model.safetensors`` + ``config.json``, with the calibration the study fitted and the
    pretraining config under ``training``), so that ``mt2.load(folder)`` opens it."""
    encoder.save_pretrained(folder)


COLUMNS = [
    ("name", "config"), ("steps", "steps"), ("real_share", "real share"), ("train_seconds", "train s"), ("parameters", "params"),
    ("final_cpsd", "CPSD (floor 2.777)"), ("equivariance", "equiv."), ("key_signature", "key sig."),
    ("within_fifth", "<= 1 fifth"), ("best_rotation", "best rot."), ("template", "template"), ("template_linear", "template lin."),
    ("instrument_knn", "instr. kNN tok1"), ("instrument_knn_input", "instr. kNN input"),
    ("token_cosine", "cos(tok0, tok1) notes"), ("token_cosine_music", "cos(tok0, tok1) music"), ("distinct_outputs", "distinct"), ("segment_agreement", "seg. agree"),
    ("transpositions.timgm6mb.consistency", "transp. TimGM"), ("transpositions.merlin.consistency", "transp. Merlin"),
    ("real.followed", "real: transp. followed"), ("real.no_key", "real: no key"), ("real.retrieval_top1", "real: same-track top-1"),
    ("real.soundtrack_knn", "real: soundtrack kNN"), ("real.essentia_mirex", "real: MIREX vs essentia"),
    ("real.essentia_signature", "real: signature = essentia's"),
]


def _field(row: dict, key: str):
    """``row[key]``, or a nested value for a dotted key (``a.b`` is ``row[a][b]``); None if absent."""
    for part in key.split("."):
        if not isinstance(row, dict):
            return None
        row = row.get(part)
    return row


def _cell(value) -> str:
    """``-`` for a missing value, 3 decimals for a float under 100, whole numbers above."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def write_table(out: Path) -> str:
    """Markdown table of every run in ``out/runs.jsonl`` (:data:`COLUMNS`; a dotted key reads a
    nested value), written to ``out/table.md``."""
    rows = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines() if line.strip()]
    lines = markdown_table([title for _, title in COLUMNS], [[_cell(_field(row, key)) for key, _ in COLUMNS] for row in rows])
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    return text
