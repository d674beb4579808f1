"""``mf demo``: the main job on the shipped defaults, end to end, on a synthetic street scene.

1. ``mf sim``: a synthetic street bag (camera, 64-beam LiDAR, /tf_static, dense ground truth).
2. ``mf densify`` with the shipped model: the depth node's pipeline on the bag, writing a bag
   with the depth topics added.
3. A preview panel of the first frame (camera | LiDAR on the image | ground truth | the depth the
   node's pipeline published: NaN, drawn black, where the LiDAR does not support an estimate).
4. ``mf eval`` of the shipped model, its LiDAR prior alone and the classical baselines on the same
   frames, against the simulator's dense ground truth; a comparison table (``summary.md``) and PNG panels.
5. ``mf bench quality`` on a few held-out test frames of the real sets in ``../shared/data``
   (``$MF_DATA_ROOT``), when they are there: the comparison that counts, with panels.

Each step is the real command, run in-process, so the demo exercises exactly what users run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from mf_core.completion import CLASSICAL_BASELINES
from mf_core.errors import InputError

if TYPE_CHECKING:
    import numpy as np

# Real sets and frames per set the demo's quick real-data comparison scores (mf bench quality --limit).
REAL_SETS = "kitti,sevenscenes,middlebury"
REAL_FRAMES = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--frames", type=int, default=6, help="synthetic frames (default 6)")
    parser.add_argument("--seed", type=int, default=7, help="scene seed (default 7)")
    parser.add_argument("--model", default="default",
                        help="checkpoint folder (default: 'default', the shipped model models/mf-default)")
    parser.add_argument("--mode", default=None, help="model mode (default: the checkpoint's recommended mode)")


def _step(argv: list[str]) -> None:
    from mf_training.cli import main

    print(f"\n$ mf {' '.join(argv)}", flush=True)
    code = main(argv)
    if code != 0:
        raise InputError(f"'mf {' '.join(argv)}' failed with exit code {code}")


def _recommended_mode(model: Path) -> str:
    from mf_core.checkpoint import read_checkpoint_config
    from mf_core.modes import recommended_mode

    config, metadata = read_checkpoint_config(model)
    return recommended_mode(metadata, config.depth_conditioned)


def _comparison_table(results: dict[str, dict]) -> str:
    keys = ("abs_rel", "rmse", "mae", "delta1", "runtime_s")
    lines = ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, mean in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{mean[k]:.4f}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from mf_training.data.sources import open_samples
    from mf_training.viz import sample_panel, save_png

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / "street_bag"
    _step(["sim", "--out", str(bag), "--overwrite", "--scene", "street", "--frames", str(args.frames),
           "--seed", str(args.seed), "--workers", "2"])

    from mf_core.checkpoint import resolve_model_path

    model = resolve_model_path(args.model)
    mode = args.mode or _recommended_mode(model)
    _step(["densify", "--bag", str(bag), "--out", str(out / "densified_bag"), "--overwrite",
           "--model", str(model), "--mode", mode])

    first = next(iter(open_samples(bag)))
    published = first_published_depth(out / "densified_bag")
    preview = save_png(out / "preview.png", sample_panel(first.image, first.sparse_depth, first.gt_depth, published))
    print(f"wrote {preview}")

    results: dict[str, dict] = {}
    runs = [(f"mf ({mode})", ["--model", str(model), "--mode", mode])]
    runs += [(name, ["--baseline", name]) for name in ("scanline", *CLASSICAL_BASELINES)]
    for name, method in runs:
        folder = out / "eval" / name.split(" ")[0]
        _step(["eval", "--data", str(bag), *method, "--protocol", "metric", "--out", str(folder)])
        results[name] = json.loads((folder / "metrics.json").read_text())["mean"]
    table = _comparison_table(results)
    summary = ("Metric depth against the simulator's dense ground truth "
               f"({args.frames} street frames, 640x480, 64-beam LiDAR)\n\n" + table)
    real = _real_data_comparison(out / "quality", model, mode)
    (out / "summary.md").write_text(summary + ("\n" + real if real else ""))
    print("\n" + table)
    print(f"results: {out.resolve()}  (summary.md, preview.png, eval/*/panels/*.png, densified_bag/"
          + (", quality/quality.md, quality/panels/" if real else "") + ")")
    return 0


def first_published_depth(bag: Path) -> np.ndarray:
    """(H, W) metres, NaN = none: the first depth image ``mf densify`` wrote to ``bag`` (its ``.../depth/image``)."""
    from mf_ros import conversions as conv
    from mf_ros.bags import bag_topics, read_messages

    topic = next(t.topic for t in bag_topics(bag) if t.topic.endswith("/depth/image"))
    return conv.image_to_depth(next(iter(read_messages(bag, [topic]))).msg)


def _real_data_comparison(out: Path, model: Path, mode: str) -> str:
    """mf bench quality on a few real test frames (markdown), or "" with a note when the data is absent."""
    from mf_training.data.real_sets import data_root

    root = data_root()
    if not root.is_dir():
        print(f"note: no real data at {root} (set $MF_DATA_ROOT): skipping the real-data comparison")
        return ""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "stdout.json", "w") as report, contextlib.redirect_stdout(report):  # the JSON, kept quiet
        _step(["bench", "quality", "--model", str(model), "--mode", mode, "--sets", REAL_SETS, "--limit",
               str(REAL_FRAMES), "--out-dir", str(out), "--panels"])
    return (out / "quality.md").read_text()
