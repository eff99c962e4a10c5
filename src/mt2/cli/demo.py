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
    from mt2.frontend import DEFAULT_OFFSET, SAMPLE_RATE, CQTFrontend, model_window
    from mt2.keys import fifths_distance, key_name, signature_name, signature_of, template_key_of_window
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

    frontend = CQTFrontend()
    hits = {"mt2 signature": 0, "template signature": 0, "mt2 within one fifth": 0, "mt2 key (MIREX weighted)": 0.0}
    import mir_eval

    start = time.perf_counter()
    print(f"\n{'clip':42s} {'label':10s} {'mt2':10s} {'conf':>5s}  template")
    for clip in clips:
        audio = load_audio(args.data / clip["path"], SAMPLE_RATE)
        estimate = encoder.key(audio, SAMPLE_RATE)
        with torch.inference_mode():
            window = model_window(frontend.magnitude(torch.from_numpy(audio)), DEFAULT_OFFSET, "linear")[0].numpy()
        tonic, mode, _ = template_key_of_window(window, DEFAULT_OFFSET)
        signature = signature_of(clip["tonic"], clip["mode"])
        hits["mt2 signature"] += estimate.signature == signature
        hits["template signature"] += signature_of(tonic, mode) == signature
        hits["mt2 within one fifth"] += fifths_distance(estimate.signature, signature) <= 1
        hits["mt2 key (MIREX weighted)"] += mir_eval.key.weighted_score(clip["key"], estimate.key)
        print(f"{Path(clip['path']).stem[:42]:42s} {clip['key']:10s} {estimate.key:10s} {estimate.confidence:5.2f}  {key_name(tonic, mode)}")
    seconds = time.perf_counter() - start
    print(f"\nkey estimation on {len(clips)} test clips of the small corpus ({seconds:.1f} s):")
    for name, value in hits.items():
        print(f"  {name:28s} {value / max(1, len(clips)):.3f}")
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
