"""The study's metrics, in one place: the recipe study (``mt2 study``), the online probes of a
pretraining run (:mod:`mt2.training.probes`) and the debug ladder call :func:`evaluate`.

Metrics of :func:`evaluate` (DESIGN.md section 3, issue "recipe study"):

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

import math

import numpy as np
import torch
import torch.nn.functional as F

from mt2.training.calibrate import CalibrationError, calibrate, encoder_bin_predictor
from mt2.data.cqt_cache import CQTCache
from mt2.frontend import DEFAULT_OFFSET, model_window
from mt2.inference import Encoder
from mt2.keys import chroma_from_window, fifths_distance, signature_of, template_key
from mt2.model import MT2Model, count_parameters
from mt2.data.views import SEGMENT_FRAMES


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


def windows_of(magnitude: np.ndarray, offset: int, compression: str, frames: int = SEGMENT_FRAMES) -> torch.Tensor:
    """Non-overlapping model windows ``(W, 84, frames)`` covering a clip (the last one zero-padded)."""
    mag = torch.from_numpy(np.asarray(magnitude, dtype=np.float32))
    count = max(1, math.ceil(mag.shape[1] / frames))
    mag = F.pad(mag, (0, count * frames - mag.shape[1]))
    chunks = mag.view(mag.shape[0], count, frames).permute(1, 0, 2)
    return model_window(chunks, offset, compression)


@torch.inference_mode()
def clip_outputs(model: MT2Model, windows: torch.Tensor) -> dict:
    """One forward pass of ``windows`` ``(W, 84, T)``: ``tokens`` (the class tokens, ``(W, K, D)``),
    ``probs`` (softmax key profile, ``(W, 12)``, with an equivariant token) and ``invariant``
    (token 1's invariant features, the input of its projection, with a contrastive token)."""
    out = model(windows)
    result = {"tokens": out.tokens[:, : model.num_prefix_tokens]}
    if out.key_logits is not None:
        result["probs"] = torch.softmax(out.key_logits, dim=-1)
    if model.contrastive_head is not None:
        token = out.tokens[:, model.role_index("contrastive")]
        result["invariant"] = model.layout.invariant_view(token)
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
    """``audio (16 kHz) -> output bin`` through the Encoder's public path, exactly as
    ``mt2 key`` runs it (:func:`mt2.training.calibrate.encoder_bin_predictor`); what
    :func:`mt2.training.calibrate.calibrate` votes with. The model's train/eval mode is kept."""
    was_training = model.training
    encoder = Encoder(model, compression=compression)
    model.train(was_training)
    return encoder_bin_predictor(encoder)


def evaluate(
    model: MT2Model, cache: CQTCache, manifest: list[dict], compression: str, seed: int = 0, calibrate_key: bool = True,
) -> dict:
    """All metrics (module docstring) of ``model`` on the ``test`` rows of ``manifest`` (kNN
    fitted on its ``train`` rows), from the CQT magnitudes in ``cache``, windows compressed
    with ``compression`` (the model's input compression: ``ViewConfig.compression``).

    Without ``calibrate_key`` the calibration on rendered references (the costly part on
    CPU: a render and a CQT per reference) is skipped, and with it ``key_signature`` and
    ``within_fifth`` (``None``); ``best_rotation`` still measures the key information."""
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


