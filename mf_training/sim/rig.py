"""Sensor mounting on base_link (x forward, y left, z up): the extrinsics the bag's /tf_static carries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from transforms3d.euler import euler2mat

BASE_FRAME = "base_link"
CAMERA_FRAME = "camera_optical_frame"
LIDAR_FRAME = "lidar"
WORLD_FRAME = "odom"
CAMERA_HEIGHT_M = {"street": 1.5, "indoor": 1.4}  # camera above the ground, per scene kind

# Columns: the optical axes (x right, y down, z forward) expressed in base_link axes (REP 103).
OPTICAL_IN_BASE = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
# LiDAR placement relative to the camera, in base_link axes: behind, to the right and above it,
# and turned a few degrees so that using the wrong extrinsic visibly breaks projection.
LIDAR_OFFSET = (-0.05, -0.04, 0.30)  # m
LIDAR_RPY_DEG = (1.0, 2.0, 4.0)  # roll, pitch, yaw of the LiDAR body relative to base_link


def _transform(rotation: np.ndarray, translation: tuple[float, float, float]) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = translation
    return out


@dataclass(frozen=True)
class Rig:
    """Camera (optical frame) and LiDAR poses on base_link, 4x4 float64 each."""

    base_from_camera: np.ndarray
    base_from_lidar: np.ndarray

    @classmethod
    def mounted(cls, camera_height: float, camera_pitch_deg: float = 3.0) -> Rig:
        """Camera at ``camera_height`` looking forward, pitched down; LiDAR offset and turned from it."""
        pitch = euler2mat(0.0, np.radians(camera_pitch_deg), 0.0, "sxyz")  # +pitch about y tilts x down
        base_from_camera = _transform(pitch @ OPTICAL_IN_BASE, (0.0, 0.0, camera_height))
        lidar_position = np.add((0.0, 0.0, camera_height), LIDAR_OFFSET)
        base_from_lidar = _transform(euler2mat(*np.radians(LIDAR_RPY_DEG), "sxyz"), tuple(lidar_position))
        return cls(base_from_camera, base_from_lidar)

    @property
    def lidar_from_camera(self) -> np.ndarray:
        """4x4 T_lidar_from_camera: the /tf_static transform with parent LiDAR, child camera."""
        return np.linalg.inv(self.base_from_lidar) @ self.base_from_camera
