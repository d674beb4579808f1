"""Reader for KITTI 3D-object frames (``shared/data/kitti_object``): image_2 + Velodyne scan + calib.

Layout (KITTI object convention): ``<split>/image_2/<id>.png``, ``<split>/velodyne/<id>.bin``
(or ``velodyne_reduced/``: scans already cut to the camera frustum), ``<split>/calib/<id>.txt``
with ``P2`` (3x4), ``R0_rect`` (3x3) and ``Tr_velo_to_cam`` (3x4).

The projection is KITTI's ``x = P2 . R0_rect . Tr_velo_to_cam . X``. ``P2 = K [I | t]`` holds the
offset of camera 2 from the rectified reference camera in its last column, so the reader splits
it into intrinsics ``K`` and ``T_cam2_from_velo = [I | t] . R0_rect . Tr_velo_to_cam``; the depth
is then z in camera 2's frame, as in KITTI's depth-completion ground truth. There is no dense
ground truth: the scan is the only depth.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_core.geometry import points_to_depth_map
from mf_training.data.sample import Sample

SPLITS = ("training", "testing")
SCAN_FOLDERS = ("velodyne", "velodyne_reduced")  # full 360-degree scans, camera-frustum scans
# KITTI object frames come from 10 Hz drives; the object benchmark stores no stamps.
FRAME_PERIOD_NS = 100_000_000


def read_calib(path: Path) -> dict[str, np.ndarray]:
    """The ``KEY: v v v ...`` lines of a KITTI calib file as float64 arrays (P* 3x4, R0_rect 3x3, Tr_* 3x4)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read KITTI calib {path}: {exc}") from exc
    shapes = {"R0_rect": (3, 3)}
    out: dict[str, np.ndarray] = {}
    for line in lines:
        if ":" not in line:
            continue
        key, values = line.split(":", 1)
        key = key.strip()
        shape = shapes.get(key, (3, 4))
        try:
            matrix = np.array(values.split(), dtype=np.float64).reshape(shape)
        except ValueError as exc:
            raise InputError(f"{path}: {key} must hold {shape[0] * shape[1]} numbers ({exc})") from exc
        out[key] = matrix
    missing = [k for k in ("P2", "R0_rect", "Tr_velo_to_cam") if k not in out]
    if missing:
        raise InputError(f"{path} lacks {missing}; is it a KITTI object calib file?")
    return out


def camera2_geometry(calib: dict[str, np.ndarray], width: int, height: int) -> tuple[PinholeCamera, np.ndarray]:
    """Camera 2's intrinsics and ``T_cam2_from_velo`` (4x4) from a KITTI calib (see the module docstring)."""
    P2 = calib["P2"]
    fx, fy, cx, cy = P2[0, 0], P2[1, 1], P2[0, 2], P2[1, 2]
    tz = P2[2, 3]
    offset = np.eye(4)
    offset[:3, 3] = [(P2[0, 3] - cx * tz) / fx, (P2[1, 3] - cy * tz) / fy, tz]
    rect = np.eye(4)
    rect[:3, :3] = calib["R0_rect"]
    velo = np.eye(4)
    velo[:3, :] = calib["Tr_velo_to_cam"]
    return PinholeCamera(width, height, fx, fy, cx, cy), offset @ rect @ velo


class KittiObject:
    """KITTI object frames with a scan as Samples (``len``, ``[i]``, ``iter``); names ``kitti_<split>_<id>``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.frames: list[tuple[str, str, Path]] = []  # (split, id, scan path)
        for split in SPLITS:
            for image in sorted((self.root / split / "image_2").glob("*.png")):
                scans = [self.root / split / folder / f"{image.stem}.bin" for folder in SCAN_FOLDERS]
                scan = next((s for s in scans if s.is_file()), None)
                if scan is not None:
                    self.frames.append((split, image.stem, scan))
        if not self.frames:
            raise InputError(f"no <split>/image_2/*.png with a velodyne scan under {self.root}; "
                             "point at the kitti_object folder")

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Sample:
        split, frame_id, scan = self.frames[index]
        image_path = self.root / split / "image_2" / f"{frame_id}.png"
        bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"cannot read {image_path} as an image")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # (H, W, 3) uint8
        raw = np.fromfile(scan, dtype=np.float32)
        if raw.size % 4:
            raise InputError(f"{scan} is {raw.nbytes} bytes, not a whole number of (x, y, z, reflectance) float32s")
        points = raw.reshape(-1, 4)[:, :3].astype(np.float64)  # (N, 3) Velodyne frame
        calib = read_calib(self.root / split / "calib" / f"{frame_id}.txt")
        camera, T_cam_from_velo = camera2_geometry(calib, image.shape[1], image.shape[0])
        sparse = points_to_depth_map(points, T_cam_from_velo, camera)  # (H, W) metres
        return Sample(f"kitti_{split}_{frame_id}", image, sparse, camera, int(frame_id) * FRAME_PERIOD_NS)

    def __iter__(self) -> Iterator[Sample]:
        for index in range(len(self)):
            yield self[index]
