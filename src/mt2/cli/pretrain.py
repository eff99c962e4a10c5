"""``mt2 pretrain``: self-supervised pretraining with Lightning (one CPU to many GPUs and nodes)."""
from __future__ import annotations

import argparse
from pathlib import Path

#: Flags that set a hyper-parameter; they cannot change a run that is resumed.
HYPER_FLAGS = ("preset", "variant", "config", "batch_size", "lr", "seed", "probe_every", "real_data", "real_share")


def _devices(value: str) -> int | str:
    return value if value == "auto" or "," in value else int(value)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "pretrain",
        help="pretrain an MT2 model (or a single-token variant) on a folder of audio, a manifest or shards",
        description="Pretrain MT2 with Lightning. Every hyper-parameter comes from a YAML config: the packaged "
        "one of --preset, overlaid by --config, overlaid by the flags below; the result is saved as OUT/config.yaml "
        "with the package version and the data hash. OUT also receives last.ckpt and best.ckpt (written atomically), "
        "metrics.csv, training_curves.png and the CQT cache. The variants differ only in their class tokens and "
        "losses: same data, steps, batch and seed.",
    )
    parser.add_argument("--data", type=Path,
                        help="a folder of audio (recursive), a corpus folder or manifest (.jsonl/.csv with a 'path' column), "
                        "or a folder of WebDataset shards (mt2 corpus shard); required for a new run (--resume and --branch "
                        "default to the run's own)")
    parser.add_argument("--variant", choices=("mt2", "contrastive", "equivariant", "masked"),
                        help="mt2: both class tokens (CPSD + NT-Xent); contrastive or equivariant: one token, one loss; "
                        "masked: MERT's objective (masked-token prediction of k-means codes and CQT frames; the codebook "
                        "is fitted first and saved as OUT/codebook.safetensors) (default: the config's)")
    parser.add_argument("--preset", help="packaged config and model size: mt2-mini (CPU) or mt2-tiny (paper scale) (default: the config's, else mt2-mini)")
    parser.add_argument("--config", type=Path, help="YAML file overlaid on the preset's config (any key of mt2/configs/mt2-mini.yaml)")
    parser.add_argument("--out", type=Path, default=Path("runs/pretrain"), help="run folder (default: runs/pretrain)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in OUT from last.ckpt (weights, optimiser, schedule, data position); "
                        "uses OUT/config.yaml, so hyper-parameter flags are refused; --max-steps may extend the run")
    parser.add_argument("--branch", type=Path, metavar="RUN",
                        help="finish the wsd run RUN at --budget steps into OUT: its checkpoint at that budget's decay "
                        "start, decayed over the budget's last decay_fraction of steps (rerun the same command to resume)")
    parser.add_argument("--init", metavar="MODEL",
                        help="a new run starting from the weights of MODEL (a shipped name such as mt2-tiny, or a folder "
                        "written by mt2 export) with a fresh optimiser and schedule; its preset and variant must match "
                        "(recorded in OUT/config.yaml as run.init)")
    parser.add_argument("--budget", type=int, help="with --branch: the budget, one of RUN's config 'budgets'")
    parser.add_argument("--max-steps", type=int, help="optimisation steps (sets the cosine schedule's length; default: the config's)")
    parser.add_argument("--until", type=int, metavar="STEP",
                        help="stop after STEP steps (last.ckpt is written) without changing the schedule's length: "
                        "train a long run in pieces, each continued with --resume")
    parser.add_argument("--max-time", help="stop after this wall-clock time, DD:HH:MM:SS (last.ckpt is written)")
    parser.add_argument("--batch-size", type=int, help="tracks per device per step (negatives are gathered over all devices)")
    parser.add_argument("--lr", type=float, help="peak learning rate of AdamW")
    parser.add_argument("--seed", type=int, help="seed of initialisation and of every batch")
    parser.add_argument("--probe-every", type=int, help="online probes every N steps (0: never; needs a labelled corpus)")
    parser.add_argument("--real-data", help="real recordings written by `mt2 corpus real` (a folder or its manifest.jsonl) "
                        "mixed into every batch as random 15-s crops of long tracks (config key real_data)")
    parser.add_argument("--real-share", type=float, help="share of each batch cut from --real-data, in (0, 1]; 1 trains on "
                        "real recordings alone while the online probes keep reading --data (config key real_share; default 0.5)")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu, ... or auto (default)")
    parser.add_argument("--devices", type=_devices, default="auto", help="devices per node: a count, a comma list of ids, or auto")
    parser.add_argument("--num-nodes", type=int, default=1, help="number of nodes (multi-node DDP: start the same command on every node, with torchrun or SLURM)")
    parser.add_argument("--strategy", default="auto", help="Lightning strategy: auto, ddp, ddp_spawn, fsdp, ...")
    parser.add_argument("--cache-dir", type=Path, help="CQT cache folder (default: OUT/cache)")
    parser.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    import torch

    from mt2.evaluation.model_metrics import online_probe
    from mt2.training.config import load_config
    from mt2.training.lightning import InitWeightsError, branch_config, pretrain, resumed_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.init is not None and (args.resume or args.branch is not None):
        raise SystemExit("--init starts a new run from a model's weights; --resume and --branch continue a run's own")
    if (args.branch is None) != (args.budget is None):
        raise SystemExit("--branch RUN and --budget B go together")
    if args.branch is not None:
        given = [f"--{name.replace('_', '-')}" for name in HYPER_FLAGS if getattr(args, name) is not None]
        if given or args.resume or args.max_steps:
            raise SystemExit(f"--branch continues {args.branch / 'config.yaml'}; drop {' '.join(given) or '--resume/--max-steps'}")
        try:
            config = branch_config(args.branch, args.budget, args.out)
        except (ValueError, FileNotFoundError) as error:
            raise SystemExit(f"mt2 pretrain --branch: {error}") from None
        args.resume = True
        args.cache_dir = args.cache_dir or args.branch / "cache"
    elif args.resume:
        given = [f"--{name.replace('_', '-')}" for name in HYPER_FLAGS if getattr(args, name) is not None]
        if given:
            raise SystemExit(f"--resume continues with {args.out / 'config.yaml'}; drop {' '.join(given)} or start a new --out")
        config = resumed_config(args.out, args.max_steps)
    if args.data is None:
        if not args.resume:
            raise SystemExit("mt2 pretrain: --data is required for a new run")
        from mt2.training.config import read_saved_config

        args.data = Path(read_saved_config(args.out / "config.yaml")[1]["data"])
    if not args.resume:
        config = load_config(
            args.preset, args.config, variant=args.variant, max_steps=args.max_steps, batch_size=args.batch_size,
            lr=args.lr, seed=args.seed, probe_every=args.probe_every,
            real_data=str(Path(args.real_data).resolve()) if args.real_data else None, real_share=args.real_share,
        )
    try:
        last = pretrain(
            config, args.data, args.out, resume=args.resume, cache_dir=args.cache_dir, max_time=args.max_time, until=args.until,
            accelerator=args.accelerator, devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy,
            progress=not args.no_progress, probe=online_probe, init=args.init,
        )
    except InitWeightsError as error:
        raise SystemExit(f"mt2 pretrain: {error}") from None
    print(f"checkpoint: {last}")
    return 0
