"""Continue the scaling campaign's checkpoint on one GPU for a fixed wall-clock and bring back the
weights and a short log (issue 32). Run through ``scripts/gpu_train.sh``, which sets up the Python
path (and, on the GPU machine, installs the carried wheels):

    scripts/gpu_train.sh prepare [--seed 0]   # here: runs/gpu/ = the campaign's run, a bundle of its data, wheels
    scripts/gpu_train.sh [--minutes 7]        # on the GPU machine: continue the run, results into $OUT
    scripts/gpu_train.sh --dry-run            # the same path on CPU, a tiny noise bundle and a tiny run (under a minute)

The device call: ``run(command="scripts/gpu_train.sh", carry=["runs/gpu"], timeout_s=600)``.

**prepare** picks the campaign's run: its snapshot ``campaign/sSEED`` where git tracks it (it
travels with the working tree), else a copy of ``runs/scaling/sSEED`` (``config.yaml``,
``last.ckpt``, ``metrics.csv``, branch checkpoints) in ``runs/gpu/run``; and writes
``runs/gpu/prepared.json`` (the run, and the budgets whose branch was started here, in
``runs/scaling/sSEED-bB`` or ``runs/scaling/models/sSEED-bB``, which the device leaves alone). It
downloads the wheels of :data:`WHEELS` (what mt2's training imports and the GPU image lacks) into
``runs/gpu/wheels``, and samples the run's data into ``runs/gpu/bundle.safetensors``
(``scripts/gpu_bundle.py``) as large as the 64 MiB that travel allow once the working tree and
``runs/gpu`` are counted (:data:`MARGIN_MIB` spare, at most :data:`MAX_BUNDLE_MIB`).

**The run** copies the prepared run into a work folder and trains it with ``mt2 pretrain --resume
--data BUNDLE --max-time`` (bf16 on a GPU: the config's ``precision: auto``), then finishes the
campaign's next point: the branch checkpoint of the largest budget there (carried, or reached in
this piece) is decayed to its budget by ``mt2 pretrain --branch`` (the budget's last tenth of
steps). The two share ``--minutes`` of training (at most 8): the branch gets ``--branch-minutes``
when the config has budgets. Every few seconds the step of ``metrics.csv`` is read: steps per
second is the slope between the first and the last step read in a piece (start-up excluded; after
the resumed trainer has rewritten the file without the rows logged past its checkpoint).
``$OUT`` (else ``runs/gpu-out``) gets ``last.ckpt`` (weights, optimiser, schedule and data position:
the campaign continues from it), ``config.yaml``, ``metrics.csv``, ``summary.json``,
``gpu_train.log``, ``bB.ckpt`` (the finished branch, resumable if its time ran out) and at most two
branch checkpoints reached in this piece.

The piece trains on the bundle, a sample of the campaign's data (the trainer warns that the data
hash differs), in bf16: a measured continuation, not the campaign's exact batch stream.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_bundle

MIB = 1 << 20
#: What travels with a device call: the working tree and the carried paths together.
TRAVEL_MIB = 64
MARGIN_MIB = 3.0
MAX_BUNDLE_MIB = 40.0
MIN_BUNDLE_MIB = 2.0
#: Wheels (Python 3.12, x86-64) of the packages mt2's training imports that the GPU image lacks
#: (its list of installed packages has torch, Lightning, numpy, scipy, safetensors, PyYAML, matplotlib, tqdm):
#: the versions of this project's environment.
WHEELS = ("soundfile==0.14.0", "cffi==2.1.1", "pycparser==3.12", "soxr==1.1.0", "webdataset==1.0.2", "braceexpand==0.1.7")
PREPARED = ROOT / "runs" / "gpu"
PREPARED_JSON = "prepared.json"
MAX_MINUTES = 8.0
#: Seconds between readings of metrics.csv.
POLL_SECONDS = 2.0
#: Branch checkpoints reached in the piece that come back (files from $OUT: 8 at most).
MAX_NEW_BRANCHES = 2
#: The dry run's tiny campaign: a wsd run whose budget-10 branch point (step 9) is reached before the piece.
DRY_CONFIG = {"schedule": "wsd", "max_steps": 40, "budgets": [10], "batch_size": 4, "warmup": 2, "probe_every": 0,
              "checkpoint_every": 3, "log_every": 1}
DRY_UNTIL = 9

log = logging.getLogger("gpu_train")


# ----------------------------------------------------------------------------- prepare


def tree_bytes() -> int:
    """Bytes of the working tree that a device call sends: tracked and untracked-not-ignored files, and shared/."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    files = {ROOT / name for name in listed if name} | set((ROOT / "shared").rglob("*"))
    return sum(path.stat().st_size for path in files if path.is_file() and not path.is_symlink())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def campaign_run(seed: int, target: Path) -> Path:
    """The campaign's run of ``seed`` as the device will read it: the tracked snapshot, else a copy
    of the live run in ``target`` (module docstring).

    Raises:
        FileNotFoundError: neither holds a last.ckpt.
    """
    snapshot, live = ROOT / "campaign" / f"s{seed}", ROOT / "runs" / "scaling" / f"s{seed}"
    shutil.rmtree(target, ignore_errors=True)
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(snapshot / "last.ckpt")], cwd=ROOT, capture_output=True)
    if tracked.returncode == 0 and (snapshot / "last.ckpt").is_file():
        return snapshot
    if not (live / "last.ckpt").is_file():
        raise FileNotFoundError(f"no last.ckpt in {snapshot} (tracked) or {live}: "
                                f"run `scripts/scaling_campaign.sh train {seed} STEP` first")
    target.mkdir(parents=True)
    for name in [*("config.yaml", "last.ckpt", "metrics.csv"), *(p.name for p in live.glob("branch-*.ckpt"))]:
        shutil.copyfile(live / name, target / name)
    return target


def started_branches(seed: int, run: Path) -> list[int]:
    """The budgets of ``run``'s branch checkpoints whose branch was started here (finished or under way)."""
    scaling = ROOT / "runs" / "scaling"
    return [b for b in branch_budgets(run) if (scaling / f"s{seed}-b{b}").is_dir() or (scaling / "models" / f"s{seed}-b{b}").is_dir()]


def prepare(args: argparse.Namespace) -> int:
    import gpu_bundle

    prepared = Path(args.prepared)
    prepared.mkdir(parents=True, exist_ok=True)
    run = campaign_run(args.seed, prepared / "run")
    skip = started_branches(args.seed, run)
    (prepared / PREPARED_JSON).write_text(json.dumps({"run": str(run.relative_to(ROOT)), "seed": args.seed, "skip_branches": skip}) + "\n")
    wheels = prepared / "wheels"
    if not wheels.is_dir() or len(list(wheels.glob("*.whl"))) < len(WHEELS):
        wheels.mkdir(parents=True, exist_ok=True)
        platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 27, 28)] + ["--platform=manylinux2014_x86_64"]
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
                        "3.12", "--implementation", "cp", *platforms, "--platform=any", "-d", str(wheels), *WHEELS], check=True)
    bundle = prepared / "bundle.safetensors"
    bundle.unlink(missing_ok=True)
    others = tree_bytes() + folder_bytes(prepared)
    room = TRAVEL_MIB - others / MIB - MARGIN_MIB
    mib = min(MAX_BUNDLE_MIB, room)
    if mib < MIN_BUNDLE_MIB:
        print(f"error: the working tree and {prepared} take {others / MIB:.1f} MiB of the {TRAVEL_MIB} that travel: no room "
              "for a bundle (the campaign's snapshots in campaign/ travel with the tree)", file=sys.stderr)
        return 2
    status = gpu_bundle.main([str(bundle), "--run", str(run), "--cache-dir", str(args.cache_dir), "--mib", f"{mib:.2f}",
                              "--seed", str(args.seed)])
    if status:
        return status
    total = (tree_bytes() + folder_bytes(prepared)) / MIB
    copied = f"{folder_bytes(prepared / 'run') / MIB:.1f} MiB copied" if run == prepared / "run" else "in the working tree"
    print(f"prepared {prepared}: run {run.relative_to(ROOT)} ({copied}; branches started here, left alone: {skip or 'none'}), "
          f"wheels {folder_bytes(wheels) / MIB:.1f} MiB, bundle {bundle.stat().st_size / MIB:.1f} MiB; with the working tree "
          f"{total:.1f} of {TRAVEL_MIB} MiB travel")
    print('device call: run(command="scripts/gpu_train.sh", carry=["runs/gpu"], timeout_s=600)')
    return 0


# ----------------------------------------------------------------------------- the run


def checkpoint_step(path: Path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def last_step(metrics: Path) -> int | None:
    """The step of the last row of a metrics.csv (None while it has none)."""
    try:
        lines = metrics.read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 2:
        return None
    column = lines[0].split(",").index("step")
    cells = lines[-1].split(",")
    return int(float(cells[column])) if len(cells) > column and cells[column] else None


def pretrain(arguments: list[str], seconds: float, metrics: Path) -> dict:
    """``mt2 pretrain ARGUMENTS --max-time`` (in this process), reading ``metrics``' last step
    every :data:`POLL_SECONDS`; returns the wall-clock seconds, the readings and the status."""
    from mt2.cli import main

    readings: list[tuple[float, int]] = []
    done = threading.Event()
    started = time.perf_counter()

    def poll() -> None:
        while not done.wait(POLL_SECONDS):
            step = last_step(metrics)
            if step is not None and (not readings or step != readings[-1][1]):
                readings.append((round(time.perf_counter() - started, 2), step))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    whole = int(seconds)
    command = ["pretrain", *arguments, "--max-time", f"00:00:{whole // 60:02d}:{whole % 60:02d}", "--no-progress"]
    log.info("mt2 %s", " ".join(command))
    try:
        status = main(command)
        error = None
    except (Exception, SystemExit) as failure:  # noqa: BLE001 (the piece failed: the log says why, the rest still comes back)
        status, error = 1, f"{type(failure).__name__}: {failure}"
        log.exception("mt2 pretrain failed")
    done.set()
    poller.join()
    step = last_step(metrics)
    if step is not None and (not readings or step != readings[-1][1]):
        readings.append((round(time.perf_counter() - started, 2), step))
    return {"seconds": round(time.perf_counter() - started, 1), "status": status, "error": error, "readings": readings,
            "steps_per_second": steps_per_second(readings)}


def steps_per_second(readings: list[tuple[float, int]]) -> float | None:
    """The slope of ``(seconds, step)`` readings from the last time the step fell (a resumed run's
    logger rewrites metrics.csv without the rows logged after its checkpoint) to the end; None
    without two readings there."""
    fresh = readings[max((i for i in range(1, len(readings)) if readings[i][1] < readings[i - 1][1]), default=0):]
    if len(fresh) < 2 or fresh[-1][0] <= fresh[0][0]:
        return None
    return (fresh[-1][1] - fresh[0][1]) / (fresh[-1][0] - fresh[0][0])


def branch_budgets(run: Path) -> list[int]:
    return sorted(int(p.stem.removeprefix("branch-")) for p in run.glob("branch-*.ckpt"))


def continue_run(prepared: Path, out: Path, minutes: float, branch_minutes: float, accelerator: str, threads: int | None) -> dict:
    """The run (module docstring): train the run of ``prepared/prepared.json`` on
    ``prepared/bundle.safetensors``, finish its largest branch, copy the results into ``out``;
    returns the summary (also out/summary.json)."""
    import torch

    from mt2.data.bundle import read_bundle
    from mt2.training.config import read_saved_config

    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mt2-gpu-"))
    run, bundle = work / "run", prepared / "bundle.safetensors"
    plan = json.loads((prepared / PREPARED_JSON).read_text())
    skip = [f"branch-{b}.ckpt" for b in plan["skip_branches"]]
    shutil.copytree(ROOT / plan["run"], run, ignore=lambda folder, names: [n for n in names if n in skip or n.startswith(".")])
    handler = logging.FileHandler(work / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    config, _ = read_saved_config(run / "config.yaml")
    carried = branch_budgets(run)
    device = torch.cuda.get_device_name(0) if accelerator == "gpu" else "cpu"
    parts, source = read_bundle(bundle)
    common = ["--data", str(bundle), "--accelerator", accelerator, "--devices", "1"] + (["--threads", str(threads)] if threads else [])
    reserve = branch_minutes if config.budgets else 0.0
    summary: dict = {
        "device": device, "torch": torch.__version__, "accelerator": accelerator, "minutes": minutes,
        "bundle": {"file": str(bundle), "mib": round(bundle.stat().st_size / MIB, 2), "rendered": len(parts["rendered"]),
                   "real": len(parts["real"]), "source": source},
        "run": plan["run"], "start_step": checkpoint_step(run / "last.ckpt"), "max_steps": config.max_steps,
        "budgets": list(config.budgets),
        "carried_branches": carried,
    }
    piece = pretrain(["--resume", "--out", str(run), "--cache-dir", str(work / "cache"), *common], (minutes - reserve) * 60,
                     run / "metrics.csv")
    summary["train"] = piece
    summary["end_step"] = checkpoint_step(run / "last.ckpt")
    files = {"last.ckpt": run / "last.ckpt", "config.yaml": run / "config.yaml", "metrics.csv": run / "metrics.csv"}
    new = [b for b in branch_budgets(run) if b not in carried]
    for budget in new[-MAX_NEW_BRANCHES:]:
        files[f"branch-{budget}.ckpt"] = run / f"branch-{budget}.ckpt"
    budgets = branch_budgets(run)
    if budgets and reserve:
        budget = budgets[-1]
        target = work / f"b{budget}"
        branch = pretrain(["--branch", str(run), "--budget", str(budget), "--out", str(target), *common], reserve * 60,
                          target / "metrics.csv")
        if (target / "last.ckpt").is_file():
            branch["end_step"] = checkpoint_step(target / "last.ckpt")
            branch["finished"] = branch["end_step"] >= budget
            files[f"b{budget}.ckpt"] = target / "last.ckpt"
        summary["branch"] = {"budget": budget, **branch}
    logging.getLogger().removeHandler(handler)
    handler.close()
    for name, path in files.items():
        if path.is_file():
            shutil.copyfile(path, out / name)
    summary["files"] = sorted([*(n for n, p in files.items() if p.is_file()), "summary.json", "gpu_train.log"])
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "gpu_train.log").write_text(report(summary, run / "metrics.csv", work / "train.log"))
    shutil.rmtree(work, ignore_errors=True)
    return summary


def report(summary: dict, metrics: Path, train_log: Path) -> str:
    """gpu_train.log: the summary in words, the last metrics rows, the trainer log's tail."""
    train = summary["train"]
    rate = train["steps_per_second"]
    lines = [f"device {summary['device']}, torch {summary['torch']}; bundle {summary['bundle']['mib']} MiB "
             f"({summary['bundle']['rendered']} rendered clips, {summary['bundle']['real']} real crops)",
             f"train: step {summary['start_step']} -> {summary['end_step']} of {summary['max_steps']} in {train['seconds']} s "
             f"(status {train['status']}{', ' + train['error'] if train['error'] else ''}); "
             f"steps per second {'-' if rate is None else f'{rate:.2f}'} (start-up excluded)"]
    branch = summary.get("branch")
    if branch:
        rate = branch["steps_per_second"]
        lines.append(f"branch: budget {branch['budget']} -> step {branch.get('end_step', '-')} in {branch['seconds']} s "
                     f"({'finished' if branch.get('finished') else 'not finished: resume it with mt2 pretrain --branch'}); "
                     f"steps per second {'-' if rate is None else f'{rate:.2f}'}")
    lines.append(f"files: {', '.join(summary['files'])}")
    rows = metrics.read_text().splitlines() if metrics.is_file() else []
    if rows:
        header = rows[0].split(",")
        wanted = [header.index(c) for c in ("step", "loss", "loss_smooth", "lr") if c in header]
        lines += ["", "metrics (last rows): " + " ".join(header[i] for i in wanted)]
        lines += [" ".join(row.split(",")[i] if i < len(row.split(",")) else "" for i in wanted) for row in rows[-8:]]
    if train_log.is_file():
        lines += ["", "trainer log (tail):", *train_log.read_text().splitlines()[-20:]]
    return "\n".join(lines) + "\n"


def dry_run(args: argparse.Namespace) -> int:
    """The run's path on CPU: a noise bundle, a tiny wsd run trained to its branch point, then the run."""
    import gpu_bundle
    import yaml

    from mt2.cli import main

    with tempfile.TemporaryDirectory(prefix="mt2-gpu-dry-") as folder:
        prepared = Path(folder) / "prepared"
        status = gpu_bundle.main([str(prepared / "bundle.safetensors"), "--noise", "--mib", "0.3"])
        overlay = Path(folder) / "tiny.yaml"
        overlay.write_text(yaml.safe_dump(DRY_CONFIG))
        # --real-data as the campaign's: a bundle carries its real crops, the path is not read
        status = status or main(["pretrain", "--data", str(prepared / "bundle.safetensors"), "--config", str(overlay), "--real-data",
                                 str(ROOT / "data" / "real"), "--real-share", "0.25", "--out", str(prepared / "run"), "--until",
                                 str(DRY_UNTIL), "--accelerator", "cpu", "--threads", "1", "--no-progress"])
        if status:
            return status
        (prepared / PREPARED_JSON).write_text(json.dumps({"run": str(prepared / "run"), "seed": 0, "skip_branches": []}))
        summary = continue_run(prepared, Path(args.out), args.minutes, args.branch_minutes, "cpu", threads=1)
    print((Path(args.out) / "gpu_train.log").read_text())
    return 0 if summary["train"]["status"] == 0 and summary["end_step"] > summary["start_step"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("**prepare**")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", nargs="?", choices=("prepare",), help="prepare: make runs/gpu here (above)")
    parser.add_argument("--seed", type=int, default=0, help="prepare: the campaign's seed (default: 0)")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "runs" / "scaling" / "cache",
                        help="prepare: the campaign's CQT cache (default: runs/scaling/cache)")
    parser.add_argument("--prepared", type=Path, default=PREPARED, help=f"the prepared folder (default: {PREPARED.relative_to(ROOT)})")
    parser.add_argument("--minutes", type=float, help=f"training wall-clock, branch included, at most {MAX_MINUTES:g} "
                        "(default: 7; the dry run: 0.25)")
    parser.add_argument("--branch-minutes", type=float, help="of those, the branch's (default: 1.5; the dry run: 0.1)")
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "runs" / "gpu-out"),
                        help="where the results go (default: $OUT, else runs/gpu-out; not under runs/gpu, which travels)")
    parser.add_argument("--dry-run", action="store_true", help="the same path on CPU with a tiny noise bundle and a tiny run")
    args = parser.parse_args(argv)
    dry = args.dry_run
    args.minutes = args.minutes if args.minutes is not None else 0.25 if dry else 7.0
    args.branch_minutes = args.branch_minutes if args.branch_minutes is not None else 0.1 if dry else 1.5
    if not 0 < args.minutes <= MAX_MINUTES or not 0 <= args.branch_minutes < args.minutes:
        parser.error(f"--minutes {args.minutes:g} --branch-minutes {args.branch_minutes:g}: need 0 <= branch < minutes <= {MAX_MINUTES:g}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.action == "prepare":
        return prepare(args)
    if dry:
        return dry_run(args)
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA device here; scripts/gpu_train.sh --dry-run runs the same path on CPU", file=sys.stderr)
        return 2
    if not (args.prepared / PREPARED_JSON).is_file() or not (args.prepared / "bundle.safetensors").is_file():
        print(f"error: {args.prepared} holds no prepared run and bundle: run `scripts/gpu_train.sh prepare` where the campaign "
              "runs, and carry runs/gpu", file=sys.stderr)
        return 2
    summary = continue_run(args.prepared, Path(args.out), args.minutes, args.branch_minutes, "gpu", threads=None)
    print((Path(args.out) / "gpu_train.log").read_text())
    return 0 if summary["train"]["status"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
