"""Camera intrinsics with the OpenCV / ROS distortion models (plumb_bob, rational_polynomial, and equidistant:
OpenCV's fisheye model, which ROS CameraInfo names ``equidistant``)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace

import numpy as np

from mf_core.errors import InputError

# Number of coefficients for each distortion model name used by sensor_msgs/CameraInfo.
DISTORTION_MODELS: dict[str, int] = {"none": 0, "plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
FISHEYE_MODEL = "equidistant"  # r_d = theta (1 + k1 theta^2 + ... + k4 theta^8), theta the angle off the optical axis
MAX_FOCAL_RATIO = 1000.0  # focal length / image size outside [1/1000, 1000]: not a focal length in pixels


def _is_real(value: object) -> bool:
    """A real number (Python or numpy), not a bool or a string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics of one camera image: size, focal lengths and principal point in pixels.

    ``distortion`` holds OpenCV coefficients (k1, k2, p1, p2, k3[, k4, k5, k6]) for
    ``distortion_model``, or (k1, k2, k3, k4) of the fisheye model for ``equidistant``. All zero or empty:
    an ideal pinhole, or for ``equidistant`` the ideal fisheye (r_d = theta). Depth is along the optical
    axis for every model (REP 118), so a fisheye sees only the half-space in front of the camera (up to 180
    degrees).
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
        for name in ("width", "height"):
            value = getattr(self, name)
            if not _is_real(value) or value != int(value) or value <= 0:
                raise InputError(f"camera {name} must be a positive whole number of pixels, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(value):
                raise InputError(f"camera {name} must be a finite number of pixels, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("fx", "fy"):
            value = getattr(self, name)
            if value <= 0:
                raise InputError(
                    f"camera {name} must be a positive focal length in pixels, got {value} "
                    "(an uncalibrated camera_info has K all zero: calibrate the camera first)"
                )
            # A focal length below size/MAX_FOCAL_RATIO means a field of view near 180 degrees, one above
            # size*MAX_FOCAL_RATIO a fraction of a degree: almost surely metres or millimetres, not pixels.
            size = self.width if name == "fx" else self.height
            if not size / MAX_FOCAL_RATIO <= value <= size * MAX_FOCAL_RATIO:
                raise InputError(f"camera {name} = {value:g} px for a {size} px image implies a field of view of "
                                 f"{math.degrees(2 * math.atan(size / (2 * value))):.3g} degrees; "
                                 "give the focal length in pixels (K[0] and K[4] of camera_info)")
        if not isinstance(self.distortion_model, str):
            raise InputError(f"camera distortion_model must be a name, got {self.distortion_model!r}")
        if isinstance(self.distortion, str | bytes) or not hasattr(self.distortion, "__iter__"):
            raise InputError(f"camera distortion must be a list of numbers, got {self.distortion!r}")
        bad = [c for c in self.distortion if not _is_real(c) or not math.isfinite(c)]
        if bad:
            raise InputError(f"camera distortion coefficients must be finite numbers, got {bad[0]!r}")
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
        """True when pixels are not an ideal pinhole's: any distortion coefficient is non-zero, or the model is
        the fisheye one (whose zero coefficients are the ideal equidistant lens, r_d = theta)."""
        return self.distortion_model == FISHEYE_MODEL or any(c != 0.0 for c in self.distortion)

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
        dist = data.get("distortion", ())
        model = data.get("distortion_model", "plumb_bob" if dist else "none")
        return cls(w, h, data["fx"], data["fy"], data["cx"], data["cy"], model, dist)  # checked in __post_init__
