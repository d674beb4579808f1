"""The real datasets in ``shared/data`` as rosbag2 MCAP bags, laid out like a robot recording.

Every bag uses the topics :class:`mf_training.data.bag_samples.BagSamples` finds on its own:
``/camera/image_raw`` (rgb8), ``/camera/camera_info``, ``/lidar/points`` and ``/tf_static``.

- DGP: **one bag per scene and camera** (``OUT/<scene>_<CAMERA_NN>``), so each bag is one
  camera + LiDAR stream that needs no topic flags. The LiDAR sweep (x, y, z, intensity,
  LiDAR frame) is repeated in each camera's bag. /tf_static holds the calibration
  extrinsics ``base_link -> camera_NN_optical_frame`` and ``base_link -> lidar``; the
  reader composes the two. Static calibration ignores the ego motion between the LiDAR
  and camera stamps that the pose-based DGP reader absorbs: identical in the static
  scene_01, 2-5 cm apart in scene_02.
- 7-Scenes: **one bag** with the image, camera_info, the Kinect depth as 32FC1
  ``/camera/depth/ground_truth`` (NaN = invalid) and the simulated sparse points as a
  PointCloud2 in the ``sparse_points`` frame, tied to the camera by an identity /tf_static.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_core.geometry import backproject_depth
from mf_ros.bags import BagWriter
from mf_ros.conversions import (
    TfEdge,
    camera_to_camera_info,
    depth_to_image,
    edges_to_tf_message,
    rgb_to_image,
    xyz_to_pointcloud2,
)
from mf_ros.topics import CAMERA_INFO_TOPIC, GT_TOPIC, IMAGE_TOPIC, POINTS_TOPIC, TF_STATIC_TOPIC
from mf_training.data.dgp import VEHICLE_FRAME, DgpFrame, read_frames
from mf_training.data.sevenscenes import SevenScenes

SEVENSCENES_CAMERA_FRAME = "camera_optical_frame"
SEVENSCENES_POINTS_FRAME = "sparse_points"


def _frames(items: Iterable, limit: int | None, progress: bool, total: int | None = None) -> Iterator:
    """At most ``limit`` items, with a tqdm bar when ``progress``."""
    if limit is not None and limit <= 0:
        raise InputError(f"--limit must be a positive number of frames, got {limit}")
    total = min(total, limit) if total is not None and limit is not None else (total or limit)
    return iter(tqdm(itertools.islice(items, limit), total=total, desc="convert", unit="frame", disable=not progress))


def _write_camera(bag: BagWriter, image: np.ndarray, camera: PinholeCamera, stamp_ns: int, frame_id: str) -> None:
    bag.write(IMAGE_TOPIC, rgb_to_image(image, stamp_ns, frame_id), stamp_ns)
    bag.write(CAMERA_INFO_TOPIC, camera_to_camera_info(camera, stamp_ns, frame_id), stamp_ns)


def _write_dgp_frame(bag: BagWriter, frame: DgpFrame, first: bool) -> None:
    """One camera frame and its sweep, in log-time order; the first frame of a bag also gets /tf_static."""
    start = min(frame.lidar_stamp_ns, frame.camera_stamp_ns)
    if first:
        edges = [TfEdge(VEHICLE_FRAME, frame.camera_frame_id, start, frame.T_vehicle_from_camera),
                 TfEdge(VEHICLE_FRAME, frame.lidar_frame_id, start, frame.T_vehicle_from_lidar)]
        bag.write(TF_STATIC_TOPIC, edges_to_tf_message(edges), start)
    cloud = xyz_to_pointcloud2(frame.lidar_points, frame.lidar_stamp_ns, frame.lidar_frame_id,
                               intensity=frame.lidar_intensity)
    writes = [(frame.lidar_stamp_ns, lambda: bag.write(POINTS_TOPIC, cloud, frame.lidar_stamp_ns)),
              (frame.camera_stamp_ns, lambda: _write_camera(bag, frame.image, frame.camera, frame.camera_stamp_ns,
                                                            frame.camera_frame_id))]
    for _, write in sorted(writes, key=lambda w: w[0]):
        write()


def dgp_to_bags(path: str | os.PathLike, out: str | os.PathLike, limit: int | None = None,
                overwrite: bool = False, progress: bool = False) -> list[Path]:
    """Write DGP frames (dataset json, scene folder or scene json) as ``OUT/<scene>_<camera>`` bags.

    ``limit`` caps the number of camera frames written in total. Returns the bag paths.
    """
    out = Path(out)
    bags: dict[tuple[str, str], BagWriter] = {}
    with ExitStack() as stack:
        for frame in _frames(read_frames(path), limit, progress):
            key = (frame.scene, frame.camera_name)
            first = key not in bags
            if first:
                bags[key] = stack.enter_context(BagWriter(out / f"{frame.scene}_{frame.camera_name}", overwrite))
            _write_dgp_frame(bags[key], frame, first)
    return [bag.path for bag in bags.values()]


def sevenscenes_to_bag(path: str | os.PathLike, out: str | os.PathLike, limit: int | None = None,
                       overwrite: bool = False, sparse_points: int = 500, seed: int = 0,
                       progress: bool = False, sparse_pattern: str = "scanlines") -> Path:
    """Write 7-Scenes frames (image, camera_info, GT depth, simulated sparse points) as one bag at ``out``."""
    dataset = SevenScenes(path, sparse_points=sparse_points, seed=seed, sparse_pattern=sparse_pattern)
    with BagWriter(out, overwrite) as bag:
        for i, sample in enumerate(_frames(dataset, limit, progress, len(dataset))):
            t = sample.stamp_ns
            if i == 0:
                edge = TfEdge(SEVENSCENES_CAMERA_FRAME, SEVENSCENES_POINTS_FRAME, t, np.eye(4))
                bag.write(TF_STATIC_TOPIC, edges_to_tf_message([edge]), t)
            _write_camera(bag, sample.image, sample.camera, t, SEVENSCENES_CAMERA_FRAME)
            bag.write(GT_TOPIC, depth_to_image(sample.gt_depth, t, SEVENSCENES_CAMERA_FRAME), t)
            points = backproject_depth(sample.sparse_depth, sample.camera)[sample.valid_mask]  # (N, 3)
            bag.write(POINTS_TOPIC, xyz_to_pointcloud2(points, t, SEVENSCENES_POINTS_FRAME), t)
    return Path(out)
