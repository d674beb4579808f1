"""Every option of the synthetic scene generator, validated in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError

BEAM_COUNTS = (16, 32, 64, 128)
SCENE_KINDS = ("street", "indoor")
# First camera stamp of every generated bag (2023-11-14T22:13:20Z): fixed so output is reproducible.
START_STAMP_NS = 1_700_000_000 * 10**9


def parse_vfov(text: str) -> tuple[float, float]:
    """Parse ``"LO,HI"`` (degrees, e.g. ``"-25,15"``) into the LiDAR's lowest and highest beam elevation."""
    parts = text.split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise InputError(
            f"--vfov must be two angles in degrees 'LOW,HIGH' such as --vfov=-25,15, got {text!r}"
        ) from None
    return low, high


@dataclass(frozen=True)
class SimConfig:
    """Options of one generated sequence; construction raises InputError on bad values."""

    frames: int = 100
    seed: int = 0
    scene: str = "street"
    width: int = 640
    height: int = 480
    fov_deg: float = 70.0  # horizontal field of view; ignored when fx is given
    fx: float | None = None  # focal length in pixels (fy = fx, square pixels)
    rate: float = 10.0  # camera frames (and LiDAR sweeps) per second
    beams: int = 64
    vfov: tuple[float, float] = (-25.0, 15.0)  # lowest, highest beam elevation in degrees
    horizontal_resolution: int = 1024  # LiDAR points per revolution per beam
    max_range: float = 100.0  # metres; farther returns are dropped
    range_noise: float = 0.02  # metres, standard deviation of gaussian noise along each ray
    lidar_delay_ms: float = 5.0  # LiDAR stamp minus camera stamp
    sweep_ms: float = 0.0  # one revolution: returns measured over it from the LiDAR stamp (0: all at the stamp)

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise InputError(f"--frames must be at least 1, got {self.frames}")
        if self.scene not in SCENE_KINDS:
            raise InputError(f"--scene must be one of {', '.join(SCENE_KINDS)}, got {self.scene!r}")
        if not (16 <= self.width <= 8192 and 16 <= self.height <= 8192):
            raise InputError(f"--width/--height must be 16..8192 pixels, got {self.width}x{self.height}")
        if self.fx is not None and not (math.isfinite(self.fx) and self.fx > 0):
            raise InputError(f"--fx must be a positive focal length in pixels, got {self.fx}")
        if self.fx is None and not (1.0 <= self.fov_deg <= 170.0):
            raise InputError(f"--fov-deg must be 1..170 degrees (horizontal field of view), got {self.fov_deg}")
        if not (0.1 <= self.rate <= 100.0):
            raise InputError(f"--rate must be 0.1..100 Hz, got {self.rate}")
        if self.beams not in BEAM_COUNTS:
            raise InputError(f"--beams must be one of {', '.join(map(str, BEAM_COUNTS))}, got {self.beams}")
        low, high = self.vfov
        if not (-90.0 <= low < high <= 90.0):
            raise InputError(
                f"--vfov needs -90 <= LOW < HIGH <= 90 degrees (e.g. --vfov=-25,15), got {low},{high}"
            )
        if not (64 <= self.horizontal_resolution <= 8192):
            raise InputError(
                f"--horizontal-resolution must be 64..8192 points per revolution, got {self.horizontal_resolution}"
            )
        if not (0.5 <= self.max_range <= 1000.0):
            raise InputError(f"--max-range must be 0.5..1000 metres, got {self.max_range}")
        if not (0.0 <= self.range_noise <= 1.0):
            raise InputError(f"--range-noise must be 0..1 metres (standard deviation), got {self.range_noise}")
        if not (0.0 <= self.sweep_ms <= 1000.0 / self.rate):
            raise InputError(f"--sweep-ms must be 0..{1000.0 / self.rate:g} ms (one revolution, at most a frame at "
                             f"--rate {self.rate:g}), got {self.sweep_ms}")
        half_period_ms = 500.0 / self.rate
        if not abs(self.lidar_delay_ms) < half_period_ms:
            raise InputError(
                f"--lidar-delay-ms must be within +-{half_period_ms:g} ms (half a frame at --rate {self.rate:g}) "
                f"so each sweep pairs with its own frame, got {self.lidar_delay_ms}"
            )

    @property
    def camera(self) -> PinholeCamera:
        """Ideal pinhole intrinsics of the rendered images (principal point at the image centre)."""
        fx = self.fx if self.fx is not None else 0.5 * self.width / math.tan(math.radians(self.fov_deg) / 2)
        return PinholeCamera(self.width, self.height, fx, fx, (self.width - 1) / 2, (self.height - 1) / 2)

    def camera_stamp_ns(self, index: int) -> int:
        """Stamp of camera frame ``index``."""
        return START_STAMP_NS + round(index * 1e9 / self.rate)

    def sweep_ns(self) -> int:
        """Nanoseconds from a sweep's stamp to its last return (0: one instant)."""
        return round(self.sweep_ms * 1e6)

    def lidar_stamp_ns(self, index: int) -> int:
        """Stamp of LiDAR sweep ``index`` (camera stamp plus the LiDAR delay)."""
        return self.camera_stamp_ns(index) + round(self.lidar_delay_ms * 1e6)
