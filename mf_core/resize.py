"""Resizing images, dense depth and sparse LiDAR depth to a processing resolution (numpy).

All functions take ``(width, height)`` of the output like OpenCV, never modify their input,
and use the pixel-centre convention of :meth:`mf_core.camera.PinholeCamera.resized`
(pixel u covers [u, u+1) and its centre u + 0.5 scales by ``width_out / width_in``), so
a camera resized with ``camera.resized(width, height)`` matches the resized arrays.
Depth arrays use 0 for "no value".
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mf_core.errors import InputError


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise InputError(f"output size must be positive, got {width}x{height}")


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an (H, W, C) or (H, W) image: area averaging when shrinking, bilinear when growing."""
    _check_size(width, height)
    if image.shape[:2] == (height, width):
        return image.copy()
    shrinking = width * height < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def resize_dense_depth(depth: np.ndarray, width: int, height: int, method: str = "masked_average") -> np.ndarray:
    """Resize an (H, W) depth map with holes (0) so that holes do not bleed into valid depth.

    ``method``:
      - ``"nearest"``: each output pixel copies the input pixel under its centre.
      - ``"masked_average"``: the area (shrinking) or bilinear (growing) average of the
        valid pixels only; an output pixel with no valid input weight is 0.

    Returns (height, width) float32.
    """
    _check_size(width, height)
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise InputError(f"depth must be (H, W), got shape {depth.shape}")
    if method == "nearest":
        return cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
    if method != "masked_average":
        raise InputError(f"unknown depth resize method {method!r}; use 'nearest' or 'masked_average'")
    valid = (np.isfinite(depth) & (depth > 0)).astype(np.float32)
    weighted = np.where(valid > 0, depth, 0.0).astype(np.float32)
    weighted_resized = resize_image(weighted, width, height)
    weight_resized = resize_image(valid, width, height)
    # Below this weight an output pixel is essentially outside the valid area.
    has_weight = weight_resized > 1e-3
    return np.where(has_weight, weighted_resized / np.maximum(weight_resized, 1e-3), 0.0).astype(np.float32)


def resize_sparse_depth(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Move sparse (H, W) LiDAR depth to a new resolution without smearing or inventing points.

    Each valid input pixel lands in the output pixel that contains its scaled centre
    ``floor((u + 0.5) * width / W)``. When several points land in one output pixel (shrinking)
    the nearest one (minimum depth) wins, as in a z-buffer: it is the surface the camera sees.
    When growing, each point stays a single pixel. Output values are always input values.

    Returns (height, width) float32, 0 where no point landed.
    """
    _check_size(width, height)
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise InputError(f"sparse depth must be (H, W), got shape {depth.shape}")
    rows, cols = np.nonzero(np.isfinite(depth) & (depth > 0))
    values = depth[rows, cols]
    out_rows = np.minimum(((rows + 0.5) * (height / depth.shape[0])).astype(np.int64), height - 1)
    out_cols = np.minimum(((cols + 0.5) * (width / depth.shape[1])).astype(np.int64), width - 1)
    target = out_rows * width + out_cols  # (N,) flat output index
    # Sort by target then depth; the first entry of each target group is its nearest point.
    order = np.lexsort((values, target))
    unique_targets, first = np.unique(target[order], return_index=True)
    out = np.zeros(height * width, dtype=np.float32)
    out[unique_targets] = values[order][first]
    return out.reshape(height, width)


def processing_shape(height: int, width: int, multiple: int, size: int | tuple[int, int] | None = None
                     ) -> tuple[int, int]:
    """The (height, width) at which to run the model: multiples of ``multiple`` (the patch size).

    ``size`` is None (keep the input size), an int (the longer side; aspect ratio kept), or an
    explicit (height, width). Each side is rounded to the nearest multiple, at least one multiple.
    """
    if multiple <= 0:
        raise InputError(f"patch size must be positive, got {multiple}")
    if size is None:
        target_h, target_w = float(height), float(width)
    elif isinstance(size, int):
        if size <= 0:
            raise InputError(f"processing size must be positive, got {size}")
        factor = size / max(height, width)
        target_h, target_w = height * factor, width * factor
    else:
        if len(size) != 2 or min(size) <= 0:
            raise InputError(f"processing size must be a positive (height, width), got {size}")
        target_h, target_w = float(size[0]), float(size[1])
    # math.floor(x + 0.5) rounds halves up (Python's round() would round them to even).
    def to_multiple(x: float) -> int:
        return max(multiple, multiple * math.floor(x / multiple + 0.5))

    return to_multiple(target_h), to_multiple(target_w)
