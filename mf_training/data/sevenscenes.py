"""Reader for the Microsoft 7-Scenes RGB-D frames in ``shared/data/sevenscenes``.

Layout: ``frames/frame-NNNNNN.{color.jpg,depth.png,pose.txt}`` and ``camera-intrinsics.txt``
(3x3 K). Depth is a 16-bit PNG in millimetres with 0 and 65535 invalid; the pose is
camera->world (``T_world_from_camera``) from KinectFusion tracking.

Caveat: 7-Scenes RGB and depth are NOT registered. The Kinect colour and depth cameras
were never calibrated against each other, so the depth map is several pixels off the
image at object edges, and the one nominal K (fx = fy = 585) serves both. The depth is
good for training with a tolerant loss, not as pixel-exact evaluation ground truth.

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
from mf_core.transforms import validate
from mf_training.data.sample import Sample
from mf_training.data.simulated_lidar import SPARSE_PATTERNS, simulate_sparse_depth

INVALID_DEPTH_MM = 65535
# No stamps are stored; frames are numbered at the Kinect's nominal 30 Hz.
FRAME_PERIOD_NS = 1_000_000_000 // 30


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


class SevenScenes:
    """Random-access 7-Scenes frames as Samples: ``len(ds)``, ``ds[i]``, ``iter(ds)``.

    ``gt_depth`` is the raw Kinect depth in metres (0 = invalid); ``sparse_depth`` samples it
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
        self._intrinsics = {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]}

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
        gt = read_depth_mm(self._path(index, "depth.png"))  # (H, W) metres
        if gt.shape != image.shape[:2]:
            raise InputError(f"{self.frame_stems[index]}: depth is {gt.shape}, colour is {image.shape[:2]}")
        h, w = gt.shape
        camera = PinholeCamera.from_dict(self._intrinsics, width=w, height=h)
        number = self.frame_number(index)
        rng = np.random.default_rng([self.seed, number])
        sparse = simulate_sparse_depth(gt, camera, rng, self.sparse_pattern, self.sparse_points)
        return Sample(self.frame_stems[index], image, sparse, camera, number * FRAME_PERIOD_NS, gt)

    def __iter__(self) -> Iterator[Sample]:
        for index in range(len(self)):
            yield self[index]
