"""Pairing camera frames with their camera_info and a LiDAR sweep: one policy, two drivers.

The rules, for every image on its own (several images may share one sweep, as a 30 Hz
camera beside a 10 Hz LiDAR does):

- camera_info: the one with the same stamp, else the latest one before the image
  (a driver that publishes calibration once, or at a lower rate, still pairs);
- LiDAR: the sweep nearest in time, kept only when ``|t_lidar - t_image| <= slop``.

:func:`pair_stamps` applies them to all the stamps of a bag at once (``mf export``,
training); :class:`StampSync` applies them message by message (the depth node, the
recorder, ``mf densify``), so a live node, a recording and a bag read pair alike. Images
that cannot pair are counted under one of the ``DROP_REASONS`` names, the same names on
every path (the node's stats, the recorder's, the CLI summaries).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mf_core.errors import InputError

DEFAULT_SLOP_S = 0.05

NO_CAMERA_INFO = "no_camera_info"
NO_LIDAR_IN_SLOP = "no_lidar_in_slop"
BAD_STAMP = "bad_stamp"
CLOCK_JUMP = "clock_jump"
NO_TF = "no_tf"
DROP_REASONS = {
    NO_CAMERA_INFO: "no camera_info at or before the image stamp (a camera that publishes none: give its calibration "
                    "file, camera_info_file / --camera-info)",
    NO_LIDAR_IN_SLOP: "no LiDAR sweep within the slop",
    BAD_STAMP: "message stamp far from its stream's (a clock glitch): the message was dropped",
    CLOCK_JUMP: "image left waiting when its clock jumped back (bag loop, clock reset)",
    NO_TF: "no TF through the fixed frame at the image's and the sweep's stamps",
}
# A stamp this far from its stream's previous one is held until the next message of the stream
# says whether it was a glitch (dropped alone) or a jump of the clock (everything follows it).
DEFAULT_JUMP_NS = 5_000_000_000


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
            line += "; skipped: " + ", ".join(f"{n} {DROP_REASONS.get(reason, reason)}"
                                            for reason, n in self.skipped.items() if n)
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


# ----------------------------------------------------------------------------- streaming


@dataclass(frozen=True)
class Stamped:
    """One message (or its raw bytes) with its header stamp in nanoseconds."""

    stamp_ns: int
    payload: Any


@dataclass(frozen=True)
class SyncedFrame:
    """An image with its camera_info and, when LiDAR is used, its sweep."""

    image: Stamped
    info: Stamped
    cloud: Stamped | None


class _StampGuard:
    """Keeps one stream's stamps plausible: a stamp more than ``jump_ns`` from the previous one is held.

    The next message decides: close to the held one, the clock jumped (both pass, ``jumped_back`` tells
    whether it went back); close to the previous one, the held message was a glitch (dropped alone).
    A forward gap (a sensor that paused) therefore costs one message of latency, not a message.
    """

    def __init__(self, jump_ns: int) -> None:
        self.jump_ns = jump_ns
        self._last: int | None = None
        self._held: Stamped | None = None

    def offer(self, item: Stamped) -> tuple[list[Stamped], int, bool]:
        """(messages that pass, in order; messages dropped as bad stamps; whether the clock went back)."""
        if self._last is None or (self._held is None and abs(item.stamp_ns - self._last) <= self.jump_ns):
            self._last = item.stamp_ns
            return [item], 0, False
        if self._held is None:
            self._held = item
            return [], 0, False
        held, self._held = self._held, None
        if abs(item.stamp_ns - held.stamp_ns) <= self.jump_ns:  # the clock really moved
            back = held.stamp_ns < self._last
            self._last = item.stamp_ns
            return [held, item], 0, back
        if abs(item.stamp_ns - self._last) <= self.jump_ns:  # the held one was a glitch
            self._last = item.stamp_ns
            return [item], 1, False
        self._held = item  # neither: the held one is dropped, this one waits for its own verdict
        return [], 1, False


def _insert_sorted(buffer: list[Stamped], item: Stamped) -> None:
    """Insert keeping ``buffer`` sorted by stamp (equal stamps keep arrival order)."""
    at = len(buffer)
    while at and buffer[at - 1].stamp_ns > item.stamp_ns:
        at -= 1
    buffer.insert(at, item)


class StampSync:
    """Pairs streams message by message under :func:`pair_stamps`' rules; every ``add_*`` returns the
    frames it completed.

    An image is decided once a sweep at or after its stamp has arrived (no later sweep can be
    nearer); until then it waits. Buffers are kept sorted by stamp, so messages arriving out of
    order pair as if they had not, and a camera_info or sweep is only let go once no waiting image
    can need it. A message whose stamp is far off its stream's (an hour ahead, a clock glitch) is
    dropped on its own as ``bad_stamp`` instead of blocking or stealing the pairs of good frames;
    when the whole clock jumps back (a looping bag, a reset) the old timeline is cleared and
    pairing resumes within one message per stream.

    Args:
        slop_ns: largest |t_lidar - t_image| for a pair (inclusive).
        use_lidar: False pairs images with camera_info only.
        queue_size: images kept waiting (>= 1); a full queue decides the oldest with what is there.
        jump_ns: stamp distance within a stream that makes a message suspect (see ``_StampGuard``).
    """

    def __init__(self, slop_ns: int, use_lidar: bool = True, queue_size: int = 5,
                 jump_ns: int = DEFAULT_JUMP_NS) -> None:
        if slop_ns < 0:
            raise InputError(f"sync slop must be >= 0 ns, got {slop_ns}")
        if queue_size < 1:
            raise InputError(f"sync queue_size must be >= 1, got {queue_size}")
        if jump_ns <= slop_ns:
            raise InputError(f"sync jump_ns ({jump_ns}) must be larger than the slop ({slop_ns})")
        self.slop_ns = int(slop_ns)
        self.use_lidar = use_lidar
        self._queue_size = queue_size
        self._images: list[Stamped] = []
        self._infos: list[Stamped] = []
        self._clouds: list[Stamped] = []
        self._jump_ns = int(jump_ns)
        self._guards = {name: _StampGuard(self._jump_ns) for name in ("image", "info", "cloud")}
        self.drops: Counter[str] = Counter()

    def add_image(self, stamp_ns: int, payload: Any) -> list[SyncedFrame]:
        """Queue an image; a full queue decides (pairs or counts) the oldest one."""
        frames: list[SyncedFrame] = []
        for item in self._guarded("image", Stamped(int(stamp_ns), payload)):
            _insert_sorted(self._images, item)
            frames += self._match()
            while len(self._images) > self._queue_size:
                self._decide(self._images.pop(0), frames)
        return frames

    def add_info(self, stamp_ns: int, payload: Any) -> list[SyncedFrame]:
        """Keep a camera_info; waiting images may now pair."""
        return self._add("info", self._infos, Stamped(int(stamp_ns), payload))

    def add_cloud(self, stamp_ns: int, payload: Any) -> list[SyncedFrame]:
        """Keep a LiDAR sweep; waiting images may now pair."""
        return self._add("cloud", self._clouds, Stamped(int(stamp_ns), payload))

    def flush(self) -> list[SyncedFrame]:
        """End of input: pair every waiting image with what is buffered, or count why it cannot."""
        frames: list[SyncedFrame] = []
        while self._images:
            self._decide(self._images.pop(0), frames)
        return frames

    def _add(self, name: str, buffer: list[Stamped], item: Stamped) -> list[SyncedFrame]:
        frames: list[SyncedFrame] = []
        for passed in self._guarded(name, item):
            _insert_sorted(buffer, passed)
            frames += self._match()
            self._trim(buffer)
        return frames

    def _guarded(self, name: str, item: Stamped) -> list[Stamped]:
        """The messages the stream's guard lets through; on a clock jump back, the old timeline goes."""
        passed, bad, jumped_back = self._guards[name].offer(item)
        self.drops[BAD_STAMP] += bad
        if jumped_back:  # messages of the old timeline can never pair with the new one
            now = passed[0].stamp_ns
            waiting = len(self._images)
            for stream, kept in (("image", self._images), ("info", self._infos), ("cloud", self._clouds)):
                horizon = now if stream == name else now + self._jump_ns  # others' new stamps may be later
                kept[:] = [m for m in kept if m.stamp_ns <= horizon]
            self.drops[CLOCK_JUMP] += waiting - len(self._images)
        return passed

    def _trim(self, buffer: list[Stamped]) -> None:
        """Let the oldest camera_info / sweep go once the next one serves every waiting image as well."""
        oldest = self._images[0].stamp_ns - self.slop_ns if self._images else None
        while len(buffer) > self._queue_size and (oldest is None or buffer[1].stamp_ns <= oldest):
            buffer.pop(0)
        while len(buffer) > 4 * self._queue_size + 4:  # bound memory whatever the stamps
            buffer.pop(0)

    def _info_for(self, stamp_ns: int) -> Stamped | None:
        """The camera_info with this stamp, else the latest one before it."""
        before = [info for info in self._infos if info.stamp_ns <= stamp_ns]
        return before[-1] if before else None

    def _nearest_cloud(self, stamp_ns: int) -> Stamped | None:
        """The buffered sweep nearest to ``stamp_ns`` within the slop (ties go to the earlier one)."""
        inside = [c for c in self._clouds if abs(c.stamp_ns - stamp_ns) <= self.slop_ns]
        return min(inside, key=lambda c: abs(c.stamp_ns - stamp_ns), default=None)

    def _match(self) -> list[SyncedFrame]:
        frames: list[SyncedFrame] = []
        while self._images:
            image = self._images[0]
            if self._info_for(image.stamp_ns) is None:
                break  # its camera_info may still come; later images wait too (frames leave in stamp order)
            if self.use_lidar and not (self._clouds and self._clouds[-1].stamp_ns >= image.stamp_ns):
                break  # a nearer sweep may still come
            self._decide(self._images.pop(0), frames)
        return frames

    def _decide(self, image: Stamped, frames: list[SyncedFrame]) -> None:
        """Pair ``image`` with what is buffered, else count why it cannot."""
        info = self._info_for(image.stamp_ns)
        cloud = self._nearest_cloud(image.stamp_ns) if self.use_lidar else None
        if info is None:
            self.drops[NO_CAMERA_INFO] += 1
        elif self.use_lidar and cloud is None:
            self.drops[NO_LIDAR_IN_SLOP] += 1
        else:
            frames.append(SyncedFrame(image, info, cloud))
