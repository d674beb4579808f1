"""Converted messages over real rclpy: published by one node, received and decoded by another."""

from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from helpers import spin_until  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from mf_core.camera import PinholeCamera  # noqa: E402
from mf_ros import conversions as conv  # noqa: E402
from mf_ros.bags import BagWriter, read_messages  # noqa: E402

STAMP = 1_700_000_000_123_456_789
H, W = 48, 64
RCLPY = conv.RclpyMessages()
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def sensor_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    points = rng.normal(0, 5, (H, W, 3)).astype(np.float32)
    points[3, 4] = np.nan
    depth = rng.uniform(0.2, 40, (H, W)).astype(np.float32)
    depth[0, 0] = np.nan
    return {"rgb": rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "depth": depth, "points": points,
            "intensity": rng.uniform(0, 100, (H, W)).astype(np.float32)}


CAMERA = PinholeCamera(W, H, 50.5, 51.0, 31.5, 23.5, "plumb_bob", (0.1, -0.05, 0.001, 0.0, 0.002))


def rclpy_messages(a: dict[str, np.ndarray]) -> dict[str, tuple[type, object]]:
    """topic -> (rclpy class, message) for every converted kind."""
    return {
        "image": (Image, conv.rgb_to_image(a["rgb"], STAMP, "cam", "rgb8", RCLPY)),
        "depth": (Image, conv.depth_to_image(a["depth"], STAMP, "cam", "32FC1", RCLPY)),
        "camera_info": (CameraInfo, conv.camera_to_camera_info(CAMERA, STAMP, "cam", RCLPY)),
        "points_rgb": (PointCloud2, conv.xyzrgb_to_pointcloud2(a["points"], a["rgb"], STAMP, "cam", RCLPY)),
        "points_i": (PointCloud2, conv.xyz_to_pointcloud2(a["points"], STAMP, "lidar", a["intensity"], RCLPY)),
    }


def check_decoded(topic: str, msg, a: dict[str, np.ndarray]) -> None:
    """Assert that ``msg`` (any flavour) decodes to exactly the arrays it was built from."""
    assert conv.header_stamp_ns(msg) == STAMP
    if topic == "image":
        np.testing.assert_array_equal(conv.image_to_rgb(msg), a["rgb"])
    elif topic == "depth":
        np.testing.assert_array_equal(conv.image_to_depth(msg), a["depth"])
    elif topic == "camera_info":
        assert conv.camera_info_to_camera(msg) == CAMERA
    else:
        xyz = conv.pointcloud2_to_xyz(msg, drop_invalid=False).reshape(H, W, 3)
        np.testing.assert_array_equal(xyz, a["points"])
        if topic == "points_rgb":
            np.testing.assert_array_equal(conv.pointcloud2_rgb(msg).reshape(H, W, 3), a["rgb"])
        else:
            intensity = conv.pointcloud2_fields(msg, ["intensity"])["intensity"]
            np.testing.assert_array_equal(intensity.reshape(H, W), a["intensity"])


@pytest.fixture
def context():
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)



def test_converted_messages_cross_a_real_rclpy_graph(context):
    arrays = sensor_arrays()
    outgoing = rclpy_messages(arrays)
    talker = rclpy.create_node("mf_test_talker", context=context)
    listener = rclpy.create_node("mf_test_listener", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(talker)
    executor.add_node(listener)
    try:
        received: dict[str, object] = {}
        publishers = {t: talker.create_publisher(cls, f"mf_test/{t}", RELIABLE) for t, (cls, _) in outgoing.items()}
        for topic, (cls, _) in outgoing.items():
            listener.create_subscription(cls, f"mf_test/{topic}",
                                         lambda m, topic=topic: received.setdefault(topic, m), RELIABLE)
        assert spin_until(executor, lambda: all(p.get_subscription_count() for p in publishers.values()), 5.0), \
            "publishers never matched the subscriptions"
        for topic, (_, msg) in outgoing.items():
            publishers[topic].publish(msg)
        assert spin_until(executor, lambda: len(received) == len(outgoing), 5.0), \
            f"received only {sorted(received)}"
        for topic, msg in received.items():
            check_decoded(topic, msg, arrays)
    finally:
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()


def test_rclpy_cdr_bytes_are_recorded_and_read_back_by_rosbags(tmp_path):
    """What a raw recorder does: rclpy's own CDR bytes go into the bag unchanged."""
    arrays = sensor_arrays()
    outgoing = rclpy_messages(arrays)
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        for topic, (cls, msg) in outgoing.items():
            writer.add_topic(f"/{topic}", "sensor_msgs/msg/" + cls.__name__)
            writer.write_raw(f"/{topic}", serialize_message(msg), STAMP)
    decoded = {m.topic.lstrip("/"): m.msg for m in read_messages(bag)}
    assert sorted(decoded) == sorted(outgoing)
    for topic, msg in decoded.items():
        check_decoded(topic, msg, arrays)
