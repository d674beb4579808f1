"""Sparse "LiDAR" input simulated from dense ground-truth depth, for sets that have no LiDAR.

Two patterns:

- ``scanlines`` (the default everywhere): a spinning multi-beam LiDAR at the camera centre,
  tilted by a small random pitch and roll. Beam k at elevation theta_k, sampled every
  ``azimuth_step`` degrees, traces the curve a real scan leaves in the image (rows bow away from
  the principal point; spacing grows with the beam gap); each sample takes the ground truth at
  the pixel it lands on, where that is valid. This is what the evaluation feeds and what
  training augments with (beam counts, tilts).
- ``random``: ``count`` valid pixels drawn uniformly (the older 7-Scenes input; easy, but unlike a LiDAR).

The pattern depends only on the generator it is given: readers seed it from (seed, frame name),
so a frame gets the same points whatever the iteration order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError

SPARSE_PATTERNS = ("scanlines", "random")


@dataclass(frozen=True)
class ScanPattern:
    """A simulated spinning LiDAR: beam count, vertical field of view and horizontal step (degrees).

    The defaults are a 32-beam unit with a 40-degree vertical field (VLP-32C / OS1-32 class)
    sampled every 0.2 degrees, about 2 px apart at a 640 px-wide, 60-degree camera.
    """

    beams: int = 32
    vertical_fov: float = 40.0
    azimuth_step: float = 0.2
    max_tilt: float = 4.0  # random pitch and roll of the LiDAR against the camera, +- degrees

    def __post_init__(self) -> None:
        if self.beams < 1:
            raise InputError(f"a simulated LiDAR needs at least 1 beam, got {self.beams}")
        if not 0 < self.vertical_fov < 180 or not 0 < self.azimuth_step < 90 or not 0 <= self.max_tilt < 45:
            raise InputError(f"scan pattern out of range: vertical_fov {self.vertical_fov} (0-180), azimuth_step "
                             f"{self.azimuth_step} (0-90), max_tilt {self.max_tilt} (0-45) degrees")


def _rotation(pitch: float, roll: float) -> np.ndarray:
    """(3, 3) rotation of camera-optical axes (x right, y down, z forward): pitch about x, then roll about z."""
    cp, sp, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    about_x = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    about_z = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return about_z @ about_x


def scanline_sparse_depth(gt_depth: np.ndarray, camera: PinholeCamera, rng: np.random.Generator,
                          pattern: ScanPattern = ScanPattern()) -> np.ndarray:
    """(H, W) float32: the ground truth sampled along the scan lines of ``pattern``, 0 elsewhere.

    The beams span ``pattern.vertical_fov`` centred on the horizon with a random phase (one beam
    gap), the azimuths a random phase of one step; pitch and roll are uniform in +-max_tilt.
    """
    h, w = gt_depth.shape
    if (camera.width, camera.height) != (w, h):
        raise InputError(f"camera is {camera.width}x{camera.height} but the depth is {w}x{h}")
    gap = pattern.vertical_fov / pattern.beams
    elevations = np.radians(-pattern.vertical_fov / 2 + gap * (np.arange(pattern.beams) + rng.uniform()))  # (K,)
    # Azimuths wide enough for any pixel of the image (corners included), one step apart.
    half_width = np.degrees(np.arctan(max(camera.cx + 1, w - camera.cx) / camera.fx)) + pattern.max_tilt + 1
    azimuths = np.radians(np.arange(-half_width, half_width, pattern.azimuth_step)
                          + rng.uniform() * pattern.azimuth_step)  # (A,)
    pitch, roll = np.radians(rng.uniform(-pattern.max_tilt, pattern.max_tilt, size=2))
    el, az = np.meshgrid(elevations, azimuths, indexing="ij")  # (K, A)
    # Direction of each beam sample in the LiDAR's optical-like axes (elevation up = -y).
    rays = np.stack([np.cos(el) * np.sin(az), -np.sin(el), np.cos(el) * np.cos(az)], -1).reshape(-1, 3)  # (K*A, 3)
    rays = rays @ _rotation(pitch, roll).T  # (K*A, 3) camera axes
    ahead = rays[:, 2] > 1e-6
    rays = rays[ahead]
    u = np.floor(camera.cx + camera.fx * rays[:, 0] / rays[:, 2] + 0.5).astype(np.int64)  # (M,)
    v = np.floor(camera.cy + camera.fy * rays[:, 1] / rays[:, 2] + 0.5).astype(np.int64)  # (M,)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    sparse = np.zeros((h, w), np.float32)
    rows, cols = v[inside], u[inside]
    sparse[rows, cols] = gt_depth[rows, cols]  # invalid ground truth (0) stays "no return"
    return sparse


def random_sparse_depth(gt_depth: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32: ``count`` valid pixels of ``gt_depth`` chosen uniformly without
    replacement (all of them when fewer are valid), every other pixel 0."""
    valid = np.flatnonzero(gt_depth > 0)  # (V,)
    chosen = rng.choice(valid, size=min(count, valid.size), replace=False)  # (count,)
    sparse = np.zeros(gt_depth.size, dtype=np.float32)
    sparse[chosen] = gt_depth.reshape(-1)[chosen]
    return sparse.reshape(gt_depth.shape)


def simulate_sparse_depth(gt_depth: np.ndarray, camera: PinholeCamera, rng: np.random.Generator,
                          pattern: str = "scanlines", count: int = 500) -> np.ndarray:
    """Sparse input from dense ground truth in one of :data:`SPARSE_PATTERNS` (``count``: random only)."""
    if pattern == "scanlines":
        return scanline_sparse_depth(gt_depth, camera, rng)
    if pattern == "random":
        return random_sparse_depth(gt_depth, count, rng)
    raise InputError(f"unknown sparse pattern {pattern!r}; use one of {SPARSE_PATTERNS}")
