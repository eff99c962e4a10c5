"""Feature extraction for the benchmark, and its on-disk cache.

An **extractor** turns one decoded clip into named arrays for a :class:`Request`
(a readout and a layer):

* :class:`EncoderExtractor` wraps an :class:`mt2.inference.Encoder` through its public API
  only: one ``embed`` per clip yields every readout (:meth:`EncoderExtractor.compute_all`):
  ``clip`` (D,) of each readout and layer and, for the readout ``frames`` of clips that need
  them, the frame tokens ``frames`` (F, D) and their ``timestamps`` (F,) in seconds; the
  readout ``zero-shot`` is ``encoder.key`` of the clip (the key path's own pass: bin shifts
  averaged, overlapping windows): ``tonic`` (-1: no key) and ``minor``.
* :class:`ExternalExtractor` wraps another model (``--encoder MODULE:CALLABLE`` or a HEAR
  module), readout ``default`` (:func:`load_external`).
* :class:`mt2.bench.baselines.DSPExtractor` computes the classical features.

**Cache.** One file per (system, readout, layer, clip list), holding every clip's arrays
and, in its metadata, the system's weights hash and the hash of the clip list (the paths
with their sizes and modification times, and which clips need frame tokens). A file whose
weights hash differs from the system's (the model was retrained or replaced) is
invalidated: recomputed and overwritten. The zero-shot key of an encoder is cached under
:func:`key_path_hash` instead: its weights with the key path's settings (bin shifts, passes,
the no-key rule) and the source of :mod:`mt2.inference`, so a changed key decision is measured
again. A changed clip list gets a file of its own.
Files are ``.npz`` with a JSON string; nothing is pickled.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from mt2.audio import AudioError, load_audio
from mt2.inference.windows import DEFAULT_BATCH_SIZE

#: Readout that asks an encoder for its zero-shot key instead of an embedding.
ZERO_SHOT = "zero-shot"
#: The ``tonic`` of a zero-shot entry whose input has no key (silence, noise).
NO_KEY_TONIC = -1
#: The readout of an :class:`mt2.inference.Encoder` whose entries carry the frame tokens.
FRAME_READOUT = "frames"
#: The single readout of an external encoder (it carries frames when the model gives them).
EXTERNAL_READOUT = "default"


@dataclass(frozen=True)
class Request:
    """What to extract: a readout at a layer (``layer`` is ignored by extractors without layers)."""

    readout: str
    layer: int = -1


@dataclass(frozen=True)
class Clip:
    """An audio file to extract, and whether frame tokens are needed for it."""

    path: Path
    frames: bool = False


class Extractor(Protocol):
    """What :func:`extract` needs from a feature source."""

    label: str
    weights_hash: str
    sample_rate: int

    def compute(self, audio: np.ndarray, request: Request, frames: bool) -> dict[str, np.ndarray]:
        """Named arrays for one clip decoded at :attr:`sample_rate`.

        An extractor that derives several requests from one pass over a clip also has
        ``compute_all(audio, requests, frames) -> {request: arrays}``; :func:`extract` then
        calls that once per clip instead. One whose requests depend on more than the weights
        has ``cache_hash(request) -> str``, the hash its cache files are kept under (default:
        :attr:`weights_hash`)."""


# ----------------------------------------------------------------------------- hashing


def _digest(parts: Iterable[bytes]) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(len(part).to_bytes(8, "little"))
        sha.update(part)
    return sha.hexdigest()


def state_hash(module: torch.nn.Module, *extra: object) -> str:
    """SHA-256 of a module's tensors (names, shapes, dtypes, values) and of ``extra`` (as JSON)."""

    def parts():
        for name, tensor in sorted(module.state_dict().items()):
            tensor = tensor.detach().cpu().contiguous()
            yield f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode()
            yield tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        yield json.dumps(extra, sort_keys=True, default=str).encode()

    return _digest(parts())


def source_hash(*objects: object) -> str:
    """SHA-256 of the source files defining ``objects`` (modules, classes, functions)."""
    return _digest(Path(inspect.getsourcefile(o)).read_bytes() for o in objects)


def encoder_hash(encoder) -> str:
    """What an :class:`mt2.inference.Encoder`'s embeddings depend on: its tensors (mode probe
    included), model config, input compression, window offset and calibration."""
    calibration = encoder.calibration.to_dict() if encoder.calibration is not None else None
    return state_hash(encoder, encoder.config.to_dict(), encoder.compression, encoder.offset, calibration)


def key_path_hash(encoder, weights_hash: str | None = None) -> str:
    """What ``encoder.key`` answers from: :func:`encoder_hash` (``weights_hash`` when the caller
    has it already), the key path's settings (bin shifts, passes, the no-key rule) and the source
    of every loaded :mod:`mt2.inference` module (the decision's code)."""
    settings = {k: getattr(encoder, k) for k in ("shifts", "passes", "silence_db", "min_tonality")}
    inference = [m for name, m in sorted(sys.modules.items()) if name.startswith("mt2.inference") and getattr(m, "__file__", None)]
    parts = (weights_hash or encoder_hash(encoder), json.dumps(settings, sort_keys=True), source_hash(*inference))
    return _digest(part.encode() for part in parts)


def clips_hash(clips: Sequence[Clip]) -> str:
    """SHA-256 of a clip list: paths, sizes, modification times and frame flags, in order."""

    def parts():
        for clip in clips:
            stat = clip.path.stat()
            yield f"{clip.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{int(clip.frames)}".encode()

    return _digest(parts())


# ----------------------------------------------------------------------------- storage


def pack(items: Sequence[dict[str, np.ndarray] | None]) -> dict[str, np.ndarray]:
    """Per-clip named arrays -> flat arrays: for each name, ``name`` (the clips' arrays
    concatenated along axis 0), ``name.index`` (which clips have it) and ``name.offsets``;
    ``failed`` lists the clips that are None."""
    packed = {"failed": np.array([i for i, item in enumerate(items) if item is None], dtype=np.int64)}
    names = sorted({name for item in items if item for name in item})
    for name in names:
        index = [i for i, item in enumerate(items) if item and name in item]
        arrays = [np.atleast_1d(items[i][name]) for i in index]
        packed[name] = np.concatenate(arrays)
        packed[f"{name}.index"] = np.array(index, dtype=np.int64)
        packed[f"{name}.offsets"] = np.cumsum([0] + [len(a) for a in arrays]).astype(np.int64)
    return packed


def unpack(packed: dict[str, np.ndarray], count: int) -> list[dict[str, np.ndarray] | None]:
    """Inverse of :func:`pack` for ``count`` clips."""
    items: list[dict | None] = [{} for _ in range(count)]
    for name in packed:
        if name == "failed" or "." in name:
            continue
        data, index, offsets = packed[name], packed[f"{name}.index"], packed[f"{name}.offsets"]
        for i, start, end in zip(index, offsets[:-1], offsets[1:]):
            items[i][name] = data[start:end]
    for i in packed["failed"]:
        items[i] = None
    return items


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60] or "system"


class FeatureCache:
    """Cached extractor outputs under ``root`` (no caching when ``root`` is None)."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = None if root is None else Path(root)

    def path(self, label: str, request: Request, clip_list_hash: str) -> Path:
        """File of a (system, readout, layer, clip list) entry."""
        system = f"{_slug(label)}-{hashlib.sha256(label.encode()).hexdigest()[:8]}"
        return self.root / system / f"{_slug(request.readout)}_L{request.layer}_{clip_list_hash[:16]}.npz"

    def load(self, label: str, weights_hash: str, request: Request, clip_list_hash: str, count: int):
        """The cached arrays of ``count`` clips, or None when absent or made with other weights."""
        if self.root is None:
            return None
        path = self.path(label, request, clip_list_hash)
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            if meta["weights_hash"] != weights_hash or meta["clips_hash"] != clip_list_hash:
                return None
            return unpack({name: stored[name] for name in stored.files if name != "meta"}, count)

    def save(self, label: str, weights_hash: str, request: Request, clip_list_hash: str, items: list) -> None:
        """Store per-clip arrays, replacing an entry made with other weights."""
        if self.root is None:
            return
        path = self.path(label, request, clip_list_hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"system": label, "weights_hash": weights_hash, "readout": request.readout, "layer": request.layer,
                "clips_hash": clip_list_hash, "clips": len(items)}
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **pack(items))
        tmp.replace(path)


def extract(
    extractor: Extractor, requests: Sequence[Request], clips: Sequence[Clip], cache: FeatureCache, progress: bool = True
) -> dict[Request, list[dict[str, np.ndarray] | None]]:
    """Per-clip arrays of every request, from the cache or computed (then cached).

    Each clip is decoded once for all the requests that are not cached (and goes through an
    extractor's ``compute_all`` once, when it has one). A clip that cannot
    be decoded is reported on stderr and comes back as None.
    """
    clip_list_hash = clips_hash(clips)
    cache_hash = getattr(extractor, "cache_hash", lambda request: extractor.weights_hash)
    results = {}
    for request in requests:
        cached = cache.load(extractor.label, cache_hash(request), request, clip_list_hash, len(clips))
        if cached is not None:
            results[request] = cached
    missing = [r for r in requests if r not in results]
    if not missing:
        return results
    computed: dict[Request, list] = {r: [] for r in missing}
    desc = f"{extractor.label}: " + ", ".join(f"{r.readout}@{r.layer}" for r in missing)
    for clip in tqdm(clips, desc=desc, unit="clip", disable=not progress or None, leave=False):
        try:
            audio = load_audio(clip.path, extractor.sample_rate)
        except AudioError as error:
            tqdm.write(f"skipped: {error}", file=sys.stderr)
            audio = None
        if audio is None:
            outputs = dict.fromkeys(missing)
        elif hasattr(extractor, "compute_all"):
            outputs = extractor.compute_all(audio, missing, clip.frames)
        else:
            outputs = {request: extractor.compute(audio, request, clip.frames) for request in missing}
        for request in missing:
            computed[request].append(outputs[request])
    for request, items in computed.items():
        cache.save(extractor.label, cache_hash(request), request, clip_list_hash, items)
        results[request] = items
    return results


# ----------------------------------------------------------------------------- extractors


class EncoderExtractor:
    """An :class:`mt2.inference.Encoder` used through ``embed`` and ``key`` only."""

    def __init__(self, label: str, encoder, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.label = label
        self.encoder = encoder
        self.batch_size = batch_size
        self.sample_rate = encoder.sample_rate
        self.weights_hash = encoder_hash(encoder)
        self.key_hash = key_path_hash(encoder, self.weights_hash)

    def cache_hash(self, request: Request) -> str:
        """The zero-shot key's cache follows the key path (:func:`key_path_hash`); embeddings the weights."""
        return self.key_hash if request.readout == ZERO_SHOT else self.weights_hash

    def compute(self, audio: np.ndarray, request: Request, frames: bool) -> dict[str, np.ndarray]:
        return self.compute_all(audio, [request], frames)[request]

    def compute_all(self, audio: np.ndarray, requests: Sequence[Request], frames: bool) -> dict[Request, dict[str, np.ndarray]]:
        """Every request from one ``embed`` of the clip (one forward pass per window); the
        zero-shot key from ``encoder.key`` (the key path's own pass)."""
        layers = sorted({r.layer for r in requests if r.readout != ZERO_SHOT}) or [-1]
        embedding = self.encoder.embed(audio, self.sample_rate, layer=layers[0], layers=layers, batch_size=self.batch_size)
        out = {}
        for request in requests:
            if request.readout == ZERO_SHOT:
                estimate = self.encoder.key(audio, self.sample_rate, batch_size=self.batch_size)
                out[request] = {"tonic": np.array([estimate.tonic if estimate.has_key else NO_KEY_TONIC]),
                                "minor": np.array([estimate.mode == "minor"])}
                continue
            out[request] = {"clip": embedding.readout(request.readout, request.layer).clip.astype(np.float32)}
            if frames and request.readout == FRAME_READOUT:
                out[request] |= {"frames": embedding.frames_at(request.layer).astype(np.float32),
                                 "timestamps": embedding.timestamps.astype(np.float64)}
        return out


class ExternalExtractor:
    """Another model, readout ``default``: an object with ``embed(audio, sr)`` or a HEAR module.

    ``embed`` may return an array (a clip vector ``(D,)``, or ``(F, D)`` frames averaged
    into one) or an object with ``clip`` and optionally ``frames`` and ``timestamps``
    (seconds), like :class:`mt2.inference.Embedding`. A HEAR module gives the scene
    embedding as the clip vector and the timestamp embeddings (milliseconds) as frames.
    """

    def __init__(self, label: str, model, weights_hash: str, hear_module=None) -> None:
        self.label = label
        self.model = model
        self.weights_hash = weights_hash
        self.hear = hear_module
        self.sample_rate = int(getattr(model, "sample_rate", 16000))

    def compute(self, audio: np.ndarray, request: Request, frames: bool) -> dict[str, np.ndarray]:
        if self.hear is not None:
            batch = torch.from_numpy(audio)[None]
            out = {"clip": _numpy(self.hear.get_scene_embeddings(batch, self.model))[0]}
            if frames:
                embeddings, stamps = self.hear.get_timestamp_embeddings(batch, self.model)
                out |= {"frames": _numpy(embeddings)[0], "timestamps": _numpy(stamps)[0].astype(np.float64) / 1000.0}
            return out
        result = self.model.embed(audio, self.sample_rate)
        if isinstance(result, (np.ndarray, torch.Tensor)):
            vector = _numpy(result)
            return {"clip": vector.mean(axis=0) if vector.ndim == 2 else vector}
        out = {"clip": _numpy(result.clip)}
        if frames and getattr(result, "frames", None) is not None and getattr(result, "timestamps", None) is not None:
            out |= {"frames": _numpy(result.frames), "timestamps": _numpy(result.timestamps).astype(np.float64)}
        return out


def _numpy(value) -> np.ndarray:
    """A numpy array from a tensor or array-like; floating point as float32."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    value = np.asarray(value)
    return value.astype(np.float32) if value.dtype.kind == "f" else value


def load_external(spec: str) -> ExternalExtractor:
    """``MODULE:CALLABLE`` (calling it must return an object with ``embed(audio, sr)``) or
    ``MODULE`` (a HEAR module: ``load_model``, ``get_scene_embeddings``,
    ``get_timestamp_embeddings``; ``MODULE:load_model`` works too).

    The weights hash is the returned model's tensors when it is a torch module, else the
    source file of ``MODULE``: edit the adapter to invalidate its cached features.

    Raises:
        ImportError, AttributeError, ValueError: the module, callable or API is missing.
    """
    module_name, _, attribute = spec.partition(":")
    module = importlib.import_module(module_name)
    hear = attribute in ("", "load_model") and all(
        hasattr(module, name) for name in ("load_model", "get_scene_embeddings", "get_timestamp_embeddings"))
    if hear:
        model = module.load_model()
    elif attribute:
        model = getattr(module, attribute)()
        if not hasattr(model, "embed"):
            raise ValueError(f"{spec}: the object it returns has no embed(audio, sr) method")
    else:
        raise ValueError(f"{spec}: not a HEAR module (load_model, get_scene_embeddings, get_timestamp_embeddings); use MODULE:CALLABLE")
    weights = state_hash(model, spec) if isinstance(model, torch.nn.Module) else source_hash(module)
    return ExternalExtractor(spec, model, weights, module if hear else None)
