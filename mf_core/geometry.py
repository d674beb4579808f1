"""Camera geometry: LiDAR points -> sparse depth (z-buffer), depth -> points, pixel rays.

Pixel conventions:
- ``camera.K`` maps to OpenCV/ROS pixel coordinates: the centre of pixel (row 0, col 0)
  is at (u, v) = (0, 0). ``pixel_rays`` and ``backproject_depth`` use these centres.
- A projected point at (u, v) lands in the pixel whose centre is nearest,
  (row, col) = (floor(v + 0.5), floor(u + 0.5)), and is kept when -0.5 <= u < width - 0.5
  and -0.5 <= v < height - 0.5. So ``backproject_depth`` followed by projection returns
  every point to its own pixel. (Datasets whose intrinsics put the origin at the corner of
  the first pixel, like TRI DGP, are read with cx, cy shifted by -0.5: see mf_training/data/dgp.py.)
- Several points on one pixel: the nearest (smallest z) wins.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
from numba import njit

from mf_core.camera import FISHEYE_MODEL, PinholeCamera
from mf_core.errors import InputError
from mf_core.transforms import validate

# Points closer than this to the camera plane (metres along z) are not projected.
MIN_DEPTH = 1e-3

# cv2.undistortPoints iterates a fixed-point scheme; the default 5 steps leave pixel-level
# error under strong distortion, so iterate to convergence (computed once per camera).
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)


def _check_camera(camera: PinholeCamera) -> None:
    if not isinstance(camera, PinholeCamera):
        raise InputError(f"camera must be a PinholeCamera, got {type(camera).__name__}")


def _dist_coeffs(camera: PinholeCamera) -> np.ndarray:
    """(8,) OpenCV coefficients k1 k2 p1 p2 k3 k4 k5 k6, zero-padded; for the fisheye model its k1..k4
    in the first four."""
    coeffs = np.zeros(8)
    coeffs[: len(camera.distortion)] = camera.distortion
    return coeffs


def undistort_pixels(pixels: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Normalised undistorted image coordinates (N, 2) of pixel coordinates (N, 2) (cv2.undistortPoints, or
    cv2.fisheye.undistortPoints for the fisheye model: NaN for a pixel outside its lens's image circle, where
    no ray in front of the camera lands)."""
    px = np.ascontiguousarray(pixels, dtype=np.float64).reshape(-1, 1, 2)  # (N, 1, 2)
    if camera.distortion_model != FISHEYE_MODEL:
        out = cv2.undistortPoints(px, camera.K, _dist_coeffs(camera), criteria=_UNDISTORT_CRITERIA)
        return out.reshape(-1, 2)  # (N, 2)
    out = cv2.fisheye.undistortPoints(px, camera.K, _dist_coeffs(camera)[:4], criteria=_UNDISTORT_CRITERIA)
    out = out.reshape(-1, 2)  # (N, 2)
    # OpenCV returns a point with a flipped sign past the circle: mask by the distorted angle instead.
    theta_d = np.hypot((px[:, 0, 0] - camera.cx) / camera.fx, (px[:, 0, 1] - camera.cy) / camera.fy)  # (N,)
    out[theta_d > _fisheye_reach(camera)[1]] = np.nan
    return out


@functools.lru_cache(maxsize=16)
def _fisheye_reach(camera: PinholeCamera) -> tuple[float, float]:
    """(theta, theta_d) of the widest ray a fisheye camera images: the angle off the axis where its
    polynomial theta_d(theta) stops growing (past it the model folds back), at most 90 degrees (depth is
    along the axis), and its distorted angle there."""
    k1, k2, k3, k4 = _dist_coeffs(camera)[:4]
    theta = np.linspace(0.0, math.pi / 2, 20001)[:-1]  # (T,) below 90 degrees
    t2 = theta * theta
    theta_d = theta * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))  # (T,)
    falling = np.flatnonzero(np.diff(theta_d) <= 0)
    last = int(falling[0]) if falling.size else theta.size - 1
    return float(theta[last]), float(theta_d[last])


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


# Layout of the projection tuple the kernels read (built by _projection): the top three rows
# of T_cam_from_points, then the camera. A tuple of floats, not arrays: numba passes it into
# the inlined per-point code by value, where arrays cost reference counting on every point
# (measured 4x slower).
# [0:12]: r00 r01 r02 t0, r10 r11 r12 t1, r20 r21 r22 t2
_FX, _FY, _CX, _CY, _WIDTH, _HEIGHT, _DISTORTED, _RATIONAL = range(12, 20)
_K1, _K2, _P1, _P2, _K3, _K4, _K5, _K6 = range(20, 28)  # OpenCV distortion coefficients
_XMIN, _XMAX, _YMIN, _YMAX = range(28, 32)  # _undistorted_bounds
_FISHEYE = 32  # 1.0: the fisheye model, its k1..k4 in the slots of _K1, _K2, _P1, _P2
_R2_MAX = 33  # the fisheye model: squared tan of _fisheye_reach's angle (points beyond it are culled)


@functools.lru_cache(maxsize=16)
def _camera_constants(camera: PinholeCamera) -> tuple[float, ...]:
    """The 22 camera entries of the projection tuple (layout above); cached per camera."""
    coeffs = _dist_coeffs(camera)
    fisheye = camera.distortion_model == FISHEYE_MODEL
    bounds = _undistorted_bounds(camera) if camera.is_distorted and not fisheye else (0.0, 0.0, 0.0, 0.0)
    r2_max = math.tan(_fisheye_reach(camera)[0]) ** 2 if fisheye else 0.0
    return (camera.fx, camera.fy, camera.cx, camera.cy, float(camera.width), float(camera.height),
            float(camera.is_distorted), float(coeffs[5:].any()), *coeffs.tolist(), *bounds, float(fisheye), r2_max)


def _projection(T_cam_from_points: np.ndarray, camera: PinholeCamera) -> tuple[float, ...]:
    """(34,) floats for the projection kernels: validated extrinsic rows, then camera constants."""
    _check_camera(camera)
    T = validate(T_cam_from_points, "T_cam_from_points")
    return (*T[:3].ravel().tolist(), *_camera_constants(camera))


@njit(cache=True, inline="always")
def _distort(x: float, y: float, P: tuple) -> tuple[float, float]:
    """OpenCV plumb_bob / rational_polynomial or fisheye distortion of normalised coordinates (x, y).

    Hand-written because cv2.projectPoints (the library's forward model) also computes
    Jacobians and was ~12x slower on 130k points; the tests check this against it and against
    cv2.fisheye.projectPoints. The radial factor is in Horner form, with the rational denominator
    only when k4..k6 are set; the fisheye's in the angle theta = atan(r) off the optical axis.
    """
    r2 = x * x + y * y
    if P[_FISHEYE]:
        r = math.sqrt(r2)
        if r < 1e-12:  # on the axis: r_d / r -> 1
            return x, y
        theta = math.atan(r)
        t2 = theta * theta
        scale = theta * (1.0 + t2 * (P[_K1] + t2 * (P[_K2] + t2 * (P[_P1] + t2 * P[_P2])))) / r
        return x * scale, y * scale
    radial = 1.0 + r2 * (P[_K1] + r2 * (P[_K2] + r2 * P[_K3]))
    if P[_RATIONAL]:
        radial /= 1.0 + r2 * (P[_K4] + r2 * (P[_K5] + r2 * P[_K6]))
    p1, p2 = P[_P1], P[_P2]
    return (x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
            y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y)


@njit(cache=True, inline="always")
def _project_point(px: float, py: float, pz: float, P: tuple) -> tuple:
    """(kept, u, v, z) of one point: kept when in front of the camera, in its field of view and the image.

    NaN or inf anywhere fails one of the comparisons, so such points are never kept. Points
    outside the field of view are culled before distortion: far outside it the polynomial model
    folds back and would wrap them into the image.
    """
    z = P[8] * px + P[9] * py + P[10] * pz + P[11]
    if not (MIN_DEPTH < z < math.inf):
        return False, 0.0, 0.0, z
    inv_z = 1.0 / z  # one division, not two
    x = (P[0] * px + P[1] * py + P[2] * pz + P[3]) * inv_z
    y = (P[4] * px + P[5] * py + P[6] * pz + P[7]) * inv_z
    if P[_DISTORTED]:
        if P[_FISHEYE]:
            if not x * x + y * y <= P[_R2_MAX]:
                return False, 0.0, 0.0, z
        elif not (P[_XMIN] <= x <= P[_XMAX] and P[_YMIN] <= y <= P[_YMAX]):
            return False, 0.0, 0.0, z
        x, y = _distort(x, y, P)
    u = P[_FX] * x + P[_CX]
    v = P[_FY] * y + P[_CY]
    inside = -0.5 <= u < P[_WIDTH] - 0.5 and -0.5 <= v < P[_HEIGHT] - 0.5
    return inside, u, v, z


@njit(cache=True, nogil=True)
def _project_kernel(points: np.ndarray, P: tuple, u: np.ndarray, v: np.ndarray, z: np.ndarray,
                    index: np.ndarray) -> int:
    """Write the kept points of ``points`` (N, 3) to the fronts of u, v, z, index (N,); returns how many."""
    kept_count = 0
    for i in range(points.shape[0]):
        kept, pu, pv, pz = _project_point(points[i, 0], points[i, 1], points[i, 2], P)
        if kept:
            u[kept_count], v[kept_count], z[kept_count], index[kept_count] = pu, pv, pz, i
            kept_count += 1
    return kept_count


@njit(cache=True, nogil=True)
def _zbuffer_kernel(points: np.ndarray, P: tuple, depth: np.ndarray) -> None:
    """Project ``points`` (N, 3) into ``depth`` (H, W) float32 (zeros on entry); the nearest point wins."""
    for i in range(points.shape[0]):
        kept, u, v, z = _project_point(points[i, 0], points[i, 1], points[i, 2], P)
        if kept:
            row, col = int(v + 0.5), int(u + 0.5)  # nearest pixel centre; u + 0.5 >= 0, so int() == floor
            z32 = np.float32(z)
            if depth[row, col] == 0 or z32 < depth[row, col]:
                depth[row, col] = z32


def _point_array(points: np.ndarray) -> np.ndarray:
    """``points`` as a C-contiguous (N, 3) float32 or float64 array (the kernels' two compiled kinds)."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"points must be an (N, 3) array of x, y, z, got shape {pts.shape}")
    if pts.dtype not in (np.float32, np.float64):
        pts = pts.astype(np.float64)
    return np.ascontiguousarray(pts)


def project_points(
    points: np.ndarray, T_cam_from_points: np.ndarray, camera: PinholeCamera
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Project points (N, 3) into ``camera``; keep those in front of it and inside the image.

    Returns ``(u, v, z, index)``: float64 pixel coordinates (M,), (M,), depth along the
    camera z axis (M,) in metres, and the int64 index (M,) of each kept point in ``points``.
    Points with NaN or inf coordinates are dropped.
    """
    projection = _projection(T_cam_from_points, camera)
    pts = _point_array(points)
    n = pts.shape[0]
    u, v, z, index = np.empty(n), np.empty(n), np.empty(n), np.empty(n, dtype=np.int64)
    kept = _project_kernel(pts, projection, u, v, z, index)
    return u[:kept], v[:kept], z[:kept], index[:kept]


def points_to_depth_map(points: np.ndarray, T_cam_from_points: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Sparse depth (H, W) float32 in metres from points (N, 3); 0 = no point; nearest point wins.

    One compiled pass over the points (projection and z-buffer fused): the numpy version needed a
    dozen passes and a sort, and its temporaries cost as much as its arithmetic.
    """
    projection = _projection(T_cam_from_points, camera)
    pts = _point_array(points)
    depth = np.zeros((camera.height, camera.width), dtype=np.float32)
    _zbuffer_kernel(pts, projection, depth)
    return depth


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


@njit(cache=True, nogil=True)
def _backproject_kernel(depth: np.ndarray, rays: np.ndarray, stride: int, out: np.ndarray) -> None:
    """out[r, c, :3] = rays[r s, c s] * depth[r s, c s] (s = stride); NaN where the depth is not in (0, inf)
    or the pixel has no ray (outside a fisheye's image circle)."""
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            d = depth[r * stride, c * stride]
            ray_x = rays[r * stride, c * stride, 0]
            if 0 < d < math.inf and ray_x == ray_x:  # NaN fails both
                out[r, c, 0] = rays[r * stride, c * stride, 0] * d
                out[r, c, 1] = rays[r * stride, c * stride, 1] * d
                out[r, c, 2] = d
            else:
                out[r, c, 0] = out[r, c, 1] = out[r, c, 2] = np.nan


def backproject_depth(depth: np.ndarray, camera: PinholeCamera, stride: int = 1,
                      out: np.ndarray | None = None) -> np.ndarray:
    """Camera-frame points (H/s, W/s, 3) float32 of every stride-th pixel of depth (H, W) along z.

    NaN where depth is 0, negative, NaN or inf. ``out``, when given, is an (H/s, W/s, C >= 3)
    float32 array whose first three channels receive x, y, z (e.g. a PointCloud2 buffer with
    more fields); it is returned. One compiled pass: writing x, y, z interleaved from numpy
    needs a product per axis and a strided copy each.
    """
    d = np.asarray(depth)
    if d.shape != (camera.height, camera.width):
        raise InputError(
            f"depth is {d.shape}, camera is {camera.height}x{camera.width}: pass the camera of this depth map"
        )
    if stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}")
    shape = (len(range(0, camera.height, stride)), len(range(0, camera.width, stride)))
    if out is None:
        out = np.empty((*shape, 3), dtype=np.float32)
    elif out.shape[:2] != shape or out.ndim != 3 or out.shape[2] < 3 or out.dtype != np.float32:
        raise InputError(f"out must be float32 {(*shape, 'C >= 3')}, got {out.shape} {out.dtype}")
    _backproject_kernel(d.astype(np.float32, copy=False), pixel_rays(camera), stride, out)
    return out
