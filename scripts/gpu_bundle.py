"""Sample a training run's data into a CQT bundle (:mod:`mt2.data.bundle`) that travels to a GPU
machine with the working tree (``scripts/gpu_train.sh prepare`` calls it).

    scripts/gpu_bundle.py OUT.safetensors --run runs/scaling/s0 [--cache-dir runs/scaling/cache] [--mib 12] [--seed 0]
    scripts/gpu_bundle.py OUT.safetensors --noise [--mib 1]    # noise magnitudes: the dry run's plumbing check

``--run``: the run's ``config.yaml`` names its data (the record's ``data``: a rendered corpus) and its
real recordings (``real_data``, ``real_share``). Both are opened as training opens them
(:func:`mt2.data.pretrain.open_source`, through the run's CQT cache: nothing is computed when the
cache is complete) and sampled with ``numpy.random.default_rng(seed)``: ``real_share`` of the
``--mib`` budget's frames are real crops of :data:`~mt2.data.pretrain.CROP_FRAMES` frames drawn as
training draws them (:func:`~mt2.data.pretrain.draw_crops`: tracks by capped length, start
uniform), the rest whole rendered training clips, in random order without replacement, while they
fit. ``--noise``: the same shapes filled with gamma noise (no data needed).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mt2.data.bundle import BYTES_PER_FRAME, write_bundle
from mt2.data.pretrain import CROP_FRAMES, CachedSource, MixedSource, RealSource, draw_crops, open_source
from mt2.frontend import N_BINS

MIB = 1 << 20
#: Frames of a noise "rendered clip" (the rendered corpus's 12-s clips).
NOISE_CLIP_FRAMES = 376
#: The real share of a noise bundle (the scaling campaign's).
NOISE_REAL_SHARE = 0.25


def sample_run(run: Path, cache_dir: Path | None, budget: int, seed: int) -> tuple[dict, dict]:
    """``(parts, source record)`` of at most ``budget`` bytes sampled from the data of ``run`` (module docstring).

    Raises:
        ValueError: the run trains on shards (decoded on the fly: no cache to sample).
    """
    from mt2.training.config import read_saved_config

    config, record = read_saved_config(run / "config.yaml")
    source = open_source(record["data"], cache_dir or run / "cache", config.real_data, config.real_share)
    if isinstance(source, MixedSource):
        rendered, real, share = source.base, source.real, config.real_share
    elif isinstance(source, RealSource):
        rendered, real, share = None, source, 1.0
    elif isinstance(source, CachedSource):
        rendered, real, share = source, None, 0.0
    else:
        raise ValueError(f"{run}: its data ({record['data']}) are {source.kind}; a bundle samples a folder, manifest or real corpus")
    rng = np.random.default_rng(seed)
    frames = budget // BYTES_PER_FRAME
    parts: dict[str, dict[str, np.ndarray]] = {"rendered": {}, "real": {}}
    if real is not None:
        crops = draw_crops(real.prepare(), real.train_keys(), int(frames * share) // CROP_FRAMES, rng)
        parts["real"] = {f"real/{i:05d}": crop for i, crop in enumerate(crops)}
    room = frames - sum(c.shape[1] for c in parts["real"].values())
    if rendered is not None:
        cache, keys = rendered.prepare(), rendered.train_keys()
        for i in rng.permutation(len(keys)):
            clip = cache[keys[i]]
            if clip.shape[1] <= room:
                parts["rendered"][keys[i]] = clip
                room -= clip.shape[1]
    return parts, {"run": str(run), "data": record["data"], "data_hash": record.get("data_hash"), "real_data": config.real_data,
                   "real_share": config.real_share, "seed": seed, "sampled_from": source.describe()}


def noise_parts(budget: int, seed: int) -> tuple[dict, dict]:
    """Gamma-noise magnitudes in a bundle's shapes: a quarter of the frames real crops, the rest rendered clips."""
    rng = np.random.default_rng(seed)
    frames = budget // BYTES_PER_FRAME
    real = max(1, int(frames * NOISE_REAL_SHARE) // CROP_FRAMES)
    rendered = max(1, (frames - real * CROP_FRAMES) // NOISE_CLIP_FRAMES)

    def noise(length: int) -> np.ndarray:
        return rng.gamma(1.0, 0.01, size=(N_BINS, length)).astype(np.float32)

    parts = {"rendered": {f"noise/{i:05d}": noise(NOISE_CLIP_FRAMES) for i in range(rendered)},
             "real": {f"real/{i:05d}": noise(CROP_FRAMES) for i in range(real)}}
    return parts, {"noise": True, "seed": seed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the bundle to write (.safetensors)")
    parser.add_argument("--run", type=Path, help="the training run whose data are sampled (its config.yaml)")
    parser.add_argument("--cache-dir", type=Path, help="the run's CQT cache (default: RUN/cache)")
    parser.add_argument("--noise", action="store_true", help="gamma noise instead of a run's data (the dry run)")
    parser.add_argument("--mib", type=float, default=12.0, help="size budget in MiB (default: 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default: 0)")
    args = parser.parse_args(argv)
    if args.noise == (args.run is not None):
        parser.error("give --run RUN or --noise")
    if args.out.suffix != ".safetensors":
        parser.error(f"{args.out}: a bundle is a .safetensors file")
    budget = int(args.mib * MIB)
    try:
        parts, source = noise_parts(budget, args.seed) if args.noise else sample_run(args.run, args.cache_dir, budget, args.seed)
        size = write_bundle(args.out, parts, source)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    frames = {name: sum(v.shape[1] for v in items.values()) for name, items in parts.items()}
    print(f"{args.out}: {size / MIB:.1f} MiB, {len(parts['rendered'])} rendered clips ({frames['rendered']} frames), "
          f"{len(parts['real'])} real crops ({frames['real']} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
