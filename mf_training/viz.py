"""PNG panels people look at: image | LiDAR | depth | error, sharing one metric colour scale."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mf_core.colormap import COLORMAP, DepthScale, apply_colormap, colorize_depth

TITLE_HEIGHT = 28
COLORBAR_HEIGHT = 46


def colorize_error(error: np.ndarray, max_error: float) -> np.ndarray:
    """(H, W) absolute error in metres -> (H, W, 3) uint8 RGB (black = 0 or invalid, bright = max)."""
    norm = np.clip(np.nan_to_num(error) / max(max_error, 1e-6), 0.0, 1.0)
    return apply_colormap(norm, np.isfinite(error), cv2.COLORMAP_INFERNO)


def lidar_overlay(image: np.ndarray, sparse_depth: np.ndarray, scale: DepthScale, radius: int = 1) -> np.ndarray:
    """The image, darkened, with each LiDAR return drawn as a dot of ``radius`` px coloured by its depth."""
    hit = sparse_depth > 0  # (H, W)
    if radius > 0:
        kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
        # Grow each return into a dot; dilating -depth lets the nearest return win where dots overlap.
        grown = cv2.dilate(np.where(hit, -sparse_depth, -np.inf).astype(np.float32), kernel)  # (H, W)
        hit = np.isfinite(grown)
        sparse_depth = np.where(hit, -grown, 0.0)
    out = (image.astype(np.float32) * 0.35).astype(np.uint8)
    out[hit] = colorize_depth(sparse_depth, scale)[hit]
    return out


def _title_bar(text: str, width: int) -> np.ndarray:
    bar = np.full((TITLE_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(bar, text, (6, TITLE_HEIGHT - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def _colorbar(width: int, scale: DepthScale, colormap: int = COLORMAP, unit: str = "m") -> np.ndarray:
    bar = np.full((COLORBAR_HEIGHT, width, 3), 255, np.uint8)
    x0, x1 = 40, width - 40
    ramp = np.linspace(0, 255, max(x1 - x0, 2)).astype(np.uint8)[None, :].repeat(14, axis=0)
    bar[6:20, x0:x1] = cv2.cvtColor(cv2.applyColorMap(ramp, colormap), cv2.COLOR_BGR2RGB)
    for frac in np.linspace(0.0, 1.0, 6):
        x = int(x0 + frac * (x1 - x0 - 1))
        value = scale.vmin + frac * (scale.vmax - scale.vmin)
        label = f"{value:.1f} {unit}" if frac in (0.0, 1.0) else f"{value:.1f}"
        cv2.line(bar, (x, 20), (x, 25), (0, 0, 0), 1)
        size = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0]
        cv2.putText(bar, label, (int(np.clip(x - size[0] // 2, 0, width - size[0])), 40),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def compose_panel(
    tiles: list[tuple[str, np.ndarray]], scale: DepthScale | None = None, error_max: float | None = None
) -> np.ndarray:
    """Tiles side by side under their titles, with colour bars for depth (and error) below.

    Every tile is an (H, W, 3) uint8 RGB image of the same height.
    """
    heights = {tile.shape[0] for _, tile in tiles}
    if len(heights) != 1:
        raise ValueError(f"panel tiles must share one height, got {sorted(heights)}")
    columns = [np.vstack([_title_bar(title, tile.shape[1]), tile]) for title, tile in tiles]
    panel = np.hstack(columns)
    width = panel.shape[1]
    rows = [panel]
    if scale is not None:
        rows.append(_colorbar(width, scale))
    if error_max is not None:
        rows.append(_colorbar(width, DepthScale(0.0, error_max), cv2.COLORMAP_INFERNO, "m error"))
    return np.vstack(rows)


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def sample_panel(image: np.ndarray, sparse_depth: np.ndarray, gt_depth: np.ndarray | None = None,
                 published: np.ndarray | None = None) -> np.ndarray:
    """Preview of one sample: image | LiDAR on image | ground truth (when known) | the depth a node published
    for it (``published`` (H, W) metres, NaN = no estimate; when given)."""
    scale = DepthScale.from_depths(sparse_depth, gt_depth)
    tiles = [
        ("camera", image),
        (f"LiDAR on image ({int((sparse_depth > 0).sum())} px)", lidar_overlay(image, sparse_depth, scale)),
    ]
    if gt_depth is not None:
        tiles.append(("ground-truth depth", colorize_depth(gt_depth, scale)))
    if published is not None:
        tiles.append(("published depth (black: NaN, no estimate)", colorize_depth(published, scale)))
    return compose_panel(tiles, scale=scale)
