"""The ``mf`` console command: one entry point, one module per subcommand.

Each subcommand lives in ``mf_training/commands/<name>.py`` and defines
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when
their command runs, so ``mf --help`` stays fast and a missing optional dependency
of one command cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mf_core.errors import InputError

# name -> one-line help. The module is mf_training.commands.<name>.
COMMANDS: dict[str, str] = {
    "demo": "run the main job on the shipped defaults (synthetic bag -> preview panel)",
    "sim": "generate a synthetic camera + LiDAR rosbag2 (MCAP) with dense ground truth",
    "export": "write a bag's synchronized camera/LiDAR samples as a sample folder",
    "inspect": "summarise a bag: topics, types, counts, rates, span, syncable pairs",
    "bag": "bag tools: 'mf bag recover' rebuilds a bag that was never closed (kill -9, full disk)",
    "convert": "turn a real dataset (DGP camera+LiDAR, 7-Scenes RGB-D) into a bag or a sample folder",
    "models": "list the model sizes in the registry with their parameter counts",
    "train": "train a model (image pretraining or Modality Forcing post-training)",
    "release": "turn a training run's newest checkpoint into a shippable (fp16) model folder",
    "lift": "turn a pretrained FLUX.2 transformer (diffusers folder) into an mf checkpoint to post-train",
    "export-onnx": "write a model's per-frame network (conditioned, 1 step) as one ONNX graph, checked against torch",
    "densify": "run the depth_node pipeline on a recorded bag and write a bag with depth topics added",
    "eval": "score a model or a baseline on a sample folder or bag (metrics.json, table, PNG panels)",
    "bench": "run a benchmark and print JSON",
}


def _load(name: str):
    return importlib.import_module(f"mf_training.commands.{name.replace('-', '_')}")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Build the parser; only the subcommand named in ``argv`` is imported."""
    parser = argparse.ArgumentParser(
        prog="mf", description="Dense metric depth from a camera and a sparse LiDAR (Modality Forcing)."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the chosen subcommand, turn bad input into exit code 2."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(_load(args.command).run(args) or 0)
    except (InputError, FileNotFoundError) as exc:
        print(f"mf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
