"""``mf eval``: score a checkpoint (in one mode) or a classical baseline on a data source.

Writes ``OUT/metrics.json``, ``OUT/metrics.md`` and ``OUT/panels/NAME.png``, prints a table.
"""

from __future__ import annotations

import argparse

from mf_core.completion import BASELINES
from mf_core.errors import InputError
from mf_core.modes import MODES
from mf_training.eval.protocols import DEFAULT_HOLDOUT_FRACTION, HOLDOUT_PROTOCOLS, PROTOCOLS, REGIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help="sample folder, bag (with a ground-truth topic for affine/metric), DGP or 7-Scenes path")
    method = parser.add_mutually_exclusive_group(required=True)
    method.add_argument("--model", metavar="CKPT", help="checkpoint folder to evaluate")
    method.add_argument("--baseline", choices=sorted(BASELINES), help="classical baseline to evaluate")
    parser.add_argument("--mode", choices=MODES, help="model mode (with --model; default i2d-aligned)")
    parser.add_argument("--protocol", required=True, choices=PROTOCOLS,
                        help="affine: least-squares scale+shift to ground truth; metric: as is; "
                             "lidar-holdout: feed part of the LiDAR, score on the rest (needs no ground truth); "
                             "segment-holdout: the same with whole scan-line pieces held out")
    parser.add_argument("--region", default="none", choices=sorted(REGIONS),
                        help="scored region: kitti = Garg crop + 80 m cap, nyu = Eigen crop + 10 m cap")
    parser.add_argument("--holdout-fraction", type=float, default=None,
                        help=f"lidar-holdout: fraction of each frame's points held out (default "
                             f"{DEFAULT_HOLDOUT_FRACTION})")
    parser.add_argument("--steps", type=int, default=None, help="model sampler steps (default 1)")
    parser.add_argument("--processing-size", metavar="WxH",
                        help="model resolution: WxH (e.g. 512x384) or the longer side (default: input size)")
    parser.add_argument("--device", default=None, help="torch device for --model (default cuda if available)")
    parser.add_argument("--limit", type=int, help="evaluate at most this many frames")
    parser.add_argument("--seed", type=int, default=0, help="seeds the holdout split and the sampler noise")
    parser.add_argument("--out", required=True, help="output folder")


def parse_processing_size(text: str) -> int | tuple[int, int]:
    """``"WxH"`` (width first, as every size this package prints) -> (H, W); ``"N"`` -> N (the longer side).
    Raises InputError otherwise."""
    from mf_training.bench.eval import parse_size

    if text.strip().isdigit() and int(text) > 0:
        return int(text)
    width, height = parse_size(text, "--processing-size")
    return height, width


def _check_flags(args: argparse.Namespace) -> None:
    if args.baseline:
        model_only = [flag for flag, value in (("--mode", args.mode), ("--steps", args.steps),
                                               ("--processing-size", args.processing_size),
                                               ("--device", args.device)) if value is not None]
        if model_only:
            raise InputError(f"{', '.join(model_only)} apply to --model only; drop them for --baseline")
    if args.holdout_fraction is not None and args.protocol not in HOLDOUT_PROTOCOLS:
        raise InputError("--holdout-fraction applies to --protocol lidar-holdout or segment-holdout only")
    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps must be at least 1, got {args.steps}")
    if args.processing_size is not None:
        parse_processing_size(args.processing_size)


def run(args: argparse.Namespace) -> int:
    _check_flags(args)
    # Imported here so that `mf eval --help` and flag errors stay fast.
    from mf_training.data.sources import open_samples
    from mf_training.eval.harness import baseline_method, evaluate, model_method, print_summary
    from mf_training.eval.protocols import make_protocol

    fraction = DEFAULT_HOLDOUT_FRACTION if args.holdout_fraction is None else args.holdout_fraction
    protocol = make_protocol(args.protocol, args.region, fraction, args.seed)
    source = open_samples(args.data, limit=args.limit)
    if args.baseline:
        method = baseline_method(args.baseline)
    else:
        import torch

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        size = None if args.processing_size is None else parse_processing_size(args.processing_size)
        method = model_method(args.model, args.mode or "i2d-aligned", args.steps or 1, args.seed, size, device)
    report = evaluate(source, method, protocol, args.out, total=source.length)
    print_summary(report, args.out)
    return 0
