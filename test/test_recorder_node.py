"""recorder_node as a real subprocess: synced samples recorded, SIGINT closes cleanly, kill -9 keeps chunks."""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from helpers import calibration_yaml, inputs_connected, sim_bag_as_rclpy, spin_until  # noqa: E402
from mcap.records import Channel, Message  # noqa: E402
from mcap.stream_reader import StreamReader  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from mf_core.errors import InputError  # noqa: E402
from mf_ros import conversions as conv  # noqa: E402
from mf_ros.nodes.recorder_node import RecorderNode  # noqa: E402
from mf_training.cli import main as mf_main  # noqa: E402
from mf_training.data.bag_samples import BagSamples  # noqa: E402

TOPICS = {"/camera/image_raw": Image, "/camera/camera_info": CameraInfo, "/lidar/points": PointCloud2}
INPUTS = {"/camera/image_raw": "image", "/camera/camera_info": "camera_info", "/lidar/points": "points"}  # node's names
QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    frames, T = sim_bag_as_rclpy(tmp_path_factory.mktemp("rec"), 4, TOPICS)
    return frames, T


@pytest.fixture(scope="module")
def talker():
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("recorder_test_talker", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=ctx)


RUNS = itertools.count()


def start_recorder(talker, out: Path, T: np.ndarray, limit_bytes: int | None = None,
                   depth: int = 5, udp_only: bool = False, compressed: bool = False,
                   camera_info_file: Path | None = None) -> subprocess.Popen:
    """Start a recorder subprocess in a namespace of its own, with the talker's publishers of its inputs
    (``process.pubs``, keyed by the sim bag's topics, keeping ``depth``) and its stats (``process.stats``);
    ``udp_only``: without Fast DDS's shared-memory transport; ``compressed``: image_transport:=compressed, the
    camera published as CompressedImage on ``image/compressed``.

    ``process.connected()`` is True once both ends of every input have matched (``inputs_connected``). A
    namespace per recorder, because one killed by an earlier test stays a subscriber of its topics until its
    DDS lease ends."""
    node, _ = talker
    ns = f"/run{next(RUNS)}"
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {topic: node.create_publisher(cls, f"{ns}/{INPUTS[topic]}", qos) for topic, cls in TOPICS.items()}
    if compressed:
        pubs["/camera/image_raw"] = node.create_publisher(CompressedImage, f"{ns}/image/compressed", qos)
    stats: list[dict] = []
    node.create_subscription(String, f"{ns}/recorder/stats", lambda m: stats.append(json.loads(m.data)), QOS)

    def limit_file_size():  # a "full disk": writes past limit_bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    values = ",".join(f"{v:.17f}" for v in T.reshape(-1))  # always a decimal point: YAML doubles
    cmd = [sys.executable, "-m", "mf_ros.nodes.recorder_node", "--ros-args", "-r", f"__ns:={ns}",
           "-p", f"output_dir:={out}", "-p", f"extrinsic:=[{values}]", "-p", "stats_period:=0.2"]
    if compressed:
        cmd += ["-p", "image_transport:=compressed"]
    if camera_info_file is not None:
        cmd += ["-p", f"camera_info_file:={camera_info_file}"]
    env = dict(os.environ)
    if limit_bytes or udp_only:  # Fast DDS shared-memory segments are files too: keep a file limit off them
        env["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               preexec_fn=limit_file_size if limit_bytes else None)
    process.pubs, process.stats, process.out = pubs, stats, out
    listened = [pub for topic, pub in pubs.items() if camera_info_file is None or topic != "/camera/camera_info"]
    process.connected = lambda: inputs_connected(listened, stats)
    return process


def wait_connected(talker, process: subprocess.Popen) -> None:
    """Spin until ``process`` is connected; on failure, stop it and show its output and last stats."""
    if spin_until(talker[1], lambda: process.connected() or process.poll() is not None, 30) \
            and process.poll() is None:
        return
    process.kill()
    output, _ = process.communicate(timeout=20)
    pytest.fail(f"the recorder never connected; last stats {process.stats[-1:]}\n{output}")


def record(talker, sim, process, frames: int) -> int:
    """Publish ``frames`` synced frames once the recorder listens; return how many it says it recorded."""
    executor, stats = talker[1], process.stats
    wait_connected(talker, process)
    messages, _ = sim
    for i in range(frames):
        for topic in ("/camera/camera_info", "/lidar/points", "/camera/image_raw"):
            process.pubs[topic].publish(messages[topic][i])
        spin_until(executor, lambda: False, 0.1)
    spin_until(executor, lambda: stats[-1]["counts"].get("recorded", 0) >= frames or process.poll() is not None, 10)
    print(f"the recorder's last stats: {stats[-1]}")  # shown when the test fails
    return stats[-1]["counts"].get("recorded", 0)


def png_image(image: Image) -> CompressedImage:
    """The CompressedImage image_transport's ``compressed`` plugin publishes for ``image``, as PNG (lossless)."""
    ok, data = cv2.imencode(".png", conv.image_to_rgb(image)[..., ::-1])
    assert ok
    return CompressedImage(header=image.header, format="rgb8; png compressed bgr8", data=data.ravel().tobytes())


def record_then_stop(talker, sim, process, frames: int) -> Path:
    """Record ``frames`` samples, stop the recorder with SIGINT (exit 0) and return its one bag."""
    try:
        assert record(talker, sim, process, frames) == frames
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, output
    (bag,) = process.out.iterdir()
    return bag


@pytest.mark.parametrize("compressed", [False, True])
def test_sigint_closes_the_bag_with_every_sample(talker, sim, tmp_path, compressed):
    """Raw, and with image_transport:=compressed (the CompressedImage on <image>/compressed written as received):
    the bag reads back with the very pixels sent (PNG is lossless)."""
    messages, T = sim
    if compressed:
        messages = dict(messages) | {"/camera/image_raw": [png_image(m) for m in messages["/camera/image_raw"]]}
    bag = record_then_stop(talker, (messages, T), start_recorder(talker, tmp_path, T, compressed=compressed), 3)
    assert (bag / "metadata.yaml").exists()
    source = BagSamples(bag)  # the training reader, /tf_static from the recorder's extrinsic
    assert source.topics.image.endswith("/image/compressed" if compressed else "/image")
    samples = list(source)
    assert len(samples) == 3
    sent = sim[0]["/camera/image_raw"]
    for sample, msg in zip(samples, sent, strict=True):
        assert sample.stamp_ns == conv.header_stamp_ns(msg)
        np.testing.assert_array_equal(sample.image, conv.image_to_rgb(msg))
        assert (sample.sparse_depth > 0).sum() > 1000
    np.testing.assert_allclose(source.T_cam_from_lidar, T, atol=1e-9)


def test_a_camera_without_camera_info_is_recorded_with_its_calibration_file(talker, sim, tmp_path):
    """camera_info_file: the recorder does not take camera_info and writes the file's camera as each sample's
    camera_info (here a calibration that differs from what the talker publishes, which must not be used)."""
    messages, T = sim
    camera = conv.camera_info_to_camera(messages["/camera/camera_info"][0])
    (tmp_path / "ost.yaml").write_text(calibration_yaml(camera, focal_scale=1.1))
    process = start_recorder(talker, tmp_path / "bags", T, camera_info_file=tmp_path / "ost.yaml")
    samples = list(BagSamples(record_then_stop(talker, sim, process, 3)))
    assert len(samples) == 3
    assert all(s.camera.fx == pytest.approx(1.1 * camera.fx) and s.camera.cx == camera.cx for s in samples)


def mcap_images(path: Path, topic: str) -> list[Image]:
    """Images on ``topic`` of a (possibly truncated) MCAP file, read record by record up to where it ends."""
    channels, images = {}, []
    with open(path, "rb") as f:
        try:
            for record in StreamReader(f).records:
                if isinstance(record, Channel):
                    channels[record.id] = record.topic
                elif isinstance(record, Message) and channels.get(record.channel_id) == topic:
                    images.append(deserialize_message(record.data, Image))
        except Exception as err:  # the truncated tail: everything before it was read
            print(f"stream ended: {type(err).__name__}: {err}")
    return images


def test_kill_9_loses_no_recorded_sample_after_mf_bag_recover(talker, sim, tmp_path):
    out = tmp_path / "bags"
    process = start_recorder(talker, out, sim[1])
    try:
        recorded = record(talker, sim, process, 3)
        assert recorded == 3
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=20)
    finally:
        process.kill()
    (bag,) = out.iterdir()
    assert not (bag / "metadata.yaml").exists()  # never closed: rosbags cannot open it as it is
    with pytest.raises(InputError):
        list(BagSamples(bag))
    recovered = tmp_path / "recovered"
    assert mf_main(["bag", "recover", str(bag), "--out", str(recovered)]) == 0
    samples = list(BagSamples(recovered))  # a closed bag again: the training reader takes it
    assert len(samples) == recorded  # samples accepted = samples readable after recovery
    sent = {conv.header_stamp_ns(m): m for m in sim[0]["/camera/image_raw"]}
    for sample in samples:
        np.testing.assert_array_equal(sample.image, conv.image_to_rgb(sent[sample.stamp_ns]))


def test_a_corrupted_chunk_is_reported_not_exported(talker, sim, tmp_path, capsys):
    process = start_recorder(talker, tmp_path / "bags", sim[1])
    try:
        assert record(talker, sim, process, 3) == 3
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    finally:
        process.kill()
    (bag,) = (tmp_path / "bags").iterdir()
    (mcap_file,) = bag.glob("*.mcap")
    data = bytearray(mcap_file.read_bytes())
    data[len(data) // 3:len(data) // 3 + 4096] = bytes(4096)  # 4 KiB overwritten inside a chunk
    mcap_file.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"(?i)crc|corrupt"):
        list(BagSamples(bag))  # reading checks every chunk's CRC-32
    assert mf_main(["bag", "recover", str(bag), "--out", str(tmp_path / "rec")]) == 1
    assert "corrupted chunk" in capsys.readouterr().out
    assert len(list(BagSamples(tmp_path / "rec"))) == 2  # the intact samples, and only those


def test_a_full_disk_stops_recording_and_keeps_what_was_written(talker, sim, tmp_path):
    process = start_recorder(talker, tmp_path, sim[1], limit_bytes=3_000_000)  # the 3 samples need ~3.1 MB
    try:
        record(talker, sim, process, 3)
        if process.poll() is None:  # the last chunk is written when the bag closes
            process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 1, output
    assert "failed" in output or "recording stopped" in output
    recorded = int(re.findall(r"(\d+) samples in", output)[-1])
    (bag,) = tmp_path.iterdir()
    (mcap_file,) = bag.glob("*.mcap")
    assert len(mcap_images(mcap_file, process.pubs["/camera/image_raw"].topic_name)) >= recorded >= 1, output
    assert mf_main(["bag", "recover", str(bag), "--out", str(tmp_path.parent / f"{tmp_path.name}_rec")]) == 0
    assert len(list(BagSamples(tmp_path.parent / f"{tmp_path.name}_rec"))) == recorded


def test_an_unwritable_output_dir_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    try:
        with pytest.raises(InputError, match="writable"):
            RecorderNode(context=ctx, parameter_overrides=[Parameter("output_dir", value=str(blocker / "bags"))])
    finally:
        rclpy.shutdown(context=ctx)


def test_an_output_directory_removed_while_recording_is_named_as_the_cause(talker, sim, tmp_path):
    out = tmp_path / "bags"
    process = start_recorder(talker, out, sim[1])
    try:
        assert record(talker, sim, process, 2) == 2
        shutil.rmtree(out)
        process.send_signal(signal.SIGINT)  # closing writes metadata.yaml into the directory that is gone
        output, _ = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 1, output
    assert f"the output directory {out} was removed while recording" in output
    assert "disk full" not in output


SWEEP_POINTS = 4096


def test_a_two_second_stall_loses_no_sample(talker, sim, tmp_path):
    """The recorder frozen (SIGSTOP: a slow disk or swap) while 20 samples go out at 10 Hz (2 s): its deep queues
    hold them (the camera publishes reliable, keeping 50), and after SIGCONT every one is recorded.

    Over UDP: Fast DDS's shared-memory transport may give up on a port whose reader does not answer its health
    check within its timeout, and a frozen process does not answer; once in a full test run the recorder then
    received nothing more after SIGCONT (README, recorder_node). Reliability's retransmission is what is under test.
    Over UDP with full sweeps (up to 1 MB) it happened once more (20 MB into a frozen reader's socket, all of it to be
    resent): the sweeps sent here are cut to 4096 returns, which does not change what the recorder must queue."""
    executor = talker[1]
    process = start_recorder(talker, tmp_path, sim[1], depth=50, udp_only=True)
    pubs, stats = process.pubs, process.stats
    try:
        wait_connected(talker, process)
        messages, _ = sim
        t0 = conv.header_stamp_ns(messages["/camera/image_raw"][0])

        def publish(i: int) -> None:  # sample i: a sim frame restamped i x 0.1 s later
            for topic in ("/camera/camera_info", "/lidar/points", "/camera/image_raw"):
                msg = copy.deepcopy(messages[topic][i % 3])
                msg.header.stamp = conv.ns_to_stamp(t0 + i * 100_000_000, conv.RclpyMessages())
                if topic == "/lidar/points":  # its first 4096 returns: 64 kB per sweep, not up to 1 MB
                    msg.width, msg.row_step = SWEEP_POINTS, SWEEP_POINTS * msg.point_step
                    msg.data = msg.data[:msg.row_step]
                pubs[topic].publish(msg)
            spin_until(executor, lambda: False, 0.1)

        publish(0)  # one sample before the freeze
        assert spin_until(executor, lambda: stats and stats[-1]["counts"].get("recorded", 0) == 1, 10)
        process.send_signal(signal.SIGSTOP)
        for k in range(1, 21):
            publish(k)
        process.send_signal(signal.SIGCONT)
        stats.clear()
        spin_until(executor, lambda: stats and stats[-1]["counts"].get("recorded", 0) >= 21, 20)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, output
    (bag,) = tmp_path.iterdir()
    assert len(list(BagSamples(bag))) == 21, output  # the first one and the 20 sent while frozen
