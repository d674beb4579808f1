"""Pinhole camera rays, computed once per camera (shading.shade_camera turns their hits into pixels)."""

from __future__ import annotations

import numpy as np

from mf_core.camera import PinholeCamera
from mf_core.geometry import pixel_rays


def camera_directions(camera: PinholeCamera) -> np.ndarray:
    """(3, H*W) float32 ray directions in the optical frame, row-major pixels, scaled to z = 1.

    With z = 1 the ray-cast hit distance *is* the depth along the optical axis.
    """
    return np.ascontiguousarray(pixel_rays(camera).reshape(-1, 3).T)
