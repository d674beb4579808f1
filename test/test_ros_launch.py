"""The package as a robot runs it: built with colcon, started with ``ros2 launch``, stopped with SIGINT.

Needs the ROS 2 Python tools that have no PyPI wheel (launch, launch_ros, ros2cli; ``make test``
installs them from ../shared/wheels/ros-jazzy-python when that folder exists) and colcon;
skipped with the reason otherwise. Inputs come from an rclpy publisher in this process playing
the frames of a generated sim bag.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from helpers import inputs_connected, sim_bag_as_rclpy, spin_until  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from mf_core.transforms import to_quaternion  # noqa: E402
from mf_ros import conversions as conv  # noqa: E402
from mf_training.data.bag_samples import BagSamples  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOPICS = {"/camera/image_raw": Image, "/camera/camera_info": CameraInfo, "/lidar/points": PointCloud2}
QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
BAD_OUTPUT = ("Traceback", "KeyboardInterrupt", "context is invalid", "Failed to publish", "has died")


def _missing() -> str | None:
    for module in ("launch", "launch_ros", "ros2cli", "colcon"):
        spec = importlib.util.find_spec(module)
        if spec is None or (module == "launch" and spec.origin is None):  # the repo's launch/ folder is no package
            return f"{module} is not installed (make test installs it from ../shared/wheels/ros-jazzy-python)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """``colcon build`` of this package into a fresh workspace; the environment that sources it."""
    ws = tmp_path_factory.mktemp("ws")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    build = subprocess.run([str(bin_dir / "colcon"), "build", "--base-paths", str(REPO), "--packages-select",
                            "mf_ros", "--build-base", str(ws / "build"), "--install-base", str(ws / "install")],
                           cwd=ws, env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    sourced = subprocess.run(["bash", "-c", f"source {ws}/install/setup.bash && env -0"], env=env,
                             capture_output=True, timeout=60, check=True).stdout
    env = dict(item.split("=", 1) for item in sourced.decode().split("\0") if "=" in item)
    assert (ws / "install" / "mf_ros" / "share" / "mf_ros" / "launch" / "depth.launch.py").is_file()
    return ws, env


@pytest.fixture(scope="module")
def player(tmp_path_factory):
    """Publishes sim frames (a bag player in this process) and records what comes back."""
    frames, T = sim_bag_as_rclpy(tmp_path_factory.mktemp("sim"), 3, TOPICS)
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("launch_test_player", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    pubs = {t: node.create_publisher(cls, t, QOS) for t, cls in TOPICS.items()}
    yield {"frames": frames, "T": T, "node": node, "executor": executor, "pubs": pubs}
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=ctx)


def _play(player, frames: int, period_s: float = 0.15) -> None:
    for i in range(frames):
        k = i % len(player["frames"]["/camera/image_raw"])
        for topic in ("/camera/camera_info", "/lidar/points", "/camera/image_raw"):
            player["pubs"][topic].publish(player["frames"][topic][k])
        spin_until(player["executor"], lambda: False, period_s)


def _launch(workspace, name: str, *arguments: str) -> subprocess.Popen:
    ws, env = workspace
    ros2 = str(Path(sys.executable).parent / "ros2")
    return subprocess.Popen([ros2, "launch", "mf_ros", name, *arguments], env=env, cwd=ws, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _interrupt(process: subprocess.Popen) -> str:
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group; the launch's output."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return output


def _extrinsic_text(T: np.ndarray) -> str:
    (w, x, y, z), t = to_quaternion(T)
    return " ".join(f"{v:.12g}" for v in (*t, x, y, z, w))


def test_depth_launch_under_a_namespace_with_a_params_file_and_a_string_extrinsic(workspace, player, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    stride: 2\n    mode: classical\n")
    received: dict[str, list] = {"image": [], "points": []}
    node = player["node"]
    subs = [node.create_subscription(cls, f"/cam1/depth/{kind}", lambda m, k=kind: received[k].append(m), QOS)
            for kind, cls in (("image", Image), ("points", PointCloud2))]
    process = _launch(workspace, "depth.launch.py", "namespace:=cam1", f"params_file:={params}",
                      f"extrinsic:={_extrinsic_text(player['T'])}", "image_topic:=/camera/image_raw",
                      "camera_info_topic:=/camera/camera_info", "points_topic:=/lidar/points", "use_rviz:=true")
    try:
        assert spin_until(player["executor"], lambda: all(p.get_subscription_count() for p in player["pubs"].values())
                     or process.poll() is not None, 60), "depth_node never subscribed"
        deadline = time.monotonic() + 60
        while not received["points"] and time.monotonic() < deadline and process.poll() is None:
            _play(player, 1)
        spin_until(player["executor"], lambda: received["image"], 5)
    finally:
        output = _interrupt(process)
        for sub in subs:
            node.destroy_subscription(sub)
    assert received["image"] and received["points"], output
    sent = {conv.header_stamp_ns(m): m for m in player["frames"]["/camera/image_raw"]}
    depth = received["image"][0]
    source = sent[conv.header_stamp_ns(depth)]  # the input header, stamp and frame
    assert depth.header.frame_id == source.header.frame_id
    assert np.isfinite(conv.image_to_depth(depth)).mean() > 0.3
    assert received["points"][0].height == 60  # stride 2 from the namespaced params file: 120 / 2
    assert process.returncode == 0, output
    assert not [line for line in output.splitlines() if any(bad in line for bad in BAD_OUTPUT)], output
    if not shutil.which("rviz2"):
        assert "rviz2 is not installed" in output  # said, and no orphan: the launch exited 0 above


def test_record_launch_records_every_sample_and_sigint_closes_the_bag(workspace, player, tmp_path):
    out = tmp_path / "bags"
    stats: list[dict] = []  # the recorder's own counts: Ctrl-C comes once it says all 3 are recorded
    subscription = player["node"].create_subscription(String, "/recorder/stats",
                                                      lambda m: stats.append(json.loads(m.data)), QOS)
    process = _launch(workspace, "record.launch.py", f"output_dir:={out}",
                      f"extrinsic:={_extrinsic_text(player['T'])}", "image_topic:=/camera/image_raw",
                      "camera_info_topic:=/camera/camera_info",
                      "points_topic:=/lidar/points")
    try:
        assert spin_until(player["executor"], lambda: inputs_connected(list(player["pubs"].values()), stats)
                          or process.poll() is not None, 60), \
            f"recorder_node never connected: {stats[-1:]}"
        _play(player, 3)
        # A loaded machine can take seconds to write 3 samples; a fixed wait cut some runs short (0 of 3).
        spin_until(player["executor"], lambda: (stats and stats[-1]["counts"].get("recorded", 0) >= 3)
                   or process.poll() is not None, 30)
    finally:
        output = _interrupt(process)
        player["node"].destroy_subscription(subscription)
    assert stats, f"no recorder/stats message\n{output}"
    assert process.returncode == 0, f"{stats[-1]}\n{output}"
    assert not [line for line in output.splitlines() if any(bad in line for bad in BAD_OUTPUT)], output
    (bag,) = out.iterdir()
    assert len(list(BagSamples(bag))) == 3, f"{stats[-1]}\n{output}"


@pytest.mark.parametrize("signals", [(signal.SIGTERM,), (signal.SIGINT, signal.SIGINT)])
def test_a_stop_signal_during_start_up_exits_cleanly(workspace, signals):
    """SIGTERM, or a double Ctrl-C, while the model loads and warms up: exit 0, no traceback."""
    _, env = workspace
    command = [sys.executable, "-m", "mf_ros.nodes.depth_node", "--ros-args", "-p", "model:=MF-XS", "-p",
               "mode:=guided", "-p", "processing_width:=64", "-p", "processing_height:=48"]
    process = subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    try:
        for line in process.stdout:  # the node says it is starting, then loads and warms up the model
            lines.append(line)
            if "starting:" in line:
                for sig in signals:
                    process.send_signal(sig)
                break
        output = "".join(lines) + process.communicate(timeout=60)[0]
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert f"{signals[0].name}: stopping" in output and "Traceback" not in output, output


def test_multi_camera_launch_starts_one_node_per_namespace(workspace, player):
    process = _launch(workspace, "multi_camera.launch.py", "cameras:=front,rear", "mode:=classical",
                      f"extrinsic:={_extrinsic_text(player['T'])}")
    node = player["node"]
    try:
        topics = [f"/{camera}/{name}" for camera in ("front", "rear") for name in ("image", "camera_info", "points")]
        def listening() -> bool:
            return all(node.count_subscribers(t) for t in topics) or process.poll() is not None

        assert spin_until(player["executor"], listening, 60), [(t, node.count_subscribers(t)) for t in topics]
    finally:
        output = _interrupt(process)
    assert process.returncode == 0, output
    assert not [line for line in output.splitlines() if any(bad in line for bad in BAD_OUTPUT)], output
