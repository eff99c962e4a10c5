"""The fast CQT backend against nnAudio: agreement on what the model sees, and speed.

Both backends of :class:`mt2.frontend.CQTFrontend` transform the same windows as the
encoder cuts them (non-overlapping 126-frame windows of 16 kHz audio); each window is then
turned into the model's input by :func:`mt2.frontend.model_window` (84 bins from the
inference offset, sqrt compression, divided by its mean). Errors are therefore in units of
the window's mean value: ``max_abs`` and ``mean_abs`` are the largest and the mean
absolute difference, ``max_rel`` the largest relative difference over the values above 1%
of the mean (smaller values are silence and the skirts of the filters).

Neither backend is exact. nnAudio's float32 convolutions leave a rounding floor about 1e-7
below the loudest component in every bin; the square root lifts it, and dividing by the
window mean lifts it again when the window is mostly empty (a pure high tone). The fast
backend decimates in float64 and is closer to the exact transform. So each row also gives
both backends' distance to a float64 evaluation of nnAudio's transform
(``nnaudio_vs_exact``, ``fast_vs_exact``), and the tolerance has two parts: the fast
backend must be no farther from the exact transform than nnAudio's own float32 output, and
within :data:`TOLERANCE_MAX_ABS` and :data:`TOLERANCE_MEAN_ABS` of nnAudio (bounds set by
nnAudio's own error on a pure C7 tone, the hardest signal measured; on music the
difference is far smaller, see ``docs/perf/perf.md``).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mt2.frontend import DEFAULT_OFFSET, HOP_LENGTH, WINDOW_FRAMES, WINDOW_SECONDS, CQTFrontend, model_window
from mt2.inference.windows import DEFAULT_BATCH_SIZE, cut_windows
from mt2.perf.measure import best_times

#: Largest differences allowed between the backends' model windows (window mean = 1).
TOLERANCE_MAX_ABS = 0.06
TOLERANCE_MEAN_ABS = 5e-3
WINDOW_SAMPLES = WINDOW_FRAMES * HOP_LENGTH
SIGNIFICANT = 0.01


def model_windows(magnitude: Callable[[torch.Tensor], torch.Tensor], audio: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """The model inputs ``(W, 84, 126)`` of ``audio`` (16 kHz) with CQT ``magnitude``, as the encoder cuts them."""
    batches = []
    with torch.inference_mode():
        for windows, _ in cut_windows([audio], WINDOW_SAMPLES, batch_size):
            spectrum = magnitude(torch.from_numpy(windows)).float()
            batches.append(model_window(spectrum[..., :WINDOW_FRAMES], DEFAULT_OFFSET))
    return torch.cat(batches)


def window_error(reference: torch.Tensor, candidate: torch.Tensor) -> dict:
    """``max_abs``, ``mean_abs`` and ``max_rel`` of ``candidate`` against ``reference`` (module docstring)."""
    diff = (candidate - reference).abs()
    significant = reference > SIGNIFICANT
    relative = diff[significant] / reference[significant]
    return {
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "max_rel": float(relative.max()) if relative.numel() else 0.0,
    }


def within_tolerance(row: dict) -> bool:
    """Whether a :func:`compare_backends` row meets the tolerance (module docstring)."""
    as_accurate = row["fast_vs_exact"] <= row["nnaudio_vs_exact"] * (1 + 1e-3) + 1e-6
    return as_accurate and row["max_abs"] <= TOLERANCE_MAX_ABS and row["mean_abs"] <= TOLERANCE_MEAN_ABS


def compare_backends(signals: dict[str, np.ndarray]) -> list[dict]:
    """For each named signal: :func:`window_error` of the ``fast`` backend against ``nnaudio``,
    ``windows`` (how many), ``within_tolerance``, and the largest absolute error of each
    backend against the float64 evaluation (``nnaudio_vs_exact``, ``fast_vs_exact``)."""
    nnaudio, fast = CQTFrontend(backend="nnaudio"), CQTFrontend(backend="fast")
    exact_transform = CQTFrontend(backend="nnaudio").cqt.double()
    rows = []
    for name, audio in signals.items():
        reference = model_windows(nnaudio.magnitude, audio)
        candidate = model_windows(fast.magnitude, audio)
        exact = model_windows(lambda x: exact_transform(x.double()), audio)
        row = {
            "signal": name, "windows": int(reference.shape[0]), **window_error(reference, candidate),
            "nnaudio_vs_exact": window_error(exact, reference)["max_abs"], "fast_vs_exact": window_error(exact, candidate)["max_abs"],
        }
        rows.append({**row, "within_tolerance": within_tolerance(row)})
    return rows


def backend_speed(audio: np.ndarray, repeats: int, batch_sizes: tuple[int, ...] = (1, 16)) -> list[dict]:
    """Seconds per window of ``CQTFrontend.magnitude`` for each backend and batch size (best of
    ``repeats`` alternating rounds), with the realtime factor of the CQT alone and the fast backend's speed-up."""
    frontends = {name: CQTFrontend(backend=name) for name in ("nnaudio", "fast")}
    rows = []
    for batch_size in batch_sizes:
        need = batch_size * WINDOW_SAMPLES
        batch = torch.from_numpy(np.resize(audio, need).reshape(batch_size, WINDOW_SAMPLES))
        with torch.inference_mode():
            seconds = best_times({name: (lambda f=frontend: f.magnitude(batch)) for name, frontend in frontends.items()}, repeats)
        per_window = {name: value / batch_size for name, value in seconds.items()}
        rows.append({
            "batch": batch_size,
            "nnaudio_s_per_window": per_window["nnaudio"],
            "fast_s_per_window": per_window["fast"],
            "nnaudio_realtime": WINDOW_SECONDS / per_window["nnaudio"],
            "fast_realtime": WINDOW_SECONDS / per_window["fast"],
            "speedup": per_window["nnaudio"] / per_window["fast"],
        })
    return rows
