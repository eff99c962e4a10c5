"""The model metrics of the recipe study and of the online probes, in one place: the recipe study
(``mt2 study``, :mod:`mt2.study`) tabulates :func:`evaluate` after training, and the online probes
of a pretraining run log it during training through :func:`online_probe`, the probe that ``mt2
pretrain`` hands to the trainer (:func:`mt2.training.lightning.pretrain`, whose contract is
:class:`mt2.training.probes.Probe`; training may not import this layer, so it receives the probe
from its caller).

Every clip is read from its audio file and goes to the model through the Encoder's public path
(:meth:`mt2.inference.Encoder.model_input_batches`, :func:`clip_input`): the windows a metric
measures are the arrays ``mt2 key`` and ``mt2 embed`` feed the model, each window's CQT computed
from its own samples.

Metrics of :func:`evaluate` (docs/design.md section 6, issue "recipe study"):

* ``equivariance``: share of clips whose argmax moves by the transposition (window cut
  ``k`` bins higher -> argmax ``k`` lower);
* ``key_signature`` / ``within_fifth``: zero-shot key signature of token 0 after
  calibration on rendered references (:mod:`mt2.training.calibrate`): the signature of the key
  that ``mt2 key`` decides (:meth:`mt2.inference.Encoder.key`, the one decision of
  :func:`mt2.inference.key_decision.decide_key`; no mode probe, so the template rule), and the
  share within one step on the circle of fifths; ``best_rotation``: the argmax output bin of
  the head's softmax averaged over the clip's windows by valid length, scored with the best
  rotation and direction chosen after the fact on the test labels (an upper bound of calibration);
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

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mt2.audio import load_audio
from mt2.frontend import MAX_OFFSET, SAMPLE_RATE
from mt2.inference import Encoder
from mt2.keys import chroma_from_window, fifths_distance, signature_of, template_key
from mt2.model import MT2Model, count_parameters
from mt2.training.calibrate import CalibrationError, calibrate, encoder_bin_predictor


def clip_input(encoder: Encoder, audio: np.ndarray, shift: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Every model window ``(W, 84, window_frames)`` of mono 16-kHz ``audio`` and the valid frames
    of each, from :meth:`~mt2.inference.Encoder.model_input_batches` (the input of ``mt2 key``,
    cut ``shift`` bins higher when asked; the last window zero-padded)."""
    batches = list(encoder.model_input_batches([audio], shift=shift))
    return torch.cat([batch.windows for batch in batches]), np.concatenate([batch.valid_frames for batch in batches])


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


def evaluate(
    model: MT2Model, root: str | Path, manifest: list[dict], compression: str, seed: int = 0, calibrate_key: bool = True,
) -> dict:
    """All metrics (module docstring) of ``model`` on the ``test`` rows of ``manifest`` (kNN
    fitted on its ``train`` rows), each clip read from ``root / row["path"]`` and cut into model
    windows by an :class:`~mt2.inference.Encoder` of ``model`` with ``compression`` (the model's
    input compression: ``ViewConfig.compression``); the model's train/eval mode is kept.

    Without ``calibrate_key`` the calibration on rendered references (the costly part on
    CPU: a render and a CQT per reference) is skipped, and with it ``key_signature`` and
    ``within_fifth`` (``None``); ``best_rotation`` still measures the key information."""
    was_training = model.training
    encoder, linear = Encoder(model, compression=compression), Encoder(model, compression="linear")
    try:
        return _metrics(encoder, linear, Path(root), manifest, seed, calibrate_key)
    finally:
        model.train(was_training)


def online_probe(
    model: MT2Model, root: str | Path, rows: list[dict], compression: str, seed: int, calibrate_key: bool,
) -> dict[str, float]:
    """The online probe of ``mt2 pretrain`` (a :class:`mt2.training.probes.Probe`): the numeric
    metrics of :func:`evaluate` (``parameters`` left out; with ``calibrate_key``, ``calibrated``:
    1 if the calibration succeeded, else 0) and ``score``, the run's checkpoint criterion: the
    mean of the key probe (``best_rotation``, independent of calibration) and the instrument kNN
    accuracy (``instrument_knn``), of those measured (0 if neither)."""
    metrics = evaluate(model, root, rows, compression, seed, calibrate_key)
    calibration = metrics.pop("calibration", None)
    values = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and k != "parameters"}
    if calibration is not None:
        values["calibrated"] = float("error" not in calibration)
    parts = [values[k] for k in ("best_rotation", "instrument_knn") if k in values]
    values["score"] = float(np.mean(parts)) if parts else 0.0
    return values


def _metrics(encoder: Encoder, linear: Encoder, root: Path, manifest: list[dict], seed: int, calibrate_key: bool) -> dict:
    model = encoder.model
    generator = np.random.default_rng(seed)
    metrics: dict = {"parameters": count_parameters(model)}
    has_eq = model.equivariant_head is not None
    has_con = model.contrastive_head is not None

    def audio_of(clip: dict) -> np.ndarray:
        return load_audio(root / clip["path"], SAMPLE_RATE)

    pieces = [c for c in manifest if c["split"] == "test" and c.get("key")]
    if has_eq:
        calibration = None
        if calibrate_key:
            try:
                calibration = calibrate(encoder_bin_predictor(encoder))
                metrics["calibration"] = calibration.to_dict()
            except CalibrationError as error:
                metrics["calibration"] = {"error": str(error)}
        moved, agree, multi, predicted_bins, labels, sig_hits, fifth_hits = 0, 0, 0, [], [], 0, 0
        template_hits = {"template": 0, "template_linear": 0}
        music_cos: list[float] = []
        for clip in pieces:
            audio = audio_of(clip)
            windows, valid = clip_input(encoder, audio)
            outputs = clip_outputs(model, windows)
            probs = outputs["probs"]
            if outputs["tokens"].shape[1] == 2:  # class-token similarity on full windows of music
                full = outputs["tokens"][torch.from_numpy(valid == encoder.window_frames)]
                music_cos.extend(F.cosine_similarity(full[:, 0], full[:, 1], dim=-1).tolist())
            k = int(generator.choice([s for s in range(-encoder.offset, MAX_OFFSET + 1 - encoder.offset) if s % 12]))
            first = audio[: encoder.window_samples]
            shifted = clip_outputs(model, clip_input(encoder, first, shift=k)[0])["probs"]
            moved += int((int(shifted[0].argmax()) - int(probs[0].argmax()) + k) % 12 == 0)
            if len(windows) > 1:
                multi += 1
                agree += int(probs[0].argmax() == probs[1].argmax())
            stats = encoder.key_statistics(audio, SAMPLE_RATE)
            q = int(np.argmax(stats.bin_probabilities))
            signature = signature_of(clip["tonic"], clip["mode"])
            predicted_bins.append(q)
            labels.append(signature)
            for name, inputs in (("template", windows), ("template_linear", clip_input(linear, audio)[0])):
                window = inputs.permute(1, 0, 2).flatten(1).numpy()
                tonic, mode, _ = template_key(chroma_from_window(window, encoder.offset))
                template_hits[name] += signature_of(tonic, mode) == signature
            if calibration is not None:
                encoder.calibration = calibration
                estimate = encoder.decide(stats)
                predicted = estimate.signature if estimate.has_key else None
                sig_hits += predicted == signature
                fifth_hits += predicted is not None and fifths_distance(predicted, signature) <= 1
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
        if c.get("instrument") is not None and len(c.get("instruments") or [None]) == 1 and c["split"] in ("train", "test")
    ]
    feats, stats, token_cos = {"train": [], "test": []}, {"train": [], "test": []}, []
    targets = {"train": [], "test": []}
    for clip in inst:
        window = clip_input(encoder, audio_of(clip)[: encoder.window_samples])[0]
        out = clip_outputs(model, window)
        stats[clip["split"]].append(torch.cat([window[0].mean(dim=1), window[0].std(dim=1)]).numpy())
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
