"""``recorder_node``: records synchronized training samples into rosbag2 MCAP bags.

Each image that pairs with a camera_info and a LiDAR sweep under the depth node's sync
policy (:mod:`mf_ros.sync`) is written with them as the raw CDR bytes received
(no re-encoding), plus /tf_static, readable by ``ros2 bag info``, rosbags and
``mf_training.data.bag_samples``. Samples closer than ``min_interval`` to the last one are
skipped (a robot standing still); bags are split into ``<prefix>_<time>_<k>`` directories
by ``max_bag_size_mb`` / ``max_bag_duration``.

Data safety: inputs are kept in deep queues (``queue_size`` 100 per topic) and written by a
writer thread, so a disk stall of seconds loses nothing; samples waiting beyond
``MAX_BACKLOG_BYTES`` are dropped and counted (``writer_backlog``), never silently. A sample
counts as recorded once it is on disk (its MCAP chunk ended, CRC-32 written, fsync). SIGINT /
SIGTERM close the bag with every accepted sample in it (pending images are paired first). A
hard kill, power loss or full disk leaves the MCAP file without its summary and the bag
without metadata.yaml; ``mf bag recover BAG --out NEW`` rebuilds a closed bag holding every
recorded sample. A write failure is logged with its cause, recording stops, the node exits
with code 1 and the files written so far are left as they are.

/tf_static: recorded from the topic where tf2_msgs imports (a ROS install); without it
(PyPI wheels, docs ROS.md) the ``extrinsic`` parameter is written as a static transform
``camera_frame`` <- ``lidar_frame``.
"""

from __future__ import annotations

import errno
import queue
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from mf_core.errors import InputError
from mf_ros.bags import BagWriter
from mf_ros.calibration import read_camera_calibration
from mf_ros.conversions import (
    NS_PER_S,
    RclpyMessages,
    TfEdge,
    camera_to_camera_info,
    edges_to_tf_message,
    rosbags_messages,
)
from mf_ros.extrinsics import parse_extrinsic
from mf_ros.nodes.inputs import InputSubscriptions
from mf_ros.nodes.lifetime import run_until_signal
from mf_ros.nodes.params import declare_and_read, watch_runtime_parameters
from mf_ros.nodes.stats import NodeStats, StatsPublisher
from mf_ros.options import RECORDER_OPTIONS
from mf_ros.sync import StampSync, SyncedFrame
from mf_ros.topics import TF_STATIC_TOPIC

TOPIC_TYPES = {"image": "sensor_msgs/msg/Image", "camera_info": "sensor_msgs/msg/CameraInfo",
               "points": "sensor_msgs/msg/PointCloud2"}
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
# Samples waiting for the writer thread beyond this many bytes are dropped (and counted): a disk that
# stalls for good must not take all the memory. At 10 Hz of 640x480 + a 64-beam sweep, about 60 s.
MAX_BACKLOG_BYTES = 1 << 30


def cdr_header_stamp_ns(raw: bytes) -> int:
    """Header stamp (ns) of a serialized stamped message: its first field is std_msgs/Header.

    Layout: 4-byte encapsulation (byte 1: 1 = little, 0 = big endian), int32 sec, uint32 nanosec.
    """
    if len(raw) < 12:
        raise InputError(f"serialized message of {len(raw)} bytes is too short for a header")
    order = "<" if raw[1] & 1 else ">"
    sec, nanosec = struct.unpack_from(f"{order}iI", raw, 4)
    return sec * NS_PER_S + nanosec


def cdr_header_frame_id(raw: bytes) -> str:
    """Header frame_id of a serialized stamped message: the CDR string after the stamp (uint32 length with
    its NUL, then the bytes)."""
    if len(raw) < 16:
        raise InputError(f"serialized message of {len(raw)} bytes is too short for a header")
    (length,) = struct.unpack_from("<I" if raw[1] & 1 else ">I", raw, 12)
    if not 1 <= length <= len(raw) - 16:
        raise InputError(f"serialized header has a frame_id of {length} bytes in a {len(raw)}-byte message")
    return bytes(raw[16:16 + length - 1]).decode("utf-8", errors="replace")


def _tf2_msgs() -> Any:
    """tf2_msgs.msg, or None where it is not installed (PyPI wheels)."""
    try:
        from tf2_msgs import msg
    except ImportError:
        return None
    return msg


class RecorderNode(Node):
    """Writes synced samples; ``failed`` holds why recording stopped (None while it runs)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("recorder_node", **kwargs)
        self.p = declare_and_read(self, RECORDER_OPTIONS)
        self.stats = NodeStats()
        self.failed: str | None = None
        self.bags: list[Path] = []
        out = self.p["output_dir"]
        if not out:
            raise InputError("parameter 'output_dir' is empty; set it to the directory for the bags")
        self._static_cdr: list[bytes] = []
        static = parse_extrinsic(self.p["extrinsic"], "parameter 'extrinsic'")
        if static is not None:
            edge = TfEdge(self.p["camera_frame"], self.p["lidar_frame"], 0, static)
            messages = rosbags_messages()
            self._static_cdr.append(bytes(messages.typestore.serialize_cdr(
                edges_to_tf_message([edge], messages), "tf2_msgs/msg/TFMessage")))
        self._file_camera = read_camera_calibration(self.p["camera_info_file"]) if self.p["camera_info_file"] \
            else None  # read before anything is created, so a bad file leaves no empty directory
        self._dir = Path(out)
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot create output_dir {self._dir}: {err}; choose a writable directory") from err
        self._sync = StampSync(round(self.p["slop"] * 1e9), True, self.p["queue_size"])
        watch_runtime_parameters(self, RECORDER_OPTIONS, self.p, self._apply_runtime_parameters)
        self._writer: BagWriter | None = None
        self._has_tf_static = False
        self._bag_bytes = 0
        self._bag_start_ns = 0
        self._last_sample_ns: int | None = None
        self._written: dict[str, int] = {}  # topic -> stamp of the last message written (no duplicates)
        self._open_bag()
        self._jobs: queue.Queue = queue.Queue()  # (bytes, callable) for the writer thread; None = stop
        self._backlog_bytes = 0
        self._backlog_lock = threading.Lock()
        self._writer_thread = threading.Thread(target=self._write_jobs, name="bag_writer", daemon=True)
        self._writer_thread.start()
        self._inputs = InputSubscriptions(self, self.p["qos_reliability"], self.p["queue_size"])
        image_type = CompressedImage if self._compressed else Image
        inputs = (("image", image_type), ("points", PointCloud2)) + (
            (("camera_info", CameraInfo),) if self._file_camera is None else ())
        for kind, cls in inputs:
            self._inputs.add(cls, self._topic_name(kind), lambda raw, k=kind: self._on_raw(k, raw), raw=True)
        tf2 = _tf2_msgs()
        if tf2 is not None:
            latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.create_subscription(tf2.TFMessage, TF_STATIC_TOPIC, self._on_tf_static, latched, raw=True)
        self._stats_publisher = StatsPublisher(self, self.stats, "recorder/stats", self._inputs.publisher_counts)
        self.create_timer(self.p["stats_period"], self._stats_publisher.publish)
        self.get_logger().info(f"recording synced samples of {self._inputs.describe()} "
                               f"into {self.bags[-1]}")

    # ------------------------------------------------------------------ bags

    def _open_bag(self) -> None:
        """Start the next bag; InputError when the directory is not writable."""
        name = f"{self.p['bag_prefix']}_{time.strftime('%Y%m%d-%H%M%S')}_{len(self.bags)}"
        writer = BagWriter(self._dir / name)
        writer.__enter__()
        self._writer = writer
        self.bags.append(writer.path)
        self._bag_bytes, self._bag_start_ns, self._written, self._has_tf_static = 0, 0, {}, False
        for kind, msgtype in TOPIC_TYPES.items():
            writer.add_topic(self._topic_name(kind), COMPRESSED_IMAGE_TYPE if kind == "image" and self._compressed
                             else msgtype)
        for cdr in self._static_cdr:
            self._write_tf_static(cdr)

    def _write_tf_static(self, cdr: bytes) -> None:
        """Add a /tf_static message to the current bag (log time: now)."""
        if not self._has_tf_static:
            self._writer.add_topic(TF_STATIC_TOPIC, "tf2_msgs/msg/TFMessage")
            self._has_tf_static = True
        self._writer.write_raw(TF_STATIC_TOPIC, cdr, self.get_clock().now().nanoseconds)

    @property
    def _compressed(self) -> bool:
        """image_transport:=compressed: the camera is recorded as the CompressedImage it publishes (JPEG / PNG)."""
        return self.p["image_transport"] == "compressed"

    def _topic_name(self, kind: str) -> str:
        """The recorded (absolute) name of an input topic; the compressed image's is image_transport's own
        (the resolved image topic + /compressed), as the depth node subscribes to it."""
        name = self.resolve_topic_name(self.p[f"{kind}_topic"])
        return name + "/compressed" if kind == "image" and self._compressed else name

    def start(self) -> bool:
        """Recording starts in the constructor; nothing to configure later."""
        return True

    def _apply_runtime_parameters(self) -> None:
        """min_interval is read per sample; slop goes to the sync."""
        self._sync.slop_ns = round(self.p["slop"] * 1e9)

    def close(self) -> None:
        """Pair what is still pending, write every accepted sample, close the bag (metadata.yaml, summary)."""
        if self._writer is None:
            return
        self._submit(self._sync.flush())
        self._jobs.put(None)
        self._writer_thread.join()
        writer, self._writer = self._writer, None
        try:
            writer.__exit__(None, None, None)
        except OSError as err:
            self._stop(f"closing {writer.path} failed: {self._why_write_failed(err)}; recover the samples "
                       f"with `mf bag recover {writer.path}`")
        self.get_logger().info(f"{self.stats.counts['recorded']} samples in {[str(b) for b in self.bags]}")

    # ------------------------------------------------------------------ writer thread

    def _submit(self, frames: list[SyncedFrame]) -> None:
        """Hand synced samples to the writer thread; over the backlog limit they are dropped and counted."""
        for frame in frames:
            size = len(frame.image.payload) + len(frame.info.payload) + len(frame.cloud.payload)
            with self._backlog_lock:
                if self._backlog_bytes + size > MAX_BACKLOG_BYTES:
                    self.stats.drop("writer_backlog")
                    self.get_logger().warning("the disk is not keeping up: samples dropped (writer_backlog)",
                                              throttle_duration_sec=5.0)
                    continue
                self._backlog_bytes += size
            self._jobs.put((size, frame))

    def _write_jobs(self) -> None:
        """Writer thread: record queued samples in order until the stop marker."""
        while (job := self._jobs.get()) is not None:
            size, item = job
            try:
                if isinstance(item, bytes):
                    self._static_cdr.append(item)
                    if self.failed is None:
                        self._write_tf_static(item)
                else:
                    self._record([item])
            except (OSError, InputError) as err:
                self._stop(f"cannot write to {self.bags[-1]}: {self._why_write_failed(err)}")
            finally:
                with self._backlog_lock:
                    self._backlog_bytes -= size

    def _stop(self, why: str) -> None:
        self.failed = why
        self.get_logger().error(f"recording stopped: {why}")

    # ------------------------------------------------------------------ input

    def _on_tf_static(self, raw: bytes) -> None:
        self._jobs.put((0, bytes(raw)))

    def _on_raw(self, kind: str, raw: bytes) -> None:
        if self.failed is not None:
            return
        self.stats.count(f"received_{kind}")
        with_file_info = kind == "image" and self._file_camera is not None
        try:
            stamp = cdr_header_stamp_ns(raw)
            frame_id = cdr_header_frame_id(raw) if with_file_info else ""
        except InputError as err:
            self.stats.drop("bad_message")
            self.get_logger().warning(f"{kind} skipped: {err}", throttle_duration_sec=5.0)
            return
        add = {"image": self._sync.add_image, "camera_info": self._sync.add_info, "points": self._sync.add_cloud}
        frames = []
        if with_file_info:  # the calibration file as this image's camera_info
            info = camera_to_camera_info(self._file_camera, stamp, frame_id, RclpyMessages())
            frames += self._sync.add_info(stamp, serialize_message(info))
        frames += add[kind](stamp, bytes(raw))
        self.stats.drops_from_totals(self._sync.drops)
        self._submit(frames)

    def _record(self, frames: list[SyncedFrame]) -> None:
        for frame in frames:
            if self.failed is not None:
                return
            stamp = frame.image.stamp_ns
            if self._last_sample_ns is not None and stamp - self._last_sample_ns < self.p["min_interval"] * NS_PER_S:
                self.stats.drop("min_interval")
                continue
            try:
                self._maybe_split(stamp)
                for kind, part in (("camera_info", frame.info), ("points", frame.cloud), ("image", frame.image)):
                    self._write_once(kind, part.stamp_ns, part.payload)
                self._writer.sync()  # on disk before it counts as recorded: a kill -9 loses no accepted sample
            except (OSError, InputError) as err:
                self._stop(f"cannot write to {self.bags[-1]}: {self._why_write_failed(err)}; the samples "
                           f"recorded so far stay in {[str(b) for b in self.bags]}")
                self.stats.drop("write_failed")
                return
            self._last_sample_ns = stamp
            self.stats.count("recorded")

    def _why_write_failed(self, err: BaseException) -> str:
        """The likely cause of a failed write, from the error and the state of the output directory."""
        cause = err if isinstance(err, OSError) else err.__cause__
        if not self._dir.is_dir():
            return f"{err} (the output directory {self._dir} was removed while recording)"
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return f"{err} (the disk is full)"
        if isinstance(cause, OSError) and cause.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{err} (the output directory is not writable)"
        return str(err)

    def _write_once(self, kind: str, stamp_ns: int, raw: bytes) -> None:
        """Write one message unless this bag already has it (a sweep shared by two images)."""
        topic = self._topic_name(kind)
        if self._written.get(topic) == stamp_ns:
            return
        self._writer.write_raw(topic, raw, stamp_ns)
        self._written[topic] = stamp_ns
        self._bag_bytes += len(raw)

    def _maybe_split(self, stamp_ns: int) -> None:
        """Close the bag and open the next when it is over the size or duration limit."""
        if not self._bag_start_ns:
            self._bag_start_ns = stamp_ns
        size_mb, duration = self.p["max_bag_size_mb"], self.p["max_bag_duration"]
        too_big = size_mb > 0 and self._bag_bytes >= size_mb * 2**20
        too_long = duration > 0 and stamp_ns - self._bag_start_ns >= duration * NS_PER_S
        if too_big or too_long:
            writer, self._writer = self._writer, None
            writer.__exit__(None, None, None)
            self._open_bag()
            self._bag_start_ns = stamp_ns


def main(args: list[str] | None = None) -> int:
    """Console entry point ``recorder_node``: 0 after a clean stop, 1 when writing failed, 2 on bad parameters."""
    return run_until_signal(RecorderNode, args)


if __name__ == "__main__":
    sys.exit(main())
