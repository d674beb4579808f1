"""``mf release``: turn a training run into a shippable model folder.

The model released is the run's best by validation (``RUN/best``: the lowest frame-by-frame
validation score of a LiDAR-conditioned run, see :mod:`mf_training.train.validation`), else its
newest checkpoint; ``--latest`` forces the newest.

Writes ``model.safetensors`` (fp16 by default: half the bytes, and the depth head is cast
back to fp32 on load) and ``config.json`` with the metadata inference reads: the mode
the model is meant for, the resolution it was trained at (DepthEstimator's default
processing size), the longer side its refinement head runs at and the share of its
correction to apply, plus where
it came from (run, step, data sources).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mf_core.errors import InputError

DTYPES = ("float16", "bfloat16", "float32")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="training run folder (mf train --out)")
    parser.add_argument("--out", required=True, help="model folder to write (e.g. models/mf-default)")
    parser.add_argument("--mode", default=None,
                        help="recommended inference mode (default: conditioned for LiDAR-conditioned models, "
                             "else guided)")
    parser.add_argument("--processing-size", type=int, default=None,
                        help="longer image side inference runs at (default: the run's release.processing_size, "
                             "else data.frame_size, else 5/4 of the training crop's)")
    parser.add_argument("--refine-strength", type=float, default=None,
                        help="refine_head models: share of the learned correction to the LiDAR prior applied at "
                             "inference between scan lines, in [0, 1] (default: the run's release.refine_strength, "
                             "which its validation scored at)")
    parser.add_argument("--refine-strength-near", type=float, default=None,
                        help="the share next to a LiDAR return on the pixel's own row (mf_core.lidar_prior."
                             "strength_map; default: the run's release.refine_strength_near)")
    parser.add_argument("--refine-size", type=int, default=None,
                        help="refine_head models: longer image side the refinement head runs at (default: the "
                             "run's release.refine_size, else data.frame_size: the scale it trained at)")
    parser.add_argument("--nearest-share", default=None,
                        help="LiDAR-conditioned models: share of the nearest-return fill mixed into the output: "
                             "auto (fitted per frame on its own LiDAR), none, or a number in [0, 1] (default: the "
                             "run's release.nearest_share)")
    parser.add_argument("--latest", action="store_true", help="release the newest checkpoint, not the best")
    parser.add_argument("--dtype", choices=DTYPES, default="float16", help="weight dtype (default float16)")


def run(args: argparse.Namespace) -> int:
    import torch

    from mf_core.checkpoint import load_model, save_model
    from mf_core.lidar_prior import (
        REFINE_SIZE_KEY,
        REFINE_STRENGTH_KEY,
        REFINE_STRENGTH_NEAR_KEY,
        check_refine_strengths,
    )
    from mf_core.modes import MODES, recommended_mode
    from mf_core.self_validation import NEAREST_SHARE_KEY, parse_nearest_share
    from mf_training.train.config import load_config
    from mf_training.train.loop import BEST_DIR, CONFIG_FILE
    from mf_training.train.state import latest_checkpoint

    check_refine_strengths(args.refine_strength, args.refine_strength_near, "--")
    flag_share = None if args.nearest_share is None else parse_nearest_share(args.nearest_share, "--nearest-share")
    for flag, value in (("--processing-size", args.processing_size), ("--refine-size", args.refine_size)):
        if value is not None and value <= 0:
            raise InputError(f"{flag} must be a positive longer image side in pixels, got {value}")
    run_dir = Path(args.run)
    if not (run_dir / CONFIG_FILE).is_file():
        raise InputError(f"{run_dir} is not a training run (no {CONFIG_FILE}); pass the folder given to mf train --out")
    config = load_config(run_dir / CONFIG_FILE)
    best = run_dir / BEST_DIR
    source = best if (best / "config.json").is_file() and not args.latest else latest_checkpoint(run_dir) / "model"
    model, metadata = load_model(source)
    mode = args.mode or recommended_mode({}, model.config.depth_conditioned)
    if mode not in MODES:
        raise InputError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    size = args.processing_size or config.processing_size
    strength = config.release.refine_strength if args.refine_strength is None else args.refine_strength
    near = config.release.refine_strength_near if args.refine_strength_near is None else args.refine_strength_near
    share = config.release.nearest_share if args.nearest_share is None else flag_share
    metadata = {
        **metadata,
        REFINE_STRENGTH_KEY: strength,
        **({} if near is None else {REFINE_STRENGTH_NEAR_KEY: near}),
        "recommended_mode": mode,
        "processing_size": size,
        **({REFINE_SIZE_KEY: args.refine_size or config.refine_size} if model.config.refine_head else {}),
        **({NEAREST_SHARE_KEY: share} if model.config.depth_conditioned and share is not None else {}),
        "run": str(run_dir),
        "data": [source.path for source in config.data.sources],
        "train_resolution": [config.data.height, config.data.width],
    }
    out = save_model(args.out, model, metadata, dtype=getattr(torch, args.dtype), carry_vae=True)
    size_mb = (out / "model.safetensors").stat().st_size / 2**20
    score = metadata.get("validation", {}).get("score")
    chosen = f"best by validation (score {score:.4f})" if source == best else "newest"
    print(f"released step {metadata.get('step')} ({chosen}) of {run_dir} to {out} ({size_mb:.1f} MB, "
          f"{args.dtype}, mode {mode}, processing size {size}"
          + (f", refine size {metadata[REFINE_SIZE_KEY]})" if REFINE_SIZE_KEY in metadata else ")"))
    return 0
