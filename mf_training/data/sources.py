"""One reader API for every place Samples come from: ``open_samples(path, **options)``.

``path`` may be

- a sample folder (``NAME_rgb.png``, ``NAME_sparse.png``, ``NAME_calib.json`` ...),
- a rosbag2 bag: a directory with ``metadata.yaml`` / ``*.mcap`` / ``*.db3``, or one such file,
- a TRI DGP dataset: ``scene_dataset*.json``, a scene json, or a folder holding either,
- the 7-Scenes folder (``camera-intrinsics.txt`` and ``frames/``),
- a KITTI object folder (``training/image_2`` or ``testing/image_2`` with velodyne scans),
- the indoor_rgbd folder (``*/depth_mm.png``) or the Middlebury folder (``*_depth_mm.png`` + ``calib.txt``).

Options go to the reader of that kind (an option it does not take raises InputError):
bags take ``slop_s, extrinsic, image_topic, camera_info_topic, points_topic, gt_topic``;
7-Scenes takes ``sparse_points, seed, sparse_pattern``; indoor_rgbd and Middlebury take
``seed, sparse_pattern``. Every kind takes ``limit`` (at most that many samples).
"""

from __future__ import annotations

import inspect
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mf_core.errors import InputError
from mf_training.data import dgp
from mf_training.data.bag_samples import BagSamples
from mf_training.data.kitti import KittiObject
from mf_training.data.rgbd_frames import IndoorRgbd, Middlebury
from mf_training.data.sample import Sample
from mf_training.data.sample_folder import SampleFolder
from mf_training.data.sevenscenes import SevenScenes

BAG_SUFFIXES = (".mcap", ".db3", ".bag")  # rosbag2 MCAP / sqlite3, ROS 1 bags (read through rosbags)


@dataclass
class SampleSource:
    """A re-iterable stream of Samples with what it is and, when known without reading, how many."""

    kind: str  # one of KINDS
    path: Path
    iterate: Callable[[], Iterator[Sample]]  # a fresh pass over the samples
    length: int | None  # None when counting would mean reading the data
    limit: int | None = None

    def __iter__(self) -> Iterator[Sample]:
        return itertools.islice(self.iterate(), self.limit)


KINDS = ("folder", "bag", "dgp", "sevenscenes", "kitti", "indoor_rgbd", "middlebury")


def detect_kind(path: str | os.PathLike) -> str:
    """One of :data:`KINDS` from what is at ``path``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a sample folder, a bag, a DGP dataset or the 7-Scenes folder")
    if path.is_file():
        if path.suffix in BAG_SUFFIXES:
            return "bag"
        if path.suffix == ".json":
            return "dgp"
    else:
        if (path / "metadata.yaml").exists() or any(path.glob("*.mcap")) or any(path.glob("*.db3")):
            return "bag"
        if any(path.glob("*_calib.json")):
            return "folder"
        if any(path.glob("scene_dataset*.json")) or any(path.glob("scene_*.json")):
            return "dgp"
        if (path / "camera-intrinsics.txt").exists() or (path / "frames").is_dir():
            return "sevenscenes"
        if any((path / split / "image_2").is_dir() for split in ("training", "testing")):
            return "kitti"
        if any(path.glob("*/depth_mm.png")):
            return "indoor_rgbd"
        if any(path.glob("*_depth_mm.png")) and (path / "calib.txt").is_file():
            return "middlebury"
    raise InputError(f"{path} is not a sample folder, a bag (.mcap/.db3, a folder with metadata.yaml, a ROS 1 .bag), "
                     "a DGP dataset/scene json, the 7-Scenes folder, a KITTI object folder, the indoor_rgbd "
                     "or the Middlebury folder; point at one of those")


def _checked(kind: str, reader: Callable, options: dict) -> dict:
    accepted = set(inspect.signature(reader).parameters) - {"self", "path", "root", "folder"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InputError(f"option(s) {unknown} do not apply to a {kind} source; it takes {sorted(accepted) or 'none'}")
    return options


def open_samples(path: str | os.PathLike, limit: int | None = None, **options) -> SampleSource:
    """Open ``path`` (see the module docstring) as a :class:`SampleSource` of Samples."""
    if limit is not None and limit <= 0:
        raise InputError(f"limit must be a positive number of samples, got {limit}")
    path = Path(path)
    kind = detect_kind(path)
    readers: dict[str, Callable] = {"folder": SampleFolder, "bag": BagSamples, "sevenscenes": SevenScenes,
                                    "kitti": KittiObject, "indoor_rgbd": IndoorRgbd, "middlebury": Middlebury}
    if kind in readers:
        reader = readers[kind](path, **_checked(kind, readers[kind], options))
        length: int | None = len(reader) if limit is None else min(len(reader), limit)
        return SampleSource(kind, path, reader.__iter__, length, limit)
    _checked(kind, dgp.read_samples, options)
    return SampleSource(kind, path, lambda: dgp.read_samples(path), None, limit)
