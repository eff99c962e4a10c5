"""Online probes during pretraining, and the training curves.

Every ``probe_every`` steps :class:`ProbeCallback` runs the recipe study's metrics
(:func:`mt2.training.probe_metrics.evaluate`: equivariance, best rotation, segment agreement, kNN
instrument accuracy of token 1, token cosine, ...; the zero-shot key signature after
calibration only with ``probe_calibration``, since calibrating costs a CQT per synthetic
reference, minutes on a small CPU) on a CPU copy of the model,
over fixed labelled clips of the corpus: its ``valid`` split (``test`` if it has none) as
the held-out set, its ``train`` split as the kNN reference. Rank 0 measures and broadcasts,
so every rank logs the same values and can checkpoint on :attr:`ProbeCallback.SCORE`.
Data without key or instrument labels (a plain folder, shards) get no probes.
"""
from __future__ import annotations

import copy
import csv
from pathlib import Path

import lightning as L
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mt2.training.probe_metrics import evaluate

LOSSES = ("loss", "cpsd", "ntxent")


def probe_rows(source) -> tuple[list[dict] | None, str]:
    """Manifest rows for :func:`~mt2.training.probe_metrics.evaluate` (held-out clips relabelled ``test``) and a note."""
    rows = source.tracks.rows
    if not any(r.get("key") is not None or r.get("instrument") is not None for r in rows):
        return None, "the data carry no key or instrument labels"
    held_out = "valid" if any(r.get("split") == "valid" for r in rows) else "test"
    if not any(r.get("split") == held_out for r in rows):
        return None, "the manifest has no valid or test split"
    chosen = [dict(r, split="test") if r.get("split") == held_out else r for r in rows if r.get("split") in ("train", held_out)]
    return chosen, f"probes on the {held_out} split"


class ProbeCallback(L.Callback):
    """Runs :func:`~mt2.training.probe_metrics.evaluate` every ``every`` steps; logs ``probe/<metric>``."""

    SCORE = "probe/score"

    def __init__(self, source, rows: list[dict], config, every: int) -> None:
        self.source, self.rows, self.config, self.every = source, rows, config, every

    def measure(self, model) -> dict[str, float]:
        """Numeric metrics of a CPU copy of ``model``, and ``score``: the mean of the key probe
        (best rotation, independent of calibration) and the instrument kNN accuracy."""
        probe_model = copy.deepcopy(model).float().cpu().eval()
        metrics = evaluate(
            probe_model, self.source.tracks.root, self.rows, self.config.view_config().compression, self.config.seed,
            self.config.probe_calibration,
        )
        calibration = metrics.pop("calibration", None)
        values = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and k != "parameters"}
        if calibration is not None:
            values["calibrated"] = float("error" not in calibration)
        parts = [values[k] for k in ("best_rotation", "instrument_knn") if k in values]
        values["score"] = float(np.mean(parts)) if parts else 0.0
        return values

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step % self.every:
            return
        step = trainer.global_step - 1  # Lightning's rows count steps from 0: row k is the (k+1)-th update
        values = self.measure(pl_module.model) if trainer.is_global_zero else None
        values = trainer.strategy.broadcast(values, src=0)
        metrics = {f"probe/{name}": value for name, value in values.items()}
        for name, value in metrics.items():
            pl_module.log(name, value, logger=False)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)


def _read_columns(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``column -> [(step, value)]`` of a Lightning CSV log (empty cells left out)."""
    columns: dict[str, list[tuple[int, float]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if not row.get("step"):
                continue
            step = int(float(row["step"]))
            for name, value in row.items():
                if name != "step" and value not in (None, ""):
                    columns.setdefault(name, []).append((step, float(value)))
    return columns


def plot_curves(metrics_csv: str | Path, out_png: str | Path) -> Path:
    """Losses (left) and probe metrics (right) against steps, from ``metrics.csv``."""
    columns = _read_columns(Path(metrics_csv)) if Path(metrics_csv).exists() else {}
    probes = sorted(n for n in columns if n.startswith("probe/") and n not in ("probe/clips", "probe/distinct_outputs"))
    figure = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(figure)
    ax_loss, ax_probe = figure.subplots(1, 2)
    for name in LOSSES:
        if name in columns:
            steps, values = zip(*sorted(columns[name]))
            ax_loss.plot(steps, values, label=name)
    ax_loss.set(xlabel="step", ylabel="loss", title="losses (CPSD floor 2.777)")
    for name in probes:
        steps, values = zip(*sorted(columns[name]))
        ax_probe.plot(steps, values, marker="o", label=name.removeprefix("probe/"))
    ax_probe.set(xlabel="step", ylabel="accuracy / cosine", title="online probes" if probes else "online probes (none)")
    for ax in (ax_loss, ax_probe):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    figure.savefig(out_png, dpi=100)
    return Path(out_png)
