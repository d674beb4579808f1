"""``recorder_node``: records synchronized training samples into rosbag2 MCAP bags.

Each image that pairs with a camera_info and a LiDAR sweep under the depth node's sync
policy (:mod:`mf_ros.nodes.stamp_sync`) is written with them as the raw CDR bytes received
(no re-encoding), plus /tf_static, readable by ``ros2 bag info``, rosbags and
``training.data.bag_samples``. Samples closer than ``min_interval`` to the last one are
skipped (a robot standing still); bags are split into ``<prefix>_<time>_<k>`` directories
by ``max_bag_size_mb`` / ``max_bag_duration``.

Data safety: SIGINT / SIGTERM close the bag with every accepted sample in it (pending
images are paired first). A hard kill (SIGKILL, power loss) leaves the MCAP file without
its summary and the bag without metadata.yaml: rosbags' MCAP writer buffers messages in
chunks of 1 MiB, so the messages after the last completed chunk (under 1 MiB, at most one
640x480 sample) are lost; the chunks before it read with ``mcap`` or ``mcap recover``.
An unwritable directory or a full disk is logged, recording stops, the node exits with
code 1 and the files written so far are left as they are.

/tf_static: recorded from the topic where tf2_msgs imports (a ROS install); without it
(PyPI wheels, docs ROS.md) the ``extrinsic`` parameter is written as a static transform
``camera_frame`` <- ``lidar_frame``.
"""

from __future__ import annotations

import errno
import struct
import sys
import time
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from mf_core.errors import InputError
from mf_ros.bags import BagWriter
from mf_ros.conversions import NS_PER_S, TfEdge, edges_to_tf_message, rosbags_messages
from mf_ros.nodes.extrinsics import extrinsic_from_values
from mf_ros.nodes.params import QOS_RELIABILITY, Param, declare_and_read
from mf_ros.nodes.stamp_sync import StampSync, SyncedFrame
from mf_ros.nodes.stats import NodeStats, StatsPublisher

PARAMS = (
    Param("output_dir", "", "directory the bags are created in (made if missing)"),
    Param("bag_prefix", "mf_samples", "bag directory name prefix"),
    Param("image_topic", "image", "camera image topic (sensor_msgs/Image)"),
    Param("camera_info_topic", "camera_info", "camera_info topic"),
    Param("points_topic", "points", "LiDAR PointCloud2 topic"),
    Param("slop", 0.05, "largest |t_lidar - t_image| in seconds for a sample", 0.0, 1.0),
    Param("queue_size", 5, "frames / sweeps held while pairing", 1, 100),
    Param("min_interval", 0.0, "seconds between recorded samples (skip near-duplicates)", 0.0, 3600.0),
    Param("max_bag_size_mb", 0.0, "start a new bag after this many MiB (0 = never)", 0.0, 1e6),
    Param("max_bag_duration", 0.0, "start a new bag after this many seconds of stamps (0 = never)", 0.0, 1e6),
    Param("extrinsic", None, "T_camera_from_lidar (x y z qx qy qz qw or 16 values) written to /tf_static"),
    Param("camera_frame", "camera_optical_frame", "parent frame of the 'extrinsic' static transform"),
    Param("lidar_frame", "lidar", "child frame of the 'extrinsic' static transform"),
    Param("qos_reliability", "reliable", "input QoS reliability (reliable: no sample lost on the wire)",
          choices=QOS_RELIABILITY),
    Param("stats_period", 1.0, "seconds between stats messages (JSON on recorder/stats)", 0.1, 60.0),
)
TOPIC_TYPES = {"image": "sensor_msgs/msg/Image", "camera_info": "sensor_msgs/msg/CameraInfo",
               "points": "sensor_msgs/msg/PointCloud2"}
TF_STATIC = "/tf_static"


def cdr_header_stamp_ns(raw: bytes) -> int:
    """Header stamp (ns) of a serialized stamped message: its first field is std_msgs/Header.

    Layout: 4-byte encapsulation (byte 1: 1 = little, 0 = big endian), int32 sec, uint32 nanosec.
    """
    if len(raw) < 12:
        raise InputError(f"serialized message of {len(raw)} bytes is too short for a header")
    order = "<" if raw[1] & 1 else ">"
    sec, nanosec = struct.unpack_from(f"{order}iI", raw, 4)
    return sec * NS_PER_S + nanosec


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
        self.p = declare_and_read(self, PARAMS)
        self.stats = NodeStats()
        self.failed: str | None = None
        self.bags: list[Path] = []
        out = self.p["output_dir"]
        if not out:
            raise InputError("parameter 'output_dir' is empty; set it to the directory for the bags")
        self._static_cdr: list[bytes] = []
        static = extrinsic_from_values(self.p["extrinsic"])
        if static is not None:
            edge = TfEdge(self.p["camera_frame"], self.p["lidar_frame"], 0, static)
            messages = rosbags_messages()
            self._static_cdr.append(bytes(messages.typestore.serialize_cdr(
                edges_to_tf_message([edge], messages), "tf2_msgs/msg/TFMessage")))
        self._dir = Path(out)
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot create output_dir {self._dir}: {err}; choose a writable directory") from err
        self._sync = StampSync(round(self.p["slop"] * 1e9), True, self.p["queue_size"])
        self._writer: BagWriter | None = None
        self._has_tf_static = False
        self._bag_bytes = 0
        self._bag_start_ns = 0
        self._last_sample_ns: int | None = None
        self._written: dict[str, int] = {}  # topic -> stamp of the last message written (no duplicates)
        self._open_bag()
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.p["queue_size"],
                         durability=DurabilityPolicy.VOLATILE,
                         reliability=ReliabilityPolicy.RELIABLE if self.p["qos_reliability"] == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT)
        for kind, cls in (("image", Image), ("camera_info", CameraInfo), ("points", PointCloud2)):
            self.create_subscription(cls, self.p[f"{kind}_topic"], lambda raw, k=kind: self._on_raw(k, raw), qos,
                                     raw=True)
        tf2 = _tf2_msgs()
        if tf2 is not None:
            latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.create_subscription(tf2.TFMessage, TF_STATIC, self._on_tf_static, latched, raw=True)
        self._stats_publisher = StatsPublisher(self, self.stats, "recorder/stats")
        self.create_timer(self.p["stats_period"], self._stats_publisher.publish)
        self.get_logger().info(f"recording synced samples of {[self.p[f'{k}_topic'] for k in TOPIC_TYPES]} "
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
        for topic, msgtype in TOPIC_TYPES.items():
            writer.add_topic(self._topic_name(topic), msgtype)
        for cdr in self._static_cdr:
            self._write_tf_static(cdr)

    def _write_tf_static(self, cdr: bytes) -> None:
        """Add a /tf_static message to the current bag (log time: now)."""
        if not self._has_tf_static:
            self._writer.add_topic(TF_STATIC, "tf2_msgs/msg/TFMessage")
            self._has_tf_static = True
        self._writer.write_raw(TF_STATIC, cdr, self.get_clock().now().nanoseconds)

    def _topic_name(self, kind: str) -> str:
        """The recorded (absolute) name of an input topic."""
        return self.resolve_topic_name(self.p[f"{kind}_topic"])

    def close(self) -> None:
        """Pair what is still pending, then close the current bag (metadata.yaml, MCAP summary)."""
        if self._writer is None:
            return
        if self.failed is None:
            self._record(self._sync.flush())
        writer, self._writer = self._writer, None
        try:
            writer.__exit__(None, None, None)
        except OSError as err:
            self._stop(f"closing {writer.path} failed: {self._why_write_failed(err)}; its completed chunks "
                       "stay readable with `mcap recover` (the separate mcap CLI)")

    def _stop(self, why: str) -> None:
        self.failed = why
        self.get_logger().error(f"recording stopped: {why}")

    # ------------------------------------------------------------------ input

    def _on_tf_static(self, raw: bytes) -> None:
        self._static_cdr.append(bytes(raw))
        if self._writer is not None and self.failed is None:
            self._write_tf_static(bytes(raw))

    def _on_raw(self, kind: str, raw: bytes) -> None:
        if self.failed is not None:
            return
        self.stats.count(f"received_{kind}")
        try:
            stamp = cdr_header_stamp_ns(raw)
        except InputError as err:
            self.stats.drop("bad_message")
            self.get_logger().warning(f"{kind} skipped: {err}", throttle_duration_sec=5.0)
            return
        add = {"image": self._sync.add_image, "camera_info": self._sync.add_info, "points": self._sync.add_cloud}
        frames = add[kind](stamp, bytes(raw))
        self.stats.drops_from_totals(self._sync.drops)
        self._record(frames)

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
            except (OSError, InputError) as err:
                self._stop(f"cannot write to {self.bags[-1]}: {self._why_write_failed(err)}; the samples "
                           f"recorded so far stay in {[str(b) for b in self.bags]}")
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
    rclpy.init(args=args)
    try:
        node = RecorderNode()
    except InputError as err:
        print(f"recorder_node: cannot start: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        while rclpy.ok() and node.failed is None:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        node.get_logger().info(f"{node.stats.counts['recorded']} samples in {[str(b) for b in node.bags]}")
        node.destroy_node()
        rclpy.try_shutdown()
    return 1 if node.failed else 0


if __name__ == "__main__":
    sys.exit(main())
