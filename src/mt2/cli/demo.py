"""``mt2 demo``: the main job on the embedded default (what ``make demo`` runs).

Renders the ``small`` corpus (once), loads the shipped ``mt2`` model, estimates the key of
every test clip from the equivariant token next to the Krumhansl template on the same
audio, embeds one clip, and prints the results and timings.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="render the small corpus, estimate keys with the shipped mt2 model, embed a clip",
        description="Render the small embedded corpus into --data (skipped when it is there), estimate the key "
        "of its test clips with the shipped model next to a Krumhansl template, and embed one clip.",
    )
    parser.add_argument("--data", type=Path, default=Path("data/small"), help="corpus folder (rendered if missing)")
    parser.add_argument("--model", default="mt2", help="shipped model name or exported folder")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    import mt2
    from mt2.audio import load_audio
    from mt2.corpus import read_manifest, render_corpus
    from mt2.frontend import SAMPLE_RATE
    from mt2.inference import Encoder
    from mt2.keys import chroma_from_window, key_name, key_scores, signature_name, template_key
    from mt2.model import count_parameters

    torch.set_num_threads(args.threads)
    manifest_path = args.data / "manifest.jsonl"
    if not manifest_path.exists():
        start = time.perf_counter()
        print(f"rendering the small corpus into {args.data} ...")
        render_corpus(args.data, size="small", seed=7)
        print(f"  rendered in {time.perf_counter() - start:.0f} s")
    clips = [c for c in read_manifest(manifest_path) if c["split"] == "test" and c.get("key")]
    encoder = mt2.load(args.model)
    model = encoder.model
    print(f"model {args.model!r}: {model.config.layout} layout, {count_parameters(model) / 1e6:.2f} M parameters, "
          f"class tokens {model.config.roles}, trained steps {encoder.training_info.get('step')}")

    # the template reads the same windows as the model, with linear magnitudes (the stronger baseline)
    linear = Encoder(model, compression="linear", offset=encoder.offset)
    references, estimates, templates = [], [], []
    start = time.perf_counter()
    print(f"\n{'clip':42s} {'label':10s} {'mt2':10s} {'conf':>5s}  template")
    for clip in clips:
        audio = load_audio(args.data / clip["path"], SAMPLE_RATE)
        estimate = encoder.key(audio, SAMPLE_RATE)
        windows = linear.model_inputs(audio, SAMPLE_RATE)  # (W, 84, T): every window of the clip
        tonic, mode, _ = template_key(chroma_from_window(windows.permute(1, 0, 2).flatten(1).numpy(), linear.offset))
        references.append(clip["key"])
        estimates.append(estimate.label)
        templates.append(key_name(tonic, mode))
        print(f"{Path(clip['path']).stem[:42]:42s} {clip['key']:10s} {estimate.label:10s} {estimate.confidence:5.2f}  {templates[-1]}")
    seconds = time.perf_counter() - start
    ours, template = key_scores(references, estimates), key_scores(references, templates)
    hits = {"mt2 signature": ours["signature"], "template signature": template["signature"],
            "mt2 within one fifth": ours["within_fifth"], "mt2 key (MIREX weighted)": ours["weighted"]}
    print(f"\nkey estimation on {len(clips)} test clips of the small corpus ({seconds:.1f} s):")
    for name, value in hits.items():
        print(f"  {name:28s} {value:.3f}")
    print(f"  (signature = key up to its relative; e.g. {signature_name(0)})")

    audio = load_audio(args.data / clips[0]["path"], SAMPLE_RATE)
    start = time.perf_counter()
    embedding = encoder.embed(audio, SAMPLE_RATE)
    seconds = time.perf_counter() - start
    print(f"\nembed {len(audio) / SAMPLE_RATE:.0f} s of audio: clip {tuple(embedding.clip.shape)}, windows "
          f"{tuple(embedding.windows.shape)}, frames {tuple(embedding.frames.shape)} in {seconds * 1000:.0f} ms "
          f"({len(audio) / SAMPLE_RATE / seconds:.0f}x realtime, frontend included)")
    print(f"finite: {bool(np.isfinite(embedding.clip).all())}")
    return 0
