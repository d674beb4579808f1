"""Simulator: per frame, one Open3D cast gives the camera image, its dense depth and a LiDAR sweep."""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np

from mf_core.errors import InputError
from mf_ros.heap import keep_heap_memory
from mf_training.sim.camera_render import camera_directions
from mf_training.sim.config import SimConfig
from mf_training.sim.indoor import room_layout
from mf_training.sim.lidar import column_offsets_ns, lidar_directions, sweep_points
from mf_training.sim.rig import CAMERA_HEIGHT_M, Rig
from mf_training.sim.scene import Layout, place_rays
from mf_training.sim.shading import lidar_intensity, shade_camera
from mf_training.sim.street import street_layout

T = TypeVar("T")
TF_PERIOD_NS = 10_000_000  # /tf samples every 10 ms over a rolling sweep (a pose a deskewing reader can interpolate)


@dataclass(frozen=True)
class SimFrame:
    """One generated camera frame and the LiDAR sweep paired with it."""

    index: int
    camera_stamp_ns: int
    lidar_stamp_ns: int
    image: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32 metres along the optical axis, NaN = no surface (sky)
    points: np.ndarray  # (M, 4) float32 x, y, z, intensity in the LiDAR frame at each return's time
    # (stamp ns, 4x4 float64 base_link pose) for /tf: at the camera and LiDAR stamps and, over a rolling sweep,
    # every TF_PERIOD_NS to its last return
    base_poses: tuple[tuple[int, np.ndarray], ...]
    point_offsets_ns: np.ndarray | None = None  # (M,) int64 each return's time after the LiDAR stamp (rolling)


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
        self._camera_inv_norm = (1.0 / np.linalg.norm(self._camera_dirs, axis=0)).astype(np.float32)  # (Nc,)
        self._lidar_dirs = lidar_directions(config.beams, config.vfov, config.horizontal_resolution)  # (3, Nl)
        # (Nc + Nl, 6) rays of every frame, reused: one frame() call at a time.
        self._rays = np.empty((self._camera_dirs.shape[1] + self._lidar_dirs.shape[1], 6), np.float32)

    def frame(self, index: int) -> SimFrame:
        """Render frame ``index``: camera at its stamp, LiDAR from its own pose at its own stamp."""
        cfg, camera, scene = self.config, self.camera, self.layout.scene
        camera_ns, lidar_ns = cfg.camera_stamp_ns(index), cfg.lidar_stamp_ns(index)
        start_ns = cfg.camera_stamp_ns(0)
        def base(stamp_ns: int) -> np.ndarray:  # T_world_from_base at a stamp
            return self.layout.path.pose((stamp_ns - start_ns) / 1e9)

        sweep_ns = cfg.sweep_ns()
        tf_stamps = sorted({camera_ns, lidar_ns, *range(lidar_ns, lidar_ns + sweep_ns, TF_PERIOD_NS),
                            *([lidar_ns + sweep_ns] if sweep_ns else [])})
        cam, lidar = slice(0, self._camera_dirs.shape[1]), slice(self._camera_dirs.shape[1], None)
        place_rays(self._camera_dirs, base(camera_ns) @ self.rig.base_from_camera, self._rays[cam])
        ray_offsets = None
        if sweep_ns:  # each azimuth column from the pose at its own time
            beams, lidar_rays = cfg.beams, self._rays[lidar]
            columns = column_offsets_ns(cfg.horizontal_resolution, sweep_ns)  # (R,)
            for c, offset in enumerate(columns):
                rays = slice(c * beams, (c + 1) * beams)
                place_rays(self._lidar_dirs[:, rays], base(lidar_ns + int(offset)) @ self.rig.base_from_lidar,
                           lidar_rays[rays])
            ray_offsets = np.repeat(columns, beams)  # (R*B,) in lidar_directions' order
        else:
            place_rays(self._lidar_dirs, base(lidar_ns) @ self.rig.base_from_lidar, self._rays[lidar])
        hits = scene.cast(self._rays)  # camera and LiDAR rays in one call

        image = np.empty((camera.height, camera.width, 3), np.uint8)
        depth = np.empty((camera.height, camera.width), np.float32)
        shade_camera(self._rays[cam], hits.t[cam], hits.geometry[cam], hits.normals[cam], self._camera_inv_norm,
                     scene.materials, self.layout.sun, self.layout.ambient, image.reshape(-1, 3), depth.reshape(-1))
        intensity = np.empty(self._lidar_dirs.shape[1], np.float32)  # (Nl,)
        lidar_intensity(self._rays[lidar], hits.t[lidar], hits.geometry[lidar], hits.normals[lidar],
                        scene.materials, intensity)
        rng = np.random.default_rng([cfg.seed, 1, index])  # per-frame noise: frames are independent
        sweep, returned = sweep_points(self._lidar_dirs, hits.t[lidar], intensity, cfg.max_range, cfg.range_noise, rng)
        return SimFrame(index, camera_ns, lidar_ns, image, depth, sweep, tuple((s, base(s)) for s in tf_stamps),
                        None if ray_offsets is None else ray_offsets[returned])


def _as_is(frame: SimFrame, config: SimConfig) -> SimFrame:
    return frame


_worker: tuple[Simulator, Callable] | None = None  # per render process: simulator and finishing step


def _start_worker(config: SimConfig, finish: Callable) -> None:
    global _worker
    keep_heap_memory()  # a frame allocates ~30 MB of temporaries: reuse them, do not page-fault them in
    _worker = (Simulator(config), finish)


def _render(simulator: Simulator, finish: Callable, index: int):
    return finish(simulator.frame(index), simulator.config)


def _render_in_worker(index: int):
    assert _worker is not None, "_start_worker runs first in every worker process"
    return _render(*_worker, index)


def generate_frames(config: SimConfig, workers: int = 1,
                    finish: Callable[[SimFrame, SimConfig], T] = _as_is) -> Iterator[T]:
    """``finish(frame, config)`` of every frame of ``config`` in order (default: the SimFrames).

    With one worker, frames render in a thread of this process, one frame ahead of the caller:
    while the caller handles frame i (writes it to a bag), frame i + 1 renders. The overlap is
    partial, because Open3D's cast_rays holds the GIL, but shading (numba) and file writes do not.
    With more workers, frames render in that many processes, which overlap fully. ``finish`` runs
    where the frame was rendered (a module-level function, so it can be sent to a worker), e.g.
    serialising messages so that only bytes travel back. Frames are a pure function of (config,
    index), so the output is the same for any ``workers``. At most two frames per worker are in
    flight, so memory stays bounded for long sequences.
    """
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if workers == 1:
        simulator = Simulator(config)
        pool: Executor = ThreadPoolExecutor(1)
        render = partial(_render, simulator, finish)
    else:
        # spawn, not fork: a forked child would inherit Open3D's (TBB) thread pool in an unknown state.
        # A worker that dies raises BrokenProcessPool here instead of hanging (multiprocessing.Pool would).
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(config, finish))
        render = _render_in_worker
    with pool:
        pending: deque[Future[T]] = deque()
        for index in range(config.frames):
            pending.append(pool.submit(render, index))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
