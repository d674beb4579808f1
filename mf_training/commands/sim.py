"""``mf sim``: generate a synthetic camera + LiDAR rosbag2 (MCAP) with dense ground-truth depth.

Topics: /camera/image_raw (rgb8), /camera/camera_info, /camera/depth/ground_truth (32FC1 metres,
NaN = sky), /lidar/points (x, y, z, intensity in the LiDAR frame), /tf_static (base_link -> lidar
-> camera_optical_frame) and /tf (odom -> base_link at every camera and LiDAR stamp).
"""

from __future__ import annotations

import argparse

from mf_training.sim.options import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="bag directory to create (rosbag2, MCAP storage)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
    parser.add_argument("--workers", type=int, default=1,
                        help="render processes (default 1: renders in a thread of this process, overlapped with "
                             "writing, the fastest on 2 cores); more pay off on machines with more cores")
    add_config_arguments(parser, frames=100)


def run(args: argparse.Namespace) -> int:
    from functools import partial

    from tqdm import tqdm

    from mf_ros.heap import keep_heap_memory
    from mf_training.sim.bag_output import write_bag

    config = config_from_args(args)
    keep_heap_memory()  # this process renders (one worker) or writes ~3 MB per frame: no page-fault churn
    progress = partial(tqdm, total=config.frames, unit="frame", desc="mf sim")
    count = write_bag(args.out, config, workers=args.workers, overwrite=args.overwrite, progress=progress)
    print(f"wrote {count} frames of a {config.scene} scene to {args.out}")
    return 0
