"""Camera geometry: LiDAR points -> sparse depth (z-buffer), depth -> points, pixel rays.

Pixel conventions:
- ``camera.K`` maps to OpenCV/ROS pixel coordinates: the centre of pixel (row 0, col 0)
  is at (u, v) = (0, 0). ``pixel_rays`` and ``backproject_depth`` use these centres.
- A projected point at (u, v) lands in the pixel whose centre is nearest,
  (row, col) = (floor(v + 0.5), floor(u + 0.5)), and is kept when -0.5 <= u < width - 0.5
  and -0.5 <= v < height - 0.5. So ``backproject_depth`` followed by projection returns
  every point to its own pixel. (Datasets whose intrinsics put the origin at the corner of
  the first pixel, like TRI DGP, are read with cx, cy shifted by -0.5: see training/data/dgp.py.)
- Several points on one pixel: the nearest (smallest z) wins.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_core.transforms import validate

# Points closer than this to the camera plane (metres along z) are not projected.
MIN_DEPTH = 1e-3

# cv2.undistortPoints iterates a fixed-point scheme; the default 5 steps leave pixel-level
# error under strong distortion, so iterate to convergence (computed once per camera).
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)


def _check_points(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"points must be an (N, 3) array of x, y, z, got shape {pts.shape}")
    return pts


def _check_camera(camera: PinholeCamera) -> None:
    if not isinstance(camera, PinholeCamera):
        raise InputError(f"camera must be a PinholeCamera, got {type(camera).__name__}")


def _dist_coeffs(camera: PinholeCamera) -> np.ndarray:
    """(8,) OpenCV coefficients k1 k2 p1 p2 k3 k4 k5 k6, zero-padded."""
    coeffs = np.zeros(8)
    coeffs[: len(camera.distortion)] = camera.distortion
    return coeffs


def undistort_pixels(pixels: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Normalised undistorted image coordinates (N, 2) of pixel coordinates (N, 2) (cv2.undistortPoints)."""
    px = np.ascontiguousarray(pixels, dtype=np.float64).reshape(-1, 1, 2)  # (N, 1, 2)
    out = cv2.undistortPoints(px, camera.K, _dist_coeffs(camera), criteria=_UNDISTORT_CRITERIA)
    return out.reshape(-1, 2)  # (N, 2)


def distort_normalized(x: np.ndarray, y: np.ndarray, camera: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
    """Apply the OpenCV plumb_bob / rational_polynomial model to normalised coordinates (N,), (N,).

    Hand-written in numpy because cv2.projectPoints (the library forward model) computes
    Jacobians too and was ~12x slower on 130k points on one core; the test checks this
    against cv2.projectPoints.
    """
    k1, k2, p1, p2, k3, k4, k5, k6 = _dist_coeffs(camera)
    r2 = x * x
    r2 += y * y
    # Radial factor in Horner form: 1 + r2 (k1 + r2 (k2 + r2 k3)), with the rational
    # denominator only when k4..k6 are set (plumb_bob has none): fewer passes over N points.
    radial = _polynomial_1(r2, k1, k2, k3)  # (N,)
    if k4 or k5 or k6:
        radial /= _polynomial_1(r2, k4, k5, k6)
    xy2 = x * y
    xy2 *= 2.0
    xd = x * radial
    xd += p1 * xy2
    xd += p2 * (r2 + 2.0 * x * x)
    yd = y * radial
    yd += p1 * (r2 + 2.0 * y * y)
    yd += p2 * xy2
    return xd, yd


def _polynomial_1(r2: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """1 + a r2 + b r2^2 + c r2^3 for r2 (N,), evaluated in place in Horner form."""
    out = r2 * c
    out += b
    out *= r2
    out += a
    out *= r2
    out += 1.0
    return out


@functools.lru_cache(maxsize=16)
def _undistorted_bounds(camera: PinholeCamera) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) of normalised undistorted coordinates that can land in the image.

    Points outside this box are culled before distortion: far outside the field of
    view the polynomial model folds back and would wrap them into the image.
    """
    w, h = camera.width, camera.height
    us = np.linspace(-0.5, w - 0.5, 64)
    vs = np.linspace(-0.5, h - 0.5, 64)
    border = np.concatenate([
        np.stack([us, np.full_like(us, -0.5)], 1), np.stack([us, np.full_like(us, h - 0.5)], 1),
        np.stack([np.full_like(vs, -0.5), vs], 1), np.stack([np.full_like(vs, w - 0.5), vs], 1),
    ])  # (256, 2) pixel coordinates around the image edge
    xy = undistort_pixels(border, camera)  # (256, 2)
    lo, hi = xy.min(0), xy.max(0)
    pad = 0.02 * (hi - lo)
    return float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1])


def project_points(
    points: np.ndarray, T_cam_from_points: np.ndarray, camera: PinholeCamera
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Project points (N, 3) into ``camera``; keep those in front of it and inside the image.

    Returns ``(u, v, z, index)``: float64 pixel coordinates (M,), (M,), depth along the
    camera z axis (M,) in metres, and the int64 index (M,) of each kept point in ``points``.
    Points with NaN or inf coordinates are dropped.
    """
    _check_camera(camera)
    pts = _check_points(points)
    T = validate(T_cam_from_points, "T_cam_from_points")
    # One matrix-vector product per camera axis gives contiguous (N,) rows; this is ~3x
    # faster than transforms.apply's (N, 3) result with its strided columns. The arithmetic
    # below runs in place: each pass over 130k points costs about as much as the maths in it.
    X, Y, Z = (pts @ T[k, :3] for k in range(3))  # (N,) each, camera frame
    X += T[0, 3]
    Y += T[1, 3]
    Z += T[2, 3]
    valid = Z > MIN_DEPTH  # (N,)
    with np.errstate(divide="ignore", invalid="ignore"):  # z <= 0 is masked out by valid
        X /= Z  # now x = X / Z
        Y /= Z
    x, y = X, Y
    index = None
    if camera.is_distorted:
        xmin, xmax, ymin, ymax = _undistorted_bounds(camera)
        valid &= (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)
        index = np.flatnonzero(valid)  # (K,) distort only the points that can land in the image
        if index.size < valid.size:
            x, y, Z = x[index], y[index], Z[index]
        x, y = distort_normalized(x, y, camera)
    u, v = x, y
    u *= camera.fx
    u += camera.cx
    v *= camera.fy
    v += camera.cy
    inside = (u >= -0.5) & (u < camera.width - 0.5) & (v >= -0.5) & (v < camera.height - 0.5)
    if index is None:
        inside &= valid
    keep = np.flatnonzero(inside)  # (M,)
    index = keep if index is None else index[keep]
    if keep.size == u.size:  # everything in view: no gather needed
        return u, v, Z, index
    return u[keep], v[keep], Z[keep], index


def points_to_depth_map(points: np.ndarray, T_cam_from_points: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Sparse depth (H, W) float32 in metres from points (N, 3); 0 = no point; nearest point wins."""
    u, v, z, _ = project_points(points, T_cam_from_points, camera)
    # (M,) nearest pixel centre; u + 0.5 >= 0, so int() == floor. In place: u, v are ours.
    u += 0.5
    v += 0.5
    key = v.astype(np.int64)  # (M,) becomes the sort key below
    key *= camera.width
    key += u.astype(np.int64)  # flat pixel index
    depth = np.zeros(camera.height * camera.width, dtype=np.float32)
    if key.size:
        # One sort instead of np.minimum.at (2x slower) or argsort + np.unique (10x slower):
        # positive float32 bit patterns sort like their values, so a key of
        # (pixel << 32 | depth bits) sorts by pixel, then nearest first.
        key <<= 32
        key |= z.astype(np.float32).view(np.uint32)  # (M,)
        key.sort()
        pixel = key >> 32
        first = np.empty(key.size, dtype=bool)
        first[0] = True
        np.not_equal(pixel[1:], pixel[:-1], out=first[1:])  # first = nearest of each pixel
        nearest = key[first]
        depth[nearest >> 32] = (nearest & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
    return depth.reshape(camera.height, camera.width)


@functools.lru_cache(maxsize=8)
def pixel_rays(camera: PinholeCamera) -> np.ndarray:
    """(H, W, 3) float32 rays (x, y, 1) through each pixel centre, undistorted; read-only, cached."""
    _check_camera(camera)
    w, h = camera.width, camera.height
    if camera.is_distorted:
        grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).reshape(-1, 2)  # (H*W, 2) u, v
        xy = undistort_pixels(grid, camera).reshape(h, w, 2)  # (H, W, 2)
    else:
        x = (np.arange(w) - camera.cx) / camera.fx  # (W,)
        y = (np.arange(h) - camera.cy) / camera.fy  # (H,)
        xy = np.stack(np.broadcast_arrays(x[None, :], y[:, None]), -1)  # (H, W, 2)
    rays = np.empty((h, w, 3), dtype=np.float32)
    rays[..., :2] = xy
    rays[..., 2] = 1.0
    rays.flags.writeable = False
    return rays


@functools.lru_cache(maxsize=8)
def _ray_planes(camera: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
    """The x and y components of :func:`pixel_rays` as contiguous (H, W) float32 planes; cached."""
    rays = pixel_rays(camera)
    planes = np.ascontiguousarray(rays[..., 0]), np.ascontiguousarray(rays[..., 1])
    for plane in planes:
        plane.flags.writeable = False
    return planes


def backproject_planes(depth: np.ndarray, camera: PinholeCamera,
                       stride: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-frame X, Y, Z planes, each (H/s, W/s) float32, of every stride-th pixel of depth (H, W).

    NaN where depth is 0, negative, NaN or inf. Planes rather than an (H, W, 3) array because
    each is a contiguous elementwise product (an (H, W, 3) broadcast multiply is ~5x slower),
    and callers interleave them straight into the point layout they need.
    """
    d = np.asarray(depth)
    if d.shape != (camera.height, camera.width):
        raise InputError(
            f"depth is {d.shape}, camera is {camera.height}x{camera.width}: pass the camera of this depth map"
        )
    if stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}")
    d = d[::stride, ::stride].astype(np.float32, copy=False)
    z = np.where((d > 0) & (d < np.inf), d, np.float32(np.nan))  # (h, w); NaN fails both comparisons
    ray_x, ray_y = (plane[::stride, ::stride] for plane in _ray_planes(camera))
    return ray_x * z, ray_y * z, z


def backproject_depth(depth: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Points (H, W, 3) float32 in the camera frame from depth (H, W) along z; NaN where depth is
    0, negative, NaN or inf."""
    return np.stack(backproject_planes(depth, camera), axis=-1)  # (H, W, 3)
