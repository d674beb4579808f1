"""``mf convert --source dgp|sevenscenes --path P --out OUT``: a real dataset as rosbag2 MCAP bags or a sample folder.

Bags (default): DGP gives one bag per scene and camera under OUT (``OUT/<scene>_<CAMERA>``);
7-Scenes gives one bag at OUT. See :mod:`mf_training.data.real_bags` for topics and frames.
Folder: the dataset's Samples (DGP with pose-based extrinsics) written with ``mf export``'s layout.
"""

from __future__ import annotations

import argparse

from tqdm import tqdm

from mf_core.errors import InputError
from mf_training.data.real_bags import dgp_to_bags, sevenscenes_to_bag
from mf_training.data.sample_folder import SampleFolderWriter
from mf_training.data.simulated_lidar import SPARSE_PATTERNS
from mf_training.data.sources import detect_kind, open_samples


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, choices=("dgp", "sevenscenes"), help="which dataset --path holds")
    parser.add_argument("--path", required=True, help="DGP dataset json / scene folder, or the 7-Scenes folder")
    parser.add_argument("--out", required=True, help="output: folder of bags (dgp), bag (sevenscenes) or sample folder")
    parser.add_argument("--format", choices=("bag", "folder"), default="bag", help="output kind (default %(default)s)")
    parser.add_argument("--limit", type=int, help="convert at most this many camera frames")
    parser.add_argument("--overwrite", action="store_true", help="replace bags that already exist at the output")
    parser.add_argument("--sparse-pattern", choices=SPARSE_PATTERNS, default="scanlines",
                        help="7-Scenes only: simulated LiDAR from the Kinect depth: 32 scan lines or random "
                             "points (default %(default)s)")
    parser.add_argument("--sparse-points", type=int, default=500,
                        help="7-Scenes, --sparse-pattern random: points per frame (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="7-Scenes only: seed of the simulated points")


def run(args: argparse.Namespace) -> int:
    kind = detect_kind(args.path)
    if kind != args.source:
        raise InputError(f"--path {args.path} looks like a {kind} source, not {args.source}; fix --source or --path")
    options = {"sparse_points": args.sparse_points, "seed": args.seed, "sparse_pattern": args.sparse_pattern} \
        if args.source == "sevenscenes" else {}
    if args.format == "folder":
        source = open_samples(args.path, limit=args.limit, **options)
        writer = SampleFolderWriter(args.out)
        for sample in tqdm(source, total=source.length, desc="convert", unit="frame"):
            writer.write(sample)
        print(writer.summary())
        return 0
    if args.source == "dgp":
        bags = dgp_to_bags(args.path, args.out, limit=args.limit, overwrite=args.overwrite, progress=True)
    else:
        bags = [sevenscenes_to_bag(args.path, args.out, limit=args.limit, overwrite=args.overwrite, progress=True,
                                   **options)]
    print(f"wrote {len(bags)} bag(s): " + ", ".join(str(b) for b in bags))
    return 0
