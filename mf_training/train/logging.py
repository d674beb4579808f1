"""Run logs: TensorBoard scalars and image/depth panels, plus a metrics.jsonl for scripts and tests.

Only rank 0 logs; other ranks get a disabled logger whose methods do nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from mf_core.colormap import DepthScale, colorize_depth
from mf_training.viz import colorize_error, compose_panel

METRICS_FILE = "metrics.jsonl"


class RunLogger:
    """Writes scalars to TensorBoard (``RUN_DIR/tb``) and appends them to ``RUN_DIR/metrics.jsonl``."""

    def __init__(self, run_dir: str | Path, enabled: bool) -> None:
        self.enabled = enabled
        self.writer = SummaryWriter(str(Path(run_dir) / "tb")) if enabled else None
        self.metrics_path = Path(run_dir) / METRICS_FILE

    def scalars(self, step: int, values: dict[str, float], kind: str = "train") -> None:
        """Log ``values`` under ``kind/name`` at ``step``."""
        if not self.enabled:
            return
        for name, value in values.items():
            self.writer.add_scalar(f"{kind}/{name}", value, step)
        with self.metrics_path.open("a") as f:
            f.write(json.dumps({"kind": kind, "step": step, **values}) + "\n")

    def forget_after(self, step: int) -> None:
        """Drop metrics.jsonl records past ``step`` (a resumed run logs those steps again)."""
        if not self.enabled or not self.metrics_path.is_file():
            return
        lines = self.metrics_path.read_text().splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
        self.metrics_path.write_text("".join(line + "\n" for line in kept))

    def image(self, step: int, tag: str, rgb: np.ndarray) -> None:
        """Log an (H, W, 3) uint8 RGB panel."""
        if self.enabled:
            self.writer.add_image(tag, rgb, step, dataformats="HWC")

    def close(self) -> None:
        if self.enabled:
            self.writer.close()


def read_metrics(run_dir: str | Path, kind: str = "train") -> list[dict]:
    """The logged records of one kind from ``RUN_DIR/metrics.jsonl``, in order."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["kind"] == kind]


def depth_panel(image: np.ndarray, target: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """image | target depth | aligned prediction | |error| at target pixels; one metric colour scale.

    image (H, W, 3) uint8; target, prediction (H, W) metres with 0 = no value.
    """
    scale = DepthScale.from_depths(target, prediction)
    valid = target > 0  # (H, W)
    error = np.where(valid, np.abs(prediction - target), np.nan)  # (H, W)
    error_max = float(np.nanpercentile(error, 98)) if valid.any() else 1.0
    tiles = [
        ("image", image),
        ("target", colorize_depth(target, scale)),
        ("prediction", colorize_depth(prediction, scale)),
        ("|error|", colorize_error(error, error_max)),
    ]
    return compose_panel(tiles, scale=scale, error_max=error_max)
