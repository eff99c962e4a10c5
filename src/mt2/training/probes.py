"""Online probes during pretraining, and the training curves.

Every ``probe_every`` steps :class:`ProbeCallback` measures a CPU copy of the model with the
run's :class:`Probe`, a function that the caller of the trainer passes in
(:func:`mt2.training.lightning.pretrain`'s ``probe``): the measurements live in
:mod:`mt2.evaluation`, which training may not import, and ``mt2 pretrain`` passes
:func:`mt2.evaluation.model_metrics.online_probe` (the recipe study's metrics: equivariance, best
rotation, segment agreement, kNN instrument accuracy of token 1, token cosine, ...; the zero-shot
key signature after calibration only with ``probe_calibration``, since calibrating costs a CQT per
synthetic reference, minutes on a small CPU). The probe reads fixed labelled clips of the corpus:
its ``valid`` split (``test`` if it has none) as the held-out set, its ``train`` split as the kNN
reference. Rank 0 measures and broadcasts, so every rank logs the same values and can checkpoint
on :attr:`ProbeCallback.SCORE`. Data without key or instrument labels (a plain folder, shards, a
bundle) get no probes, nor does a run without a probe.
"""
from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Protocol

import lightning as L
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mt2.data.pretrain import CachedSource
from mt2.model import MT2Model
from mt2.training.config import PretrainConfig

LOSSES = ("loss", "cpsd", "ntxent")


class Probe(Protocol):
    """What an online probe measures: called on rank 0 with a CPU float32 copy of the model in
    eval mode (the training model is not touched), the corpus ``root``, the probe ``rows``
    (:func:`probe_rows`: manifest rows whose ``path`` is relative to ``root``, the held-out clips
    relabelled ``test`` and the ``train`` clips as a reference), the model's input
    ``compression`` (``ViewConfig.compression``), the run's ``seed`` and ``calibrate_key``
    (``probe_calibration``). Returns numeric values, each logged as ``probe/<name>``, among them
    ``score``: the checkpoint criterion (:attr:`ProbeCallback.SCORE`, higher is better)."""

    def __call__(
        self, model: MT2Model, root: Path, rows: list[dict], compression: str, seed: int, calibrate_key: bool,
    ) -> dict[str, float]: ...


def probe_rows(source: CachedSource) -> tuple[list[dict] | None, str]:
    """Manifest rows for a :class:`Probe` (held-out clips relabelled ``test``) and a note."""
    rows = source.tracks.rows
    if not any(r.get("key") is not None or r.get("instrument") is not None for r in rows):
        return None, "the data carry no key or instrument labels"
    held_out = "valid" if any(r.get("split") == "valid" for r in rows) else "test"
    if not any(r.get("split") == held_out for r in rows):
        return None, "the manifest has no valid or test split"
    chosen = [dict(r, split="test") if r.get("split") == held_out else r for r in rows if r.get("split") in ("train", held_out)]
    return chosen, f"probes on the {held_out} split"


def probe_callback(probe: Probe | None, source, config: PretrainConfig) -> tuple[ProbeCallback | None, str]:
    """The online probes of a run on ``source`` (a pretraining source, :mod:`mt2.data.pretrain`)
    with ``probe``, or ``None`` and why it gets none: ``probe_every`` is 0, no probe was given,
    or the source holds no labelled clips to probe."""
    if config.probe_every <= 0:
        return None, "probe_every is 0"
    if probe is None:
        return None, "no probe was passed to the trainer"
    if not isinstance(source, CachedSource):
        return None, f"the {source.kind} source has no labelled clips to probe"
    rows, note = probe_rows(source)
    return (ProbeCallback(probe, source, rows, config) if rows else None), note


class ProbeCallback(L.Callback):
    """Runs ``probe`` every ``config.probe_every`` steps on ``rows`` of ``source``; logs ``probe/<metric>``."""

    SCORE = "probe/score"

    def __init__(self, probe: Probe, source: CachedSource, rows: list[dict], config: PretrainConfig) -> None:
        self.probe, self.source, self.rows, self.config = probe, source, rows, config

    def measure(self, model: MT2Model) -> dict[str, float]:
        """The probe's values of a CPU float32 copy of ``model``."""
        probe_model = copy.deepcopy(model).float().cpu().eval()
        return self.probe(
            probe_model, self.source.tracks.root, self.rows, self.config.view_config().compression, self.config.seed,
            self.config.probe_calibration,
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step % self.config.probe_every:
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
