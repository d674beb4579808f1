"""Pinhole camera rays (computed once) and the image + z-depth they produce."""

from __future__ import annotations

import numpy as np

from mf_core.camera import PinholeCamera
from mf_core.geometry import pixel_rays


def camera_directions(camera: PinholeCamera) -> np.ndarray:
    """(3, H*W) float32 ray directions in the optical frame, row-major pixels, scaled to z = 1.

    With z = 1 the ray-cast hit distance *is* the depth along the optical axis.
    """
    return np.ascontiguousarray(pixel_rays(camera).reshape(-1, 3).T)


def to_image(colours: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """(H, W, 3) uint8 RGB from per-pixel colours (3, H*W) float32 in [0, 1]."""
    image = np.empty((camera.height, camera.width, 3), np.uint8)
    for c in range(3):
        scaled = np.clip(colours[c] * np.float32(255.0) + np.float32(0.5), 0.0, 255.0)
        image[:, :, c] = scaled.astype(np.uint8).reshape(camera.height, camera.width)
    return image


def to_depth(t_hit: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """(H, W) float32 depth in metres along the optical axis; NaN where the ray hit nothing (sky)."""
    depth = np.where(np.isfinite(t_hit), t_hit, np.float32(np.nan))
    return depth.astype(np.float32, copy=False).reshape(camera.height, camera.width)
