"""``depth_node``: camera image + camera_info (+ LiDAR PointCloud2) -> dense depth, REP 118.

Subscribes (sensor-data QoS, keep last 1): ``image`` (or ``image/compressed`` with
image_transport:=compressed), ``camera_info``, ``points``. Publishes with the input image's
header: ``depth/image`` (32FC1 metres, NaN = none), ``depth/camera_info``, ``depth/points``
(organized XYZRGB), optionally ``depth/confidence``, and stats (/diagnostics, or JSON on
``depth/stats`` without diagnostic_msgs).

A lifecycle node: configure validates the parameters, loads the model once and runs a
warm-up pass; activate subscribes and starts the latest-frame worker; deactivate stops it
and frees cached GPU memory; cleanup drops the model. With ``autostart`` (default) the
node configures and activates itself. Bad parameters fail configure with a message; bad
messages are logged (throttled per kind), counted and skipped.
"""

from __future__ import annotations

import gc
import sys
import time
import traceback
from typing import Any

import rclpy
import torch
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from mf_core.errors import InputError
from mf_ros import conversions as conv
from mf_ros.depth_pipeline import DEVICES, NODE_MODES, DepthPipeline, FrameError, PipelineOptions, load_estimator
from mf_ros.heap import keep_heap_memory
from mf_ros.nodes.extrinsics import ExtrinsicSource, extrinsic_from_values
from mf_ros.nodes.latest_frame import LatestFrameWorker
from mf_ros.nodes.params import QOS_RELIABILITY, Param, declare_and_read, processing_size
from mf_ros.nodes.stamp_sync import Stamped, StampSync, SyncedFrame
from mf_ros.nodes.stats import NodeStats, StatsPublisher

PARAMS = (
    Param("model", "default",
          "'default' (the shipped model), a checkpoint folder, or a registry size (e.g. MF-XS) = RANDOM weights"),
    Param("device", "cpu", "torch device", choices=DEVICES),
    Param("mode", "conditioned", "how LiDAR makes depth metric (conditioned suits the shipped model)",
          choices=NODE_MODES),
    Param("steps", 1, "sampler steps (1 = one forward pass)", 1, 50),
    Param("seed", 0, "sampler noise seed", 0, 2**31 - 1),
    Param("processing_width", 0, "model input width in pixels (0 with height 0 = input size)", 0, 4096),
    Param("processing_height", 0, "model input height in pixels (0 with width 0 = input size)", 0, 4096),
    Param("use_lidar", True, "pair frames with LiDAR; false publishes relative (unit-mean) depth"),
    Param("slop", 0.05, "largest |t_lidar - t_image| in seconds for a pair", 0.0, 1.0),
    Param("queue_size", 5, "frames / sweeps held while pairing", 1, 100),
    Param("extrinsic", None, "T_camera_from_lidar: x y z qx qy qz qw or 16 row-major values; unset = TF"),
    Param("camera_frame", "", "TF frame of the camera (empty = the image header's frame_id)"),
    Param("lidar_frame", "", "TF frame of the LiDAR (empty = the cloud header's frame_id)"),
    Param("tf_timeout", 0.05, "seconds to wait for TF at the LiDAR stamp", 0.0, 5.0),
    Param("image_topic", "image", "input image topic"),
    Param("image_transport", "raw", "raw Image, or CompressedImage on <image_topic>/compressed",
          choices=("raw", "compressed")),
    Param("camera_info_topic", "camera_info", "input camera_info topic"),
    Param("points_topic", "points", "input LiDAR PointCloud2 topic"),
    Param("output_namespace", "depth", "outputs go to <ns>/image, <ns>/camera_info, <ns>/points, ..."),
    Param("max_range", 0.0, "depth/image and depth/points have no depth (NaN) farther than this (metres; 0 = no "
          "cap beyond the LiDAR-support rule)", 0.0, 10000.0),
    Param("stride", 1, "depth/points keeps every stride-th row and column", 1, 64),
    Param("max_pixels", PipelineOptions.max_pixels, "images over this many pixels are dropped as too_large",
          1, 2**31 - 1),
    Param("max_points", PipelineOptions.max_points, "LiDAR clouds with more points are dropped as too_large",
          1, 2**31 - 1),
    Param("publish_confidence", False, "also publish <ns>/confidence (32FC1 in [0, 1]; model modes only)"),
    Param("qos_reliability", "best_effort", "input QoS reliability", choices=QOS_RELIABILITY),
    Param("stats_period", 1.0, "seconds between stats messages", 0.1, 60.0),
    Param("warn_period", 5.0, "seconds between repeated warnings of one kind", 0.0, 3600.0),
    Param("autostart", True, "configure and activate at start (false: wait for lifecycle transitions)"),
)

# Output QoS: reliable keep-last-1 matches reliable (RViz, rosbag) and best-effort subscribers.
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
MAX_PLAUSIBLE_LATENCY_MS = 60_000.0  # an image older than this (or from the future) is on another clock
WARM_UP_SIZE = (480, 640)  # (height, width) when the processing size follows the input


def _message_filters() -> Any:
    """The system message_filters, or None where it is not installed (PyPI wheels: our StampSync)."""
    try:
        import message_filters
    except ImportError:
        return None
    return message_filters


def _free_gpu_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class DepthNode(LifecycleNode):
    """The depth node; ``config_error`` holds why configure failed (None when it did not)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("depth_node", **kwargs)
        self.stats = NodeStats()
        self.config_error: str | None = None
        self.p: dict[str, Any] = {}
        try:
            self.p = declare_and_read(self, PARAMS)
        except InputError as err:
            self.config_error = str(err)
        self._pipeline: DepthPipeline | None = None
        self._worker: LatestFrameWorker | None = None
        self._sync: StampSync | None = None
        self._inputs: list[Any] = []
        self._outputs: dict[str, Any] = {}
        self._stats_publisher: StatsPublisher | None = None
        self._stats_timer = None
        self._extrinsics: ExtrinsicSource | None = None
        self._last_warning: dict[str, float] = {}
        self._traced: set[str] = set()  # exception kinds already logged with a traceback

    # ------------------------------------------------------------------ lifecycle

    def _configure(self) -> None:
        """Validate parameters, load the model, warm it up, create publishers (InputError on a bad setting)."""
        if self.config_error:
            raise InputError(self.config_error)
        p = self.p
        size = processing_size(p["processing_width"], p["processing_height"])
        static = extrinsic_from_values(p["extrinsic"])
        if p["mode"] == "classical" and not p["use_lidar"]:
            raise InputError("mode 'classical' completes LiDAR depth and needs use_lidar:=true")
        options = PipelineOptions(p["mode"], p["steps"], p["seed"], p["max_range"], p["stride"],
                                  p["publish_confidence"], p["max_pixels"], p["max_points"])
        estimator = None
        if p["mode"] != "classical":
            if not p["model"]:
                raise InputError("parameter 'model' is empty; set it to 'default' (the shipped model), a "
                                 "checkpoint folder, or MF-XS for a random-weight test model")
            estimator = load_estimator(p["model"], p["device"], size)
        self._pipeline = DepthPipeline(options, estimator, conv.RclpyMessages())
        start = time.perf_counter()
        height, width = size or WARM_UP_SIZE
        self._pipeline.warm_up(width, height, p["use_lidar"])
        self.get_logger().info(f"mode {p['mode']}, model {p['model'] or '-'} on {p['device']}; warm-up "
                               f"{1000 * (time.perf_counter() - start):.0f} ms")
        if p["use_lidar"] and static is None:
            self._extrinsics = ExtrinsicSource(self, None, p["tf_timeout"])
            if not self._extrinsics.uses_tf:
                self.get_logger().warning("tf2_ros is not installed and 'extrinsic' is unset: the LiDAR must be "
                                          "in the camera frame, else frames are dropped as missing_tf")
        else:
            self._extrinsics = ExtrinsicSource(self, static, p["tf_timeout"])
        ns = p["output_namespace"].rstrip("/")
        kinds = {"image": Image, "camera_info": CameraInfo, "points": PointCloud2}
        if p["publish_confidence"]:
            kinds["confidence"] = Image
        self._outputs = {k: self.create_publisher(cls, f"{ns}/{k}", OUTPUT_QOS) for k, cls in kinds.items()}
        self._stats_publisher = StatsPublisher(self, self.stats, f"{ns}/stats")
        self._stats_timer = self.create_timer(p["stats_period"], self._stats_publisher.publish)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except InputError as err:
            self.config_error = str(err)
            self.get_logger().error(f"cannot start: {err}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.p
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, durability=DurabilityPolicy.VOLATILE,
                         reliability=ReliabilityPolicy.BEST_EFFORT if p["qos_reliability"] == "best_effort"
                         else ReliabilityPolicy.RELIABLE)
        compressed = p["image_transport"] == "compressed"
        image_type, image_topic = (CompressedImage, f"{p['image_topic']}/compressed") if compressed \
            else (Image, p["image_topic"])
        self._worker = LatestFrameWorker(self._process, lambda _: self.stats.drop("replaced"))
        topics = [(image_type, image_topic, "image"), (CameraInfo, p["camera_info_topic"], "camera_info")]
        if p["use_lidar"]:
            topics.append((PointCloud2, p["points_topic"], "points"))
        filters = _message_filters()
        if filters is not None:
            self._subscribe_message_filters(filters, topics, qos)
        else:
            self._sync = StampSync(round(p["slop"] * 1e9), p["use_lidar"], p["queue_size"])
            for cls, topic, kind in topics:
                self._inputs.append(self.create_subscription(
                    cls, topic, lambda msg, kind=kind: self._on_message(kind, msg), qos))
        self.get_logger().info(f"listening on {[t for _, t, _ in topics]} "
                               f"({'message_filters' if filters else 'own'} sync, slop {p['slop']} s)")
        return TransitionCallbackReturn.SUCCESS

    def _subscribe_message_filters(self, filters: Any, topics: list[tuple[type, str, str]], qos: QoSProfile) -> None:
        """Pair with the system ApproximateTimeSynchronizer; it does not report why a frame did not pair."""
        subscribers = [filters.Subscriber(self, cls, topic, qos_profile=qos) for cls, topic, _ in topics]
        for subscriber, (_, _, kind) in zip(subscribers, topics, strict=True):
            subscriber.registerCallback(lambda _msg, kind=kind: self.stats.count(f"received_{kind}"))
        sync = filters.ApproximateTimeSynchronizer(subscribers, self.p["queue_size"], self.p["slop"])
        sync.registerCallback(self._on_filtered)
        self._inputs = [s.sub for s in subscribers]

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        _free_gpu_cache()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def _stop_inputs(self) -> None:
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def _release(self) -> None:
        """Drop publishers, timers and the model; free cached GPU memory."""
        if self._stats_timer is not None:
            self.destroy_timer(self._stats_timer)
            self._stats_timer = None
        if self._stats_publisher is not None:
            self._stats_publisher.destroy()
            self._stats_publisher = None
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs = {}
        self._pipeline = None
        gc.collect()
        _free_gpu_cache()

    def close(self) -> None:
        """Stop inputs and the worker, drop the model and publishers (before destroy_node)."""
        self._stop_inputs()
        self._release()

    def start(self) -> bool:
        """Configure and activate (the ``autostart`` path); False when configure failed."""
        if self.config_error is None and not self.p["autostart"]:
            return True
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ input

    def _on_message(self, kind: str, msg: Any) -> None:
        """Feed one input message to the synchroniser and hand completed frames to the worker."""
        self.stats.count(f"received_{kind}")
        add = {"image": self._sync.add_image, "camera_info": self._sync.add_info,
               "points": self._sync.add_cloud}[kind]
        frames = add(conv.header_stamp_ns(msg), msg)
        for reason in self.stats.drops_from_totals(self._sync.drops):
            self._warn(reason, f"frame dropped: {reason.replace('_', ' ')} (slop {self.p['slop']} s)")
        for frame in frames:
            self.stats.count("synced")
            self._worker.submit(frame)

    def _on_filtered(self, image: Any, info: Any, cloud: Any = None) -> None:
        self.stats.count("synced")
        self._worker.submit(SyncedFrame(Stamped(conv.header_stamp_ns(image), image),
                                        Stamped(conv.header_stamp_ns(info), info),
                                        None if cloud is None else Stamped(conv.header_stamp_ns(cloud), cloud)))

    def _warn(self, kind: str, text: str) -> None:
        """Log a warning at most once per ``warn_period`` for each kind."""
        now = time.monotonic()
        if now - self._last_warning.get(kind, -float("inf")) >= self.p["warn_period"]:
            self._last_warning[kind] = now
            self.get_logger().warning(f"{text} [{self.stats.drops[kind] or self.stats.counts[kind]} so far]")

    # ------------------------------------------------------------------ worker thread

    def _process(self, frame: SyncedFrame) -> None:
        """Run the pipeline on one synced frame and publish; never raises (the worker must survive)."""
        start = time.perf_counter()
        try:
            image, info, cloud = frame.image.payload, frame.info.payload, frame.cloud
            T = None
            if cloud is not None:
                camera_frame = self.p["camera_frame"] or image.header.frame_id
                lidar_frame = self.p["lidar_frame"] or cloud.payload.header.frame_id
                T = self._extrinsics.lookup(camera_frame, lidar_frame, cloud.stamp_ns)
            pipeline = self._pipeline
            if pipeline is None:
                return
            out = pipeline.process(image, info, None if cloud is None else cloud.payload, T)
            publish_start = time.perf_counter()
            publishers = self._outputs
            publishers["image"].publish(out.depth)
            publishers["camera_info"].publish(out.camera_info)
            publishers["points"].publish(out.points)
            if out.confidence is not None and "confidence" in publishers:
                publishers["confidence"].publish(out.confidence)
            out.timings["publish"] = 1000 * (time.perf_counter() - publish_start)
        except FrameError as err:
            self.stats.drop(err.kind)
            self._warn(err.kind, str(err))
            return
        except InputError as err:
            self.stats.drop("bad_input")
            self._warn("bad_input", f"frame skipped: {err}")
            return
        except Exception as err:  # any other failure: the node must survive the frame; logged and counted
            self.stats.drop("error")
            self._warn("error", f"frame failed: {type(err).__name__}: {err}")
            if type(err).__name__ not in self._traced:  # the first of each kind with its traceback, to debug it
                self._traced.add(type(err).__name__)
                self.get_logger().error(f"first {type(err).__name__} in a frame:\n{traceback.format_exc()}")
            return
        if not out.metric:
            self.get_logger().warning("no LiDAR: publishing RELATIVE depth (unit mean), not metres", once=True)
        out.timings["total"] = 1000 * (time.perf_counter() - start)
        age_ms = (self.get_clock().now().nanoseconds - frame.image.stamp_ns) / 1e6
        if 0 <= age_ms <= MAX_PLAUSIBLE_LATENCY_MS:
            out.timings["latency"] = age_ms
        else:  # a stamp from another clock would swamp the latency statistics: counted, not timed
            self.stats.count("stamp_off_clock")
            self._warn("stamp_off_clock", f"image stamp is {age_ms / 1000:.3g} s from the node's clock: latency not "
                       "recorded (camera clock not synchronised, or use_sim_time wrong?)")
        self.stats.time(out.timings)
        self.stats.count("published")


def main(args: list[str] | None = None) -> int:
    """Console entry point ``depth_node``; exit code 2 when the parameters are bad."""
    heap_kept = keep_heap_memory()  # before the first frame: steady-state frames then reuse memory
    rclpy.init(args=args)
    node = DepthNode()
    if not heap_kept:
        node.get_logger().info("not glibc: allocator left as is (large per-frame buffers may page-fault)")
    code = 0
    try:
        if node.start():
            rclpy.spin(node)
        else:
            code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
