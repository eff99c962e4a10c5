"""Measurements of docs/key-inference.md (issue 30, issue 29 item 3): the key path's raw outputs
cached once per clip, every variant (bin shifts, window weights, mode rule, calibration)
decided from the cache, so that nothing is computed twice.

The cache (``runs/key-inference/cache/<set>.pkl``) holds, per clip and per embedding pass
(the timeline's passes start ``p / passes`` of a window later), per window: its valid length,
RMS, time-averaged model input at the encoder's offset, and the equivariant head's softmax
and last-block equivariant token of the window **cut at every offset of the range** (0..15,
:data:`mt2.frontend.MAX_OFFSET`), unrolled. The group average over a shift set ``S`` is then
``mean_{s in S} roll(x[offset + s], s)``, as :meth:`mt2.inference.Encoder` computes it
(checked against ``encoder.key`` by ``check``).

    python scripts/key_inference.py cache SET [...]     # sets: see SETS
    python scripts/key_inference.py check               # cache = encoder path
"""
from __future__ import annotations

import hashlib
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import mt2
from mt2.audio import load_audio
from mt2.frontend import MAX_OFFSET, SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "runs" / "key-inference" / "cache"
#: Every cut of the range, relative to the encoder's offset.
ALL = None


def real_music():
    """The real-music measures' module, wherever the evaluation layer keeps it."""
    try:
        from mt2.evaluation import real_music
    except ImportError:  # before the evaluation layer (issue 29)
        from mt2.training import real_evaluation as real_music
    return real_music


def raw_outputs(encoder, audio16: np.ndarray, passes: int = 1) -> list[dict]:
    """Per pass: ``start`` (s), ``lengths`` (W,) s, ``rms`` (W,), ``spectrum`` (W, 84) at the
    encoder's offset, ``probs`` (W, 16, 12) and ``tokens`` (W, 16, D) of each window cut at
    absolute offsets 0..15 (not rolled back)."""
    shifts = tuple(range(-encoder.offset, MAX_OFFSET - encoder.offset + 1))
    model, k = encoder.model, encoder.model.num_prefix_tokens
    role = model.role_index("equivariant")
    out = []
    for p in range(passes):
        begin = p * encoder.window_samples // passes
        if p and begin >= len(audio16):
            break
        lengths, rms, spectrum, probs, tokens = [], [], [], [], []
        with torch.inference_mode():
            for batch in encoder.model_input_batches([audio16[begin:]], 16, shifts=shifts):
                b = len(batch.windows)
                (last,) = model.forward_intermediates(batch.shifted.flatten(0, 1), [model.config.depth - 1])
                token = last[:, role].unflatten(0, (len(shifts), b)).transpose(0, 1)  # (B, 16, D)
                probs.append(torch.softmax(model.equivariant_head(token).float(), -1).numpy())
                tokens.append(token.float().numpy())
                lengths.append(batch.valid_frames)
                rms.append(batch.rms)
                x = batch.windows.float().numpy()
                spectrum += [w[:, :n].mean(axis=1) for w, n in zip(x, batch.valid_frames)]
        frames = np.concatenate(lengths)
        out.append({"start": begin / SAMPLE_RATE, "lengths": frames * 512 / SAMPLE_RATE, "rms": np.concatenate(rms),
                    "spectrum": np.stack(spectrum), "probs": np.concatenate(probs), "tokens": np.concatenate(tokens).astype(np.float32)})
    return out


def group_average(encoder, raw: dict, shifts) -> tuple[np.ndarray, np.ndarray]:
    """``(W, 12)`` profiles and ``(W, D)`` tokens of one pass averaged over ``shifts`` (relative to the offset)."""
    o = encoder.offset
    probs = np.mean([np.roll(raw["probs"][:, o + s], s, axis=-1) for s in shifts], axis=0)
    layout = encoder.model.layout
    tokens = np.mean([layout.roll(torch.from_numpy(raw["tokens"][:, o + s]), s).numpy() for s in shifts], axis=0)
    return probs, tokens


def load_cache(name: str) -> dict:
    path = CACHE / f"{name}.pkl"
    return pickle.loads(path.read_bytes()) if path.exists() else {}


def save_cache(name: str, data: dict) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f".{name}.tmp"
    tmp.write_bytes(pickle.dumps(data, protocol=4))
    tmp.replace(CACHE / f"{name}.pkl")


def fill(name: str, items: list[tuple[str, Path, dict]], passes: int, encoder=None) -> dict:
    """Cache raw outputs of ``items`` ``(id, audio path, info)``, the missing ones only."""
    data = load_cache(name)
    missing = [i for i in items if i[0] not in data]
    if missing:
        encoder = encoder or mt2.load("mt2")
        began = time.perf_counter()
        for n, (clip_id, path, info) in enumerate(missing):
            audio = sf.read(path, dtype="float32")[0] if str(path).endswith(".flac") else load_audio(path, SAMPLE_RATE)
            if audio.ndim > 1:
                audio = audio.mean(axis=1)
            data[clip_id] = {"info": info, "passes": raw_outputs(encoder, audio, passes), "duration": len(audio) / SAMPLE_RATE}
            if (n + 1) % 50 == 0:
                save_cache(name, data)
                print(f"{name}: {n + 1}/{len(missing)} ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
        save_cache(name, data)
    return data


# -- sets --------------------------------------------------------------------------------------
def rendered_items(folder: str, split: str | None = None) -> list[tuple[str, Path, dict]]:
    from mt2.corpus import read_manifest

    folder = ROOT / folder
    rows = [r for r in read_manifest(folder) if (split is None or r["split"] == split) and (r.get("key") or r.get("key_segments"))]
    return [(r["clip_id"], folder / r["path"], {k: r.get(k) for k in ("key", "key_segments", "split", "duration")}) for r in rows]


def first_nine() -> set[str]:
    """The nine soundtracks of the first real-music list (issue 20): their test tracks are the
    real test split of issue 30 (27 tracks)."""
    from mt2.corpus.real import FIRST_LIST_MIN_SECONDS, PACKAGES

    return {p.name for p in PACKAGES if p.min_seconds == FIRST_LIST_MIN_SECONDS}


def real_rows(split: str = "test", nine: bool = True):
    """The real-music module, the corpus folder and the rows of ``split`` (of the first nine
    soundtracks when ``nine``)."""
    rm = real_music()
    root, rows = rm.read_manifest(ROOT / "data" / "real")
    return rm, root, [r for r in rows if r["split"] == split and (not nine or r["soundtrack"] in first_nine())]


EXCERPTS = ROOT / "runs" / "key-inference" / "excerpts"


def real_test_items() -> list[tuple[str, Path, dict]]:
    """The real test split's 10-s excerpts (2 per track) and their resampled copies (-5..+6 semitones)."""
    rm, root, rows = real_rows()
    excerpts = rm.make_excerpts(root, rows, EXCERPTS, progress=False)
    return [(e.path.name, e.path, {"track": e.track, "index": e.index, "shift": e.shift, "soundtrack": e.soundtrack}) for e in excerpts]


def real_reference_items(split: str = "test") -> list[tuple[str, Path, dict]]:
    """The key reference's 30-s excerpts (3 per track) of the first nine soundtracks' ``split``."""
    rm, root, rows = real_rows(split)
    excerpts = rm.reference_excerpts(root, rows, EXCERPTS)
    return [(e.path.name, e.path, {"track": e.track, "split": e.split, "soundtrack": e.soundtrack}) for e in excerpts]


def real_train_items(shifts=(-3, -1, 2, 4)) -> list[tuple[str, Path, dict]]:
    """Unlabelled training material: one 10-s excerpt of every real train track (all soundtracks
    but the held-out one), with copies resampled by ``shifts`` semitones (made here: the corpus
    shifts only its test excerpts). No label of any kind."""
    rm, root, train = real_rows("train", nine=False)
    counts = {"train": 1}
    excerpts = rm.make_excerpts(root, train, EXCERPTS, progress=False, counts=counts)
    folder = ROOT / "runs" / "key-inference" / "real-train-shifted"
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    by_id = {r["track_id"]: r for r in train}
    for e in excerpts:
        items.append((e.path.name, e.path, {"track": e.track, "index": e.index, "shift": 0, "soundtrack": e.soundtrack}))
        row = by_id[e.track]
        count = counts["train"]
        span = rm.EXCERPT_SECONDS  # make_excerpts' span for a train excerpt
        start = max(0.0, row["duration"] - span) * (e.index + 1) / (count + 1)
        for n in shifts:
            path = folder / f"{e.path.stem}_s{n:+d}.flac"
            if not path.exists():
                from mt2.audio import load_segment

                audio = rm.shift_by_resampling(load_segment(root / row["path"], start, rm.EXCERPT_SECONDS * 2 ** (n / 12), SAMPLE_RATE), n)
                sf.write(path, np.clip(audio, -1, 1), SAMPLE_RATE, subtype="PCM_16")
            items.append((path.name, path, {"track": e.track, "index": e.index, "shift": n, "soundtrack": e.soundtrack}))
    return items


KEY_SETS = [f"data/keys-{s}{f}" for s in (2026, 2027, 2028) for f in ("", "-merlin")]
SETS = {
    "medium-test": (lambda: rendered_items("data/medium", "test"), 1),
    "medium-test4": (lambda: rendered_items("data/medium", "test"), 4),
    "medium-valid": (lambda: rendered_items("data/medium", "valid"), 1),
    "medium-train": (lambda: rendered_items("data/medium", "train"), 1),
    "keys": (lambda: [item for folder in KEY_SETS for item in [(f"{Path(folder).name}/{i}", p, d) for i, p, d in rendered_items(folder)]], 4),
    "modulations": (lambda: rendered_items("data/modulations"), 4),
    "modulations-valid": (lambda: rendered_items("data/modulations-valid"), 4),
    "real-test": (real_test_items, 1),
    "real-test2": (real_test_items, 2),
    "real-test4": (real_test_items, 4),
    "real-reference": (lambda: real_reference_items("test"), 4),
    "real-reference-valid": (lambda: real_reference_items("valid"), 1),
    "real-train": (real_train_items, 1),
}


def cached(name: str) -> dict:
    """The cache of set ``name``, filled where missing."""
    make, passes = SETS[name]
    return fill(name, make(), passes)


def check(name: str = "medium-test", count: int = 8) -> None:
    """The cached raw outputs give ``encoder.key``'s statistics (one pass, shifts (0,) and (-2..2))."""
    from mt2.inference.key_decision import key_statistics

    data = cached(name)
    encoder = mt2.load("mt2")
    for clip_id in list(data)[:count]:
        raw = data[clip_id]["passes"][0]
        path = dict((i, p) for i, p, _ in SETS[name][0]())[clip_id]
        audio = sf.read(path, dtype="float32")[0]
        for shifts in ((0,), (-2, -1, 0, 1, 2)):
            encoder.shifts = shifts
            direct = encoder.key_statistics(audio, SAMPLE_RATE)
            probs, tokens = group_average(encoder, raw, shifts)
            stats = key_statistics(probs, tokens, raw["spectrum"], raw["rms"], raw["lengths"], encoder.offset)
            assert np.allclose(direct.bin_probabilities, stats.bin_probabilities, atol=1e-5), (clip_id, shifts)
            assert np.allclose(direct.token, stats.token, atol=1e-4), (clip_id, shifts)
    print(f"check: the cache of {name} gives encoder.key_statistics on {count} clips")


# -- outside estimators (measuring only: nothing is fitted to their answers) ------------------------
def outside_keys(name: str, system: str) -> dict[str, str]:
    """``system``'s key (``essentia`` or ``madmom``) of every clip of set ``name``, cached in
    ``runs/key-inference/cache/outside-<system>-<name>.json``; the audio resampled to 44.1 kHz."""
    import json

    import soxr

    path = CACHE / f"outside-{system}-{name}.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    missing = [i for i in SETS[name][0]() if i[0] not in known]
    if missing:
        rm = real_music()
        if system == "essentia":
            estimate = rm.essentia_key_estimator()[0]
        elif hasattr(rm, "madmom_key_estimator"):
            estimate = rm.madmom_key_estimator()[0]
        else:  # before the evaluation layer (issue 29)
            from mt2.bench.real import MadmomKey
            from mt2.keys import MODES, key_name

            madmom = MadmomKey()

            def estimate(audio):
                entry = madmom.compute(audio, None, False)
                return key_name(int(entry["tonic"][0]), MODES[int(entry["minor"][0])])
        for n, (clip_id, clip_path, _) in enumerate(missing):
            audio = sf.read(clip_path, dtype="float32")[0]
            known[clip_id] = estimate(soxr.resample(audio, SAMPLE_RATE, rm.REFERENCE_RATE))
            if (n + 1) % 50 == 0 or n + 1 == len(missing):
                CACHE.mkdir(parents=True, exist_ok=True)
                path.with_suffix(".tmp").write_text(json.dumps(known, sort_keys=True))
                path.with_suffix(".tmp").replace(path)
    return known


# -- diagnosis: where a resampled copy and the original cut -n bins higher part ----------------
def _window_magnitudes(encoder, audio16: np.ndarray):
    """``(raw CQT magnitudes (W, 99, frames), valid frames (W,))`` of the encoder's windows."""
    from mt2.inference.windows import cut_windows

    mags, valid = [], []
    for chunk, samples in cut_windows([audio16], encoder.window_samples, 16):
        with torch.inference_mode():
            mags.append(encoder.frontend.magnitude(torch.from_numpy(chunk))[..., : encoder.window_frames])
        valid.append(-(-samples // 512))
    return torch.cat(mags), np.concatenate(valid)


def _profiles(encoder, windows: torch.Tensor) -> np.ndarray:
    """``(W, 12)`` head softmax of model inputs ``(W, 84, frames)``."""
    with torch.inference_mode():
        return torch.softmax(encoder.model(windows).key_logits.float(), -1).numpy()


def _clip(profiles: np.ndarray, valid: np.ndarray, weighting: str = "length") -> np.ndarray:
    """Clip profile: windows averaged by valid length (``mt2 key``), plainly (the study), or
    without the padded last window (``full``)."""
    if weighting == "plain":
        w = np.ones(len(valid))
    elif weighting == "full":
        w = (valid == valid.max()).astype(float) if len(valid) > 1 else np.ones(1)
    else:
        w = valid.astype(float)
    return (w / w.sum()) @ profiles


def diagnosis_profiles(encoder, source: np.ndarray, copy: np.ndarray, n: int, shifts=(-2, -1, 0, 1, 2)) -> dict:
    """Clip profiles (output-bin order) of one pair: ``source`` the original audio that the copy
    was resampled from (16 kHz), ``copy`` that audio moved ``n`` semitones up by resampling.
    Every profile is rolled into the original's frame (``roll(., -n)`` for the copy's)."""
    from mt2.frontend import compress, crop

    o, comp = encoder.offset, encoder.compression
    mag, valid = _window_magnitudes(encoder, source)
    cmag, cvalid = _window_magnitudes(encoder, copy)
    base = compress(crop(mag, o), comp)
    out = {"original": _profiles(encoder, base), "valid": valid, "copy_valid": cvalid}
    # layers: the original window rolled circularly by n bins (content n semitones up, wrapped)
    out["roll"] = np.roll(_profiles(encoder, torch.roll(base, n, dims=1)), -n, axis=1)
    # frontend: the original cut n bins lower (content n semitones up), normalised on its own ...
    out["cut"] = np.roll(_profiles(encoder, compress(crop(mag, o - n), comp)), -n, axis=1)
    # ... and divided by the original window's scale instead of its own (the range edges alone)
    if comp != "sqrt":
        raise ValueError(f"the diagnosis splits the sqrt compression's normalisation; this encoder compresses with {comp!r}")
    scale = crop(mag, o).clamp_min(0).sqrt().mean(dim=(-2, -1), keepdim=True).clamp_min(1e-8)
    out["cut_unnormalised"] = np.roll(_profiles(encoder, crop(mag, o - n).clamp_min(0).sqrt() / scale), -n, axis=1)
    # the resampled copy at the encoder's offset
    out["copy"] = np.roll(_profiles(encoder, compress(crop(cmag, o), comp)), -n, axis=1)
    # group averages over shifts: the original and the copy
    def averaged(m):
        return np.mean([np.roll(_profiles(encoder, compress(crop(m, o + s), comp)), s, axis=1) for s in shifts], axis=0)

    out["original_avg"] = averaged(mag)
    out["copy_avg"] = np.roll(averaged(cmag), -n, axis=1)
    # time: the whole clip's CQT cut into the original's windows (no window-edge effect), and the
    # copy's whole CQT read at the original's frame times (copy time = original time / 2^(n/12))
    whole = encoder.frontend.magnitude(torch.from_numpy(np.ascontiguousarray(source)))[0]
    cwhole = encoder.frontend.magnitude(torch.from_numpy(np.ascontiguousarray(copy)))[0]
    frames = whole.shape[-1]
    at = torch.arange(frames, dtype=torch.float64) / 2 ** (n / 12)
    low = at.floor().long().clamp(max=cwhole.shape[-1] - 1)
    high = (low + 1).clamp(max=cwhole.shape[-1] - 1)
    frac = (at - low).float()
    aligned = cwhole[:, low] * (1 - frac) + cwhole[:, high] * frac

    def windows_of(m):
        count = len(valid)
        padded = torch.zeros(m.shape[0], count * encoder.window_frames)
        used = min(m.shape[-1], padded.shape[-1])
        padded[:, :used] = m[:, :used]
        for w, v in enumerate(valid):  # the original's padding: nothing after its valid frames
            padded[:, w * encoder.window_frames + int(v):(w + 1) * encoder.window_frames] = 0
        return padded.unflatten(1, (count, encoder.window_frames)).transpose(0, 1)

    wmag, amag = windows_of(whole), windows_of(aligned)
    out["whole"] = _profiles(encoder, compress(crop(wmag, o), comp))
    out["cut_whole"] = np.roll(_profiles(encoder, compress(crop(wmag, o - n), comp)), -n, axis=1)
    out["copy_aligned"] = np.roll(_profiles(encoder, compress(crop(amag, o), comp)), -n, axis=1)
    # the CQT itself: time-averaged 84-bin spectra (unit mean), the copy moved back by n bins
    a = crop(mag, o - n).mean(dim=(0, 2)).numpy()
    b = crop(cmag, o).mean(dim=(0, 2)).numpy()
    out["spectrum_error"] = float(np.abs(a / a.mean() - b / b.mean()).mean() / 2)
    return out


def real_pairs(limit: int | None = None):
    """``(id, n, source, copy)`` of the real test split: each 10-s test excerpt's source span
    (``10 x 2^(n/12)`` s of the track) and its cached resampled copy."""
    rm, root, rows = real_rows()
    by_id = {r["track_id"]: r for r in rows}
    from mt2.audio import load_segment

    items = real_test_items()
    for clip_id, path, info in items[:limit]:
        n = info["shift"]
        if n == 0:
            continue
        row = by_id[info["track"]]
        count = rm.EXCERPTS["test"]
        span = rm.EXCERPT_SECONDS * 2 ** (max(rm.SHIFTS) / 12)
        start = max(0.0, row["duration"] - span) * (info["index"] + 1) / (count + 1)
        source = load_segment(root / row["path"], start, rm.EXCERPT_SECONDS * 2 ** (n / 12), SAMPLE_RATE)
        yield clip_id, n, source, sf.read(path, dtype="float32")[0]


def rendered_pairs(folder: str = "data/medium", split: str = "test", seconds: float = 8.0, shifts=(-4, -2, -1, 1, 3, 5)):
    """``(id, n, source, copy)`` of rendered clips: the first ``seconds x 2^(n/12)`` s and its copy
    resampled by ``n`` semitones (as the real-music corpus makes its copies)."""
    rm = real_music()
    for clip_id, path, info in rendered_items(folder, split):
        audio = load_audio(path, SAMPLE_RATE)
        for n in shifts:
            source = audio[: int(seconds * 2 ** (n / 12) * SAMPLE_RATE)]
            yield f"{clip_id}_s{n:+d}", n, source, rm.shift_by_resampling(source, n)


def diagnose(name: str, pairs) -> dict:
    """The diagnosis profiles of every pair, cached in ``runs/key-inference/cache/diagnosis-<name>.pkl``."""
    data = load_cache(f"diagnosis-{name}")
    encoder = mt2.load("mt2")
    fresh = 0
    for clip_id, n, source, copy in pairs:
        if clip_id in data:
            continue
        data[clip_id] = {"n": n, **diagnosis_profiles(encoder, source, copy, n)}
        fresh += 1
        if fresh % 100 == 0:
            save_cache(f"diagnosis-{name}", data)
    save_cache(f"diagnosis-{name}", data)
    return data


if __name__ == "__main__":
    torch.set_num_threads(1)
    command, *names = sys.argv[1:]
    if command == "cache":
        for n in names:
            cached(n)
            print(f"{n}: {len(load_cache(n))} clips cached")
    elif command == "check":
        check(*names)
    elif command == "outside":
        system, *sets = names
        for n in sets:
            print(f"{system} {n}: {len(outside_keys(n, system))} keys")
    elif command == "diagnose":
        for n in names:
            diagnose(n, real_pairs() if n == "real" else rendered_pairs())
    else:
        raise SystemExit(f"unknown command {command!r}: cache SET... | check [SET]")
