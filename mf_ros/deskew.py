"""Motion compensation within a LiDAR sweep ("deskewing"): each return moved from the instant it was measured.

A spinning LiDAR takes 50-100 ms per sweep; on a robot that moves, every return of a sweep was measured from
another pose, and one transform at the sweep's stamp smears the scene by the motion over the sweep (at 1 rad/s
of yaw, 25 ms of sweep across the camera's view is 1.4 degrees: over 10 pixels of a 640-pixel camera).
Drivers record each return's time in a PointCloud2 field (:data:`POINT_TIME_FIELDS`); with the robot's TF over
time (:class:`mf_ros.extrinsics.TfTimeline`) each return is moved through a fixed frame (``odom``, ``map``) to
the camera at its image's stamp.

Written here because the ROS tools that deskew (rosbag2 has none; the LiDAR odometry packages do it inside
their own pipelines) are not libraries this package can call on a bag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mf_core.errors import InputError
from mf_ros.conversions import header_stamp_ns, pointcloud2_fields, pointcloud2_to_xyz
from mf_ros.extrinsics import TfTimeline

# The per-point time fields of common drivers, looked for in this order by "auto": Ouster ``t`` (uint32 ns from
# the header stamp), Velodyne / Unitree ``time`` (float32 s from the header stamp), Hesai / RoboSense / Livox
# ``timestamp`` (float64 absolute s, or ns for Livox), Livox ``offset_time`` (uint32 ns from the header stamp).
POINT_TIME_FIELDS = ("t", "time", "timestamp", "time_stamp", "offset_time")
AUTO, NONE = "auto", "none"
MAX_OFFSET_NS = 1_000_000_000  # a return more than 1 s from its sweep's stamp: the field was misread
BIN_NS = 1_000_000  # returns within 1 ms of each other share one transform (at 20 m/s: under 1 cm apart)
_RELATIVE_SECONDS = 1e6  # float times below this are seconds from the header stamp
_ABSOLUTE_SECONDS = 1e12  # ... below this absolute seconds (year 2286), above it absolute nanoseconds
_RELATIVE_NANOSECONDS = 1e15  # integer times below this (11.6 days) are nanoseconds from the header stamp


def point_time_field(msg: Any, choice: str) -> str | None:
    """The time field of PointCloud2 ``msg`` to deskew with: ``choice`` "auto" (the first of
    :data:`POINT_TIME_FIELDS` it has, None when it has none), "none" (None), or a field name it must have."""
    if choice == NONE:
        return None
    names = [f.name for f in msg.fields]
    if choice == AUTO:
        return next((name for name in POINT_TIME_FIELDS if name in names), None)
    if choice not in names:
        raise InputError(f"the LiDAR cloud has no field {choice!r} (--point-time); it has {names}: name its "
                         f"per-point time field, or use 'auto' or 'none'")
    return choice


def point_stamps_ns(msg: Any, field: str) -> np.ndarray:
    """(H*W,) int64 absolute nanoseconds of every point of PointCloud2 ``msg`` from its time ``field``.

    The unit follows the field's type and size, as the drivers of :data:`POINT_TIME_FIELDS` write it: integers
    are nanoseconds (from the header stamp below 1e15, else since the epoch); floats are seconds from the header
    stamp below 1e6, seconds since the epoch below 1e12, nanoseconds since the epoch above. A non-finite time
    takes the header stamp. InputError when a point then lies more than 1 s from the header stamp (another unit).
    """
    values = pointcloud2_fields(msg, (field,))[field]
    if values.ndim != 1:
        raise InputError(f"the LiDAR cloud's time field {field!r} has {values.shape[1]} values per point; "
                         "a per-point time is one number")
    stamp = header_stamp_ns(msg)
    times = values.astype(np.float64)
    finite = np.isfinite(times)
    magnitude = float(np.abs(times[finite]).max()) if finite.any() else 0.0
    if values.dtype.kind in "iu":
        how = "ns from the header stamp" if magnitude < _RELATIVE_NANOSECONDS else "ns since the epoch"
        stamps = values.astype(np.int64) + (stamp if magnitude < _RELATIVE_NANOSECONDS else 0)
    else:
        given = np.where(finite, times, 0.0)  # (H*W,) float64
        if magnitude < _RELATIVE_SECONDS:  # offsets kept in int64: a float64 epoch in ns resolves only 256 ns
            how, stamps = "s from the header stamp", stamp + np.round(given * 1e9).astype(np.int64)
        elif magnitude < _ABSOLUTE_SECONDS:  # whole seconds and their fraction apart, for the same reason
            whole = np.floor(given)
            how = "s since the epoch"
            stamps = whole.astype(np.int64) * 1_000_000_000 + np.round((given - whole) * 1e9).astype(np.int64)
        else:
            how, stamps = "ns since the epoch", given
        stamps = np.where(finite, stamps, stamp).astype(np.int64)
    offsets = stamps - stamp
    if offsets.size and np.abs(offsets).max() > MAX_OFFSET_NS:
        raise InputError(f"the LiDAR cloud's time field {field!r} ({values.dtype.name}, read as {how}) puts points "
                         f"{offsets.min() / 1e9:+.3f} to {offsets.max() / 1e9:+.3f} s from the sweep's stamp; a sweep "
                         "lasts well under a second: name the right field with --point-time, or 'none' to move the "
                         "sweep as one")
    return stamps


@dataclass
class SweepMotion:
    """Where each return of one sweep lands in the camera frame: ``transforms_at(stamps)`` gives
    ``T_camera_from_lidar`` (B, 4, 4) for returns measured at ``stamps`` (B,) ns and (B,) whether TF has each
    (:meth:`mf_ros.extrinsics.TfTimeline.across_stamps`); ``fallback`` is the transform at the sweep's stamp, kept
    by returns without one (never worse than moving the sweep as one); ``field`` the time field
    (:func:`point_time_field`)."""

    transforms_at: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    fallback: np.ndarray
    field: str
    fallback_points: int = 0  # returns so far that kept ``fallback``: their time lay outside the recorded TF

    def camera_points(self, msg: Any) -> np.ndarray:
        """(N, 3) float32 finite returns of PointCloud2 ``msg`` in the camera frame, each moved at its own time
        (returns within :data:`BIN_NS` share one transform, at their bin's middle)."""
        xyz = pointcloud2_to_xyz(msg, drop_invalid=False)  # (H*W, 3)
        stamps = point_stamps_ns(msg, self.field)  # (H*W,)
        finite = np.isfinite(xyz).all(axis=1)
        xyz, stamps = xyz[finite], stamps[finite]
        if stamps.size == 0:
            return xyz
        start = int(stamps.min())
        bins = (stamps - start) // BIN_NS  # (N,)
        counts = np.bincount(bins)  # returns per bin
        used = np.flatnonzero(counts)  # (B,) bins with returns
        transforms = np.empty((int(bins.max()) + 1, 4, 4))  # one per bin, at its middle
        transforms[used], known = self.transforms_at(start + used * BIN_NS + BIN_NS // 2)
        transforms[used[~known]] = self.fallback
        self.fallback_points += int(counts[used[~known]].sum())
        # Row by row of the transforms, gathered per return: 3x faster than gathering (N, 4, 4) matrices.
        x, y, z = (xyz[:, axis].astype(np.float64) for axis in range(3))
        moved = np.empty_like(xyz)  # (N, 3) float32
        for axis in range(3):
            row = transforms[:, axis]  # (B, 4)
            moved[:, axis] = row[bins, 0] * x + row[bins, 1] * y + row[bins, 2] * z + row[bins, 3]
        return moved


def sweep_motion(cloud: Any, timeline: TfTimeline, camera_frame: str, image_stamp_ns: int, fixed_frame: str,
                 point_time: str, sweep: np.ndarray) -> np.ndarray | SweepMotion:
    """How PointCloud2 ``cloud`` reaches the camera at its image's stamp through ``fixed_frame``: ``sweep`` (the
    (4, 4) transform at the cloud's stamp) where it has no time field to deskew with (``point_time``, see
    :func:`point_time_field`), else each return's own (:class:`SweepMotion`, ``sweep`` its fallback)."""
    field = point_time_field(cloud, point_time)
    if field is None:
        return sweep
    lidar_frame = cloud.header.frame_id
    return SweepMotion(lambda stamps: timeline.across_stamps(camera_frame, image_stamp_ns, lidar_frame, stamps,
                                                             fixed_frame), sweep, field)


def without_tf_note(count: int) -> str:
    """What a command prints when ``count`` returns kept their sweep stamp's transform."""
    return (f"{count} LiDAR return(s) were measured outside the recorded /tf and kept their sweep stamp's "
            "transform (not deskewed)")


def check_point_time(choice: str, fixed_frame: str | None) -> None:
    """InputError unless ``--point-time`` is left at "auto" or a fixed frame gives the motion to deskew with."""
    if not choice:
        raise InputError("--point-time must be 'auto', 'none' or a PointCloud2 field name")
    if choice != AUTO and fixed_frame is None:
        raise InputError(f"--point-time {choice} needs --fixed-frame: returns are moved by the robot's motion "
                         "between their times, which only /tf through a fixed frame gives")

