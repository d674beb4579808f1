"""``mf bench sim``: synthetic frames per second, rendering only and end to end with MCAP writing."""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from mf_training.sim.options import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="render processes for the end-to-end run (default: up to 2)")
    add_config_arguments(parser, frames=40)


def run(args: argparse.Namespace) -> dict:
    from functools import partial

    from tqdm import tqdm

    from mf_ros.heap import keep_heap_memory
    from mf_training.sim.bag_output import write_bag
    from mf_training.sim.generator import Simulator

    config = config_from_args(args)
    keep_heap_memory()  # as `mf sim` does
    start = time.perf_counter()
    simulator = Simulator(config)
    build_s = time.perf_counter() - start
    simulator.frame(0)  # the first cast builds Open3D's BVH; keep it out of the rate
    wall, cpu = time.perf_counter(), time.process_time()
    for index in tqdm(range(config.frames), desc="render", unit="frame"):
        simulator.frame(index)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    report = {"scene": config.scene, "size": f"{config.width}x{config.height}", "beams": config.beams,
              "lidar_points_per_sweep": config.beams * config.horizontal_resolution, "frames": config.frames,
              "cpu_count": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
              "scene_triangles": simulator.layout.scene.triangles, "scene_build_s": round(build_s, 3),
              "render_frames_per_s": round(config.frames / wall, 2),
              "render_cpu_ms_per_frame": round(1e3 * cpu / config.frames, 1)}
    for workers in sorted({1, args.workers}):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_bag(os.path.join(tmp, "bag"), config, workers=workers,
                      progress=partial(tqdm, total=config.frames, desc=f"bag x{workers}", unit="frame"))
            elapsed = time.perf_counter() - start
        # Includes scene building (and, with workers, process start-up): what `mf sim` costs.
        report[f"end_to_end_frames_per_s_workers_{workers}"] = round(config.frames / elapsed, 2)
    return report
