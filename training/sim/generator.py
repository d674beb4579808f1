"""Simulator: per frame, one Open3D cast gives the camera image, its dense depth and a LiDAR sweep."""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from mf_core.errors import InputError
from mf_ros.heap import keep_heap_memory
from training.sim import shading
from training.sim.camera_render import camera_directions, to_depth, to_image
from training.sim.config import SimConfig
from training.sim.indoor import room_layout
from training.sim.lidar import intensity, lidar_directions, sweep_points
from training.sim.rig import CAMERA_HEIGHT_M, Rig
from training.sim.scene import Layout, place_rays
from training.sim.street import street_layout

T = TypeVar("T")


@dataclass(frozen=True)
class SimFrame:
    """One generated camera frame and the LiDAR sweep paired with it."""

    index: int
    camera_stamp_ns: int
    lidar_stamp_ns: int
    image: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32 metres along the optical axis, NaN = no surface (sky)
    points: np.ndarray  # (M, 4) float32 x, y, z, intensity in the LiDAR frame
    world_from_base_camera: np.ndarray  # 4x4 float64 base_link pose at the camera stamp
    world_from_base_lidar: np.ndarray  # 4x4 float64 base_link pose at the LiDAR stamp


def build_layout(config: SimConfig) -> Layout:
    """The world of ``config.scene`` for ``config.seed``; a street is made long enough for every frame."""
    rng = np.random.default_rng([config.seed, 0])
    if config.scene == "indoor":
        return room_layout(rng)
    seconds = config.frames / config.rate + abs(config.lidar_delay_ms) / 1e3
    return street_layout(rng, distance=10.0 * seconds)  # street speeds stay below 10 m/s


def sim_rig(config: SimConfig) -> Rig:
    """Sensor mounting for ``config.scene`` (needs no scene, so a bag writer can ask for it cheaply)."""
    return Rig.mounted(CAMERA_HEIGHT_M[config.scene])


class Simulator:
    """Generates the frames of one sequence; deterministic for a given SimConfig."""

    def __init__(self, config: SimConfig):
        self.config = config
        self.camera = config.camera
        self.layout = build_layout(config)
        self.rig = sim_rig(config)
        self._camera_dirs = camera_directions(self.camera)  # (3, Nc)
        # Rotations keep lengths, so a world ray's elevation sine is its z over this precomputed length.
        self._camera_inv_norm = 1.0 / np.linalg.norm(self._camera_dirs, axis=0)  # (Nc,)
        self._lidar_dirs = lidar_directions(config.beams, config.vfov, config.horizontal_resolution)  # (3, Nl)
        self._rays = np.empty((self._camera_dirs.shape[1] + self._lidar_dirs.shape[1], 6), np.float32)  # reused
        self._sun = np.asarray(self.layout.sun, np.float32)

    def frame(self, index: int) -> SimFrame:
        """Render frame ``index``: camera at its stamp, LiDAR from its own pose at its own stamp."""
        cfg = self.config
        camera_ns, lidar_ns = cfg.camera_stamp_ns(index), cfg.lidar_stamp_ns(index)
        start_ns = cfg.camera_stamp_ns(0)
        base_cam = self.layout.path.pose((camera_ns - start_ns) / 1e9)
        base_lidar = self.layout.path.pose((lidar_ns - start_ns) / 1e9)
        world_from_camera = base_cam @ self.rig.base_from_camera
        world_from_lidar = base_lidar @ self.rig.base_from_lidar
        n_cam = self._camera_dirs.shape[1]
        cam_dirs = place_rays(self._camera_dirs, world_from_camera, self._rays[:n_cam])  # (3, Nc) world
        lidar_dirs = place_rays(self._lidar_dirs, world_from_lidar, self._rays[n_cam:])  # (3, Nl) world
        hits = self.layout.scene.cast(self._rays)  # camera and LiDAR rays in one call
        cam, lidar = slice(0, n_cam), slice(n_cam, None)

        colour = self._surface_colour(hits.geometry[cam], hits.t[cam], hits.normals[cam], cam_dirs,
                                      world_from_camera, shaded=True)  # (3, Nc)
        sky = shading.sky(cam_dirs[2] * self._camera_inv_norm)  # (3, Nc)
        colour = np.where(hits.hit[cam], colour, sky)
        reflectance, cos_incidence = self._surface_colour(hits.geometry[lidar], hits.t[lidar], hits.normals[lidar],
                                                          lidar_dirs, world_from_lidar, shaded=False)
        rng = np.random.default_rng([cfg.seed, 1, index])  # per-frame noise: frames are independent
        sweep = sweep_points(self._lidar_dirs, hits.t[lidar], intensity(reflectance, cos_incidence),
                             cfg.max_range, cfg.range_noise, rng)
        return SimFrame(index, camera_ns, lidar_ns, to_image(colour, self.camera),
                        to_depth(hits.t[cam], self.camera), sweep, base_cam, base_lidar)

    def _surface_colour(self, geometry: np.ndarray, t: np.ndarray, normals: np.ndarray, directions: np.ndarray,
                        world_from_sensor: np.ndarray, shaded: bool):
        """Lit colour (3, N) for the camera (``shaded``), else (luminance (N,), |cos incidence| (N,)).

        Misses are textured as if they hit geometry 0 at the sensor; callers mask them out.
        """
        t = np.where(np.isfinite(t), t, np.float32(0.0))  # (N,)
        points = directions * t + world_from_sensor[:3, 3:4].astype(np.float32)  # (3, N) world hit points
        normals_facing, cos_incidence = shading.facing(normals, directions)
        albedo = shading.albedo(self.layout.scene, np.maximum(geometry, 0), points, normals_facing)  # (3, N)
        if shaded:
            return albedo * shading.lambert(normals_facing, self._sun, self.layout.ambient)
        return shading.luminance(albedo), cos_incidence



def _as_is(frame: SimFrame, config: SimConfig) -> SimFrame:
    return frame


_worker: tuple[Simulator, Callable] | None = None  # per render process: simulator and finishing step


def _start_worker(config: SimConfig, finish: Callable) -> None:
    global _worker
    keep_heap_memory()  # a frame allocates ~30 MB of temporaries: reuse them, do not page-fault them in
    _worker = (Simulator(config), finish)


def _render_in_worker(index: int):
    assert _worker is not None, "_start_worker runs first in every worker process"
    simulator, finish = _worker
    return finish(simulator.frame(index), simulator.config)


def generate_frames(config: SimConfig, workers: int = 1,
                    finish: Callable[[SimFrame, SimConfig], T] = _as_is) -> Iterator[T]:
    """``finish(frame, config)`` of every frame of ``config`` in order (default: the SimFrames).

    Frames render in this process or in ``workers`` processes; ``finish`` runs where the frame
    was rendered (a module-level function, so it can be sent to a worker), e.g. serialising
    messages so that only bytes travel back. Open3D's cast_rays holds the GIL, so threads could
    not overlap casting with shading; processes can. Frames are a pure function of (config,
    index), so the output is the same for any ``workers``. At most two frames per worker are in
    flight, so memory stays bounded for long sequences.
    """
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if workers == 1:
        simulator = Simulator(config)
        for index in range(config.frames):
            yield finish(simulator.frame(index), config)
        return
    # spawn, not fork: a forked child would inherit Open3D's (TBB) thread pool in an unknown state.
    # A worker that dies raises BrokenProcessPool here instead of hanging (multiprocessing.Pool would).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(config, finish)) as pool:
        pending: deque[Future[T]] = deque()
        for index in range(config.frames):
            pending.append(pool.submit(_render_in_worker, index))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
