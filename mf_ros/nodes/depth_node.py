"""``depth_node``: camera image + camera_info (+ LiDAR PointCloud2) -> dense depth, REP 118.

Subscribes (keep last ``queue_size``, best effort by default: it matches reliable and
best-effort publishers): ``image`` (or ``<image>/compressed`` with image_transport:=compressed,
following remappings), ``camera_info``, ``points``. Publishes with the input image's header:
``depth/image`` (32FC1 metres, NaN = no depth: sky, beyond ``max_range``), ``depth/camera_info``,
``depth/points`` (organized XYZRGB, NaN = none), optionally ``depth/confidence``;
``depth/colormap`` (rgb8, for RViz) only while someone subscribes to it. Without LiDAR
(use_lidar:=false) the depth is relative (unit mean) and goes to ``depth/relative`` only.
Stats: JSON on ``depth/stats`` always, plus /diagnostics with OK/WARN/ERROR where
diagnostic_msgs is installed.

A lifecycle node: configure validates the parameters, loads the model once and runs a
warm-up pass and creates the (lifecycle) publishers; activate subscribes and starts the
latest-frame worker; deactivate unsubscribes, so nothing is computed or published while
inactive; cleanup drops the model. With ``autostart`` (default) the node configures and
activates itself; with ``lazy`` it skips inference while nobody subscribes. Parameters marked
runtime (steps, seed, slop, max_range, stride, lazy, warn_period) change with ``ros2 param set``;
the others are read-only. Bad parameters fail configure with a message; bad messages are logged
(throttled per kind), counted and skipped.
"""

from __future__ import annotations

import gc
import sys
import time
import traceback
from dataclasses import replace
from typing import Any

import torch
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from mf_core.errors import InputError
from mf_ros import conversions as conv
from mf_ros.calibration import read_camera_calibration
from mf_ros.depth_pipeline import DepthPipeline, FrameError, PipelineOptions, load_estimator
from mf_ros.extrinsics import parse_extrinsic
from mf_ros.heap import keep_heap_memory
from mf_ros.nodes.inputs import InputSubscriptions
from mf_ros.nodes.latest_frame import LatestFrameWorker
from mf_ros.nodes.lifetime import run_until_signal
from mf_ros.nodes.params import declare_and_read, watch_runtime_parameters
from mf_ros.nodes.stats import NodeStats, StatsPublisher
from mf_ros.nodes.tf_source import ExtrinsicSource
from mf_ros.options import DEPTH_NODE_OPTIONS, processing_size
from mf_ros.sync import DROP_REASONS, StampSync, SyncedFrame

# Output QoS: reliable keep-last-1 matches reliable (RViz, rosbag) and best-effort subscribers.
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
MAX_PLAUSIBLE_LATENCY_MS = 60_000.0  # an image older than this (or from the future) is on another clock
WARM_UP_SIZE = (480, 640)  # (height, width) when the processing size follows the input


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
            self.p = declare_and_read(self, DEPTH_NODE_OPTIONS)
        except InputError as err:
            self.config_error = str(err)
        self._pipeline: DepthPipeline | None = None
        self._worker: LatestFrameWorker | None = None
        self._sync: StampSync | None = None
        self._inputs: InputSubscriptions | None = None
        self._outputs: dict[str, Any] = {}
        self._stats_publisher: StatsPublisher | None = None
        self._stats_timer = None
        self._extrinsics: ExtrinsicSource | None = None
        self._file_camera = None  # the camera_info_file's camera, when the camera publishes no camera_info
        self._last_warning: dict[str, float] = {}
        self._traced: set[str] = set()  # exception kinds already logged with a traceback
        watch_runtime_parameters(self, DEPTH_NODE_OPTIONS, self.p, self._apply_runtime_parameters)

    # ------------------------------------------------------------------ lifecycle

    def _configure(self) -> None:
        """Validate parameters, load the model, warm it up, create publishers (InputError on a bad setting)."""
        if self.config_error:
            raise InputError(self.config_error)
        p = self.p
        size = processing_size(p["processing_width"], p["processing_height"])
        static = parse_extrinsic(p["extrinsic"], "parameter 'extrinsic'")
        if p["mode"] == "classical" and not p["use_lidar"]:
            raise InputError("mode 'classical' completes LiDAR depth and needs use_lidar:=true")
        self._file_camera = read_camera_calibration(p["camera_info_file"]) if p["camera_info_file"] else None
        options = PipelineOptions(p["mode"], p["steps"], p["seed"], p["max_range"], p["stride"],
                                  p["confidence"], p["max_pixels"], p["max_points"])
        estimator = None
        self.get_logger().info(f"starting: mode {p['mode']}, model {p['model'] if p['mode'] != 'classical' else '-'}")
        if p["mode"] != "classical":
            if not p["model"]:
                raise InputError("parameter 'model' is empty; set it to 'default' (the shipped model), a "
                                 "checkpoint folder, or MF-XS for a random-weight test model")
            estimator = load_estimator(p["model"], p["device"], size, p["onnx_model"], p["nearest_share"])
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
        kinds = {"image": Image, "camera_info": CameraInfo, "points": PointCloud2} if p["use_lidar"] \
            else {"relative": Image, "camera_info": CameraInfo}  # relative depth never on the metric topic
        kinds["colormap"] = Image
        if p["confidence"]:
            kinds["confidence"] = Image
        self._outputs = {k: self.create_lifecycle_publisher(cls, f"{ns}/{k}", OUTPUT_QOS)
                         for k, cls in kinds.items()}
        self._stats_publisher = StatsPublisher(
            self, self.stats, f"{ns}/stats", lambda: self._inputs.publisher_counts() if self._inputs else {})
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
        image_type, image_topic = Image, p["image_topic"]
        if p["image_transport"] == "compressed":  # image_transport's name: the remapped image topic + /compressed
            image_type, image_topic = CompressedImage, self.resolve_topic_name(p["image_topic"]) + "/compressed"
        self._worker = LatestFrameWorker(self._process, lambda _: self.stats.drop("replaced"))
        topics = [(image_type, image_topic, "image")]
        if self._file_camera is None:
            topics.append((CameraInfo, p["camera_info_topic"], "camera_info"))
        if p["use_lidar"]:
            topics.append((PointCloud2, p["points_topic"], "points"))
        self._sync = StampSync(round(p["slop"] * 1e9), p["use_lidar"], p["queue_size"])
        self._inputs = InputSubscriptions(self, p["qos_reliability"], p["queue_size"])
        for cls, topic, kind in topics:
            self._inputs.add(cls, topic, lambda msg, kind=kind: self._on_message(kind, msg))
        self.get_logger().info(f"listening on {self._inputs.describe()} (slop {p['slop']} s)")
        return super().on_activate(state)

    def _apply_runtime_parameters(self) -> None:
        """Make changed runtime parameters take effect on the running pipeline and sync."""
        if self._pipeline is not None:
            self._pipeline.options = replace(self._pipeline.options, steps=self.p["steps"], seed=self.p["seed"],
                                             max_range=self.p["max_range"], stride=self.p["stride"])
        if self._sync is not None:
            self._sync.slop_ns = round(self.p["slop"] * 1e9)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        _free_gpu_cache()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def _stop_inputs(self) -> None:
        if self._inputs is not None:
            self._inputs.destroy()
            self._inputs = None
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
            self.destroy_lifecycle_publisher(publisher)
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
        stamp = conv.header_stamp_ns(msg)
        frames = []
        if kind == "image" and self._file_camera is not None:  # the calibration file as this image's camera_info
            frames += self._sync.add_info(stamp, conv.camera_to_camera_info(self._file_camera, stamp,
                                                                            msg.header.frame_id, conv.RclpyMessages()))
        frames += add(stamp, msg)
        for reason in self.stats.drops_from_totals(self._sync.drops):
            self._warn(reason, f"frame dropped: {DROP_REASONS.get(reason, reason.replace('_', ' '))} "
                               f"(slop {self.p['slop']} s)")
        for frame in frames:
            self.stats.count("synced")
            self._worker.submit(frame)

    def _warn(self, kind: str, text: str) -> None:
        """Log a warning at most once per ``warn_period`` for each kind."""
        now = time.monotonic()
        if now - self._last_warning.get(kind, -float("inf")) >= self.p["warn_period"]:
            self._last_warning[kind] = now
            self.get_logger().warning(f"{text} [{self.stats.drops[kind] or self.stats.counts[kind]} so far]")

    # ------------------------------------------------------------------ worker thread

    def _process(self, frame: SyncedFrame) -> None:
        """Run the pipeline on one synced frame and publish; never raises (the worker must survive)."""
        if self.p["lazy"] and not any(pub.get_subscription_count() for pub in self._outputs.values()):
            self.stats.drop("no_subscribers")  # nobody would see it: no inference
            return
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
            publishers["image" if out.metric else "relative"].publish(out.depth)
            publishers["camera_info"].publish(out.camera_info)
            if out.points is not None:
                publishers["points"].publish(out.points)
            if out.confidence is not None and "confidence" in publishers:
                publishers["confidence"].publish(out.confidence)
            if publishers["colormap"].get_subscription_count():  # a debug view: only made when watched
                publishers["colormap"].publish(pipeline.colormap(out))
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
            self.get_logger().warning("no LiDAR: publishing RELATIVE depth (unit mean), not metres, on "
                                      f"{self._outputs['relative'].topic_name}", once=True)
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
    """Console entry point ``depth_node``: 0 after SIGINT / SIGTERM, 2 when the parameters are bad."""
    heap_kept = keep_heap_memory()  # before the first frame: steady-state frames then reuse memory

    def make() -> DepthNode:
        node = DepthNode()
        if not heap_kept:
            node.get_logger().info("not glibc: allocator left as is (large per-frame buffers may page-fault)")
        return node

    return run_until_signal(make, args)


if __name__ == "__main__":
    sys.exit(main())
