"""Streaming approximate-time pairing of camera frames, camera_info and LiDAR sweeps.

Used when the system ``message_filters`` is absent (it is not on PyPI; see docs ROS.md) and
by the offline ``mf densify`` and the recorder. The rules match the offline
``training.data.sync.pair_stamps`` so a live node, a recording and a bag read pair alike:

- camera_info: the one with the image's stamp, else the latest one before it;
- LiDAR: the sweep nearest in time, kept only when ``|t_lidar - t_image| <= slop``.

An image is decided once a sweep at or after its stamp has arrived (sweeps arrive in
order, so no later one can be nearer); until then it waits in a short queue. Images that
cannot pair are dropped and counted by reason; pending images leave the queue oldest
first, so frames come out in stamp order.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from mf_core.errors import InputError

NO_CAMERA_INFO = "no_camera_info"
NO_LIDAR_IN_SLOP = "no_lidar_in_slop"


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


class StampSync:
    """Pairs streams message by message; every ``add_*`` returns the frames it completed.

    Args:
        slop_ns: largest |t_lidar - t_image| for a pair (inclusive).
        use_lidar: False pairs images with camera_info only.
        queue_size: images, infos and sweeps kept while waiting (>= 1).
    """

    def __init__(self, slop_ns: int, use_lidar: bool = True, queue_size: int = 5) -> None:
        if slop_ns < 0:
            raise InputError(f"sync slop must be >= 0 ns, got {slop_ns}")
        if queue_size < 1:
            raise InputError(f"sync queue_size must be >= 1, got {queue_size}")
        self.slop_ns = int(slop_ns)
        self.use_lidar = use_lidar
        self._images: deque[Stamped] = deque()
        self._infos: deque[Stamped] = deque(maxlen=queue_size)
        self._clouds: deque[Stamped] = deque(maxlen=queue_size)
        self._queue_size = queue_size
        self.drops: Counter[str] = Counter()

    def add_image(self, stamp_ns: int, payload: Any) -> list[SyncedFrame]:
        """Queue an image; a full queue evicts (and counts) the oldest one."""
        self._images.append(Stamped(int(stamp_ns), payload))
        frames = self._match()
        while len(self._images) > self._queue_size:
            self._evict(self._images.popleft(), frames)
        return frames

    def add_info(self, stamp_ns: int, payload: Any) -> list[SyncedFrame]:
        """Keep a camera_info; pending images may now pair."""
        self._infos.append(Stamped(int(stamp_ns), payload))
        return self._match()

    def add_cloud(self, stamp_ns: int, payload: Any) -> list[SyncedFrame]:
        """Keep a LiDAR sweep; pending images may now pair."""
        self._clouds.append(Stamped(int(stamp_ns), payload))
        return self._match()

    def flush(self) -> list[SyncedFrame]:
        """End of input: pair every waiting image with what is buffered, or count why it cannot."""
        frames: list[SyncedFrame] = []
        while self._images:
            self._evict(self._images.popleft(), frames)
        return frames

    def _info_for(self, stamp_ns: int) -> Stamped | None:
        """The camera_info with this stamp, else the latest one before it."""
        before = [info for info in self._infos if info.stamp_ns <= stamp_ns]
        exact = [info for info in before if info.stamp_ns == stamp_ns]
        return (exact or before or [None])[-1]

    def _nearest_cloud(self, stamp_ns: int) -> Stamped | None:
        """The buffered sweep nearest to ``stamp_ns`` within the slop (ties go to the earlier one)."""
        inside = [c for c in self._clouds if abs(c.stamp_ns - stamp_ns) <= self.slop_ns]
        return min(inside, key=lambda c: abs(c.stamp_ns - stamp_ns), default=None)

    def _lidar_decided(self, stamp_ns: int) -> bool:
        """True once a sweep at or after ``stamp_ns`` arrived: no later sweep can be nearer."""
        return any(c.stamp_ns >= stamp_ns for c in self._clouds)

    def _match(self) -> list[SyncedFrame]:
        frames: list[SyncedFrame] = []
        while self._images:
            image = self._images[0]
            info = self._info_for(image.stamp_ns)
            if not self.use_lidar:
                if info is None:
                    break
                frames.append(SyncedFrame(self._images.popleft(), info, None))
                continue
            if info is None or not self._lidar_decided(image.stamp_ns):
                break  # later images wait too: frames leave in stamp order
            self._images.popleft()
            cloud = self._nearest_cloud(image.stamp_ns)
            if cloud is None:
                self.drops[NO_LIDAR_IN_SLOP] += 1
            else:
                frames.append(SyncedFrame(image, info, cloud))
        return frames

    def _evict(self, image: Stamped, frames: list[SyncedFrame]) -> None:
        """An image leaves the full queue: pair it with what is there, else count why it cannot."""
        info = self._info_for(image.stamp_ns)
        cloud = self._nearest_cloud(image.stamp_ns) if self.use_lidar else None
        if info is None:
            self.drops[NO_CAMERA_INFO] += 1
        elif self.use_lidar and cloud is None:
            self.drops[NO_LIDAR_IN_SLOP] += 1
        else:
            frames.append(SyncedFrame(image, info, cloud))
