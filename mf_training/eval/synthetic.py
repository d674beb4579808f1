"""Analytic test scenes: planes and boxes rendered exactly, seen by a co-located spinning LiDAR.

No ray-casting library: every surface is a plane, so the depth along each pixel ray is
closed-form. Used by the eval tests and ``mf bench eval`` where a fast, deterministic
frame with exact dense ground truth is worth more than realism (``mf sim`` makes
realistic ones).
"""

from __future__ import annotations

import numpy as np

from mf_core.camera import PinholeCamera
from mf_core.geometry import pixel_rays
from mf_training.data.sample import Sample

CAMERA_HEIGHT = 1.6  # metres above the ground plane
SKY_HEIGHT = 8.0  # metres above the camera: the back wall ends there, sky (no depth) above


def default_camera(width: int = 640, height: int = 480) -> PinholeCamera:
    """An ideal pinhole with a ~65 degree horizontal field of view."""
    focal = 0.78 * width
    return PinholeCamera(width, height, focal, focal, (width - 1) / 2, (height - 1) / 2)


def plane_depth(camera: PinholeCamera, normal: tuple[float, float, float], offset: float) -> np.ndarray:
    """(H, W) float32 z-depth of the plane ``normal . X = offset`` (camera frame); 0 where a ray misses it."""
    rays = pixel_rays(camera)  # (H, W, 3) rays (x, y, 1)
    denominator = rays @ np.asarray(normal, dtype=np.float32)  # (H, W)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = offset / denominator
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


def _nearest(layers: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer: the (H, W) nearest positive depth over the layers and the (H, W) index of its layer (-1 = none)."""
    stack = np.stack([np.where(d > 0, d, np.inf) for d in layers])  # (L, H, W)
    index = np.argmin(stack, axis=0)  # (H, W)
    depth = np.take_along_axis(stack, index[None], axis=0)[0]  # (H, W)
    hit = np.isfinite(depth)
    return np.where(hit, depth, 0.0).astype(np.float32), np.where(hit, index, -1)


def render_scene(camera: PinholeCamera, seed: int = 0, boxes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A street-like scene: ground, a slanted left wall, a back wall ending in sky, and box fronts.

    Returns the (H, W, 3) uint8 RGB image (flat-shaded surfaces with a pixel checker
    texture and noise) and its exact (H, W) float32 depth in metres (0 = sky).
    """
    rng = np.random.default_rng(seed)
    rays = pixel_rays(camera)  # (H, W, 3)
    back = float(rng.uniform(35.0, 50.0))
    walls = [
        plane_depth(camera, (0.97, 0.0, 0.24), -float(rng.uniform(4.0, 7.0))),  # left wall, turned 14 degrees
        plane_depth(camera, (0.0, 0.0, 1.0), back),  # back wall
    ]
    for wall in walls:
        wall[rays[..., 1] * wall < -SKY_HEIGHT] = 0.0  # walls end SKY_HEIGHT above the camera; sky above
    layers = [plane_depth(camera, (0.0, 1.0, 0.0), CAMERA_HEIGHT), *walls]  # ground at y = +1.6 m (y down)
    for _ in range(boxes):
        # A box's front face: a fronto-parallel rectangle standing on the ground.
        z = rng.uniform(6.0, 25.0)
        x0 = rng.uniform(-3.0, 4.0)
        width, height = rng.uniform(1.0, 3.0), rng.uniform(1.0, 3.0)
        face = np.full(rays.shape[:2], z, np.float32)
        x, y = rays[..., 0] * z, rays[..., 1] * z  # (H, W) camera-frame point on the face's plane
        face[(x < x0) | (x > x0 + width) | (y > CAMERA_HEIGHT) | (y < CAMERA_HEIGHT - height)] = 0.0
        layers.append(face)
    depth, surface = _nearest(layers)
    colours = rng.uniform(60, 230, size=(len(layers), 3))  # (L, 3) one colour per surface
    rows, cols = np.indices(depth.shape)
    checker = 0.8 + 0.2 * (((rows // 16) + (cols // 16)) % 2)  # (H, W)
    image = np.where(surface[..., None] >= 0, colours[np.maximum(surface, 0)] * checker[..., None],
                     np.array([150.0, 190.0, 235.0]))  # (H, W, 3), sky blue
    image += rng.normal(0.0, 4.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), depth


def lidar_scan(depth: np.ndarray, camera: PinholeCamera, beams: int = 64,
               vfov_deg: tuple[float, float] = (-24.8, 2.0), horizontal_resolution: int = 2048) -> np.ndarray:
    """(H, W) float32 sparse depth a spinning LiDAR at the camera centre would see (0 = no return).

    Beam ``b`` at elevation ``e`` and azimuth ``a`` (both from the optical axis) points along
    (tan a, -tan e / cos a, 1) in camera coordinates, so it lands on pixel
    ``u = cx + fx tan a``, ``v = cy - fy tan e / cos a``: each beam draws a curve, as on a real
    sensor. The return is the scene depth at that pixel (sky gives none). The HDL-64-like
    defaults cover the lower part of the image.
    """
    elevation = np.radians(np.linspace(vfov_deg[0], vfov_deg[1], beams))  # (B,)
    step = 2 * np.pi / horizontal_resolution
    azimuth = np.arange(-np.pi / 2 + step, np.pi / 2, step)  # (R,) the half-turn in front of the camera
    u = camera.cx + camera.fx * np.tan(azimuth)[None, :]  # (1, R)
    v = camera.cy - camera.fy * np.tan(elevation)[:, None] / np.cos(azimuth)[None, :]  # (B, R)
    u, v = np.broadcast_arrays(u, v)
    inside = (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    flat = v[inside].astype(np.int64) * camera.width + u[inside].astype(np.int64)  # (M,)
    sparse = np.zeros(depth.size, np.float32)
    sparse[flat] = depth.ravel()[flat]
    return sparse.reshape(depth.shape)


def synthetic_sample(name: str, camera: PinholeCamera | None = None, seed: int = 0, beams: int = 64) -> Sample:
    """A Sample of :func:`render_scene` with its LiDAR scan and exact dense ground truth."""
    camera = camera or default_camera()
    image, depth = render_scene(camera, seed)
    return Sample(name=name, image=image, sparse_depth=lidar_scan(depth, camera, beams), camera=camera,
                  stamp_ns=seed, gt_depth=depth)
