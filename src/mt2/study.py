"""The recipe study: train small models on the embedded corpus for a fixed number of steps and
measure whether the equivariant token learned key and the contrastive token instrument.

``mt2 study --corpus DIR --configs NAME,... --steps N`` appends one JSON line per run to
``OUT/runs.jsonl`` and rewrites ``OUT/table.md``. Every configuration is a named entry of
:data:`CONFIGS` (model, view and optimiser overrides on top of :data:`BASE`), so a row of
the table is reproducible by name. Metrics (DESIGN.md section 3, issue "recipe study"):

* ``equivariance``: share of clips whose argmax moves by the transposition (window cut
  ``k`` bins higher -> argmax ``k`` lower);
* ``key_signature`` / ``within_fifth``: zero-shot key signature of token 0 after
  calibration on rendered references (:mod:`mt2.training.calibrate`), and the share within one
  step on the circle of fifths; ``best_rotation``: the same with the best rotation and
  direction chosen after the fact on the test labels (an upper bound of calibration);
* ``template`` / ``template_linear``: Krumhansl templates on the octave-folded input
  windows (no network), with the model's input compression and with linear magnitudes
  (the stronger classical baseline: compression blurs pitch classes);
* ``instrument_knn`` (token 1's invariant features) next to ``instrument_knn_input``
  (time mean and standard deviation of the input window, no network), on clips with one
  instrument (single notes and solo pieces), 5-NN fitted on the train split;
* ``token_cosine``: cosine of the two class tokens on the single-instrument clips (first
  window), ``token_cosine_music``: the same on every full window of the key-labelled test
  clips (music is where the two tokens come closest); ``distinct_outputs`` and
  ``segment_agreement``: collapse indicators; ``cpsd`` against its floor 2.777.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mt2.data.cqt_cache import CQTCache, build_cqt_cache
from mt2.data.views import SEGMENT_FRAMES, ViewConfig, sample_views
from mt2.frontend import DEFAULT_OFFSET, CQTFrontend, model_window
from mt2.inference.calibration import Calibration
from mt2.keys import chroma_from_window, fifths_distance, signature_of, template_key
from mt2.losses import TRIVIAL_FLOOR
from mt2.model import MT2Model, count_parameters, make_config
from mt2.training.calibrate import CalibrationError, calibrate
from mt2.training.objective import ssl_losses



@dataclass
class StudyConfig:
    preset: str = "mt2-mini"
    variant: str = "mt2"
    model: dict = field(default_factory=dict)
    views: dict = field(default_factory=dict)
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 32
    warmup: int = 50
    balance_weight: float = 0.0  # weight of a term against collapse: -entropy of the batch-mean profile


BASE = StudyConfig(model={"layout": "pitch-class", "frames_per_token": 4})

CONFIGS: dict[str, StudyConfig] = {
    "plain": replace(BASE, model={"layout": "plain", "frames_per_token": 4}),
    "plain-freq": replace(BASE, model={"layout": "plain", "embedding": "freq", "frames_per_token": 4}),
    "pc": BASE,
    "pc-params": replace(BASE, model={**BASE.model, "pc_channels": 32}),
    "pc-no-register": replace(BASE, model={**BASE.model, "register": "none"}),
    "pc-fpt1": replace(BASE, model={**BASE.model, "frames_per_token": 1}),
    "pc-fpt2": replace(BASE, model={**BASE.model, "frames_per_token": 2}),
    "pc-log": replace(BASE, views={"compression": "log"}),
    "pc-linear": replace(BASE, views={"compression": "linear"}),
    "pc-no-augment": replace(BASE, views={"augment": False}),
    "pc-lr3e-4": replace(BASE, lr=3e-4),
    "pc-lr3e-3": replace(BASE, lr=3e-3),
    "pc-balance": replace(BASE, balance_weight=0.1),
    "pc-class-mean": replace(BASE, model={**BASE.model, "class_token_mean": True}),
    "pc-equivariant": replace(BASE, variant="equivariant"),
    "pc-contrastive": replace(BASE, variant="contrastive"),
}


def build(cfg: StudyConfig) -> MT2Model:
    return MT2Model(make_config(cfg.preset, cfg.variant, **cfg.model))


def template_oracle(windows: torch.Tensor, sharpness: float = 20.0) -> torch.Tensor:
    """A fixed oracle for the equivariant head: Krumhansl key templates on the octave-folded window.

    Window bin ``j`` is folded onto index ``j mod 12`` (the offset is unknown, as it is to the
    model), the 24 key scores are pooled per key signature (max of a key and its relative), and
    a softmax with ``sharpness`` gives a 12-bin profile. A window cut ``k`` bins higher moves
    the profile by ``-k``, so plugged into the CPSD loss it checks views, crops and sign.
    """
    chroma = windows.mean(dim=-1).view(windows.shape[0], -1, 12).sum(dim=1).double().numpy()
    scores = np.stack([template_key(c)[2] for c in chroma])  # (B, 24): majors then minors
    by_signature = np.maximum(scores[:, :12], np.roll(scores[:, 12:], 3, axis=1))
    return torch.softmax(sharpness * torch.from_numpy(by_signature).float(), dim=-1)


def lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(cfg: StudyConfig, cache: CQTCache, keys: list[str], steps: int, seed: int, log_every: int = 25, log=print) -> tuple[MT2Model, list[dict]]:
    """Train a fresh model for ``steps`` steps on the cached clips ``keys``; return it and its curve."""
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    model = build(cfg)
    view_cfg = ViewConfig(**cfg.views)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps, cfg.warmup))
    curve, start = [], time.time()
    model.train()
    for step in range(steps):
        chosen = generator.choice(len(keys), size=cfg.batch_size, replace=len(keys) < cfg.batch_size)
        views = sample_views([cache[keys[i]] for i in chosen], view_cfg, generator)
        losses = ssl_losses(model, views)
        loss = losses.total
        if cfg.balance_weight and model.equivariant_head is not None:
            probs = torch.softmax(model(views.a).key_logits, dim=-1).mean(dim=0)
            loss = loss - cfg.balance_weight * -(probs * probs.clamp_min(1e-8).log()).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        record = {
            "step": step + 1,
            "seconds": round(time.time() - start, 2),
            "loss": losses.total.item(),
            "cpsd": None if losses.cpsd is None else losses.cpsd.item(),
            "ntxent": None if losses.ntxent is None else losses.ntxent.item(),
        }
        curve.append(record)
        if (step + 1) % log_every == 0 or step == 0:
            log(json.dumps(record))
    return model.eval(), curve


def windows_of(magnitude: np.ndarray, offset: int, compression: str, frames: int = SEGMENT_FRAMES) -> torch.Tensor:
    """Non-overlapping model windows ``(W, 84, frames)`` covering a clip (the last one zero-padded)."""
    mag = torch.from_numpy(np.asarray(magnitude, dtype=np.float32))
    count = max(1, math.ceil(mag.shape[1] / frames))
    mag = F.pad(mag, (0, count * frames - mag.shape[1]))
    chunks = mag.view(mag.shape[0], count, frames).permute(1, 0, 2)
    return model_window(chunks, offset, compression)


@torch.inference_mode()
def clip_outputs(model: MT2Model, windows: torch.Tensor) -> dict:
    out = model(windows)
    result = {"tokens": out.tokens[:, : model.num_prefix_tokens]}
    if out.key_logits is not None:
        result["probs"] = torch.softmax(out.key_logits, dim=-1)
    if model.contrastive_head is not None:
        token = out.tokens[:, model.role_index("contrastive")]
        result["invariant"] = model.contrastive_head.invariant_input(token)
    return result


def knn_accuracy(train_x: np.ndarray, train_y: list, test_x: np.ndarray, test_y: list, k: int = 5) -> float:
    """Cosine k-nearest-neighbour majority vote (ties to the nearest)."""
    a = train_x / (np.linalg.norm(train_x, axis=1, keepdims=True) + 1e-12)
    b = test_x / (np.linalg.norm(test_x, axis=1, keepdims=True) + 1e-12)
    nearest = np.argsort(-(b @ a.T), axis=1)[:, :k]
    hits = 0
    for row, label in zip(nearest, test_y):
        votes = [train_y[j] for j in row]
        counts = {v: votes.count(v) for v in votes}
        top = max(counts.values())
        hits += next(v for v in votes if counts[v] == top) == label
    return hits / max(1, len(test_y))


def make_bin_predictor(model: MT2Model, compression: str):
    frontend = CQTFrontend()

    def predict_bin(audio: np.ndarray) -> int:
        with torch.inference_mode():
            magnitude = frontend.magnitude(torch.from_numpy(audio))[0].numpy()
        return int(clip_outputs(model, windows_of(magnitude, DEFAULT_OFFSET, compression))["probs"].mean(dim=0).argmax())

    return predict_bin


def evaluate(model: MT2Model, cfg: StudyConfig, cache: CQTCache, manifest: list[dict], seed: int = 0, calibrate_key: bool = True) -> dict:
    """All study metrics on the test split (kNN fitted on the train split).

    Without ``calibrate_key`` the calibration on rendered references (the costly part on
    CPU: a render and a CQT per reference) is skipped, and with it ``key_signature`` and
    ``within_fifth`` (``None``); ``best_rotation`` still measures the key information."""
    compression = ViewConfig(**cfg.views).compression
    generator = np.random.default_rng(seed)
    metrics: dict = {"parameters": count_parameters(model)}
    has_eq = model.equivariant_head is not None
    has_con = model.contrastive_head is not None
    pieces = [c for c in manifest if c["split"] == "test" and c.get("key") and c["path"] in cache]
    if has_eq:
        calibration = None
        if calibrate_key:
            try:
                calibration = calibrate(make_bin_predictor(model, compression))
                metrics["calibration"] = calibration.to_dict()
            except CalibrationError as error:
                metrics["calibration"] = {"error": str(error)}
        moved, agree, multi, predicted_bins, labels, sig_hits, fifth_hits = 0, 0, 0, [], [], 0, 0
        template_hits = {"template": 0, "template_linear": 0}
        music_cos: list[float] = []
        for clip in pieces:
            magnitude = cache[clip["path"]]
            windows = windows_of(magnitude, DEFAULT_OFFSET, compression)
            outputs = clip_outputs(model, windows)
            probs = outputs["probs"]
            if outputs["tokens"].shape[1] == 2:  # class-token similarity on full windows of music
                full = outputs["tokens"][: max(1, magnitude.shape[1] // SEGMENT_FRAMES)]
                music_cos.extend(F.cosine_similarity(full[:, 0], full[:, 1], dim=-1).tolist())
            k = int(generator.choice([s for s in range(-DEFAULT_OFFSET, 16 - DEFAULT_OFFSET) if s % 12]))
            shifted = clip_outputs(model, windows_of(magnitude, DEFAULT_OFFSET + k, compression))["probs"]
            moved += int((int(shifted[0].argmax()) - int(probs[0].argmax()) + k) % 12 == 0)
            if len(windows) > 1:
                multi += 1
                agree += int(probs[0].argmax() == probs[1].argmax())
            q = int(probs.mean(dim=0).argmax())
            signature = signature_of(clip["tonic"], clip["mode"])
            predicted_bins.append(q)
            labels.append(signature)
            for name, comp in (("template", compression), ("template_linear", "linear")):
                window = windows_of(magnitude, DEFAULT_OFFSET, comp).permute(1, 0, 2).flatten(1).numpy()
                tonic, mode, _ = template_key(chroma_from_window(window, DEFAULT_OFFSET))
                template_hits[name] += signature_of(tonic, mode) == signature
            if calibration is not None:
                predicted = int(calibration.signature_of_bin(q))
                sig_hits += predicted == signature
                fifth_hits += fifths_distance(predicted, signature) <= 1
        n = max(1, len(pieces))
        bins, labels = np.array(predicted_bins), np.array(labels)
        best = max(int(((d * labels + r) % 12 == bins).sum()) for d in (1, -1) for r in range(12))
        metrics.update(
            clips=len(pieces),
            equivariance=moved / n,
            key_signature=sig_hits / n if calibration else None,
            within_fifth=fifth_hits / n if calibration else None,
            best_rotation=best / n,
            **{name: hits / n for name, hits in template_hits.items()},
            distinct_outputs=int(len(set(predicted_bins))),
            segment_agreement=agree / max(1, multi),
        )
        if music_cos:
            metrics["token_cosine_music"] = float(np.mean(music_cos))
    inst = [
        c for c in manifest
        if c.get("instrument") is not None and len(c.get("instruments") or [None]) == 1
        and c["path"] in cache and c["split"] in ("train", "test")
    ]
    feats, stats, token_cos = {"train": [], "test": []}, {"train": [], "test": []}, []
    targets = {"train": [], "test": []}
    for clip in inst:
        windows = windows_of(cache[clip["path"]], DEFAULT_OFFSET, compression)
        out = clip_outputs(model, windows[:1])
        stats[clip["split"]].append(torch.cat([windows[0].mean(dim=1), windows[0].std(dim=1)]).numpy())
        targets[clip["split"]].append(clip["instrument"])
        if has_con:
            feats[clip["split"]].append(out["invariant"][0].numpy())
        if out["tokens"].shape[1] == 2 and clip["split"] == "test":
            token_cos.append(float(F.cosine_similarity(out["tokens"][0, 0], out["tokens"][0, 1], dim=0)))
    if targets["test"]:
        metrics["instrument_knn_input"] = knn_accuracy(np.array(stats["train"]), targets["train"], np.array(stats["test"]), targets["test"])
        if has_con:
            metrics["instrument_knn"] = knn_accuracy(np.array(feats["train"]), targets["train"], np.array(feats["test"]), targets["test"])
    if token_cos:
        metrics["token_cosine"] = float(np.mean(token_cos))
    return metrics


def load_corpus(corpus: Path, cache_dir: Path) -> tuple[list[dict], CQTCache]:
    from mt2.corpus import read_manifest

    manifest = read_manifest(corpus / "manifest.jsonl")
    cache = build_cqt_cache([c["path"] for c in manifest], corpus, cache_dir)
    return manifest, cache


def run_study(corpus: Path, names: list[str], steps: int, out: Path, seed: int = 0, log=print) -> list[dict]:
    """Train and evaluate each named configuration; append results to ``out/runs.jsonl``."""
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown study configurations {unknown}; choose from {sorted(CONFIGS)}")
    out.mkdir(parents=True, exist_ok=True)
    manifest, cache = load_corpus(corpus, out / "cache")
    train_keys = [c["path"] for c in manifest if c["split"] == "train" and c["path"] in cache]
    results = []
    for name in names:
        cfg = CONFIGS[name]
        start = time.time()
        model, curve = train(cfg, cache, train_keys, steps, seed, log=lambda s: log(f"[{name}] {s}"))
        train_seconds = time.time() - start
        tail = curve[-min(50, len(curve)) :]
        cpsd_tail = [r["cpsd"] for r in tail if r["cpsd"] is not None]
        result = {
            "name": name,
            "config": asdict(cfg),
            "steps": steps,
            "seed": seed,
            "train_seconds": round(train_seconds, 1),
            "final_loss": float(np.mean([r["loss"] for r in tail])),
            "final_cpsd": float(np.mean(cpsd_tail)) if cpsd_tail else None,
            "cpsd_floor": TRIVIAL_FLOOR,
            **evaluate(model, cfg, cache, manifest, seed),
            "curve": curve[:: max(1, len(curve) // 100)],
        }
        results.append(result)
        save_run(model, cfg, out / "models" / f"{name}-s{seed}-{steps}")
        with open(out / "runs.jsonl", "a") as handle:
            handle.write(json.dumps(result) + "\n")
        log(json.dumps({k: v for k, v in result.items() if k not in ("curve", "config")}))
        write_table(out)
    return results


def evaluate_pretrained(corpus: Path, folders: list[Path], out: Path, log=print) -> list[dict]:
    """Study metrics of exported models (``mt2 export`` folders) on the corpus test split, appended
    to ``out/runs.jsonl`` like trained configurations (``steps`` from the folder's training record)."""
    from mt2.inference import Encoder

    out.mkdir(parents=True, exist_ok=True)
    manifest, cache = load_corpus(corpus, out / "cache")
    results = []
    for folder in folders:
        encoder = Encoder.from_pretrained(folder)
        model = encoder.model.eval()
        cfg = StudyConfig(variant=_variant_of(model), model={}, views={"compression": encoder.compression})
        training = encoder.training_info or {}
        result = {
            "name": f"{Path(folder).name} (mt2 pretrain)",
            "config": {"folder": str(folder), "model": model.config.to_dict()},
            "steps": training.get("global_step") or training.get("step"),
            "train_seconds": training.get("train_seconds"),
            **evaluate(model, cfg, cache, manifest),
        }
        results.append(result)
        with open(out / "runs.jsonl", "a") as handle:
            handle.write(json.dumps(result) + "\n")
        log(json.dumps({k: v for k, v in result.items() if k != "config"}))
        write_table(out)
    return results


def _variant_of(model: MT2Model) -> str:
    from mt2.model import VARIANTS

    return next(name for name, roles in VARIANTS.items() if roles == model.config.roles)


def save_run(model: MT2Model, cfg: StudyConfig, folder: Path) -> None:
    """Keep a study model: ``model.safetensors`` and ``study.json`` (its model and study config)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "study.json").write_text(json.dumps({"model": model.config.to_dict(), "study": asdict(cfg)}, indent=1))


COLUMNS = [
    ("name", "config"), ("steps", "steps"), ("train_seconds", "train s"), ("parameters", "params"),
    ("final_cpsd", "CPSD (floor 2.777)"), ("equivariance", "equiv."), ("key_signature", "key sig."),
    ("within_fifth", "<= 1 fifth"), ("best_rotation", "best rot."), ("template", "template"), ("template_linear", "template lin."),
    ("instrument_knn", "instr. kNN tok1"), ("instrument_knn_input", "instr. kNN input"),
    ("token_cosine", "cos(tok0, tok1) notes"), ("token_cosine_music", "cos(tok0, tok1) music"), ("distinct_outputs", "distinct"), ("segment_agreement", "seg. agree"),
]


def write_table(out: Path) -> str:
    """Markdown table of every run in ``out/runs.jsonl``."""
    rows = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines() if line.strip()]

    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row.get(key)) for key, _ in COLUMNS) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    return text
