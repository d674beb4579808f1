"""The real data sets in ``shared/data`` and their fixed train / val / test split.

One home for "which real frame may be used for what": ``mf train`` sources with ``split: train``
(or ``val``) read only those frames, and ``mf bench quality`` scores only ``test`` frames, so a
reported number never comes from a frame the model trained on or was selected on.

The split, per set (frame names as the readers give them):

============  ======================================  ====================  ===========================
set           train                                   val                   test
============  ======================================  ====================  ===========================
dgp           scene_01, CAMERA_01 and CAMERA_05       scene_01, CAMERA_06   scene_02 (all 6 cameras)
kitti         000000 000002 000006 000009 000134      000004 000142         000001 000003 000005 000007
                                                                            000076 000217, testing/000002
sevenscenes   frames 0-645                            frames 675-720        frames 750-995
indoor_rgbd   -                                       -                     all 7 frames with depth
middlebury    -                                       -                     motorcycle
============  ======================================  ====================  ===========================

DGP's three samples per scene are nearly the same view (SOURCE.md), so its split is by scene
(test) and by camera (val). 7-Scenes is one sequence: the split is by frame number with unused
gaps (650-670, 725-745) so that neighbouring views do not straddle two parts. indoor_rgbd (8
frames of 5-6 datasets) and Middlebury (1 frame) are too few to train on and are test-only.

Each set is scored with the protocol that fits its depth: ``lidar-holdout`` for the LiDAR-only
sets (80 % of the points fed, the other 20 % scored, the same seeded split for every method),
``metric`` against dense ground truth for the RGB-D sets, which are fed simulated scan lines
(:mod:`mf_training.data.simulated_lidar`). Monocular methods are scored with ``affine`` against the
dense ground truth, or against all LiDAR points where there is none.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mf_core.errors import InputError
from mf_training.data.sample import Sample
from mf_training.data.sources import open_samples

SPLITS = ("train", "val", "test")
DEFAULT_DATA_ROOT = "../shared/data"
DATA_ROOT_ENV = "MF_DATA_ROOT"


def _dgp_split(name: str) -> str:
    if name.startswith("scene_02"):
        return "test"
    return "val" if name.endswith("CAMERA_06") else "train"


_KITTI_TEST = {"training_000001", "training_000003", "training_000005", "training_000007", "training_000076",
               "training_000217", "testing_000002"}
_KITTI_VAL = {"training_000004", "training_000142"}


def _kitti_split(name: str) -> str:
    key = name.removeprefix("kitti_")
    return "test" if key in _KITTI_TEST else "val" if key in _KITTI_VAL else "train"


def _sevenscenes_split(name: str) -> str | None:
    number = int(name.split("-")[1])
    if number >= 750:
        return "test"
    if 675 <= number <= 720:
        return "val"
    return "train" if number < 650 else None  # None: in a gap, used by nothing


@dataclass(frozen=True)
class RealSet:
    """One real data set: where it lives, how it is scored, and which part each frame belongs to."""

    name: str
    folder: str  # under the data root
    protocol: str  # how a method fed its LiDAR is scored (see the module docstring)
    outdoor: bool
    part_of: Callable[[str], str | None]  # frame name -> "train" | "val" | "test" | None (unused)
    provenance: str


REAL_SETS: dict[str, RealSet] = {s.name: s for s in (
    RealSet("dgp", "dgp", "lidar-holdout", True, _dgp_split,
            "TRI DGP test scenes (DDAD-style rig: 1936x1216 cameras + Luminar-class LiDAR), CC BY-NC-SA"),
    RealSet("kitti", "kitti_object", "lidar-holdout", True, _kitti_split,
            "KITTI object frames: 1242x375 camera 2 + Velodyne HDL-64E, CC BY-NC-SA 3.0"),
    RealSet("sevenscenes", "sevenscenes", "metric", False, _sevenscenes_split,
            "Microsoft 7-Scenes RGB-D (Kinect v1, 640x480; depth registered to the colour image), non-commercial"),
    RealSet("indoor_rgbd", "indoor_rgbd", "metric", False, lambda name: "test",
            "7 single indoor RGB-D frames from NYUv2 and the Prior-Depth-Anything samples, non-commercial"),
    RealSet("middlebury", "middlebury", "metric", False, lambda name: "test",
            "Middlebury 2014 Motorcycle, stereo ground truth (741x500), research use"),
)}


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the real sets: ``root``, else ``$MF_DATA_ROOT``, else ``../shared/data``."""
    return Path(root if root is not None else os.environ.get(DATA_ROOT_ENV, DEFAULT_DATA_ROOT)).expanduser()


def get_real_set(name: str) -> RealSet:
    """The registered real set ``name``."""
    if name not in REAL_SETS:
        raise InputError(f"unknown real data set {name!r}; use one of {', '.join(REAL_SETS)}")
    return REAL_SETS[name]


def real_set_of(path: str | os.PathLike) -> RealSet | None:
    """The real set stored at ``path`` (matched by folder name), or None for any other data."""
    folder = Path(path).resolve().name
    return next((s for s in REAL_SETS.values() if s.folder == folder), None)


def split_samples(samples: Iterator[Sample], real_set: RealSet, split: str) -> Iterator[Sample]:
    """The samples of ``real_set`` that belong to ``split``."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return (s for s in samples if real_set.part_of(s.name) == split)


def read_real_split(name: str, split: str, root: str | os.PathLike | None = None) -> list[Sample]:
    """Every sample of real set ``name`` in ``split`` (``[]`` when that part is empty)."""
    real_set = get_real_set(name)
    path = data_root(root) / real_set.folder
    if not path.exists():
        raise InputError(f"real data set {name} not found at {path}; set --data-root or ${DATA_ROOT_ENV}")
    return list(split_samples(iter(open_samples(path)), real_set, split))
