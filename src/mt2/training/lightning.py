"""The production trainer: MT2 pretraining with Lightning (docs/design.md section 3).

- :class:`MT2Module`: the model and the one training step of :mod:`mt2.training.step`
  under Lightning's automatic optimisation: the same loss function (:func:`step_losses`),
  optimiser and schedule (:func:`make_optimizer`), gradient norm clipping by the Trainer at
  ``grad_clip``; bf16 autocast on GPU only (``precision: auto``). A non-finite loss skips the
  step (no change to the weights or the optimiser's moments; every rank agrees) and is counted;
  ``max_nonfinite`` in a row stop the run with :class:`NonFiniteLossError`.
- :class:`MT2DataModule`: batches of views from a folder, manifest or shards
  (:mod:`mt2.data.pretrain`); batch ``i`` of rank ``r`` is a function of ``(seed, i, r)`` and
  the stream restarts at ``i = global_step``, so a resumed run sees the batches it would
  have seen.
- :func:`pretrain`: the run behind ``mt2 pretrain``: ``OUT/config.yaml`` (every
  hyper-parameter, package version, data hash), ``last.ckpt`` and ``best.ckpt`` written
  atomically, ``metrics.csv``, online probes with the measuring function its caller passes
  (:class:`mt2.training.probes.Probe`), ``training_curves.png``; a ``wsd`` run with
  ``budgets`` also keeps ``branch-B.ckpt`` at the step where budget B's decay starts
  (:class:`BranchPoints`).
- :func:`initial_weights`: a new run that starts from an exported model's weights (``mt2
  pretrain --init MODEL``) with a fresh optimiser and schedule: continued training of shipped
  weights.
- :func:`branch_config`: a finished model at budget B from such a run (``mt2 pretrain --branch
  RUN --budget B``): the kept checkpoint, resumed with ``max_steps = B``, decays over B's last
  ``decay_fraction`` of steps on the batches the long run would have seen.

Under DDP, NT-Xent gathers negatives from every rank (with gradients), so the batch size is
per device and the negatives grow with the number of devices.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import shutil
from collections import deque
from importlib.util import find_spec
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

import mt2
from mt2.data.batches import TrainBatch
from mt2.data.pretrain import open_source
from mt2.model import MT2Model
from mt2.training.config import PretrainConfig, read_saved_config, save_config
from mt2.training.codebook import CODEBOOK_FILE, run_codebook
from mt2.training.objective import mask_generator
from mt2.training.probes import Probe, ProbeCallback, plot_curves, probe_callback
from mt2.training.step import decay_start, make_optimizer, step_losses

log = logging.getLogger(__name__)

LAST, BEST = "last", "best"
SMOOTHING = 50  # steps in the running mean of the loss (the "best" criterion without probes)


class NonFiniteLossError(RuntimeError):
    """Too many consecutive non-finite losses."""


class MT2Module(L.LightningModule):
    """An :class:`~mt2.model.MT2Model` trained with the MT2 objective; ``config`` is a
    :meth:`PretrainConfig.to_dict` (saved in the checkpoint's hyper-parameters)."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = PretrainConfig.from_dict(config)
        self.model = MT2Model(self.config.model_config())
        self.nonfinite_total = 0
        self.nonfinite_in_row = 0
        self.unreadable = 0
        self._skipping = False
        self._recent = deque(maxlen=SMOOTHING)

    def _agreed_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank (so that all ranks skip together)."""
        finite = torch.isfinite(loss.detach()).all().float().reshape(1)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite.item())

    def training_step(self, batch: TrainBatch, batch_idx: int) -> torch.Tensor:
        generator = mask_generator(self.config.seed, batch.index, self.global_rank)
        losses = step_losses(self.model, batch.views, self.config, generator)
        self.unreadable += batch.unreadable
        if not self._agreed_finite(losses.total):
            return self._skip_step()
        self.nonfinite_in_row = 0
        self._recent.append(losses.total.item())
        size = batch.views.a.shape[0]
        self.log("loss", losses.total, prog_bar=True, batch_size=size)
        self.log("loss_smooth", sum(self._recent) / len(self._recent), batch_size=size)
        for name in ("cpsd", "ntxent", "entropy", "masked_ce", "masked_mse"):
            if getattr(losses, name) is not None:
                self.log(name, getattr(losses, name), batch_size=size)
        self.log("lr", self.lr_schedulers().get_last_lr()[0], batch_size=size)
        self.log("nonfinite_steps", float(self.nonfinite_total), batch_size=size)
        self.log("unreadable_samples", float(self.unreadable), batch_size=size)
        return losses.total

    def _skip_step(self) -> torch.Tensor:
        """Count a non-finite loss and return a stand-in whose gradients are zero for every parameter.

        Lightning refuses a ``None`` loss under DDP, and every parameter must take part in the
        backward pass for DDP's gradient reduction to complete. :meth:`on_before_optimizer_step`
        then drops the gradients, so that AdamW leaves the weights and its moments untouched.
        """
        self._skipping = True
        self.nonfinite_total += 1
        self.nonfinite_in_row += 1
        log.warning("non-finite loss at step %d: step skipped (%d in a row)", self.global_step, self.nonfinite_in_row)
        if self.nonfinite_in_row >= self.config.max_nonfinite:
            raise NonFiniteLossError(
                f"{self.nonfinite_in_row} consecutive non-finite losses (step {self.global_step}): lower the learning "
                f"rate (lr={self.config.lr:g}, e.g. --lr {self.config.lr / 3:.2g}) or the warm-up's peak, or train in "
                f"fp32 (precision: 32-true) if this run uses bf16/fp16 (precision={self.config.precision})"
            )
        return sum(p.sum() for p in self.model.parameters()) * 0.0

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Drop the gradients of a skipped step (before clipping and the update)."""
        if self._skipping:
            optimizer.zero_grad(set_to_none=True)
            self._skipping = False

    def configure_optimizers(self):
        optimizer, schedule = make_optimizer(self.model, self.config)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["mt2"] = {"nonfinite_total": self.nonfinite_total, "unreadable": self.unreadable, "version": mt2.__version__}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        counters = checkpoint.get("mt2", {})
        self.nonfinite_total = counters.get("nonfinite_total", 0)
        self.unreadable = counters.get("unreadable", 0)


class MT2DataModule(L.LightningDataModule):
    """Batches of views (:class:`~mt2.data.batches.TrainBatch`) from a folder, manifest or shards."""

    def __init__(self, data: str | os.PathLike, cache_dir: str | os.PathLike, config: PretrainConfig) -> None:
        super().__init__()
        self.source = open_source(data, cache_dir, config.real_data, config.real_share)
        self.config = config

    def prepare_data(self) -> None:
        """Build the CQT cache once per node (local rank 0); other ranks reuse it."""
        self.source.prepare()
        log.info("pretraining data: %s", self.source.describe())

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        stream = self.source.batches(
            batch_size=self.config.batch_size,
            views=self.config.view_config(),
            seed=self.config.seed,
            rank=trainer.global_rank,
            world=trainer.world_size,
            start=trainer.global_step,
        )
        return DataLoader(stream, batch_size=None, num_workers=self.config.num_workers)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file in the same folder, synced, then renamed.

    Lightning's own writer goes through an fsspec transaction whose local temporary file lies
    in the system temp folder, so its final move can be a copy across file systems; a rename
    within one folder is atomic: a killed run leaves the previous checkpoint intact.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)


class StepProgressBar(TQDMProgressBar):
    """Lightning's bar counted in optimisation steps out of ``max_steps`` (so it shows the step
    rate and an ETA on an endless stream), starting at the resumed step."""

    def on_train_epoch_start(self, trainer: L.Trainer, *_) -> None:
        super().on_train_epoch_start(trainer)
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps)
        bar.initial = bar.n = bar.last_print_n = trainer.global_step
        bar.set_description(f"pretrain {trainer.lightning_module.config.variant}")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        bar = self.train_progress_bar
        bar.update(trainer.global_step - bar.n)
        bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)


class RunRecord(L.Callback):
    """Writes ``config.yaml`` when the run starts; when it ends (``max_steps`` or ``max_time``),
    ``last.ckpt`` at the final step and ``training_curves.png``."""

    def __init__(self, out: Path, config: PretrainConfig, record: dict) -> None:
        self.out, self.config, self.record = out, config, record

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            save_config(self.config, self.out / "config.yaml", **self.record)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.out / f"{LAST}.ckpt")  # every rank: the strategy writes on rank 0
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.save()
            plot_curves(self.out / "metrics.csv", self.out / "training_curves.png")


class InitWeightsError(ValueError):
    """``--init MODEL`` cannot start this run: the message names the model and the fix."""


def initial_weights(model: str | os.PathLike, config: PretrainConfig) -> tuple[dict[str, torch.Tensor], dict]:
    """The network weights of the exported ``model`` (a shipped name or a folder of
    :mod:`mt2.inference.checkpoint`) for a new run of ``config``, and the run record's ``init``
    entry (``model``, its training ``step``, ``weights_sha256`` of its ``model.safetensors``).
    Only the network is taken: optimiser, schedule and data position start afresh.

    Raises:
        InitWeightsError: no such model, an unreadable folder, or a model that is not the shape
            ``config`` trains (preset or variant differ; the fields that differ are named).
    """
    from mt2.inference.checkpoint import WEIGHTS_FILE, CheckpointError, read_checkpoint, resolve

    try:
        folder = resolve(model)
        loaded = read_checkpoint(folder)
    except (CheckpointError, FileNotFoundError) as error:
        raise InitWeightsError(f"--init {model}: {error}") from None
    have, want = loaded["model"].config.to_dict(), config.model_config().to_dict()
    differ = {k: (have.get(k), want.get(k)) for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)}
    if differ:
        listing = ", ".join(f"{k}: {a} in the folder, {b} in the run" for k, (a, b) in differ.items())
        raise InitWeightsError(f"--init {model}: its model is not the one this run trains ({listing}); "
                               "choose the --preset and --variant it was trained with")
    entry = {"model": str(model), "step": loaded["training"].get("step"),
             "weights_sha256": hashlib.sha256((folder / WEIGHTS_FILE).read_bytes()).hexdigest()}
    return loaded["model"].state_dict(), entry


def branch_path(run: Path, budget: int) -> Path:
    """Where a ``wsd`` run keeps the checkpoint that budget ``budget`` branches from."""
    return run / f"branch-{budget}.ckpt"


class BranchPoints(L.Callback):
    """Keeps ``branch-B.ckpt`` (:func:`branch_path`) at step ``decay_start(B)`` for every budget
    ``B < max_steps`` of a ``wsd`` run: the weights, optimiser, schedule position and data position
    from which a decay of B's last ``decay_fraction`` of steps finishes a model at budget B."""

    def __init__(self, out: Path, config: PretrainConfig) -> None:
        self.out = out
        self.points = {decay_start(b, config.decay_fraction): b for b in config.budgets if b < config.max_steps}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        budget = self.points.get(trainer.global_step)
        if budget is not None:
            trainer.save_checkpoint(branch_path(self.out, budget))  # every rank: the strategy writes on rank 0


def branch_config(run: str | os.PathLike, budget: int, out: str | os.PathLike) -> PretrainConfig:
    """Prepare ``out`` to finish the ``wsd`` run ``run`` at ``budget`` steps; returns the config to
    :func:`pretrain` with ``resume=True``.

    ``out/last.ckpt`` is a copy of ``run``'s ``branch-<budget>.ckpt`` (unless ``out`` holds a
    branch already: then it resumes), and ``out/config.yaml`` is ``run``'s configuration with
    ``max_steps = budget`` and no budgets of its own, its record naming the run it branched from.

    Raises:
        ValueError: ``run`` is not a ``wsd`` run.
        FileNotFoundError: ``run`` kept no checkpoint for ``budget`` (not among its budgets, or not reached yet).
    """
    run, out = Path(run), Path(out)
    config, record = read_saved_config(run / "config.yaml")
    if config.schedule != "wsd":
        raise ValueError(f"{run / 'config.yaml'}: schedule {config.schedule!r}; only a wsd run can branch")
    source = branch_path(run, budget)
    last = out / f"{LAST}.ckpt"
    if not last.exists():
        if not source.exists():
            raise FileNotFoundError(
                f"{source} does not exist: the run keeps branch checkpoints only for its budgets {list(config.budgets)}, "
                f"at step decay_start(B) = B - {config.decay_fraction:g} B, once it has reached it")
        out.mkdir(parents=True, exist_ok=True)
        tmp = last.with_name(f".{last.name}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, last)
    config.max_steps, config.budgets = budget, ()
    save_config(config, out / "config.yaml", **{**record, "branched_from": str(run), "branch_step": decay_start(
        budget, config.decay_fraction)})
    return config


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSV logger, except that a resumed run keeps what its earlier pieces logged:
    Lightning's deletes ``metrics.csv`` when it starts. The rows of steps before
    ``resume_step`` (the checkpoint's step; later rows were logged by a piece killed after its
    last checkpoint, and are logged again) are written back under their header, and new rows
    are appended to it."""

    def __init__(self, *args, resume_step: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._resume_step = resume_step

    @property
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        path = Path(self.log_dir) / "metrics.csv"
        kept, header = [], []
        if self._resume_step is not None and path.is_file():
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                header = list(reader.fieldnames or [])
                kept = [row for row in reader if row.get("step") and int(float(row["step"])) < self._resume_step]
        writer = super().experiment  # deletes metrics.csv
        if kept:
            with open(path, "w", newline="") as handle:
                table = csv.DictWriter(handle, fieldnames=sorted(header))
                table.writeheader()
                table.writerows(kept)
            writer.metrics_keys = sorted(header)
        return writer


def _precision(config: PretrainConfig, accelerator: str) -> str:
    """``auto``: bf16 autocast where a GPU trains, full fp32 on CPU."""
    if config.precision != "auto":
        return config.precision
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if gpu else "32-true"


def resumed_config(out: str | os.PathLike, max_steps: int | None = None) -> PretrainConfig:
    """The saved configuration of the run in ``out``; ``max_steps`` may extend it (a ``cosine``
    schedule is then stretched from the resumed step on; a ``wsd`` run extends exactly as long as
    its decay has not begun)."""
    config = read_saved_config(Path(out) / "config.yaml")[0]
    if max_steps is not None and max_steps != config.max_steps:
        log.warning("max_steps %d -> %d: the %s schedule is recomputed for the new length from here on",
                    config.max_steps, max_steps, config.schedule)
        config.max_steps = max_steps
        config.budgets = tuple(b for b in config.budgets if b <= max_steps)
    return config


def pretrain(
    config: PretrainConfig,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    cache_dir: str | os.PathLike | None = None,
    max_time: str | None = None,
    until: int | None = None,
    accelerator: str = "auto",
    devices: int | str = "auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    progress: bool = True,
    probe: Probe | None = None,
    init: str | os.PathLike | None = None,
) -> Path:
    """Pretrain (or, with ``resume``, continue) a run in ``out``; return the path of ``last.ckpt``.

    Args:
        config: the hyper-parameters; to resume, :func:`resumed_config`.
        data: a folder of audio, a manifest or a folder of shards (:func:`mt2.data.pretrain.open_source`).
        out: run folder: ``config.yaml``, ``last.ckpt``, ``best.ckpt``, ``metrics.csv``,
            ``training_curves.png``, ``cache/`` (the CQT cache unless ``cache_dir``).
        max_time: wall-clock limit, Lightning's ``DD:HH:MM:SS``.
        until: stop after this many steps (``last.ckpt`` written) while the schedule keeps its
            length ``config.max_steps``: a long run in pieces; resume it to go on.
        accelerator, devices, num_nodes, strategy: passed to :class:`lightning.Trainer`.
        probe: what the online probes measure every ``config.probe_every`` steps (the contract
            of :class:`~mt2.training.probes.Probe`; ``mt2 pretrain`` passes
            :func:`mt2.evaluation.model_metrics.online_probe`), whose ``score`` chooses
            ``best.ckpt``; without one (or without labelled clips in ``data``) the run skips the
            probes with a logged note and keeps the lowest running mean of the loss as ``best.ckpt``.
        init: a new run only: start from this exported model's weights (:func:`initial_weights`),
            recorded in ``config.yaml``'s ``run.init``.
    """
    out = Path(out)
    last = out / f"{LAST}.ckpt"
    if resume and not last.exists():
        raise FileNotFoundError(f"--resume: {last} does not exist (nothing to resume in {out})")
    if not resume and last.exists():
        raise FileExistsError(f"{out} already holds a run ({last}): pass --resume to continue it, or choose another --out")
    if resume and init is not None:
        raise InitWeightsError(f"--init {init}: a resumed run continues its own weights ({last}); start a new --out to initialise from a model")
    initial_state, init_entry = initial_weights(init, config) if init is not None else (None, None)
    out.mkdir(parents=True, exist_ok=True)
    datamodule = MT2DataModule(data, cache_dir or out / "cache", config)
    data_hash = datamodule.source.fingerprint()
    previous_record = read_saved_config(out / "config.yaml")[1] if resume else {}
    if previous_record.get("data_hash") not in (None, data_hash):
        log.warning("the data differ from the run's original data (hash %s, was %s)", data_hash, previous_record["data_hash"])
    record = {**previous_record, "mt2_version": mt2.__version__, "data": str(data), "data_kind": datamodule.source.kind,
              "data_hash": data_hash}
    if init_entry is not None:
        record["init"] = init_entry

    probes, note = probe_callback(probe, datamodule.source, config)
    callbacks: list[L.Callback] = [RunRecord(out, config, record), BranchPoints(out, config)]
    if probes is not None:
        callbacks.append(probes)
        monitor, mode = ProbeCallback.SCORE, "max"
    else:
        log.info("online probes skipped: %s", note)
        monitor, mode = "loss_smooth", "min"
    callbacks.append(ModelCheckpoint(
        dirpath=out, filename=BEST, monitor=monitor, mode=mode, save_top_k=1, save_last=True,
        every_n_train_steps=config.checkpoint_every, auto_insert_metric_name=False, enable_version_counter=False,
    ))
    if progress:
        callbacks.append(StepProgressBar())
    resume_step = torch.load(last, map_location="cpu", weights_only=True)["global_step"] if resume else None
    loggers = [ResumableCSVLogger(out, name="", version="", flush_logs_every_n_steps=config.log_every, resume_step=resume_step)]
    if find_spec("tensorboard") is not None:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(out, name="tensorboard", version=""))
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=_precision(config, accelerator),
        max_steps=min(until, config.max_steps) if until else config.max_steps,
        max_time=max_time,
        gradient_clip_val=config.grad_clip,
        log_every_n_steps=config.log_every,
        logger=loggers,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
        use_distributed_sampler=False,
        default_root_dir=out,
    )
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = MT2Module(config.to_dict())
    if initial_state is not None:
        module.model.load_state_dict(initial_state)
    if module.model.masked_prediction is not None:  # fitted before training, reused on resume
        module.model.masked_prediction.set_codebook(run_codebook(out / CODEBOOK_FILE, datamodule.source, config))
    trainer.fit(module, datamodule=datamodule, ckpt_path=last if resume else None)
    return last
