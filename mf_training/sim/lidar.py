"""Spinning multi-beam LiDAR: beam directions, range noise, max range (intensity: shading.py).

A sweep is cast from the LiDAR pose at the sweep's stamp (``sweep_ms`` 0), or, as a real spinning sensor
measures it, each azimuth column from the pose at its own time over one revolution (``SimConfig.sweep_ms``,
:func:`column_offsets_ns`; the generator places the rays).
"""

from __future__ import annotations

import numpy as np


def lidar_directions(beams: int, vfov_deg: tuple[float, float], horizontal_resolution: int) -> np.ndarray:
    """(3, R*B) float32 unit directions in the LiDAR frame (x forward, y left, z up).

    Ordered like a spinning sensor fires: azimuth columns counter-clockwise from +x, each
    holding the ``beams`` elevations from ``vfov_deg[0]`` (lowest) to ``vfov_deg[1]``.
    """
    elevation = np.radians(np.linspace(vfov_deg[0], vfov_deg[1], beams))  # (B,)
    azimuth = np.arange(horizontal_resolution) * (2 * np.pi / horizontal_resolution)  # (R,)
    el, az = np.meshgrid(elevation, azimuth)  # (R, B) each
    directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])  # (3, R, B)
    return directions.reshape(3, -1).astype(np.float32)


def column_offsets_ns(horizontal_resolution: int, sweep_ns: int) -> np.ndarray:
    """(R,) int64 time of each azimuth column of :func:`lidar_directions` after the sweep's stamp: evenly over
    one revolution of ``sweep_ns``, the first column (+x) at 0."""
    return np.arange(horizontal_resolution, dtype=np.int64) * sweep_ns // horizontal_resolution


def sweep_points(directions: np.ndarray, ranges: np.ndarray, intensities: np.ndarray, max_range: float,
                 range_noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(M, 4) float32 [x, y, z, intensity] in the LiDAR frame from one sweep, and (N,) bool: which rays returned.

    ``ranges`` (N,) are true distances along the unit ``directions`` (3, N) (inf = no return).
    Gaussian noise of std ``range_noise`` metres is added along each ray; returns whose measured
    range is not in (0, max_range] are dropped.
    """
    measured = ranges + np.float32(range_noise) * rng.standard_normal(len(ranges), dtype=np.float32)
    keep = (measured > 0) & (measured <= max_range)  # inf (no return) fails the second test
    points = np.empty((int(keep.sum()), 4), np.float32)
    points[:, :3] = (directions[:, keep] * measured[keep]).T
    points[:, 3] = intensities[keep]
    return points, keep
