"""Depth as colour: one scale, the turbo colour map (near blue, far red), black where there is no depth.

Used by the PNG panels (``mf_training.viz``) and by the depth node's ``depth/colormap`` debug image
(RViz shows a 32FC1 image as grey).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

COLORMAP = cv2.COLORMAP_TURBO


@dataclass(frozen=True)
class DepthScale:
    """One colour scale shared by every depth tile of a panel (metres)."""

    vmin: float
    vmax: float

    @classmethod
    def from_depths(cls, *depths: np.ndarray, percentile: float = 98.0) -> DepthScale:
        """Scale covering the valid values of all given maps (0/NaN/inf are invalid)."""
        values = [d[np.isfinite(d) & (d > 0)] for d in depths if d is not None]
        values = np.concatenate(values) if values else np.empty(0)
        if values.size == 0:
            return cls(0.0, 1.0)
        lo = float(np.percentile(values, 100.0 - percentile))
        hi = float(np.percentile(values, percentile))
        return cls(lo, max(hi, lo + 1e-3))


def apply_colormap(norm: np.ndarray, valid: np.ndarray, colormap: int) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 RGB, black where not ``valid``."""
    rgb = cv2.cvtColor(cv2.applyColorMap((norm * 255).astype(np.uint8), colormap), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def colorize_depth(depth: np.ndarray, scale: DepthScale) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 RGB; near is blue, far is red, invalid is black."""
    valid = np.isfinite(depth) & (depth > 0)  # (H, W)
    norm = np.clip((np.nan_to_num(depth) - scale.vmin) / (scale.vmax - scale.vmin), 0.0, 1.0)
    return apply_colormap(norm, valid, COLORMAP)
