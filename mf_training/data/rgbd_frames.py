"""Readers for single RGB + dense-depth frames: ``shared/data/indoor_rgbd`` and ``shared/data/middlebury``.

Both store depth as 16-bit PNG millimetres, 0 = invalid (see their SOURCE.md). Neither has a
LiDAR: ``sparse_depth`` is simulated from the ground truth along scan lines
(:mod:`mf_training.data.simulated_lidar`), seeded by (seed, frame name).

- indoor_rgbd: one folder per frame with ``rgb.{png,jpg}`` and ``depth_mm.png``
  (``promptda_example`` has no ground truth and is skipped). Only ``unidepth_nyu_demo`` ships
  intrinsics (``intrinsics.txt``); the others get a nominal NYU-like camera,
  ``fx = fy = NOMINAL_FOCAL_FRACTION * width`` at the image centre: good enough to trace scan
  lines, not for metric back-projection.
- middlebury: ``<scene>_left.png`` with ``<scene>_depth_mm.png`` and ``calib.txt`` (fx, fy, cx, cy).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_training.data.sample import Sample
from mf_training.data.sevenscenes import read_depth_mm
from mf_training.data.simulated_lidar import SPARSE_PATTERNS, simulate_sparse_depth

# NYUv2's colour camera: fx 518.9 px at 640 px width (a 63-degree horizontal field).
NOMINAL_FOCAL_FRACTION = 518.86 / 640


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a PNG/JPEG file."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"cannot read {path} as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def nominal_camera(width: int, height: int) -> PinholeCamera:
    """A camera for frames that ship no intrinsics (see the module docstring)."""
    focal = NOMINAL_FOCAL_FRACTION * width
    return PinholeCamera(width, height, focal, focal, (width - 1) / 2, (height - 1) / 2)


def _dense_sample(name: str, image: np.ndarray, gt: np.ndarray, camera: PinholeCamera, seed: int,
                  sparse_pattern: str) -> Sample:
    if gt.shape != image.shape[:2]:
        raise InputError(f"{name}: depth is {gt.shape[::-1]} but the image is {image.shape[1::-1]} (W x H)")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    sparse = simulate_sparse_depth(gt, camera, rng, sparse_pattern)
    return Sample(name, image, sparse, camera, 0, gt)


def _check_pattern(sparse_pattern: str) -> None:
    if sparse_pattern not in SPARSE_PATTERNS:
        raise InputError(f"unknown sparse_pattern {sparse_pattern!r}; use one of {SPARSE_PATTERNS}")


class IndoorRgbd:
    """indoor_rgbd frames with ground truth as Samples (``len``, ``[i]``, ``iter``); names ``indoor_<folder>``."""

    def __init__(self, root: str | Path, seed: int = 0, sparse_pattern: str = "scanlines") -> None:
        self.root = Path(root)
        self.seed = int(seed)
        _check_pattern(sparse_pattern)
        self.sparse_pattern = sparse_pattern
        self.folders = sorted(d for d in self.root.iterdir() if (d / "depth_mm.png").is_file()) \
            if self.root.is_dir() else []
        if not self.folders:
            raise InputError(f"no */depth_mm.png under {self.root}; point at the indoor_rgbd folder")

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, index: int) -> Sample:
        folder = self.folders[index]
        images = [p for p in (folder / "rgb.png", folder / "rgb.jpg") if p.is_file()]
        if not images:
            raise InputError(f"{folder} has depth_mm.png but no rgb.png / rgb.jpg")
        image = read_rgb(images[0])
        gt = read_depth_mm(folder / "depth_mm.png")
        h, w = gt.shape
        if (folder / "intrinsics.txt").is_file():
            K = np.loadtxt(folder / "intrinsics.txt").reshape(3, 3)
            camera = PinholeCamera(w, h, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
        else:
            camera = nominal_camera(w, h)
        return _dense_sample(f"indoor_{folder.name}", image, gt, camera, self.seed, self.sparse_pattern)

    def __iter__(self) -> Iterator[Sample]:
        for index in range(len(self)):
            yield self[index]


def read_middlebury_calib(path: Path) -> dict[str, float]:
    """``key: value`` lines of the curated Middlebury calib.txt (``#`` starts a comment)."""
    values: dict[str, float] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    for line in lines:
        line = line.split("#", 1)[0]
        if ":" in line:
            key, value = line.split(":", 1)
            try:
                values[key.strip()] = float(value)
            except ValueError as exc:
                raise InputError(f"{path}: {key.strip()} is not a number ({value.strip()!r})") from exc
    return values


class Middlebury:
    """Middlebury stereo scenes with depth as Samples; names ``middlebury_<scene>``."""

    def __init__(self, root: str | Path, seed: int = 0, sparse_pattern: str = "scanlines") -> None:
        self.root = Path(root)
        self.seed = int(seed)
        _check_pattern(sparse_pattern)
        self.sparse_pattern = sparse_pattern
        self.scenes = sorted(p.name[: -len("_depth_mm.png")] for p in self.root.glob("*_depth_mm.png"))
        if not self.scenes or not (self.root / "calib.txt").is_file():
            raise InputError(f"no <scene>_depth_mm.png with calib.txt under {self.root}; "
                             "point at the middlebury folder")
        self.calib = read_middlebury_calib(self.root / "calib.txt")
        missing = [k for k in ("fx", "fy", "cx", "cy") if k not in self.calib]
        if missing:
            raise InputError(f"{self.root / 'calib.txt'} lacks {missing}")

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> Sample:
        scene = self.scenes[index]
        image = read_rgb(self.root / f"{scene}_left.png")
        gt = read_depth_mm(self.root / f"{scene}_depth_mm.png")
        camera = PinholeCamera.from_dict(self.calib, width=gt.shape[1], height=gt.shape[0])
        return _dense_sample(f"middlebury_{scene}", image, gt, camera, self.seed, self.sparse_pattern)

    def __iter__(self) -> Iterator[Sample]:
        for index in range(len(self)):
            yield self[index]
