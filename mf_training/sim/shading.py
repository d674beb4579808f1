"""Per-ray shading of one Open3D cast: camera pixels (colour + depth) and LiDAR returns (intensity).

Procedural textures in world coordinates, Lambert shading and a sky gradient, written as numba
loops over the rays. No library shades Open3D ray hits, and the same maths as numpy array
expressions took ~50 passes over every ray (each a full read and write of the frame), which cost
as much CPU as the cast itself; one compiled pass per ray does it in a few milliseconds. Kernels
run on one thread without the GIL, so they overlap with whatever another thread does (writing
the previous frame, see generator.generate_frames).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mf_training.sim.scene import Pattern

SKY_HORIZON = (0.80, 0.87, 0.95)
SKY_ZENITH = (0.25, 0.45, 0.85)
GRAIN_CELLS_PER_M = 1 / 0.07  # fine brightness noise every surface gets
LUMA = (0.299, 0.587, 0.114)
TEXTURE_INSET_M = 0.01  # texture looked up this far inside the surface (see _surface)
TILES = int(Pattern.TILES)
# Parity patterns: mix = (weight_xy * (cx + cy) + weight_z * cz) & 1 over integer cells (cx, cy, cz).
PARITY_WEIGHTS = np.zeros((len(Pattern), 2), np.int64)  # (patterns, 2), row = Pattern value
for _pattern, _weights in {Pattern.CHECKER: (1, 1), Pattern.STRIPES: (1, 0), Pattern.BANDS: (0, 1)}.items():
    PARITY_WEIGHTS[_pattern] = _weights


@njit(cache=True, inline="always")
def cell_noise(cx: int, cy: int, cz: int) -> float:
    """A fixed pseudo-random value in [0, 1) per integer cell: a 32-bit integer hash of the cell."""
    mask = 0xFFFFFFFF  # uint32 arithmetic: wrap every product
    h = (cx * 73856093) & mask
    h ^= (cy * 19349663) & mask
    h ^= (cz * 83492791) & mask
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & mask
    h ^= h >> 12
    return (h & 0xFFFF) * (1.0 / 65536.0)


@njit(cache=True, inline="always")
def _albedo(x: float, y: float, z: float, material: tuple) -> tuple[float, float, float]:
    """Surface colour (r, g, b) in [0, 1] at texture point (x, y, z) of ``material`` (a Scene.materials row)."""
    s, pattern, a_r, a_g, a_b, b_r, b_g, b_b = material
    cx, cy, cz = math.floor(x * s), math.floor(y * s), math.floor(z * s)
    p = int(pattern)
    if p == TILES:
        mix = cell_noise(cx, cy, cz)
    else:
        mix = float((PARITY_WEIGHTS[p, 0] * (cx + cy) + PARITY_WEIGHTS[p, 1] * cz) & 1)
    grain = 0.85 + 0.15 * cell_noise(math.floor(x * GRAIN_CELLS_PER_M), math.floor(y * GRAIN_CELLS_PER_M),
                                     math.floor(z * GRAIN_CELLS_PER_M))
    return ((a_r + (b_r - a_r) * mix) * grain, (a_g + (b_g - a_g) * mix) * grain,
            (a_b + (b_b - a_b) * mix) * grain)


@njit(cache=True, inline="always")
def _surface(origin: tuple, direction: tuple, t: float, normal: tuple, material: tuple) -> tuple:
    """(albedo (r, g, b), viewer-facing unit normal (x, y, z), |n . d|) of a ray's hit at distance ``t``.

    The normal is turned to face back along the ray; the texture is looked up 1 cm inside the
    surface along it, so a face lying exactly on a cell boundary (the ground at z = 0) does not
    flicker between cells. Arguments are tuples of floats, not arrays: numba passes them into
    this inlined code by value, where arrays would cost reference counting on every ray.
    """
    dx, dy, dz = direction
    nx, ny, nz = normal
    dot = nx * dx + ny * dy + nz * dz
    if dot > 0:
        nx, ny, nz = -nx, -ny, -nz
    albedo = _albedo(origin[0] + dx * t - TEXTURE_INSET_M * nx, origin[1] + dy * t - TEXTURE_INSET_M * ny,
                     origin[2] + dz * t - TEXTURE_INSET_M * nz, material)
    return albedo, (nx, ny, nz), abs(dot)


@njit(cache=True, nogil=True)
def shade_camera(rays: np.ndarray, t_hit: np.ndarray, geometry: np.ndarray, normals: np.ndarray,
                 inv_norm: np.ndarray, materials: np.ndarray, sun: tuple, ambient: float, image: np.ndarray,
                 depth: np.ndarray) -> None:
    """Camera pixels from their rays' hits: lit albedo, or sky where the ray hit nothing.

    rays (N, 6) world [origin, direction] with z = 1 directions in the optical frame, so t_hit (N,)
    is the z-depth; geometry (N,) int32, -1 = miss; normals (N, 3) world; inv_norm (N,) 1 / |direction|;
    materials (G, 8) float64 (Scene.materials: one row per geometry); sun: unit vector (x, y, z) towards
    the light. Writes image (N, 3) uint8 RGB and depth (N,) float32 metres, NaN where the ray hit nothing.
    """
    for i in range(len(t_hit)):
        g = geometry[i]
        if g < 0:
            depth[i] = np.nan
            blend = math.sqrt(min(max(rays[i, 5] * inv_norm[i], 0.0), 1.0))  # sine of the ray's elevation
            light = 1.0
            colour = (SKY_HORIZON[0] + (SKY_ZENITH[0] - SKY_HORIZON[0]) * blend,
                      SKY_HORIZON[1] + (SKY_ZENITH[1] - SKY_HORIZON[1]) * blend,
                      SKY_HORIZON[2] + (SKY_ZENITH[2] - SKY_HORIZON[2]) * blend)
        else:
            depth[i] = t_hit[i]
            colour, (nx, ny, nz), _ = _surface(
                (rays[i, 0], rays[i, 1], rays[i, 2]), (rays[i, 3], rays[i, 4], rays[i, 5]), t_hit[i],
                (normals[i, 0], normals[i, 1], normals[i, 2]), _material(materials, g))
            light = ambient + (1.0 - ambient) * max(nx * sun[0] + ny * sun[1] + nz * sun[2], 0.0)
        image[i, 0] = _to_uint8(colour[0] * light)
        image[i, 1] = _to_uint8(colour[1] * light)
        image[i, 2] = _to_uint8(colour[2] * light)


@njit(cache=True, inline="always")
def _to_uint8(value: float) -> np.uint8:
    """A [0, 1] channel value as a rounded 0..255 byte (clamped)."""
    return np.uint8(min(max(value * 255.0 + 0.5, 0.0), 255.0))


@njit(cache=True, inline="always")
def _material(materials: np.ndarray, g: int) -> tuple:
    """Row ``g`` of the (G, 8) material table as a tuple."""
    return (materials[g, 0], materials[g, 1], materials[g, 2], materials[g, 3], materials[g, 4], materials[g, 5],
            materials[g, 6], materials[g, 7])


@njit(cache=True, nogil=True)
def lidar_intensity(rays: np.ndarray, t_hit: np.ndarray, geometry: np.ndarray, normals: np.ndarray,
                    materials: np.ndarray, intensity: np.ndarray) -> None:
    """Return intensity 0..255 of each LiDAR ray (unit directions): albedo luminance times |cos incidence|.

    Arguments as for ``shade_camera``; writes intensity (N,) float32, 0 where the ray hit nothing.
    """
    for i in range(len(t_hit)):
        g = geometry[i]
        if g < 0:
            intensity[i] = 0.0
        else:
            (r, gr, b), _, cos_incidence = _surface(
                (rays[i, 0], rays[i, 1], rays[i, 2]), (rays[i, 3], rays[i, 4], rays[i, 5]), t_hit[i],
                (normals[i, 0], normals[i, 1], normals[i, 2]), _material(materials, g))
            intensity[i] = 255.0 * (LUMA[0] * r + LUMA[1] * gr + LUMA[2] * b) * cos_incidence
