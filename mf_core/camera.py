"""Pinhole camera intrinsics with OpenCV distortion models (plumb_bob, rational_polynomial)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from mf_core.errors import InputError

# Number of coefficients for each distortion model name used by sensor_msgs/CameraInfo.
DISTORTION_MODELS: dict[str, int] = {"none": 0, "plumb_bob": 5, "rational_polynomial": 8}


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics of one camera image: size, focal lengths and principal point in pixels.

    ``distortion`` holds OpenCV coefficients (k1, k2, p1, p2, k3[, k4, k5, k6]) for
    ``distortion_model``; an all-zero or empty tuple means an ideal pinhole.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "none"
    distortion: tuple[float, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"camera size must be positive, got {self.width}x{self.height}")
        for name in ("fx", "fy"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise InputError(
                    f"camera {name} must be a positive focal length in pixels, got {value} "
                    "(an uncalibrated camera_info has K all zero: calibrate the camera first)"
                )
        for name in ("cx", "cy"):
            if not math.isfinite(getattr(self, name)):
                raise InputError(f"camera {name} must be finite, got {getattr(self, name)}")
        model = self.distortion_model
        if model not in DISTORTION_MODELS:
            raise InputError(
                f"unsupported distortion model {model!r}; use one of {sorted(DISTORTION_MODELS)}"
            )
        coeffs = tuple(float(c) for c in self.distortion)
        if coeffs and len(coeffs) != DISTORTION_MODELS[model] and not (
            model == "plumb_bob" and len(coeffs) in (4, 5)
        ):
            raise InputError(
                f"distortion model {model!r} takes {DISTORTION_MODELS[model]} coefficients, got {len(coeffs)}"
            )
        object.__setattr__(self, "distortion", coeffs)

    @property
    def K(self) -> np.ndarray:
        """The 3x3 intrinsic matrix (float64)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def is_distorted(self) -> bool:
        """True when any distortion coefficient is non-zero."""
        return any(c != 0.0 for c in self.distortion)

    def resized(self, width: int, height: int) -> PinholeCamera:
        """The same camera for an image resized to ``width`` x ``height`` (pixel-centre convention)."""
        sx, sy = width / self.width, height / self.height
        return replace(
            self,
            width=width,
            height=height,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
        )

    def to_dict(self) -> dict:
        """JSON form used by sample folders (``NAME_calib.json``)."""
        out: dict = {"width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy,
                     "cx": self.cx, "cy": self.cy}
        if self.is_distorted:
            out["distortion_model"] = self.distortion_model
            out["distortion"] = list(self.distortion)
        return out

    @classmethod
    def from_dict(cls, data: dict, width: int | None = None, height: int | None = None) -> PinholeCamera:
        """Build from the sample-folder JSON form; ``width``/``height`` fill in when absent."""
        missing = [k for k in ("fx", "fy", "cx", "cy") if k not in data]
        if missing:
            raise InputError(f"calibration is missing {', '.join(missing)} (need fx, fy, cx, cy in pixels)")
        w = data.get("width", width)
        h = data.get("height", height)
        if w is None or h is None:
            raise InputError("calibration has no width/height and no image to take them from")
        dist = tuple(data.get("distortion", ()))
        model = data.get("distortion_model", "plumb_bob" if dist else "none")
        return cls(int(w), int(h), float(data["fx"]), float(data["fy"]), float(data["cx"]), float(data["cy"]),
                   model, dist)
