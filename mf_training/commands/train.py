"""``mf train --config FILE [key=value ...]``: image pretraining or Modality Forcing post-training.

Examples:
    mf train --config config/pretrain.yaml --out runs/pre steps=20000
    mf train --config config/modality_forcing.yaml --out runs/mf init_from=runs/pre
    mf train --resume runs/mf                      # continue at the last checkpoint
    torchrun --nproc_per_node 4 -m mf_training.cli train --config ... --out ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mf_core.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML run config (a 'base:' key names a parent file)")
    parser.add_argument("--out", help="run folder: config.yaml, checkpoints/, tb/, metrics.jsonl")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue RUN_DIR from its last checkpoint with its saved config.yaml")
    parser.add_argument("--stop-after", type=int, metavar="STEP",
                        help="stop after this step with a checkpoint (resume later with --resume)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value",
                        help="config overrides, typed by the field (e.g. optim.lr=1e-4 steps=500)")


def run(args: argparse.Namespace) -> int:
    from mf_training.train.config import load_config
    from mf_training.train.distributed import shutdown_distributed
    from mf_training.train.loop import CONFIG_FILE, train

    if args.resume:
        if args.config or args.out:
            raise InputError("--resume RUN_DIR takes the run's own config.yaml; drop --config/--out")
        run_dir = Path(args.resume)
        if not (run_dir / CONFIG_FILE).is_file():
            raise InputError(f"{run_dir} has no {CONFIG_FILE}: pass a run folder written by mf train")
        config = load_config(run_dir / CONFIG_FILE, args.overrides)
    else:
        if not args.config or not args.out:
            raise InputError("pass --config FILE and --out RUN_DIR (or --resume RUN_DIR)")
        run_dir = Path(args.out)
        if (run_dir / CONFIG_FILE).exists():
            raise InputError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        config = load_config(args.config, args.overrides)
    try:
        result = train(config, run_dir, resume=bool(args.resume), stop_after=args.stop_after)
    finally:
        shutdown_distributed()
    if not result.is_main:
        return 0
    summary = ", ".join(f"{k} {v:.4f}" for k, v in (result.losses | result.validation).items())
    print(f"mf train: step {result.step} in {result.run_dir}: {summary}")
    return 0
