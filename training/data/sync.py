"""Nearest-stamp pairing of camera frames with their camera_info and a LiDAR sweep.

Each image is matched on its own (several images may share one sweep, as a 30 Hz
camera beside a 10 Hz LiDAR does):

- camera_info: the one with the same stamp, else the latest one before the image
  (a driver that publishes calibration once, or at a lower rate, still pairs);
- LiDAR: the sweep nearest in time, kept only when ``|t_lidar - t_image| <= slop``.

Images that fail either test are skipped and counted by reason in ``SyncStats``.
All matching is ``np.searchsorted`` on sorted stamps: O(N log N), no per-image loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mf_core.errors import InputError

DEFAULT_SLOP_S = 0.05

NO_CAMERA_INFO = "no camera_info at or before the image stamp"
NO_LIDAR_IN_SLOP = "no LiDAR sweep within the slop"


@dataclass
class SyncStats:
    """How many images paired, and how many were skipped for which reason."""

    images: int = 0
    pairs: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def skipped_total(self) -> int:
        """All skipped images, whatever the reason."""
        return sum(self.skipped.values())

    def summary(self) -> str:
        """One human-readable line, e.g. ``12/15 images paired; skipped: 3 no LiDAR ...``."""
        line = f"{self.pairs}/{self.images} images paired"
        if self.skipped_total:
            line += "; skipped: " + ", ".join(f"{n} {reason}" for reason, n in self.skipped.items() if n)
        return line


@dataclass
class SyncResult:
    """Matched indices into the caller's (unsorted) stamp arrays, one row per pair, in image-stamp order."""

    image_index: np.ndarray  # (P,) int64
    info_index: np.ndarray  # (P,) int64
    lidar_index: np.ndarray  # (P,) int64
    lidar_offset_ns: np.ndarray  # (P,) int64, t_lidar - t_image
    stats: SyncStats


def slop_to_ns(slop_s: float) -> int:
    """Validate a slop given in seconds (CLI flag) and return it in nanoseconds."""
    if not np.isfinite(slop_s) or slop_s < 0:
        raise InputError(f"--slop must be a non-negative number of seconds, got {slop_s}")
    return round(slop_s * 1e9)


def _as_stamps(stamps, label: str) -> np.ndarray:
    arr = np.asarray(stamps, dtype=np.int64).reshape(-1)  # (N,)
    if arr.size and arr.min() < 0:
        raise InputError(f"{label} stamps must be non-negative nanoseconds")
    return arr


def _latest_at_or_before(sorted_stamps: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Position in ``sorted_stamps`` of the latest stamp <= each query; -1 where none."""
    return np.searchsorted(sorted_stamps, query, side="right") - 1  # (Q,)


def _nearest(sorted_stamps: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Position in ``sorted_stamps`` of the nearest stamp to each query (ties go to the earlier one)."""
    right = np.searchsorted(sorted_stamps, query, side="left")  # (Q,) first stamp >= query
    right_c = np.minimum(right, sorted_stamps.size - 1)
    left_c = np.maximum(right - 1, 0)
    d_right = np.abs(sorted_stamps[right_c] - query)
    d_left = np.abs(query - sorted_stamps[left_c])
    return np.where(d_left <= d_right, left_c, right_c)  # (Q,)


def pair_stamps(image_stamps, info_stamps, lidar_stamps, slop_ns: int) -> SyncResult:
    """Pair every image with a camera_info and the nearest LiDAR sweep within ``slop_ns``.

    Inputs are integer nanosecond stamps in any order; the result indexes them.
    The slop is inclusive: a sweep exactly ``slop_ns`` away pairs.
    """
    if slop_ns < 0:
        raise InputError(f"sync slop must be non-negative, got {slop_ns} ns")
    images = _as_stamps(image_stamps, "image")
    infos = _as_stamps(info_stamps, "camera_info")
    lidars = _as_stamps(lidar_stamps, "LiDAR")
    stats = SyncStats(images=int(images.size), skipped={NO_CAMERA_INFO: 0, NO_LIDAR_IN_SLOP: 0})
    empty = np.zeros(0, dtype=np.int64)
    if images.size == 0:
        return SyncResult(empty, empty, empty, empty, stats)

    info_order = np.argsort(infos, kind="stable")
    info_sorted = infos[info_order]
    info_pos = _latest_at_or_before(info_sorted, images) if infos.size else np.full(images.size, -1)
    has_info = info_pos >= 0

    lidar_order = np.argsort(lidars, kind="stable")
    lidar_sorted = lidars[lidar_order]
    if lidars.size:
        lidar_pos = _nearest(lidar_sorted, images)
        offset = lidar_sorted[lidar_pos] - images  # (N,)
        in_slop = np.abs(offset) <= slop_ns
    else:
        lidar_pos = np.zeros(images.size, dtype=np.int64)
        offset = np.zeros(images.size, dtype=np.int64)
        in_slop = np.zeros(images.size, dtype=bool)

    keep = has_info & in_slop
    stats.skipped[NO_CAMERA_INFO] = int((~has_info).sum())
    stats.skipped[NO_LIDAR_IN_SLOP] = int((has_info & ~in_slop).sum())
    stats.pairs = int(keep.sum())

    image_index = np.flatnonzero(keep)
    image_index = image_index[np.argsort(images[image_index], kind="stable")]  # time order
    return SyncResult(
        image_index=image_index.astype(np.int64),
        info_index=info_order[info_pos[image_index]].astype(np.int64),
        lidar_index=lidar_order[lidar_pos[image_index]].astype(np.int64),
        lidar_offset_ns=offset[image_index].astype(np.int64),
        stats=stats,
    )
