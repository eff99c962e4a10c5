"""The k-means codebook of the ``masked`` variant (MERT's acoustic teacher, first stage).

Features: :func:`mt2.model.masked.token_features` of view A of the run's first
:data:`CODEBOOK_BATCHES` training batches (batch ``i`` of rank 0, as the trainer draws
them: the training split only, random window offsets and the contrastive augmentations),
so the codes are fitted on exactly the inputs the network is trained on. With the
``mt2-mini`` recipe (32 tracks, 31 tokens per segment) that is 64 x 32 x 31 = 63,488
vectors of 84 log-compressed bins, for ``codebook_size`` = 100 clusters (HuBERT's first
iteration; about 630 vectors per cluster).

k-means (:func:`kmeans`) is numpy, float64 and deterministic for a seed: k-means++
initialisation from ``default_rng(seed)``, then Lloyd iterations until no assignment
changes (at most :data:`MAX_ITERATIONS`); an emptied cluster is moved to the vector farthest
from its centroid.

The codebook is written to ``OUT/codebook.safetensors`` (tensor ``centroids``, metadata
``info`` as JSON) before training; a resumed run reuses the file. It also lives in the
model as the buffer ``masked_prediction.codebook``, so checkpoints and exported folders
carry it.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import mt2
from mt2.model.masked import LOG_FLOOR, token_features

log = logging.getLogger(__name__)

CODEBOOK_FILE = "codebook.safetensors"
CODEBOOK_BATCHES = 64
MAX_ITERATIONS = 100
FEATURES = "log(mean over the token's frames of the model-input window + LOG_FLOOR), view A of training batches 0..n-1, rank 0"


def kmeans(x: np.ndarray, k: int, seed: int, max_iterations: int = MAX_ITERATIONS) -> tuple[np.ndarray, dict]:
    """Centroids ``(k, F)`` of the rows of ``x`` ``(N, F)`` and ``{"inertia", "iterations"}``
    (inertia: mean squared distance to the nearest centroid)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < k:
        raise ValueError(f"k-means needs at least k={k} vectors (N, F); got shape {x.shape}: use more batches or a smaller codebook_size")
    rng = np.random.default_rng(seed)
    squared = (x * x).sum(axis=1)

    def distances(centroids: np.ndarray) -> np.ndarray:
        return np.maximum(squared[:, None] - 2 * x @ centroids.T + (centroids * centroids).sum(axis=1), 0.0)

    centroids = [x[rng.integers(len(x))]]
    nearest = distances(np.array(centroids))[:, 0]
    for _ in range(1, k):  # k-means++
        total = nearest.sum()
        index = rng.choice(len(x), p=nearest / total) if total > 0 else int(rng.integers(len(x)))
        centroids.append(x[index])
        nearest = np.minimum(nearest, distances(x[index][None])[:, 0])
    centroids = np.array(centroids)
    assignment = None
    for iteration in range(1, max_iterations + 1):
        d = distances(centroids)
        new = d.argmin(axis=1)
        if assignment is not None and np.array_equal(new, assignment):
            break
        assignment = new
        counts = np.bincount(assignment, minlength=k)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assignment, x)
        for j in np.flatnonzero(counts == 0):  # an emptied cluster takes the farthest vector
            far = int(d[np.arange(len(x)), assignment].argmax())
            sums[j], counts[j] = x[far], 1
            assignment[far], d[far] = j, 0.0
        centroids = sums / counts[:, None]
    inertia = float(distances(centroids).min(axis=1).mean())
    return centroids, {"inertia": inertia, "iterations": iteration}


def codebook_features(source, config, batches: int = CODEBOOK_BATCHES) -> np.ndarray:
    """Token features ``(N, bins)`` of view A of the first ``batches`` training batches of ``config``."""
    stream = source.batches(batch_size=config.batch_size, views=config.view_config(), seed=config.seed, rank=0, world=1, start=0)
    fpt = config.model_config().frames_per_token
    rows = []
    for batch, _ in zip(stream, range(batches)):
        rows.append(token_features(batch.views.a, fpt).reshape(-1, batch.views.a.shape[1]).numpy())
    return np.concatenate(rows)


def fit_codebook(source, config, batches: int = CODEBOOK_BATCHES) -> tuple[torch.Tensor, dict]:
    """Centroids ``(codebook_size, bins)`` fitted on the run's training batches, and a description."""
    model_config = config.model_config()
    features = codebook_features(source, config, batches)
    centroids, fit = kmeans(features, model_config.codebook_size, config.seed)
    info = {
        "features": FEATURES, "log_floor": LOG_FLOOR, "frames_per_token": model_config.frames_per_token,
        "codebook_size": model_config.codebook_size, "batches": batches, "vectors": int(len(features)),
        "seed": config.seed, "mt2_version": mt2.__version__, **fit,
    }
    return torch.from_numpy(centroids).float(), info


def save_codebook(path: str | os.PathLike, centroids: torch.Tensor, info: dict) -> None:
    """Write ``centroids`` and ``info`` to ``path`` (safetensors), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({"centroids": centroids.contiguous()}, tmp, metadata={"info": json.dumps(info)})
    tmp.replace(path)


def load_codebook(path: str | os.PathLike) -> tuple[torch.Tensor, dict]:
    """The centroids and description written by :func:`save_codebook`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        info = json.loads((handle.metadata() or {}).get("info", "{}"))
    return load_file(str(path))["centroids"], info


def run_codebook(path: str | os.PathLike, source, config) -> torch.Tensor:
    """The codebook of the run: read from ``path`` when it exists (a resumed run), else fitted and written."""
    path = Path(path)
    model_config = config.model_config()
    if path.exists():
        centroids, info = load_codebook(path)
        if info.get("frames_per_token") != model_config.frames_per_token or len(centroids) != model_config.codebook_size:
            raise ValueError(
                f"{path} was fitted for {info.get('codebook_size')} codes at {info.get('frames_per_token')} frames per token, "
                f"this run has {model_config.codebook_size} at {model_config.frames_per_token}: delete it to refit, or choose another --out"
            )
        log.info("codebook: reusing %s", path)
        return centroids
    centroids, info = fit_codebook(source, config)
    save_codebook(path, centroids, info)
    log.info("codebook: %d codes from %d vectors (inertia %.4f, %d iterations) -> %s",
             len(centroids), info["vectors"], info["inertia"], info["iterations"], path)
    return centroids
