"""rosbag2 writing (MCAP, sqlite3) and reading through mf_ros.bags, and its errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_ros import conversions as conv
from mf_ros.bags import BagTopic, BagWriter, bag_time_range, bag_topics, read_messages

T0 = 1_700_000_000_000_000_000
FRAMES = 5


def write_bag(path: Path, storage: str = "mcap") -> list[np.ndarray]:
    """A small bag: camera images, a LiDAR cloud per frame and one /tf_static; returns the images."""
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (4, 6, 3), dtype=np.uint8) for _ in range(FRAMES)]
    with BagWriter(path, storage=storage) as bag:
        bag.add_topic("/camera/image", "sensor_msgs/msg/Image")
        bag.write("/tf_static", conv.edges_to_tf_message([conv.TfEdge("base", "lidar", T0, np.eye(4))]), T0)
        for i, image in enumerate(images):
            stamp = T0 + i * 100_000_000
            bag.write("/camera/image", conv.rgb_to_image(image, stamp, "cam"), stamp + 1)
            bag.write("/lidar/points", conv.xyz_to_pointcloud2(rng.normal(size=(10, 3)).astype(np.float32),
                                                               stamp, "lidar"), stamp + 2)
    return images


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_bag_reads_back_in_order(tmp_path, storage):
    bag = tmp_path / "bag"
    images = write_bag(bag, storage)
    assert bag_topics(bag) == [BagTopic("/camera/image", "sensor_msgs/msg/Image", FRAMES),
                               BagTopic("/lidar/points", "sensor_msgs/msg/PointCloud2", FRAMES),
                               BagTopic("/tf_static", "tf2_msgs/msg/TFMessage", 1)]
    assert bag_time_range(bag) == (T0, T0 + (FRAMES - 1) * 100_000_000 + 2)
    messages = list(read_messages(bag))
    assert len(messages) == 2 * FRAMES + 1
    assert [m.stamp_ns for m in messages] == sorted(m.stamp_ns for m in messages)
    got = [m for m in messages if m.topic == "/camera/image"]
    assert all(m.msgtype == "sensor_msgs/msg/Image" for m in got)
    for i, (m, image) in enumerate(zip(got, images, strict=True)):
        assert m.stamp_ns == T0 + i * 100_000_000 + 1
        assert conv.header_stamp_ns(m.msg) == m.stamp_ns - 1
        np.testing.assert_array_equal(conv.image_to_rgb(m.msg), image)
    only_tf = list(read_messages(bag, topics=["/tf_static"]))
    assert [m.topic for m in only_tf] == ["/tf_static"]
    assert conv.tf_message_to_edges(only_tf[0].msg)[0][:2] == ("base", "lidar")


def test_single_mcap_file_is_readable_and_qos_is_recorded(tmp_path):
    bag = tmp_path / "bag"
    write_bag(bag)
    (mcap_file,) = bag.glob("*.mcap")
    assert len(list(read_messages(mcap_file))) == 2 * FRAMES + 1
    with open(mcap_file, "rb") as f:
        channels = {c.topic: c for c in make_reader(f).get_summary().channels.values()}
    tf_qos = channels["/tf_static"].metadata["offered_qos_profiles"]
    assert "transient_local" in tf_qos and "reliable" in tf_qos
    assert "volatile" in channels["/camera/image"].metadata["offered_qos_profiles"]


def test_write_raw_stores_the_bytes_given(tmp_path):
    image = conv.rgb_to_image(np.full((2, 3, 3), 9, np.uint8), T0, "cam")
    cdr = conv.rosbags_messages().typestore.serialize_cdr(image, "sensor_msgs/msg/Image")
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        with pytest.raises(InputError, match="add_topic"):
            writer.write_raw("/image", cdr, T0)
        writer.add_topic("/image", "sensor_msgs/msg/Image")
        writer.write_raw("/image", cdr, T0)
        with pytest.raises(InputError, match="holds sensor_msgs/msg/Image"):
            writer.write("/image", conv.camera_to_camera_info(PinholeCamera(3, 2, 1.0, 1.0, 1.0, 1.0), T0, "cam"),
                         T0)
        with pytest.raises(InputError, match="write_raw"):
            writer.write("/image", object(), T0)
    (message,) = read_messages(bag)
    np.testing.assert_array_equal(conv.image_to_rgb(message.msg), np.full((2, 3, 3), 9, np.uint8))


def test_existing_bag_is_not_overwritten_unless_asked(tmp_path):
    bag = tmp_path / "bag"
    write_bag(bag)
    with pytest.raises(InputError, match=r"already exists.*overwrite=True"), BagWriter(bag):
        pass
    with BagWriter(bag, overwrite=True) as writer:
        writer.write("/only", conv.rgb_to_image(np.zeros((2, 2, 3), np.uint8), T0, "cam"), T0)
    assert [t.topic for t in bag_topics(bag)] == ["/only"]
    not_a_bag = tmp_path / "photos"
    not_a_bag.mkdir()
    with pytest.raises(InputError, match="not a rosbag2 directory"), BagWriter(not_a_bag, overwrite=True):
        pass
    assert not_a_bag.is_dir()


def test_unwritable_location_raises_input_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    with pytest.raises(InputError, match=r"cannot create bag.*writable"), BagWriter(blocker / "bag"):
        pass


@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_truncated_mcap_raises_input_error(tmp_path, cut):
    bag = tmp_path / "bag"
    write_bag(bag)
    (mcap_file,) = bag.glob("*.mcap")
    data = mcap_file.read_bytes()
    mcap_file.write_bytes(data[: int(len(data) * cut)])
    for target in (bag, mcap_file):
        with pytest.raises(InputError, match=rf"cannot read bag {re.escape(str(target))}.*re-record"):
            list(read_messages(target))
        with pytest.raises(InputError, match=re.escape(str(target))):
            bag_topics(target)


def test_a_bug_in_our_own_code_is_not_reported_as_a_damaged_bag(tmp_path, monkeypatch):
    import mf_ros.bags

    bag = tmp_path / "bag"
    write_bag(bag)
    assert list(read_messages(bag))

    def broken(*args):
        raise KeyError("our bug")

    monkeypatch.setattr(mf_ros.bags, "BagMessage", broken)
    with pytest.raises(KeyError, match="our bug"):
        list(read_messages(bag))


def test_missing_and_foreign_paths_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        bag_topics(tmp_path / "nope")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputError, match=r"notes\.txt.*Unrecognized storage format"):
        list(read_messages(text))
    with pytest.raises(InputError, match="metadata"):
        bag_topics(tmp_path)


def test_unknown_topic_filter_and_type_raise_input_error(tmp_path):
    bag = tmp_path / "bag"
    write_bag(bag)
    with pytest.raises(InputError, match=r"no topic\(s\) \['/camera/depth'\].*'/camera/image'"):
        list(read_messages(bag, topics=["/camera/depth"]))
    with BagWriter(tmp_path / "other") as writer, pytest.raises(InputError, match="unknown to the ROS 2 Jazzy"):
        writer.add_topic("/x", "sensor_msgs/msg/Imagee")
