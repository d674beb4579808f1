"""depth_node in-process over real rclpy: sim camera + LiDAR in, depth image / camera_info / cloud out."""

from __future__ import annotations

import copy
import json
import time

import numpy as np
import psutil
import pytest

rclpy = pytest.importorskip("rclpy")

from helpers import calibration_yaml, png_header_claiming, random_model, sim_bag_as_rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from mf_core.completion import complete_classical  # noqa: E402
from mf_core.errors import InputError  # noqa: E402
from mf_core.geometry import points_to_depth_map  # noqa: E402
from mf_core.lidar_support import lidar_support  # noqa: E402
from mf_core.transforms import to_quaternion  # noqa: E402
from mf_ros import conversions as conv  # noqa: E402
from mf_ros.nodes.depth_node import DepthNode  # noqa: E402

RCLPY = conv.RclpyMessages()
TYPES = {"/camera/image_raw": Image, "/camera/camera_info": CameraInfo, "/lidar/points": PointCloud2}
QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
MODEL = [Parameter("model", value="MF-XS"), Parameter("processing_width", value=64),
         Parameter("processing_height", value=48)]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """Frames of a real simulated bag as rclpy messages, plus T_camera_from_lidar from its /tf_static."""
    frames, T = sim_bag_as_rclpy(tmp_path_factory.mktemp("sim"), 5, TYPES)
    (w, x, y, z), t = to_quaternion(T)
    return {"images": frames["/camera/image_raw"], "infos": frames["/camera/camera_info"],
            "clouds": frames["/lidar/points"], "T": T, "extrinsic": [*map(float, t), x, y, z, w]}


@pytest.fixture(scope="module")
def context():
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


class Rig:
    """A started depth node and a test node that publishes inputs and records outputs."""

    def __init__(self, context, overrides: list[Parameter]):
        self.node = DepthNode(context=context, parameter_overrides=overrides)
        self.io = rclpy.create_node("depth_test_io", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.io)
        self.received: dict[str, list] = {"image": [], "camera_info": [], "points": [], "confidence": [],
                                          "stats": [], "relative": []}
        self.arrival: list[float] = []
        self.pubs = {k: self.io.create_publisher(cls, k, QOS)
                     for k, cls in (("image", Image), ("camera_info", CameraInfo), ("points", PointCloud2))}
        for kind, cls in (("image", Image), ("camera_info", CameraInfo), ("points", PointCloud2),
                          ("confidence", Image), ("stats", String), ("relative", Image)):
            self.io.create_subscription(cls, f"depth/{kind}", lambda m, k=kind: self._store(k, m), QOS)

    def _store(self, kind, msg):
        self.received[kind].append(msg)
        if kind == "image":
            self.arrival.append(time.monotonic())

    def start(self) -> bool:
        if not self.node.start():
            return False
        return self.spin_until(lambda: all(p.get_subscription_count() for p in self.pubs.values())
                               or not self.node.p["use_lidar"], 10)

    def spin_until(self, done, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)
        return done()

    def send(self, image, info, cloud=None) -> None:
        self.pubs["camera_info"].publish(info)
        if cloud is not None:
            self.pubs["points"].publish(cloud)
        self.pubs["image"].publish(image)

    def close(self):
        self.node.close()
        self.executor.shutdown()
        self.node.destroy_node()
        self.io.destroy_node()


@pytest.fixture
def rig(context):
    made = []

    def make(overrides):
        r = Rig(context, overrides)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def restamp(msg, stamp_ns: int, frame_id: str | None = None):
    msg.header.stamp = conv.ns_to_stamp(stamp_ns, RCLPY)
    if frame_id is not None:
        msg.header.frame_id = frame_id
    return msg


def test_classical_depth_matches_lidar_and_keeps_the_input_header(rig, sim):
    """Mode classical (IP-Basic): there is no trained checkpoint yet, and a random-weight model aligned
    by scale/shift cannot follow the scene to 5 %, so the metric check uses the LiDAR-only baseline."""
    r = rig([Parameter("mode", value="classical"), Parameter("extrinsic", value=sim["extrinsic"]),
             Parameter("stats_period", value=0.2)])
    assert r.start(), r.node.config_error
    image, info, cloud = sim["images"][1], sim["infos"][1], sim["clouds"][1]
    r.send(image, info, cloud)
    assert r.spin_until(lambda: r.received["points"] and r.received["image"] and r.received["camera_info"], 20)
    # The worker counts a frame as published after publishing it: wait for a stats message from after that.
    assert r.spin_until(lambda: r.received["stats"] and "published" in json.loads(r.received["stats"][-1].data)[
        "counts"], 5)
    depth_msg, info_msg, points_msg = r.received["image"][0], r.received["camera_info"][0], r.received["points"][0]
    for msg in (depth_msg, info_msg, points_msg):
        assert msg.header.stamp == image.header.stamp and msg.header.frame_id == image.header.frame_id
    assert depth_msg.encoding == "32FC1"
    assert conv.camera_info_to_camera(info_msg) == conv.camera_info_to_camera(info)
    depth = conv.image_to_depth(depth_msg)  # (H, W) NaN = none
    camera = conv.camera_info_to_camera(info)
    lidar = points_to_depth_map(conv.pointcloud2_to_xyz(cloud), sim["T"], camera)
    at = (lidar > 0) & np.isfinite(depth)
    assert at.sum() > 0.9 * (lidar > 0).sum()
    rel = np.abs(depth[at] - lidar[at]) / lidar[at]
    # IP-Basic dilates and blurs, so edge pixels move: the typical (median) LiDAR pixel stays within 5 %.
    assert np.median(rel) < 0.05, (np.median(rel), np.mean(rel < 0.05))
    rgb = conv.image_to_rgb(image)  # and it is exactly the baseline on the node's own projection, NaN where the
    completed = complete_classical(rgb, lidar, camera)  # LiDAR does not support it (the sky), as for the model
    expected = np.where(lidar_support(completed, lidar), completed, 0.0)
    assert 0.5 < (expected > 0).mean() < 1.0
    np.testing.assert_array_equal(np.nan_to_num(depth), expected)
    assert (points_msg.height, points_msg.width) == (120, 160)
    xyz = conv.pointcloud2_to_xyz(points_msg, drop_invalid=False).reshape(120, 160, 3)
    np.testing.assert_allclose(xyz[..., 2], depth, rtol=1e-5)
    stats = json.loads(r.received["stats"][-1].data)
    assert stats["counts"]["published"] == 1 and stats["timings"]["model"]["last_ms"] > 0
    # the sim's stamps are from 2023, years off the node's clock: counted, kept out of the latency figures
    assert stats["counts"]["stamp_off_clock"] == 1 and "latency" not in stats["timings"]


def test_an_unexpected_error_is_counted_and_logged_once_with_its_traceback(rig, sim, capfd):
    r = rig([Parameter("mode", value="classical"), Parameter("extrinsic", value=sim["extrinsic"]),
             Parameter("warn_period", value=0.0)])
    assert r.start()

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in the field")

    r.node._pipeline.process = broken
    image, info, cloud = sim["images"][0], sim["infos"][0], sim["clouds"][0]
    t0 = conv.header_stamp_ns(image)
    for i in range(2):
        stamp = t0 + i * 1_000_000_000
        r.send(restamp(image, stamp), restamp(info, stamp), restamp(cloud, stamp))
        assert r.spin_until(lambda i=i: r.node.stats.drops["error"] == i + 1, 10)
    err = capfd.readouterr().err
    assert err.count("Traceback (most recent call last)") == 1 and "ZeroDivisionError: a bug in the field" in err


def test_model_modes_publish_metric_and_relative_depth(rig, sim):
    r = rig([*MODEL, Parameter("mode", value="guided"), Parameter("extrinsic", value=sim["extrinsic"]),
             Parameter("confidence", value=True), Parameter("max_range", value=30.0),
             Parameter("stride", value=2)])
    assert r.start(), r.node.config_error
    r.send(sim["images"][0], sim["infos"][0], sim["clouds"][0])
    assert r.spin_until(lambda: r.received["points"] and r.received["confidence"], 30)
    depth = conv.image_to_depth(r.received["image"][0])
    assert depth.shape == (120, 160) and np.isfinite(depth).mean() > 0.5
    points = r.received["points"][0]
    assert (points.height, points.width) == (60, 80)
    xyz = conv.pointcloud2_to_xyz(points)
    assert xyz[:, 2].max() <= 30.0
    confidence = conv.image_to_depth(r.received["confidence"][0])
    assert np.nanmax(confidence) <= 1.0

    relative = rig([*MODEL, Parameter("use_lidar", value=False)])
    assert relative.start(), relative.node.config_error
    relative.send(sim["images"][0], sim["infos"][0])
    assert relative.spin_until(lambda: relative.received["relative"], 30)
    depth = conv.image_to_depth(relative.received["relative"][0])
    assert abs(np.nanmean(depth) - 1.0) < 0.05  # unit mean: not metres
    # relative depth never goes out on the metric topics (REP 118 consumers would take it for metres)
    assert not relative.received["image"] and not relative.received["points"]


def test_stamps_beyond_slop_give_no_output_and_a_counted_drop(rig, sim):
    r = rig([Parameter("mode", value="classical"), Parameter("extrinsic", value=sim["extrinsic"]),
             Parameter("slop", value=0.02)])
    assert r.start()
    image, info, cloud = sim["images"][0], sim["infos"][0], sim["clouds"][0]
    t = conv.header_stamp_ns(image)
    r.send(image, info, restamp(cloud, t + 300_000_000))
    assert r.spin_until(lambda: r.node.stats.drops["no_lidar_in_slop"] == 1, 10)
    r.spin_until(lambda: bool(r.received["image"]), 1.0)
    assert not r.received["image"]


def test_a_camera_without_camera_info_is_told_what_to_set(rig, sim, capfd):
    """Images that never get a camera_info are dropped as no_camera_info once the queue is full, and the warning
    names the fix (camera_info_file)."""
    r = rig([Parameter("mode", value="classical"), Parameter("extrinsic", value=sim["extrinsic"]),
             Parameter("queue_size", value=2)])
    assert r.start()
    t = conv.header_stamp_ns(sim["images"][0])
    for k in range(5):
        r.pubs["points"].publish(restamp(copy.deepcopy(sim["clouds"][0]), t + k * 100_000_000))
        r.pubs["image"].publish(restamp(copy.deepcopy(sim["images"][0]), t + k * 100_000_000))
        r.spin_until(lambda: False, 0.1)
    assert r.spin_until(lambda: r.node.stats.drops["no_camera_info"] >= 1, 10)
    warned = capfd.readouterr().err
    assert "frame dropped: no camera_info at or before the image stamp" in warned and "camera_info_file" in warned


def test_every_bad_message_kind_is_survived_and_counted(rig, sim):
    r = rig([Parameter("mode", value="classical"), Parameter("warn_period", value=0.0)])
    assert r.start()
    image, info, cloud = sim["images"][0], sim["infos"][0], sim["clouds"][0]
    t0 = conv.header_stamp_ns(image)
    camera = conv.camera_info_to_camera(info)
    lidar_in_camera = conv.xyz_to_pointcloud2(  # the sweep moved into the camera frame: no TF needed
        conv.pointcloud2_to_xyz(cloud) @ sim["T"][:3, :3].T.astype(np.float32) + sim["T"][:3, 3].astype(np.float32),
        0, image.header.frame_id, messages=RCLPY)
    nan = conv.xyz_to_pointcloud2(np.full((50, 3), np.nan, np.float32), 0, image.header.frame_id, messages=RCLPY)
    empty = conv.xyz_to_pointcloud2(np.zeros((0, 3), np.float32), 0, image.header.frame_id, messages=RCLPY)
    wrong_encoding = conv.depth_to_image(np.ones((120, 160), np.float32), 0, image.header.frame_id,
                                         messages=RCLPY)
    truncated = conv.rgb_to_image(np.zeros((120, 160, 3), np.uint8), 0, image.header.frame_id, messages=RCLPY)
    truncated.height = 121  # data no longer matches step * height
    small_info = conv.camera_to_camera_info(camera.resized(80, 60), 0, image.header.frame_id, RCLPY)
    cases = [  # (image, info, cloud, expected drop kind)
        (wrong_encoding, info, lidar_in_camera, "bad_image"),
        (truncated, info, lidar_in_camera, "bad_image"),
        (image, small_info, lidar_in_camera, "camera_info_mismatch"),
        (image, info, nan, "nan_cloud"),
        (image, info, empty, "empty_cloud"),
        (image, info, cloud, "missing_tf"),  # LiDAR frame != camera frame, no tf2_ros, no extrinsic
    ]
    for i, (img, inf, cld, kind) in enumerate(cases):
        stamp = t0 + (i + 1) * 1_000_000_000
        before = r.node.stats.drops[kind]
        r.send(restamp(img, stamp), restamp(inf, stamp), restamp(cld, stamp))
        assert r.spin_until(lambda kind=kind, before=before: r.node.stats.drops[kind] > before, 10), \
            (kind, dict(r.node.stats.drops))
    stamp = t0 + 10_000_000_000
    r.send(restamp(image, stamp), restamp(info, stamp), restamp(lidar_in_camera, stamp))
    assert r.spin_until(lambda: r.received["image"], 10), dict(r.node.stats.drops)
    assert conv.header_stamp_ns(r.received["image"][0]) == stamp
    assert r.node.stats.drops["error"] == 0


def test_flooding_keeps_latency_bounded_and_memory_flat(rig, sim):
    r = rig([*MODEL, Parameter("mode", value="guided"), Parameter("steps", value=3),
             Parameter("extrinsic", value=sim["extrinsic"])])
    assert r.start()
    image, info, cloud = sim["images"][0], sim["infos"][0], sim["clouds"][0]
    clock = r.io.get_clock()

    def send_now():
        stamp = clock.now().nanoseconds
        r.send(restamp(image, stamp), restamp(info, stamp), restamp(cloud, stamp))

    send_now()  # measure one frame's processing time
    assert r.spin_until(lambda: r.received["image"], 30)
    frame_s = r.node.stats.snapshot()["timings"]["total"]["last_ms"] / 1000
    period = frame_s / 10  # inputs at 10x the inference rate
    rss = []
    deadline = time.monotonic() + max(25 * frame_s, 4.0)
    next_send = time.monotonic()
    while time.monotonic() < deadline:
        if time.monotonic() >= next_send:
            send_now()
            next_send += period
            rss.append(psutil.Process().memory_info().rss)
        r.executor.spin_once(timeout_sec=period / 4)
    latencies = [(clock.now().nanoseconds - conv.header_stamp_ns(m)) / 1e9 for m in r.received["image"][-1:]]
    snapshot = r.node.stats.snapshot()
    assert snapshot["drops"]["replaced"] > 5  # frames replaced, not queued
    assert snapshot["timings"]["latency"]["max_ms"] / 1000 < 4 * frame_s + 0.5, (snapshot, frame_s)
    assert latencies[0] < 4 * frame_s + 0.5
    half = len(rss) // 2
    assert max(rss[half:]) - max(rss[:half]) < 30 * 2**20  # flat: no growing queue


@pytest.mark.parametrize("overrides, needle", [
    ([Parameter("mode", value="magic")], "mode"),
    ([Parameter("steps", value=0)], "steps"),
    ([*MODEL[:2]], "processing_height"),
    ([Parameter("model", value="/no/such/checkpoint")], "model"),
    ([Parameter("mode", value="classical"), Parameter("extrinsic", value=[1.0, 2.0])], "extrinsic"),
    ([*MODEL, Parameter("nearest_share", value="lots")], "nearest_share must be 'auto'"),
    ([Parameter("mode", value="classical"), Parameter("camera_info_file", value="/no/ost.yaml")],
     "cannot read camera calibration /no/ost.yaml"),
])
def test_bad_parameters_stop_the_node_with_a_message(rig, overrides, needle):
    r = rig(overrides)
    assert not r.node.start()
    assert needle in r.node.config_error


def test_a_camera_without_camera_info_runs_on_its_calibration_file(rig, sim, tmp_path):
    """camera_info_file: the node does not subscribe to camera_info and gives each image the file's camera:
    the classical depth of a frame is that of its LiDAR projected through the file's camera."""
    camera = conv.camera_info_to_camera(sim["infos"][1])
    (tmp_path / "ost.yaml").write_text(calibration_yaml(camera))
    r = rig([Parameter("mode", value="classical"), Parameter("extrinsic", value=sim["extrinsic"]),
             Parameter("camera_info_file", value=str(tmp_path / "ost.yaml")), Parameter("stats_period", value=0.2)])
    assert r.node.start(), r.node.config_error
    assert r.spin_until(lambda: r.pubs["image"].get_subscription_count() and r.pubs["points"].get_subscription_count(),
                        10)
    r.pubs["points"].publish(sim["clouds"][1])
    r.pubs["image"].publish(sim["images"][1])
    assert r.spin_until(lambda: r.received["image"] and r.received["camera_info"] and r.received["stats"], 20)
    assert conv.camera_info_to_camera(r.received["camera_info"][0]) == camera
    lidar = points_to_depth_map(conv.pointcloud2_to_xyz(sim["clouds"][1]), sim["T"], camera)
    completed = complete_classical(conv.image_to_rgb(sim["images"][1]), lidar, camera)
    expected = np.where(lidar_support(completed, lidar), completed, 0.0)
    np.testing.assert_array_equal(np.nan_to_num(conv.image_to_depth(r.received["image"][0])), expected)
    assert "received_camera_info" not in json.loads(r.received["stats"][-1].data)["counts"]


def test_compressed_images_are_decoded(sim):
    """The CompressedImage path of the pipeline (the node subscribes it with image_transport:=compressed)."""
    import cv2


    rgb = conv.image_to_rgb(sim["images"][0])
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    msg = conv.rosbags_messages().message("sensor_msgs/msg/CompressedImage", header=conv.make_header(0, "c"),
                                          format="png", data=png.reshape(-1))
    np.testing.assert_array_equal(conv.camera_image_to_rgb(msg), rgb)
    msg.data = np.zeros(10, np.uint8)
    with pytest.raises(InputError, match="OpenCV can decode"):
        conv.camera_image_to_rgb(msg)


def test_oversized_images_and_clouds_are_dropped_before_decoding(sim):
    from mf_ros.depth_pipeline import DepthPipeline, FrameError, PipelineOptions

    image, info, cloud = sim["images"][0], sim["infos"][0], sim["clouds"][0]
    pipeline = DepthPipeline(PipelineOptions("classical", max_pixels=160 * 120, max_points=10**6), None, RCLPY)
    assert pipeline.process(image, info, cloud, sim["T"]).depth is not None  # at the limits: processed
    bomb = conv.rosbags_messages().message("sensor_msgs/msg/CompressedImage", header=image.header,
                                           format="png", data=png_header_claiming(16000, 16000))
    header = conv.rosbags_messages().message("sensor_msgs/msg/CompressedImage", header=image.header,
                                             format="png", data=png_header_claiming(9000, 8000))
    assert conv.camera_image_size(header) == (9000, 8000)  # read from the header alone
    for msg, options in ((bomb, PipelineOptions("classical")), (header, PipelineOptions("classical")),
                         (image, PipelineOptions("classical", max_pixels=100)),
                         (image, PipelineOptions("classical", max_points=1000))):
        with pytest.raises(FrameError, match=r"over the limit of|over max_points|exceeds limit") as info_:
            DepthPipeline(options, None, RCLPY).process(msg, info, cloud, sim["T"])
        assert info_.value.kind == "too_large"


def test_runtime_parameters_apply_and_the_others_are_read_only(rig, sim):
    r = rig([Parameter("mode", value="classical"), Parameter("extrinsic", value=sim["extrinsic"])])
    assert r.start()
    results = r.node.set_parameters([Parameter("stride", value=4), Parameter("max_range", value=20.0)])
    assert all(result.successful for result in results)
    assert (r.node._pipeline.options.stride, r.node._pipeline.options.max_range) == (4, 20.0)
    r.send(sim["images"][0], sim["infos"][0], sim["clouds"][0])
    assert r.spin_until(lambda: r.received["points"], 20)
    assert r.received["points"][0].height == 30  # 120 rows / stride 4: the change took effect
    assert np.nanmax(conv.image_to_depth(r.received["image"][0])) <= 20.0
    (refused,) = r.node.set_parameters([Parameter("mode", value="guided")])
    assert not refused.successful and "read-only" in refused.reason.lower(), refused.reason
    assert r.node.p["mode"] == "classical"
    (out_of_range,) = r.node.set_parameters([Parameter("stride", value=0)])
    assert not out_of_range.successful and r.node._pipeline.options.stride == 4


def test_compressed_transport_follows_the_image_remapping(context):
    node = DepthNode(context=context, cli_args=["--ros-args", "-r", "image:=/front/image_raw"],
                     parameter_overrides=[Parameter("mode", value="classical"),
                                          Parameter("image_transport", value="compressed")])
    try:
        assert node.start(), node.config_error
        assert "/front/image_raw/compressed" in node._inputs.topics
    finally:
        node.close()
        node.destroy_node()


def test_auto_qos_receives_from_a_best_effort_publisher(rig, sim):
    """Many LiDAR drivers publish best effort only; a reliable subscription would never match them."""
    r = rig([Parameter("mode", value="classical"), Parameter("extrinsic", value=sim["extrinsic"])])
    best_effort = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    r.io.destroy_publisher(r.pubs["points"])
    r.pubs["points"] = r.io.create_publisher(PointCloud2, "points", best_effort)
    assert r.start(), r.node.config_error
    assert r.spin_until(lambda: "(best effort)" in " ".join(r.node._inputs.describe()), 10)
    assert r.node._inputs.describe().count("/points (best effort)") == 1
    assert "/image (reliable)" in r.node._inputs.describe()  # the reliable camera keeps its reliable input
    r.send(sim["images"][0], sim["infos"][0], sim["clouds"][0])
    assert r.spin_until(lambda: r.received["image"], 20)


def test_stats_show_an_input_that_no_publisher_reaches(rig, sim):
    """A reliable subscription cannot take a best-effort publisher: the stats say 0 publishers on that input."""
    r = rig([Parameter("mode", value="classical"), Parameter("extrinsic", value=sim["extrinsic"]),
             Parameter("qos_reliability", value="reliable"), Parameter("stats_period", value=0.2)])
    best_effort = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    r.io.destroy_publisher(r.pubs["points"])
    r.pubs["points"] = r.io.create_publisher(PointCloud2, "points", best_effort)
    assert r.node.start(), r.node.config_error

    def publishers() -> dict:
        return json.loads(r.received["stats"][-1].data).get("publishers", {}) if r.received["stats"] else {}

    assert r.spin_until(lambda: publishers().get("/image") == 1 and publishers().get("/camera_info") == 1, 10)
    r.spin_until(lambda: False, 1.0)  # long enough for the points publisher to match, were it able to
    assert publishers() == {"/image": 1, "/camera_info": 1, "/points": 0}
    last = json.loads(r.received["stats"][-1].data)
    assert last["level"] == 1 and "no publisher reaches /points" in last["message"]


def test_colormap_is_made_only_while_someone_watches(rig, sim):
    r = rig([Parameter("mode", value="classical"), Parameter("extrinsic", value=sim["extrinsic"])])
    assert r.start()
    made = []
    pipeline = r.node._pipeline
    original = pipeline.colormap
    pipeline.colormap = lambda frame: made.append(1) or original(frame)
    image, info, cloud = sim["images"][0], sim["infos"][0], sim["clouds"][0]
    r.send(image, info, cloud)
    assert r.spin_until(lambda: r.received["image"], 20)
    assert not made  # nobody subscribed: no colour map computed
    shown = []
    r.io.create_subscription(Image, "depth/colormap", shown.append, QOS)
    assert r.spin_until(lambda: r.node._outputs["colormap"].get_subscription_count(), 10)
    t = conv.header_stamp_ns(image) + 1_000_000_000
    r.send(restamp(image, t), restamp(info, t), restamp(cloud, t))
    assert r.spin_until(lambda: shown, 20)
    assert shown[0].encoding == "rgb8" and conv.header_stamp_ns(shown[0]) == t
    rgb = conv.image_to_rgb(shown[0])
    depth = conv.image_to_depth(r.received["image"][-1])
    assert (rgb[~np.isfinite(depth)] == 0).all() and rgb[np.isfinite(depth)].any(axis=-1).mean() > 0.9


def test_lazy_node_skips_inference_while_nobody_watches(rig, sim):
    r = rig([Parameter("mode", value="classical"), Parameter("extrinsic", value=sim["extrinsic"]),
             Parameter("lazy", value=True), Parameter("output_namespace", value="unwatched")])
    assert r.start()
    r.send(sim["images"][0], sim["infos"][0], sim["clouds"][0])
    assert r.spin_until(lambda: r.node.stats.drops["no_subscribers"] == 1, 10)
    assert r.node.stats.counts["published"] == 0 and "model" not in r.node.stats.snapshot()["timings"]


def test_the_pipeline_fits_one_nearest_share_over_its_stream(sim):
    """The node and mf densify (DepthPipeline) give every frame the nearest share of the camera's stream so
    far (mf_core.self_validation.NearestShareStream), not each frame's own fit: no flicker from it."""
    from mf_core.pipeline import DepthEstimator
    from mf_core.self_validation import NearestShareStream
    from mf_ros.depth_pipeline import DepthPipeline, PipelineOptions

    estimator = DepthEstimator(random_model(std=0.02, depth_conditioned=True, refine_head=True), processing_size=64,
                               nearest_share="auto")
    pipeline = DepthPipeline(PipelineOptions("conditioned"), estimator, RCLPY)
    replay = NearestShareStream()
    for image, info, cloud in zip(sim["images"][:3], sim["infos"][:3], sim["clouds"][:3], strict=True):
        frame = pipeline.process(image, info, cloud, sim["T"])
        camera = conv.camera_info_to_camera(info)
        sparse = points_to_depth_map(conv.pointcloud2_to_xyz(cloud), sim["T"], camera)
        rgb = conv.image_to_rgb(image)
        expected = estimator.predict(rgb, sparse, "conditioned", share_stream=replay)
        assert pipeline.share_stream.share == replay.share is not None
        valid = expected.valid
        np.testing.assert_allclose(frame.depth_array[valid], expected.depth[valid], rtol=1e-5)


def test_a_fisheye_camera_info_projects_the_lidar_through_its_lens(sim):
    """An `equidistant` (fisheye) camera_info: the sweep lands where the fisheye model puts it (the depth is
    the classical completion of that projection), and depth/points has no point outside the lens's image
    circle."""
    from mf_core.camera import PinholeCamera
    from mf_ros.depth_pipeline import DepthPipeline, PipelineOptions

    image, info, cloud = sim["images"][0], sim["infos"][0], sim["clouds"][0]
    pinhole = conv.camera_info_to_camera(info)
    # 160x120 at 55 px per radian: the image circle (theta_d at 90 degrees: 1.47 rad, 81 px) cuts the corners.
    fisheye = PinholeCamera(pinhole.width, pinhole.height, 55.0, 55.0, pinhole.cx, pinhole.cy, "equidistant",
                            (-0.05, 0.01, 0.0, 0.0))
    fisheye_info = conv.camera_to_camera_info(fisheye, conv.header_stamp_ns(info), info.header.frame_id, RCLPY)
    frame = DepthPipeline(PipelineOptions("classical"), None, RCLPY).process(image, fisheye_info, cloud, sim["T"])
    points = conv.pointcloud2_to_xyz(cloud)
    sparse = points_to_depth_map(points, sim["T"], fisheye)
    assert (sparse > 0).sum() > 500
    assert not np.array_equal(sparse > 0, points_to_depth_map(points, sim["T"], pinhole) > 0)  # another lens
    completed = complete_classical(conv.image_to_rgb(image), sparse, fisheye)  # on the fisheye projection
    np.testing.assert_array_equal(np.nan_to_num(frame.depth_array),
                                  np.where(lidar_support(completed, sparse), completed, 0.0))
    cloud_out = conv.pointcloud2_to_xyz(frame.points, drop_invalid=False).reshape(fisheye.height, fisheye.width, 3)
    corners = np.hypot(*np.meshgrid((np.arange(fisheye.width) - fisheye.cx) / fisheye.fx,
                                    (np.arange(fisheye.height) - fisheye.cy) / fisheye.fy)) > 1.5
    assert corners.any() and np.isnan(cloud_out[corners]).all()
