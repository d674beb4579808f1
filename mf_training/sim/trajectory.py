"""Smooth ground paths of the sensor carrier: base_link pose (x forward, y left, z up) at any time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def planar_pose(x: float, y: float, yaw: float) -> np.ndarray:
    """4x4 float64 T_world_from_base for a carrier at (x, y) on the ground heading ``yaw`` rad."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0, x], [s, c, 0.0, y], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


class GroundPath:
    """A path on the ground; subclasses give ``track(t) -> (x, y, yaw)`` (vectorised over times)."""

    def track(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def pose(self, t: float) -> np.ndarray:
        """4x4 float64 T_world_from_base at time ``t`` seconds."""
        x, y, yaw = self.track(np.float64(t))
        return planar_pose(float(x), float(y), float(yaw))


@dataclass(frozen=True)
class StreetDrive(GroundPath):
    """Driving along +x at constant speed, weaving gently inside the lane (heading follows the path)."""

    speed: float = 8.0  # m/s
    lane_y: float = -1.6  # m, lane centre
    weave: float = 0.6  # m, amplitude of the lateral weave
    period: float = 10.0  # s, period of the weave

    def track(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, yaw) arrays at times ``t`` seconds."""
        w = 2 * np.pi / self.period
        x = self.speed * t
        y = self.lane_y + self.weave * np.sin(w * t)
        yaw = np.arctan2(self.weave * w * np.cos(w * t), self.speed)  # tangent of the path
        return x, y, yaw


@dataclass(frozen=True)
class RoomWalk(GroundPath):
    """Walking an ellipse around a room centre, looking along the path with a slow side-to-side sway."""

    centre: tuple[float, float]
    semi_axes: tuple[float, float]  # m, (along x, along y)
    speed: float = 1.0  # m/s, approximate walking speed
    sway: float = 0.3  # rad, amplitude of looking left and right

    def track(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, yaw) arrays at times ``t`` seconds."""
        a, b = self.semi_axes
        angle = self.speed * t / (0.5 * (a + b))  # mean radius turns speed into angular rate
        x = self.centre[0] + a * np.cos(angle)
        y = self.centre[1] + b * np.sin(angle)
        yaw = np.arctan2(b * np.cos(angle), -a * np.sin(angle)) + self.sway * np.sin(0.5 * t)
        return x, y, yaw
