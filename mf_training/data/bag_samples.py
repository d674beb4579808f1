"""rosbag2 bag (MCAP or sqlite3) -> Samples, without a ROS install.

Reading takes two passes over the bag, neither of which holds all images:

1. :func:`index_bag` reads header stamps, frame ids, camera_info messages (small),
   /tf_static and, with a fixed frame, /tf; then :func:`mf_ros.sync.pair_stamps` pairs images with
   LiDAR sweeps.
2. :class:`BagSamples` streams the bag again and joins each pair as soon as its image,
   sweep (and ground truth) have arrived; buffers hold only frames waiting for a partner
   inside the sync slop, and a sweep is dropped once its last image is built.

Topics are found by type when not given: one ``sensor_msgs/Image`` that is not the
ground truth, its ``CameraInfo`` and one ``PointCloud2``. Dense ground truth is the
``/camera/depth/ground_truth`` topic (or ``gt_topic``), matched to images by equal stamp.
The LiDAR -> camera extrinsic comes from the chain of /tf_static transforms between
the cloud's and the image's frame ids, or from an explicit 4x4 / ``x y z qx qy qz qw``. On a moving
robot, ``fixed_frame`` (e.g. ``odom``) moves each sweep from its own stamp to its image's through that
frame with the bag's /tf (:class:`mf_ros.extrinsics.TfTimeline`): at 2 m/s, a sweep 50 ms off its
image is otherwise placed 10 cm off; and where the cloud records each return's time (``point_time``), each
return from its own time (:mod:`mf_ros.deskew`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_core.files import MAX_IMAGE_PIXELS, check_image_size
from mf_core.geometry import points_to_depth_map
from mf_core.transforms import validate
from mf_ros.bags import bag_topics, read_messages
from mf_ros.calibration import read_camera_calibration
from mf_ros.conversions import (
    TfEdge,
    camera_image_size,
    camera_image_to_rgb,
    camera_info_to_camera,
    header_stamp_ns,
    image_to_depth,
    pointcloud2_to_xyz,
    tf_message_to_edges,
)
from mf_ros.deskew import AUTO, SweepMotion, check_point_time, sweep_motion
from mf_ros.extrinsics import TfTimeline, check_fixed_frame, static_transform
from mf_ros.sync import DEFAULT_SLOP_S, NO_TF, SyncResult, pair_stamps, slop_to_ns
from mf_ros.topics import GT_TOPIC, TF_STATIC_TOPIC, TF_TOPIC
from mf_training.data.sample import Sample

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"  # image_transport "compressed": <image topic>/compressed
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POINTCLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
TF_TYPES = ("tf2_msgs/msg/TFMessage", "tf/msg/tfMessage")  # the second: ROS 1 bags from before tf2, same fields


@dataclass(frozen=True)
class BagTopics:
    """The topics one camera + LiDAR sample stream is read from."""

    image: str
    camera_info: str | None  # None: the camera comes from a calibration file (``camera_info_file``)
    points: str
    gt: str | None = None


def _pick(kind: str, flag: str, candidates: list[str], given: str | None, types: dict[str, str],
          msgtype: str, *other_types: str) -> str:
    if given is not None:
        if given not in types:
            raise InputError(f"{flag} {given} is not in the bag; its topics are {sorted(types)}")
        if types[given] not in (msgtype, *other_types):
            raise InputError(f"{flag} {given} is a {types[given]}, expected {' or '.join((msgtype, *other_types))}")
        return given
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise InputError(f"the bag has no {' or '.join((msgtype, *other_types))} topic for the {kind}; its topics "
                         f"are {sorted(types)}")
    raise InputError(f"the bag has several {kind} topics {sorted(candidates)}; choose one with {flag}")


def _namespace(topic: str) -> str:
    return topic.rsplit("/", 1)[0]


def camera_topic(image_topic: str) -> str:
    """The image topic without image_transport's suffix (``/cam/image_raw/compressed`` -> ``/cam/image_raw``)."""
    return image_topic.removesuffix("/compressed")


def select_topics(types: dict[str, str], image: str | None = None, camera_info: str | None = None,
                  points: str | None = None, gt: str | None = None, camera_info_file: bool = False) -> BagTopics:
    """Choose the image / camera_info / points / ground-truth topics from ``{topic: type}``.

    Given topics are checked; missing ones are detected by type. Among several images the
    ones without "depth" in the name are preferred, and raw ones (sensor_msgs/Image) over compressed ones
    (sensor_msgs/CompressedImage, JPEG or PNG: what bags usually record to save space); the camera_info in the
    image's namespace is preferred (``/cam/image_raw`` or ``/cam/image_raw/compressed`` -> ``/cam/camera_info``).
    ``camera_info_file``: the camera comes from a calibration file, no camera_info topic is read.
    """
    if camera_info_file and camera_info is not None:
        raise InputError("give either --camera-info-topic or --camera-info (a calibration file), not both")
    if gt is not None and types.get(gt) != IMAGE_TYPE:
        raise InputError(f"--gt-topic {gt} is not a {IMAGE_TYPE} topic of the bag; image topics are "
                         f"{sorted(t for t, k in types.items() if k == IMAGE_TYPE)}")
    gt = gt if gt is not None else (GT_TOPIC if types.get(GT_TOPIC) == IMAGE_TYPE else None)
    raw = [t for t, k in types.items() if k == IMAGE_TYPE and t != gt]
    compressed = [t for t, k in types.items() if k == COMPRESSED_IMAGE_TYPE]
    images = [t for t in raw if "depth" not in t] or [t for t in compressed if "depth" not in t] or raw or compressed
    image_topic = _pick("camera image", "--image-topic", images, image, types, IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
    infos = [t for t, k in types.items() if k == CAMERA_INFO_TYPE]
    same_ns = [t for t in infos if _namespace(t) == _namespace(camera_topic(image_topic))]
    info_topic = None if camera_info_file else _pick(
        "camera_info (or pass its calibration file with --camera-info)", "--camera-info-topic", same_ns or infos,
        camera_info, types, CAMERA_INFO_TYPE)
    clouds = [t for t, k in types.items() if k == POINTCLOUD_TYPE]
    points_topic = _pick("LiDAR", "--points-topic", [t for t in clouds if "depth" not in t] or clouds, points,
                         types, POINTCLOUD_TYPE)
    return BagTopics(image_topic, info_topic, points_topic, gt)


@dataclass
class BagIndex:
    """Everything but the pixels and points: stamps, frames, calibrations, static TF."""

    path: Path
    topics: BagTopics
    image_stamps: np.ndarray  # (I,) int64 header stamps, in bag order
    info_stamps: np.ndarray  # (C,) int64
    lidar_stamps: np.ndarray  # (L,) int64
    gt_stamps: np.ndarray  # (G,) int64, empty without ground truth
    camera_infos: list[Any]  # (C,) CameraInfo messages in bag order
    image_frame: str
    lidar_frame: str
    tf_edges: list[TfEdge] = field(default_factory=list)
    has_tf_static: bool = False
    moving_tf_edges: list[TfEdge] = field(default_factory=list)  # /tf, read only for a fixed frame


def _frame_of(frames: set[str], topic: str) -> str:
    if len(frames) > 1:
        raise InputError(f"{topic} changes frame_id between messages ({sorted(frames)}); "
                         "split the bag so each topic keeps one frame")
    return next(iter(frames), "")


def topic_types(path: str | os.PathLike) -> dict[str, str]:
    """``{topic: message type}`` of a bag."""
    return {t.topic: t.msgtype for t in bag_topics(path)}


def index_bag(path: str | os.PathLike, topics: BagTopics, types: dict[str, str], moving_tf: bool = False
              ) -> BagIndex:
    """First pass: header stamps of every image / camera_info / sweep / GT, frames and /tf_static (and /tf
    with ``moving_tf``).

    ``types`` is the bag's ``{topic: type}`` (see :func:`topic_types`).
    """
    path = Path(path)
    read = [topics.image, topics.points] + [t for t in (topics.camera_info, topics.gt) if t]
    tf_topics = _tf_topics(path, types, moving_tf)
    stamps: dict[str, list[int]] = {t: [] for t in read}
    frames: dict[str, set[str]] = {t: set() for t in read}
    infos: list[Any] = []
    edges: dict[str, list[TfEdge]] = {TF_STATIC_TOPIC: [], TF_TOPIC: []}
    for message in read_messages(path, read + tf_topics):
        if message.topic in edges:
            edges[message.topic].extend(tf_message_to_edges(message.msg))
            continue
        stamps[message.topic].append(header_stamp_ns(message.msg))
        frames[message.topic].add(message.msg.header.frame_id)
        if message.topic == topics.camera_info:
            infos.append(message.msg)

    def arr(topic: str | None) -> np.ndarray:
        return np.asarray(stamps[topic] if topic else [], dtype=np.int64)

    # Without a camera_info topic every image is its own calibration's stamp (one camera from a file).
    info_stamps = arr(topics.camera_info) if topics.camera_info else arr(topics.image)
    return BagIndex(path, topics, arr(topics.image), info_stamps, arr(topics.points), arr(topics.gt),
                    infos, _frame_of(frames[topics.image], topics.image),
                    _frame_of(frames[topics.points], topics.points), edges[TF_STATIC_TOPIC],
                    TF_STATIC_TOPIC in tf_topics, edges[TF_TOPIC])


def _tf_topics(path: Path, types: dict[str, str], moving_tf: bool) -> list[str]:
    """The TF topics to read from a bag: /tf_static where it has one, and /tf with ``moving_tf`` (InputError
    where it has none)."""
    if moving_tf and types.get(TF_TOPIC) not in TF_TYPES:
        raise InputError(f"bag {path} has no {TF_TOPIC} (tf2_msgs/msg/TFMessage) to move the LiDAR through a fixed "
                         "frame; record /tf, or drop --fixed-frame")
    return ([TF_STATIC_TOPIC] if types.get(TF_STATIC_TOPIC) in TF_TYPES else []) + ([TF_TOPIC] if moving_tf else [])


def read_tf(path: str | os.PathLike, types: dict[str, str], moving_tf: bool = False
            ) -> tuple[list[TfEdge], list[TfEdge]]:
    """(/tf_static edges, /tf edges: only with ``moving_tf``) of a bag, in one pass over its TF topics."""
    edges: dict[str, list[TfEdge]] = {TF_STATIC_TOPIC: [], TF_TOPIC: []}
    for message in read_messages(path, _tf_topics(Path(path), types, moving_tf)):
        edges[message.topic].extend(tf_message_to_edges(message.msg))
    return edges[TF_STATIC_TOPIC], edges[TF_TOPIC]


def lidar_extrinsic(index: BagIndex, extrinsic: np.ndarray | None = None) -> np.ndarray:
    """``T_camera_from_lidar``: the given one, else the /tf_static chain (identity for one shared frame)."""
    if extrinsic is not None:
        return validate(extrinsic, "extrinsic")
    if index.image_frame == index.lidar_frame:
        return np.eye(4)
    if not index.has_tf_static:
        raise InputError(f"bag {index.path} has no /tf_static to place LiDAR frame {index.lidar_frame!r} in camera "
                         f"frame {index.image_frame!r}; pass --extrinsic 'x y z qx qy qz qw' (camera <- LiDAR) "
                         "or a row-major 4x4")
    return static_transform(index.tf_edges, index.image_frame, index.lidar_frame)


class BagSamples:
    """Synchronized Samples of one bag, streamed; ``len()`` is the number of synced pairs.

    Args:
        path: rosbag2 directory, ``.mcap`` or ``.db3`` file.
        slop_s: largest |t_lidar - t_image| in seconds for a pair.
        extrinsic: ``T_camera_from_lidar`` (4, 4); default: from /tf_static.
        image_topic, camera_info_topic, points_topic, gt_topic: override detection.
        fixed_frame: a frame that stays put while the robot moves (``odom``, ``map``): each sweep is moved
            from its stamp to its image's through it with the bag's /tf and /tf_static; pairs without TF
            at both stamps are skipped (counted as ``no_tf``). None: one static extrinsic for every pair.
        camera_info_file: a camera calibration YAML (:mod:`mf_ros.calibration`) for a bag recorded without
            camera_info; no camera_info topic is read then.
        point_time: with ``fixed_frame``: the clouds' per-point time field, each return moved from its own
            time (:func:`mf_ros.deskew.point_time_field`: "auto", "none" or a field name); returns whose
            time lies outside the recorded /tf keep the sweep stamp's transform (counted in
            :attr:`points_without_tf`).
    """

    def __init__(self, path: str | os.PathLike, slop_s: float = DEFAULT_SLOP_S, extrinsic: np.ndarray | None = None,
                 image_topic: str | None = None, camera_info_topic: str | None = None,
                 points_topic: str | None = None, gt_topic: str | None = None, fixed_frame: str | None = None,
                 point_time: str = AUTO, camera_info_file: str | os.PathLike | None = None):
        self.path = Path(path)
        self._file_camera = None if camera_info_file is None else read_camera_calibration(camera_info_file)
        self._camera_source = str(camera_info_file) if camera_info_file is not None else None
        check_fixed_frame(fixed_frame, extrinsic)
        check_point_time(point_time, fixed_frame)
        self.fixed_frame, self.point_time = fixed_frame, point_time
        self.points_without_tf = 0  # returns that kept their sweep stamp's transform (deskewing)
        types = topic_types(self.path)
        topics = select_topics(types, image_topic, camera_info_topic, points_topic, gt_topic,
                               camera_info_file=camera_info_file is not None)
        self._camera_source = self._camera_source or topics.camera_info
        self.index = index_bag(self.path, topics, types, moving_tf=fixed_frame is not None)
        self.sync: SyncResult = pair_stamps(self.index.image_stamps, self.index.info_stamps,
                                            self.index.lidar_stamps, slop_to_ns(slop_s))
        # One static extrinsic, or (fixed_frame) one transform per pair.
        self.T_cam_from_lidar: np.ndarray | None = None
        self._pair_transforms: list[np.ndarray] | None = None
        self._timeline: TfTimeline | None = None
        if fixed_frame is None:
            self.T_cam_from_lidar = lidar_extrinsic(self.index, extrinsic)
        else:
            self._pair_transforms = self._moved_sweeps(fixed_frame)
        self._cameras: dict[int, PinholeCamera] = {}

    def _moved_sweeps(self, fixed_frame: str) -> list[np.ndarray]:
        """``T_camera(t_image)_from_lidar(t_lidar)`` of every pair with TF at both stamps; the others leave
        :attr:`sync` (counted as ``no_tf``). InputError when no pair has it (wrong frame names, say)."""
        index, sync = self.index, self.sync
        timeline = self._timeline = TfTimeline(index.tf_edges, index.moving_tf_edges)
        transforms: list[np.ndarray] = []
        keep = np.zeros(len(sync.image_index), dtype=bool)  # (P,)
        error: InputError | None = None
        for pair, (image, sweep) in enumerate(zip(sync.image_index, sync.lidar_index, strict=True)):
            try:
                transforms.append(timeline.across(index.image_frame, int(index.image_stamps[image]),
                                                  index.lidar_frame, int(index.lidar_stamps[sweep]), fixed_frame))
                keep[pair] = True
            except InputError as err:
                error = err
        if error is not None and not keep.any():
            raise InputError(f"bag {self.path}: no pair could be moved through fixed frame {fixed_frame!r}: "
                             f"{error}") from error
        dropped = int((~keep).sum())
        if dropped:
            stats = sync.stats
            stats.pairs -= dropped
            stats.skipped[NO_TF] = stats.skipped.get(NO_TF, 0) + dropped
            self.sync = SyncResult(sync.image_index[keep], sync.info_index[keep], sync.lidar_index[keep],
                                   sync.lidar_offset_ns[keep], stats)
        return transforms

    @property
    def topics(self) -> BagTopics:
        """The topics read."""
        return self.index.topics

    def __len__(self) -> int:
        return self.sync.stats.pairs

    def _decode_image(self, msg: Any) -> np.ndarray:
        """(H, W, 3) uint8 RGB of a raw or compressed image message; InputError naming the topic when it cannot
        be decoded or is too large to."""
        try:
            check_image_size(*camera_image_size(msg), MAX_IMAGE_PIXELS, self.topics.image)  # before decoding
            return camera_image_to_rgb(msg)
        except InputError as err:
            raise InputError(f"{self.topics.image} at {header_stamp_ns(msg)} ns: {err}; re-record the camera or "
                             "choose another --image-topic") from err

    def _camera(self, info_index: int, image: np.ndarray) -> PinholeCamera:
        if self._file_camera is not None:
            camera = self._file_camera
        else:
            if info_index not in self._cameras:
                self._cameras[info_index] = camera_info_to_camera(self.index.camera_infos[info_index])
            camera = self._cameras[info_index]
        if (camera.width, camera.height) != (image.shape[1], image.shape[0]):
            raise InputError(f"{self._camera_source} says {camera.width}x{camera.height} but "
                             f"{self.topics.image} is {image.shape[1]}x{image.shape[0]}; pass the camera_info "
                             "that belongs to the image (--camera-info-topic or --camera-info)")
        return camera

    def _gt_positions(self) -> np.ndarray:
        """(P,) index of the GT message with the same stamp as each pair's image; -1 where none."""
        out = np.full(len(self), -1, dtype=np.int64)
        gt = self.index.gt_stamps
        if gt.size == 0:
            return out
        order = np.argsort(gt, kind="stable")
        wanted = self.index.image_stamps[self.sync.image_index]  # (P,)
        pos = np.minimum(np.searchsorted(gt[order], wanted), gt.size - 1)
        hit = gt[order][pos] == wanted
        out[hit] = order[pos[hit]]
        return out

    def __iter__(self) -> Iterator[Sample]:
        sync, topics = self.sync, self.topics
        pair_of_image = {int(i): p for p, i in enumerate(sync.image_index)}
        gt_positions = self._gt_positions()
        pair_of_gt = {int(g): p for p, g in enumerate(gt_positions) if g >= 0}
        sweep_uses = Counter(int(k) for k in sync.lidar_index)
        images: dict[int, np.ndarray] = {}  # pair -> (H, W, 3) uint8
        sweeps: dict[int, Any] = {}  # sweep -> its PointCloud2
        gts: dict[int, np.ndarray] = {}  # pair -> (H, W) float32, NaN = none
        seen: Counter[str] = Counter()
        next_pair = 0
        read = [topics.image, topics.points] + ([topics.gt] if pair_of_gt else [])
        for message in read_messages(self.path, read):
            i = seen[message.topic]
            seen[message.topic] += 1
            if message.topic == topics.image and i in pair_of_image:
                images[pair_of_image[i]] = self._decode_image(message.msg)
            elif message.topic == topics.points and i in sweep_uses:
                sweeps[i] = message.msg
            elif message.topic == topics.gt and i in pair_of_gt:
                gts[pair_of_gt[i]] = image_to_depth(message.msg)
            # Emit in time order every pair whose parts have all arrived.
            while next_pair < len(self) and next_pair in images and int(sync.lidar_index[next_pair]) in sweeps and (
                    gt_positions[next_pair] < 0 or next_pair in gts):
                yield self._build(next_pair, images.pop(next_pair), sweeps, sweep_uses, gts.pop(next_pair, None))
                next_pair += 1
        if next_pair < len(self):
            raise InputError(f"bag {self.path} ended before frame {next_pair + 1} of {len(self)} could be built; "
                             "the bag changed while it was read or is damaged; re-record or copy it again")

    def _camera_points(self, pair: int, cloud: Any) -> tuple[np.ndarray, np.ndarray]:
        """The pair's sweep as (N, 3) points and the transform that takes them into the camera frame."""
        if self._pair_transforms is None:
            return pointcloud2_to_xyz(cloud), self.T_cam_from_lidar
        motion = sweep_motion(cloud, self._timeline, self.index.image_frame,
                              int(self.index.image_stamps[self.sync.image_index[pair]]), self.fixed_frame,
                              self.point_time, self._pair_transforms[pair])
        if not isinstance(motion, SweepMotion):  # no per-return times: the sweep moves as one
            return pointcloud2_to_xyz(cloud), motion
        points = motion.camera_points(cloud)  # (N, 3) in the camera frame at the image's stamp
        self.points_without_tf += motion.fallback_points
        return points, np.eye(4)

    def _build(self, pair: int, image: np.ndarray, sweeps: dict[int, Any], sweep_uses: Counter,
               gt: np.ndarray | None) -> Sample:
        sync = self.sync
        sweep = int(sync.lidar_index[pair])
        camera = self._camera(int(sync.info_index[pair]), image)
        sparse = points_to_depth_map(*self._camera_points(pair, sweeps[sweep]), camera)  # (H, W) float32
        sweep_uses[sweep] -= 1
        if sweep_uses[sweep] == 0:
            del sweeps[sweep]
        if gt is not None:
            if gt.shape != image.shape[:2]:
                raise InputError(f"{self.topics.gt} is {gt.shape[1]}x{gt.shape[0]} but {self.topics.image} is "
                                 f"{image.shape[1]}x{image.shape[0]}; ground truth must match the image")
            gt = np.nan_to_num(gt, nan=0.0).astype(np.float32)  # NaN (REP 118) -> 0 (Sample convention)
        stamp = int(self.index.image_stamps[sync.image_index[pair]])
        return Sample(f"{stamp:019d}", image, sparse, camera, stamp, gt)
