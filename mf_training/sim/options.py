"""Command-line options shared by ``mf sim`` and ``mf bench sim`` -> SimConfig."""

from __future__ import annotations

import argparse

from mf_training.sim.config import BEAM_COUNTS, SCENE_KINDS, SimConfig, parse_vfov


def add_config_arguments(parser: argparse.ArgumentParser, frames: int) -> None:
    """Add every SimConfig option to ``parser`` (``frames`` is the default frame count)."""
    d = SimConfig()
    parser.add_argument("--frames", type=int, default=frames, help=f"camera frames to generate (default {frames})")
    parser.add_argument("--seed", type=int, default=d.seed, help="random seed: same seed and options, same bag")
    parser.add_argument("--scene", choices=SCENE_KINDS, default=d.scene, help=f"world to generate (default {d.scene})")
    parser.add_argument("--width", type=int, default=d.width, help=f"image width in pixels (default {d.width})")
    parser.add_argument("--height", type=int, default=d.height, help=f"image height in pixels (default {d.height})")
    focal = parser.add_mutually_exclusive_group()
    focal.add_argument("--fov-deg", type=float, default=d.fov_deg,
                       help=f"horizontal field of view in degrees (default {d.fov_deg:g})")
    focal.add_argument("--fx", type=float, help="focal length in pixels (fy = fx); overrides --fov-deg")
    parser.add_argument("--rate", type=float, default=d.rate, help=f"frames per second (default {d.rate:g})")
    parser.add_argument("--beams", type=int, default=d.beams,
                        help=f"LiDAR beams, one of {', '.join(map(str, BEAM_COUNTS))} (default {d.beams})")
    parser.add_argument("--vfov", default=",".join(f"{a:g}" for a in d.vfov),
                        help="LiDAR vertical field of view 'LOW,HIGH' in degrees; write it with '=' because it "
                             "starts with a minus: --vfov=-25,15 (default)")
    parser.add_argument("--horizontal-resolution", type=int, default=d.horizontal_resolution,
                        help=f"LiDAR points per revolution per beam (default {d.horizontal_resolution})")
    parser.add_argument("--max-range", type=float, default=d.max_range,
                        help=f"LiDAR maximum range in metres; farther returns are dropped (default {d.max_range:g})")
    parser.add_argument("--range-noise", type=float, default=d.range_noise,
                        help=f"std of gaussian LiDAR range noise in metres (default {d.range_noise:g})")
    parser.add_argument("--lidar-delay-ms", type=float, default=d.lidar_delay_ms,
                        help=f"LiDAR stamp minus camera stamp in ms (default {d.lidar_delay_ms:g})")
    parser.add_argument("--sweep-ms", type=float, default=d.sweep_ms,
                        help="LiDAR revolution time in ms: each return is measured at its own time from its own pose "
                             "(a rolling sweep, recorded in the cloud's 't' field, and /tf every 10 ms; deskew with "
                             f"--fixed-frame odom), 0 = the whole sweep at its stamp (default {d.sweep_ms:g})")


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """SimConfig from parsed options; bad values raise InputError."""
    return SimConfig(frames=args.frames, seed=args.seed, scene=args.scene, width=args.width, height=args.height,
                     fov_deg=args.fov_deg, fx=args.fx, rate=args.rate, beams=args.beams, vfov=parse_vfov(args.vfov),
                     horizontal_resolution=args.horizontal_resolution, max_range=args.max_range,
                     range_noise=args.range_noise, lidar_delay_ms=args.lidar_delay_ms,
                     sweep_ms=args.sweep_ms)
