"""``mt2 demo``: the main job on the embedded default (what ``make demo`` runs)."""
from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="build mt2-tiny, run a synthetic clip through frontend and model, print shapes and timings")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from mt2 import build_model
    from mt2.calibration import reference_audio
    from mt2.frontend import DEFAULT_OFFSET, CQTFrontend, model_window
    from mt2.model import VARIANTS, count_parameters

    torch.set_num_threads(args.threads)
    audio = torch.from_numpy(np.tile(reference_audio(0, "sawtooth"), 1)[: 4 * 16000])
    frontend = CQTFrontend()
    print(f"audio: {audio.shape[0] / 16000:.1f} s synthetic C-major cadence at 16 kHz")
    for preset in ("mt2-tiny", "mt2-mini"):
        for variant in VARIANTS:
            model = build_model(preset, variant).eval()
            print(f"{preset:9s} {variant:12s} {count_parameters(model) / 1e6:6.3f} M parameters, layout {model.config.layout}")
    model = build_model("mt2-tiny", "mt2").eval()
    with torch.inference_mode():
        start = time.perf_counter()
        window = model_window(frontend.magnitude(audio), DEFAULT_OFFSET)
        frontend_s = time.perf_counter() - start
        model(window)
        start = time.perf_counter()
        out = model(window)
        model_s = time.perf_counter() - start
    print(f"CQT window {tuple(window.shape)}  ({frontend_s * 1000:.0f} ms)")
    print(f"tokens {tuple(out.tokens.shape)}  key logits {tuple(out.key_logits.shape)}  projection {tuple(out.projection.shape)}")
    print(f"mt2-tiny forward on 4 s: {model_s * 1000:.0f} ms on {args.threads} threads (untrained weights)")
    return 0
