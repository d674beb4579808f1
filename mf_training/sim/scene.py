"""A ray-castable world: Open3D RaycastingScene plus a material per geometry."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import open3d as o3d
from numba import njit

from mf_training.sim.shapes import Mesh
from mf_training.sim.trajectory import GroundPath


class Pattern(IntEnum):
    """Procedural texture of a material, evaluated at the 3D hit point (see shading.py)."""

    CHECKER = 0  # 3D checkerboard of cells ``scale`` metres wide
    STRIPES = 1  # parity of the x and y cells: stripes on upright faces, checker on level ones
    TILES = 2  # each cell of ``scale`` metres gets its own random blend of the two colours
    BANDS = 3  # horizontal bands ``scale`` metres high (storeys, shelves, siding)


@dataclass(frozen=True)
class Material:
    """Surface look: a pattern blending two RGB colours (components in [0, 1])."""

    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]
    pattern: Pattern
    scale: float  # metres per pattern cell


# Columns of Scene.materials: cells per metre, Pattern value, color_a (r, g, b), color_b (r, g, b).
MATERIAL_COLUMNS = ("inv_scale", "pattern", "a_r", "a_g", "a_b", "b_r", "b_g", "b_b")


@dataclass(frozen=True)
class Hits:
    """First hits of a batch of rays; arrays share the ray order."""

    t: np.ndarray  # (N,) float32 distance in units of each ray's direction length; inf = miss
    geometry: np.ndarray  # (N,) int32 geometry id; -1 = miss
    normals: np.ndarray  # (N, 3) float32 outward triangle normals, world frame (zero on a miss)


class Scene:
    """Static triangle meshes with materials; build with SceneBuilder, then cast rays many times."""

    def __init__(self, raycaster: o3d.t.geometry.RaycastingScene, materials: list[Material], triangles: int):
        self._raycaster = raycaster
        self.triangles = triangles
        # (G, 8) float64 material table, one MATERIAL_COLUMNS row per geometry id, for the shading kernels.
        self.materials = np.array([(1.0 / m.scale, m.pattern, *m.color_a, *m.color_b) for m in materials],
                                  dtype=np.float64).reshape(-1, len(MATERIAL_COLUMNS))

    def cast(self, rays: np.ndarray) -> Hits:
        """Cast (N, 6) float32 rays [origin xyz, direction xyz] (world frame) against the scene."""
        result = self._raycaster.cast_rays(o3d.core.Tensor.from_numpy(rays))
        ids = result["geometry_ids"].numpy()  # (N,) uint32; a miss is INVALID_ID = 2**32 - 1, -1 as int32
        return Hits(result["t_hit"].numpy(), ids.view(np.int32), result["primitive_normals"].numpy())


class SceneBuilder:
    """Collects meshes with their materials; ``build()`` makes the Scene."""

    def __init__(self) -> None:
        self._raycaster = o3d.t.geometry.RaycastingScene()
        self._materials: list[Material] = []
        self._triangles = 0

    def add(self, mesh: Mesh, material: Material) -> None:
        """Add one mesh (world coordinates) drawn with ``material``."""
        geometry_id = self._raycaster.add_triangles(mesh)
        if geometry_id != len(self._materials):
            raise RuntimeError(f"Open3D gave geometry id {geometry_id}, expected {len(self._materials)}")
        self._materials.append(material)
        self._triangles += len(mesh.triangle.indices)

    def build(self) -> Scene:
        """The finished scene; the builder must not be used afterwards."""
        return Scene(self._raycaster, self._materials, self._triangles)


def random_material(rng: np.random.Generator, base: tuple[float, float, float],
                    patterns: tuple[Pattern, ...], scale: tuple[float, float]) -> Material:
    """A material near colour ``base``: jittered hue, a second colour for the pattern, random cell size."""
    color_a = np.clip(np.asarray(base) * rng.uniform(0.75, 1.25, 3), 0.02, 1.0)
    color_b = np.clip(color_a * rng.uniform(0.35, 0.8) + rng.uniform(0.0, 0.15, 3), 0.02, 1.0)
    return Material(tuple(color_a.tolist()), tuple(color_b.tolist()),
                    patterns[rng.integers(len(patterns))], float(rng.uniform(*scale)))


@dataclass(frozen=True)
class Layout:
    """A generated world: what to ray cast, where the carrier goes, and how it is lit."""

    scene: Scene
    path: GroundPath
    sun: tuple[float, float, float]  # unit vector towards the directional light, world frame
    ambient: float  # share of light that reaches every surface regardless of orientation



@njit(cache=True, nogil=True)
def place_rays(directions: np.ndarray, world_from_sensor: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` (N, 6) float32 with rays [origin, direction] from a sensor at pose ``world_from_sensor`` (4x4).

    ``directions`` (3, N) float32 are in the sensor frame; their lengths are kept, so hit distances
    come back in the same units (z-depth for z = 1 camera rays, metres for unit LiDAR rays).
    A numba loop: numpy needs a matmul plus strided column writes, several passes over 9 MB.
    """
    rotation, origin = world_from_sensor[:3, :3], world_from_sensor[:3, 3]
    for i in range(directions.shape[1]):
        x, y, z = directions[0, i], directions[1, i], directions[2, i]
        for k in range(3):
            out[i, k] = origin[k]
            out[i, 3 + k] = rotation[k, 0] * x + rotation[k, 1] * y + rotation[k, 2] * z
