"""What ``mf eval`` writes: metrics.json, metrics.md (a table per frame + mean) and one PNG panel per frame."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from mf_core.colormap import DepthScale, colorize_depth
from mf_training.eval.metrics import valid_depth_mask
from mf_training.eval.protocols import FrameSplit
from mf_training.viz import colorize_error, compose_panel, lidar_overlay

# (key, column header, factor applied for display, format) of the markdown / printed table.
COLUMNS: tuple[tuple[str, str, float, str], ...] = (
    ("abs_rel", "AbsRel %", 100.0, ".2f"),
    ("sq_rel", "SqRel m", 1.0, ".3f"),
    ("rmse", "RMSE m", 1.0, ".3f"),
    ("rmse_log", "RMSElog", 1.0, ".3f"),
    ("mae", "MAE m", 1.0, ".3f"),
    ("irmse", "iRMSE 1/km", 1.0, ".2f"),
    ("delta1", "δ1 %", 100.0, ".1f"),
    ("delta2", "δ2 %", 100.0, ".1f"),
    ("delta3", "δ3 %", 100.0, ".1f"),
    ("coverage", "coverage %", 100.0, ".1f"),
    ("edge_accuracy_px", "edge acc px", 1.0, ".2f"),  # dense ground truth only (mf_training/eval/edge_alignment.py)
    ("edge_completeness_px", "edge comp px", 1.0, ".2f"),
    ("n_valid", "pixels", 1.0, ".0f"),
    ("runtime_s", "time ms", 1000.0, ".1f"),
)
PANEL_TILE_WIDTH = 640  # wider frames are shrunk so a five-tile panel stays a viewable PNG
MAX_PRINTED_FRAMES = 20  # longer runs print only the mean row
MIN_ERROR_SCALE = 0.05  # metres: the error colour bar spans at least this much


def _row(label: str, values: dict) -> str:
    cells = [format(values[key] * factor, fmt) if key in values else "-" for key, _, factor, fmt in COLUMNS]
    return "| " + " | ".join([label, *cells]) + " |"


def markdown_table(frames: list[dict], mean: dict, per_frame: bool = True) -> str:
    """A markdown table: one row per frame (when ``per_frame``), then the bold mean row."""
    lines = ["| frame | " + " | ".join(header for _, header, _, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    if per_frame:
        lines += [_row(frame["name"], frame) for frame in frames]
    lines.append(_row(f"**mean of {len(frames)}**", mean))
    return "\n".join(lines)


def write_report(out_dir: Path, report: dict, description: str) -> tuple[Path, Path]:
    """Write ``metrics.json`` (``report`` as is) and ``metrics.md`` (``description`` + table); return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "metrics.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path = out_dir / "metrics.md"
    md_path.write_text(f"# {description}\n\n{markdown_table(report['frames'], report['mean'])}\n")
    return json_path, md_path


def summary(report: dict) -> str:
    """The table printed at the end of a run (per frame for short runs, the mean only for long ones)."""
    return markdown_table(report["frames"], report["mean"], per_frame=len(report["frames"]) <= MAX_PRINTED_FRAMES)


def _fit_width(tile: np.ndarray, smooth: bool) -> np.ndarray:
    """Shrink an (H, W, 3) tile to PANEL_TILE_WIDTH wide (area averaging when ``smooth``, else nearest)."""
    h, w = tile.shape[:2]
    if w <= PANEL_TILE_WIDTH:
        return tile
    size = (PANEL_TILE_WIDTH, max(1, round(h * PANEL_TILE_WIDTH / w)))
    return cv2.resize(tile, size, interpolation=cv2.INTER_AREA if smooth else cv2.INTER_NEAREST)


def _grow_points(values: np.ndarray, radius: int = 1) -> np.ndarray:
    """Draw each finite value of a sparse (H, W) map as a (2r+1)^2 dot (largest value wins); NaN elsewhere."""
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    grown = cv2.dilate(np.where(np.isfinite(values), values, -1.0).astype(np.float32), kernel)  # (H, W)
    return np.where(grown >= 0, grown, np.nan)


def frame_panel(image: np.ndarray, split: FrameSplit, pred: np.ndarray) -> np.ndarray:
    """image | LiDAR fed to the method | prediction | ground truth | |error|, one depth scale in metres.

    Under lidar-holdout the ground-truth tile shows the held-out points (what was scored)
    and the error is drawn as dots on them.
    """
    scored = split.score_mask & valid_depth_mask(split.target) & valid_depth_mask(pred)  # (H, W)
    error = np.where(scored, np.abs(pred.astype(np.float64) - split.target), np.nan)  # (H, W) metres
    error_max = max(float(np.percentile(error[scored], 98)) if scored.any() else 1.0, MIN_ERROR_SCALE)
    scale = DepthScale.from_depths(split.fed_sparse, split.target)
    blank = np.zeros_like(image)
    if split.target_is_sparse:
        truth = ("held-out LiDAR", lidar_overlay(blank, split.target, scale))
        error = _grow_points(error)
    else:
        truth = ("ground truth", colorize_depth(split.target, scale))
    tiles = [
        ("image", _fit_width(image, smooth=True)),
        (f"LiDAR fed ({int((split.fed_sparse > 0).sum())} px)",
         _fit_width(lidar_overlay(image, split.fed_sparse, scale), smooth=False)),
        ("prediction", _fit_width(colorize_depth(pred, scale), smooth=True)),
        (f"{truth[0]} ({int(scored.sum())} px scored)", _fit_width(truth[1], smooth=False)),
        ("|error|", _fit_width(colorize_error(error, error_max), smooth=False)),
    ]
    return compose_panel(tiles, scale=scale, error_max=error_max)
