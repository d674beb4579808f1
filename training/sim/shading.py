"""Surface colour at ray hits: procedural textures in world coordinates, Lambert shading, sky gradient.

Hand-written because it is a few dozen vectorised numpy lines over the hits of one Open3D cast;
a rendering library would need meshes with UV textures and its own pass over the scene. Arrays
are kept as contiguous (N,) rows per axis / channel ("structure of arrays"), which is several
times faster in numpy than (N, 3) rows.
"""

from __future__ import annotations

import numpy as np

from training.sim.scene import Pattern, Scene

SKY_HORIZON = np.array([0.80, 0.87, 0.95], np.float32)
SKY_ZENITH = np.array([0.25, 0.45, 0.85], np.float32)
GRAIN_CELLS_PER_M = np.float32(1 / 0.07)  # fine brightness noise every surface gets
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
# Parity patterns: mix = (weight_xy * (cx + cy) + weight_z * cz) & 1 over integer cells (cx, cy, cz).
PARITY_WEIGHTS = {Pattern.CHECKER: (1, 1), Pattern.STRIPES: (1, 0), Pattern.BANDS: (0, 1), Pattern.TILES: (0, 0)}


def cell_noise(cx: np.ndarray, cy: np.ndarray, cz: np.ndarray) -> np.ndarray:
    """(N,) float32 in [0, 1): a fixed pseudo-random value per integer cell, from int32 (N,) rows."""
    ux, uy, uz = (c.view(np.uint32) for c in (cx, cy, cz))  # same bits; uint32 arithmetic wraps
    h = ux * np.uint32(73856093)
    h ^= uy * np.uint32(19349663)
    h ^= uz * np.uint32(83492791)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    return (h & np.uint32(0xFFFF)).astype(np.float32) * np.float32(1 / 65536)


def _cells(points: np.ndarray, cells_per_m: np.ndarray | np.float32) -> tuple[np.ndarray, ...]:
    """Integer cell (int32 rows) of each point (3, N) for a grid of ``cells_per_m`` (scalar or (N,))."""
    return tuple(np.floor(axis * cells_per_m).astype(np.int32) for axis in points)


def facing(normals: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normals (N, 3) turned to face back along the rays (3, N): returns them as (3, N) and |n . d| (N,)."""
    n = normals.T  # (3, N) strided view
    dot = n[0] * directions[0] + n[1] * directions[1] + n[2] * directions[2]  # (N,)
    sign = np.where(dot > 0, np.float32(-1.0), np.float32(1.0))  # (N,)
    return n * sign, np.abs(dot)


def albedo(scene: Scene, geometry: np.ndarray, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(3, N) float32 surface colour in [0, 1] of hits on ``geometry`` (N,) at world ``points`` (3, N).

    ``normals`` (3, N) must face the viewer: the texture is looked up 1 cm inside the surface so a
    face lying exactly on a cell boundary (the ground at z = 0) does not flicker between cells.
    """
    inside = points - np.float32(0.01) * normals  # (3, N)
    cx, cy, cz = _cells(inside, scene.inv_scale.take(geometry))
    weights = np.array([PARITY_WEIGHTS[Pattern(p)] for p in scene.pattern], np.int32).reshape(-1, 2)  # (G, 2)
    parity = (weights[:, 0].take(geometry) * (cx + cy) + weights[:, 1].take(geometry) * cz) & 1  # (N,)
    tiled = (scene.pattern == Pattern.TILES).take(geometry)  # (N,)
    mix = np.where(tiled, cell_noise(cx, cy, cz), parity.astype(np.float32))  # (N,)
    grain = np.float32(0.85) + np.float32(0.15) * cell_noise(*_cells(inside, GRAIN_CELLS_PER_M))  # (N,)
    out = np.empty_like(points)
    for c in range(3):
        a, b = scene.color_a[c].take(geometry), scene.color_b[c].take(geometry)  # (N,) each
        out[c] = (a + (b - a) * mix) * grain
    return out


def lambert(normals: np.ndarray, sun: np.ndarray, ambient: float) -> np.ndarray:
    """(N,) float32 light factor in [ambient, 1] for viewer-facing ``normals`` (3, N) and unit ``sun`` (3,)."""
    diffuse = normals[0] * sun[0] + normals[1] * sun[1] + normals[2] * sun[2]
    return np.float32(ambient) + np.float32(1.0 - ambient) * np.maximum(diffuse, np.float32(0.0))


def sky(elevation_sine: np.ndarray) -> np.ndarray:
    """(3, N) float32 sky colour from the sine of each ray's elevation (N,): horizon haze to blue zenith."""
    blend = np.sqrt(np.clip(elevation_sine, 0.0, 1.0))  # (N,)
    return SKY_HORIZON[:, None] + (SKY_ZENITH - SKY_HORIZON)[:, None] * blend


def luminance(colours: np.ndarray) -> np.ndarray:
    """(N,) float32 luma of RGB ``colours`` (3, N)."""
    return LUMA[0] * colours[0] + LUMA[1] * colours[1] + LUMA[2] * colours[2]
