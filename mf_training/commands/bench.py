"""``mf bench NAME``: run one benchmark and print its JSON report.

Each benchmark lives in ``mf_training/bench/<name>.py`` and defines
``add_arguments(parser)`` and ``run(args) -> dict`` (the report). Benchmark modules
import their heavy dependencies inside ``run`` so building this parser stays cheap.
"""

from __future__ import annotations

import argparse
import importlib
import json

BENCHMARKS: dict[str, str] = {
    "geometry": "LiDAR projection and PointCloud2 building vs a plain numpy copy",
    "sim": "synthetic scene generation rate (frames/s)",
    "model": "model forward/backward throughput and i2d latency, vs diffusers SD3 blocks",
    "eval": "per-frame time of each baseline and model mode at 640x480",
    "node": "depth_node per-frame overhead apart from the model, and end-to-end latency",
    "quality": "a model vs the classical baselines on the held-out real data (RMSE ratios, monocular vs row prior)",
    "lift": "peak memory and time of mf lift on a random FLUX.2-shaped transformer (streaming: about 1x its size)",
    "stability": "flicker on a static scene: depth std over noisy LiDAR sweeps, the model vs the classical fills",
    "consistency": "depth change between consecutive frames of a moving camera (7-Scenes), the model vs the "
                   "classical fills",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, help_text in BENCHMARKS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--out", help="also write the JSON report to this file")
        importlib.import_module(f"mf_training.bench.{name}").add_arguments(p)


def run(args: argparse.Namespace) -> int:
    report = importlib.import_module(f"mf_training.bench.{args.benchmark}").run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0
