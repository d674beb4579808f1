"""Reader for the Microsoft 7-Scenes RGB-D frames in ``shared/data/sevenscenes``.

Layout: ``frames/frame-NNNNNN.{color.jpg,depth.png,pose.txt}`` and ``camera-intrinsics.txt``
(3x3 K). Depth is a 16-bit PNG in millimetres with 0 and 65535 invalid; the pose is
camera->world (``T_world_from_camera``) from KinectFusion tracking.

7-Scenes RGB and depth are not registered: the Kinect's colour and depth (IR) cameras were never
calibrated against each other, and the dataset gives one nominal K (fx = fy = 585) for both. Read
raw, the depth's object edges lie up to 25 px off the image's (10-30 px at a chair 1 m away). This
reader registers the depth to the colour camera (:func:`register_depth`): each depth pixel is
back-projected with the depth camera's K, moved by the IR-to-colour baseline and projected with the
colour camera's K, nearest surface first. The colour camera and the baseline are estimated here
(the dataset has none) by aligning the depth's occluding edges with the image's edges
(:func:`mf_training.eval.edge_alignment.edge_distance`) on the train frames (every 10th of 0-640),
fx = fy, principal point and a horizontal baseline fitted by Nelder-Mead: f = 527.0 px (Kinect v1
colour cameras are about 525), principal point (321.7, 238.4) and the colour camera 2.85 cm to the
right of the depth one (the Kinect v1's is about 2.5 cm). On the val frames (675-720), the mean distance
from a depth edge to the nearest image edge (capped at 4 px) drops from 2.57 px raw to 1.79 px; every
parameter moved off its value on its own makes the train-frame alignment worse (tests). The colour
camera sees about 30 px further to each side than the depth camera: those columns have no depth (0).

There is no LiDAR: ``sparse_depth`` is simulated from the ground truth
(:mod:`mf_training.data.simulated_lidar`: scan lines by default, or uniformly random pixels),
drawn per frame from ``(seed, frame number)`` so a frame always gets the same points
whatever the iteration order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_core.geometry import backproject_depth, points_to_depth_map
from mf_core.transforms import validate
from mf_training.data.sample import Sample
from mf_training.data.simulated_lidar import SPARSE_PATTERNS, simulate_sparse_depth

INVALID_DEPTH_MM = 65535
# No stamps are stored; frames are numbered at the Kinect's nominal 30 Hz.
FRAME_PERIOD_NS = 1_000_000_000 // 30
# The colour camera and the depth -> colour transform (estimated: see the module docstring).
COLOUR_INTRINSICS = {"fx": 527.0, "fy": 527.0, "cx": 321.7, "cy": 238.4}
COLOUR_FROM_DEPTH_M = (-0.0285, 0.0, 0.0)  # translation, metres (the depth camera's optical frame)


def _read_matrix(path: Path, shape: tuple[int, int]) -> np.ndarray:
    try:
        matrix = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path} as a {shape[0]}x{shape[1]} text matrix: {exc}") from exc
    if matrix.shape != shape or not np.all(np.isfinite(matrix)):
        raise InputError(f"{path} must hold a finite {shape[0]}x{shape[1]} matrix, got shape {matrix.shape}")
    return matrix


def read_depth_mm(path: Path) -> np.ndarray:
    """(H, W) float32 metres from a 7-Scenes 16-bit millimetre PNG; 0 = invalid (0 or 65535 in the file)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        raise InputError(f"{path} must be a single-channel 16-bit PNG of depth in millimetres")
    depth = raw.astype(np.float32) / 1000.0  # (H, W) metres
    depth[raw == INVALID_DEPTH_MM] = 0.0
    return depth


def register_depth(depth: np.ndarray, depth_camera: PinholeCamera, colour_camera: PinholeCamera,
                   colour_from_depth_m: tuple[float, float, float] = COLOUR_FROM_DEPTH_M) -> np.ndarray:
    """(H, W) float32 depth (metres, 0 = none) of ``colour_camera`` from the depth camera's map ``depth``:
    every valid pixel back-projected, translated by ``colour_from_depth_m`` and z-buffered (nearest wins)."""
    points = backproject_depth(depth, depth_camera).reshape(-1, 3)  # (H*W, 3), NaN where no depth
    T_colour_from_depth = np.eye(4)
    T_colour_from_depth[:3, 3] = colour_from_depth_m
    return points_to_depth_map(points, T_colour_from_depth, colour_camera)


class SevenScenes:
    """Random-access 7-Scenes frames as Samples: ``len(ds)``, ``ds[i]``, ``iter(ds)``.

    ``gt_depth`` is the Kinect depth in metres registered to the colour image (0 = invalid); ``camera``
    is the colour camera (:data:`COLOUR_INTRINSICS`); ``sparse_depth`` samples ``gt_depth``
    along simulated scan lines (``sparse_pattern="scanlines"``) or at ``sparse_points`` random
    pixels (``"random"``); see the module docstring for both caveats.
    """

    def __init__(self, root: str | Path, sparse_points: int = 500, seed: int = 0,
                 sparse_pattern: str = "scanlines") -> None:
        self.root = Path(root)
        if isinstance(sparse_points, bool) or not isinstance(sparse_points, int) or sparse_points <= 0:
            raise InputError(f"sparse_points must be a positive integer, got {sparse_points!r}")
        if sparse_pattern not in SPARSE_PATTERNS:
            raise InputError(f"unknown sparse_pattern {sparse_pattern!r}; use one of {SPARSE_PATTERNS}")
        self.sparse_points = sparse_points
        self.sparse_pattern = sparse_pattern
        self.seed = int(seed)
        frames = self.root / "frames"
        self.frame_stems = sorted(p.name[: -len(".color.jpg")] for p in frames.glob("frame-*.color.jpg"))
        if not self.frame_stems:
            raise InputError(f"no frames/frame-*.color.jpg under {self.root}; point at the 7-Scenes folder")
        K = _read_matrix(self.root / "camera-intrinsics.txt", (3, 3))
        # The depth camera's K (nominal), which register_depth back-projects the depth files with.
        self.depth_intrinsics = {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]}

    def __len__(self) -> int:
        return len(self.frame_stems)

    def _path(self, index: int, suffix: str) -> Path:
        return self.root / "frames" / f"{self.frame_stems[index]}.{suffix}"

    def frame_number(self, index: int) -> int:
        """The NNNNNN of ``frame-NNNNNN`` for item ``index``."""
        return int(self.frame_stems[index].split("-")[1])

    def pose(self, index: int) -> np.ndarray:
        """(4, 4) ``T_world_from_camera`` of item ``index``."""
        path = self._path(index, "pose.txt")
        return validate(_read_matrix(path, (4, 4)), str(path))

    def __getitem__(self, index: int) -> Sample:
        bgr = cv2.imread(str(self._path(index, "color.jpg")), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"cannot read {self._path(index, 'color.jpg')} as an image")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # (H, W, 3) uint8
        raw = read_depth_mm(self._path(index, "depth.png"))  # (H, W) metres, the depth camera's view
        if raw.shape != image.shape[:2]:
            raise InputError(f"{self.frame_stems[index]}: depth is {raw.shape}, colour is {image.shape[:2]}")
        h, w = raw.shape
        camera = PinholeCamera.from_dict(COLOUR_INTRINSICS, width=w, height=h)
        gt = register_depth(raw, PinholeCamera.from_dict(self.depth_intrinsics, width=w, height=h), camera)
        number = self.frame_number(index)
        rng = np.random.default_rng([self.seed, number])
        sparse = simulate_sparse_depth(gt, camera, rng, self.sparse_pattern, self.sparse_points)
        return Sample(self.frame_stems[index], image, sparse, camera, number * FRAME_PERIOD_NS, gt)

    def __iter__(self) -> Iterator[Sample]:
        for index in range(len(self)):
            yield self[index]
