"""A ray-castable world: Open3D RaycastingScene plus a material per geometry."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import open3d as o3d

from training.sim.shapes import Mesh


class Pattern(IntEnum):
    """Procedural texture of a material, evaluated at the 3D hit point (see shading.py)."""

    CHECKER = 0  # 3D checkerboard of cells ``scale`` metres wide
    STRIPES = 1  # stripes ``scale`` metres wide across the horizontal axes
    TILES = 2  # each cell of ``scale`` metres gets its own random blend of the two colours
    BANDS = 3  # horizontal bands ``scale`` metres high (storeys, shelves, siding)


@dataclass(frozen=True)
class Material:
    """Surface look: a pattern blending two RGB colours (components in [0, 1])."""

    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]
    pattern: Pattern
    scale: float  # metres per pattern cell


@dataclass(frozen=True)
class Hits:
    """First hits of a batch of rays; arrays share the ray order."""

    t: np.ndarray  # (N,) float32 distance in units of each ray's direction length; inf = miss
    geometry: np.ndarray  # (N,) int64 geometry id; -1 = miss
    normals: np.ndarray  # (N, 3) float32 outward triangle normals, world frame (zero on a miss)

    @property
    def hit(self) -> np.ndarray:
        """(N,) bool: the ray hit something."""
        return self.geometry >= 0


class Scene:
    """Static triangle meshes with materials; build with SceneBuilder, then cast rays many times."""

    def __init__(self, raycaster: o3d.t.geometry.RaycastingScene, materials: list[Material], triangles: int):
        self._raycaster = raycaster
        self.triangles = triangles
        self.color_a = np.array([m.color_a for m in materials], np.float32)  # (G, 3)
        self.color_b = np.array([m.color_b for m in materials], np.float32)  # (G, 3)
        self.pattern = np.array([m.pattern for m in materials], np.int64)  # (G,)
        self.scale = np.array([m.scale for m in materials], np.float32)  # (G,)

    @property
    def geometries(self) -> int:
        """Number of meshes in the scene."""
        return len(self.pattern)

    def cast(self, rays: np.ndarray) -> Hits:
        """Cast (N, 6) float32 rays [origin xyz, direction xyz] (world frame) against the scene."""
        result = self._raycaster.cast_rays(o3d.core.Tensor.from_numpy(rays))
        ids = result["geometry_ids"].numpy()  # (N,) uint32, INVALID_ID on a miss
        geometry = np.where(ids == o3d.t.geometry.RaycastingScene.INVALID_ID, -1, ids.astype(np.int64))
        return Hits(result["t_hit"].numpy(), geometry, result["primitive_normals"].numpy())


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
