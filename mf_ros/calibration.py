"""Camera calibration files -> :class:`mf_core.camera.PinholeCamera`, for bags recorded without camera_info.

The format is the YAML that ROS's ``camera_calibration`` writes (``ost.yaml``) and ``camera_info_manager``
reads (a driver's ``camera_info_url``): ``image_width``, ``image_height``, ``camera_matrix`` and
``distortion_coefficients`` (each ``{rows, cols, data}``), ``distortion_model``. Parsed here with PyYAML
because its reader (camera_calibration_parsers) is C++ and needs a ROS install.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import yaml

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_ros.conversions import camera_info_to_camera


def _matrix(calibration: dict, key: str, size: int | None, path: Path) -> np.ndarray:
    entry = calibration.get(key)
    data = entry.get("data") if isinstance(entry, dict) else None
    try:
        values = np.asarray(data, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        values = np.zeros(0)
    if data is None or (size is not None and values.size != size) or not np.isfinite(values).all():
        wanted = f"{size} numbers" if size is not None else "numbers"
        raise InputError(f"camera calibration {path}: '{key}' must be {{rows, cols, data: [{wanted}]}}, got {entry!r}")
    return values


def read_camera_calibration(path: str | os.PathLike) -> PinholeCamera:
    """The camera of a calibration YAML at ``path``; InputError naming what is missing or wrong."""
    path = Path(path)
    try:
        calibration: Any = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise InputError(f"cannot read camera calibration {path}: {err}") from err
    if not isinstance(calibration, dict):
        raise InputError(f"camera calibration {path} is not a YAML mapping (camera_calibration's ost.yaml format)")
    size = [calibration.get(key) for key in ("image_width", "image_height")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise InputError(f"camera calibration {path}: image_width and image_height must be positive integers, "
                         f"got {size}")
    fields = SimpleNamespace(  # the fields of a CameraInfo: one reading of them (camera_info_to_camera)
        width=size[0], height=size[1], k=_matrix(calibration, "camera_matrix", 9, path),
        distortion_model=str(calibration.get("distortion_model", "plumb_bob")),
        d=_matrix(calibration, "distortion_coefficients", None, path) if "distortion_coefficients" in calibration
        else np.zeros(0))
    try:
        return camera_info_to_camera(fields)
    except InputError as err:
        raise InputError(f"camera calibration {path}: {err}") from err
