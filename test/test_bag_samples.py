"""Bag -> Samples on real rosbag2 MCAP files written with BagWriter (real messages, no mocks)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_core.transforms import compose, from_ros_quaternion, invert, to_quaternion
from mf_ros.bags import BagWriter, bag_topics, read_messages
from mf_ros.conversions import (
    TfEdge,
    camera_to_camera_info,
    depth_to_image,
    edges_to_tf_message,
    make_header,
    rgb_to_image,
    xyz_to_pointcloud2,
)
from mf_ros.extrinsics import parse_extrinsic, static_transform
from mf_training.data.bag_samples import BagSamples, select_topics, topic_types
from mf_training.sim.bag_output import write_bag as write_sim_bag
from mf_training.sim.config import SimConfig
from mf_training.sim.generator import sim_rig

CAMERA = PinholeCamera(64, 48, 50.0, 52.0, 31.5, 23.5)
MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000
# base_link <- camera optical frame and base_link <- lidar: a two-edge chain the reader must compose.
T_BASE_FROM_CAM = from_ros_quaternion((-0.5, 0.5, -0.5, 0.5), (0.3, 0.0, 1.2))
T_BASE_FROM_LIDAR = from_ros_quaternion((0.0, 0.0, 0.0998, 0.995), (0.1, 0.05, 1.5))
T_CAM_FROM_LIDAR = compose(invert(T_BASE_FROM_CAM), T_BASE_FROM_LIDAR)


def gt_depth(frame: int) -> np.ndarray:
    """(H, W) float32 metres: a tilted plane that moves each frame, top rows invalid (0)."""
    rows, cols = np.mgrid[0 : CAMERA.height, 0 : CAMERA.width]
    depth = (4.0 + 0.05 * cols + 0.02 * rows + 0.1 * frame).astype(np.float32)
    depth[:4] = 0
    return depth


def lidar_points(frame: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) points in the LiDAR frame and the (N,) flat pixel each lands in, with the pixel's GT depth."""
    depth = gt_depth(frame)
    flat = rng.choice(np.flatnonzero(depth > 0), 150, replace=False)
    rows, cols = np.divmod(flat, CAMERA.width)
    z = depth.flat[flat].astype(np.float64)
    # A quarter pixel inside the pixel so floor() lands in it whatever the rounding.
    x = (cols + 0.25 - CAMERA.cx) / CAMERA.fx * z
    y = (rows + 0.25 - CAMERA.cy) / CAMERA.fy * z
    cam = np.stack([x, y, z], axis=1)  # (N, 3) camera frame
    lidar = cam @ invert(T_CAM_FROM_LIDAR)[:3, :3].T + invert(T_CAM_FROM_LIDAR)[:3, 3]
    return lidar, flat


def compressed_image(rgb: np.ndarray, stamp_ns: int, frame_id: str, fmt: str = "png"):
    """sensor_msgs/CompressedImage of ``rgb`` as image_transport's ``compressed`` writes it ("png" or "jpeg")."""
    import cv2

    from mf_ros.conversions import rosbags_messages

    m = rosbags_messages()
    ok, data = cv2.imencode("." + fmt, np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return m.message("sensor_msgs/msg/CompressedImage", header=make_header(stamp_ns, frame_id, m),
                     format=f"rgb8; {fmt} compressed bgr8", data=data.ravel())


def write_bag(path, frames: int = 5, tf: bool = True, gt: bool = True, lidar_offsets_ms=None, seed: int = 0,
              storage: str = "mcap", image_format: str = "raw"):
    """A camera at 10 Hz, its camera_info, a LiDAR sweep near each frame, /tf_static and GT; returns pixel lists.
    ``image_format`` "png" / "jpeg": the camera as CompressedImage on /camera/image_raw/compressed."""
    rng = np.random.default_rng(seed)
    offsets = lidar_offsets_ms if lidar_offsets_ms is not None else [7] * frames
    pixels = []
    with BagWriter(path, storage=storage) as bag:
        if tf:
            edges = [TfEdge("base_link", "camera_optical_frame", T0, T_BASE_FROM_CAM),
                     TfEdge("base_link", "lidar", T0, T_BASE_FROM_LIDAR)]
            bag.write("/tf_static", edges_to_tf_message(edges), T0)
        for f in range(frames):
            t = T0 + f * 100 * MS
            image = rng.integers(0, 256, (CAMERA.height, CAMERA.width, 3), dtype=np.uint8)
            if image_format == "raw":
                bag.write("/camera/image_raw", rgb_to_image(image, t, "camera_optical_frame"), t)
            else:
                bag.write("/camera/image_raw/compressed", compressed_image(image, t, "camera_optical_frame",
                                                                           image_format), t)
            bag.write("/camera/camera_info", camera_to_camera_info(CAMERA, t, "camera_optical_frame"), t)
            if gt:
                bag.write("/camera/depth/ground_truth", depth_to_image(gt_depth(f), t, "camera_optical_frame"), t)
            points, flat = lidar_points(f, rng)
            tl = t + offsets[f] * MS
            bag.write("/lidar/points", xyz_to_pointcloud2(points.astype(np.float32), tl, "lidar"), tl)
            pixels.append(flat)
    return pixels


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "scene"
    pixels = write_bag(path, lidar_offsets_ms=[7, -20, 60, 0, 45])
    return path, pixels


def test_sparse_depth_matches_ground_truth_at_lidar_pixels(bag):
    path, pixels = bag
    source = BagSamples(path, slop_s=0.05)
    assert source.topics.gt == "/camera/depth/ground_truth"
    np.testing.assert_allclose(source.T_cam_from_lidar, T_CAM_FROM_LIDAR, atol=1e-9)
    samples = list(source)
    # Frame 2's sweep is 60 ms away: dropped and counted.
    assert len(source) == len(samples) == 4
    assert source.sync.stats.skipped_total == 1
    for sample, frame in zip(samples, [0, 1, 3, 4], strict=True):
        assert sample.stamp_ns == T0 + frame * 100 * MS
        assert sample.camera == CAMERA
        valid = np.flatnonzero(sample.sparse_depth > 0)
        assert set(valid.tolist()) == set(pixels[frame].tolist())
        np.testing.assert_allclose(sample.sparse_depth.flat[valid], gt_depth(frame).flat[valid], rtol=1e-5)
        np.testing.assert_array_equal(sample.gt_depth, gt_depth(frame))


def test_missing_tf_static_needs_extrinsic(tmp_path):
    path = tmp_path / "no_tf"
    pixels = write_bag(path, frames=2, tf=False, gt=False)
    with pytest.raises(InputError, match="--extrinsic"):
        BagSamples(path)
    wxyz, t = to_quaternion(T_CAM_FROM_LIDAR)
    text = " ".join(str(v) for v in [*t, *wxyz[1:], wxyz[0]])
    samples = list(BagSamples(path, extrinsic=parse_extrinsic(text)))
    assert len(samples) == 2 and samples[0].gt_depth is None
    assert set(np.flatnonzero(samples[1].sparse_depth).tolist()) == set(pixels[1].tolist())


def test_sqlite3_bag_reads_the_same(tmp_path, bag):
    path, _ = bag
    write_bag(tmp_path / "db", lidar_offsets_ms=[7, -20, 60, 0, 45], storage="sqlite3")
    assert next((tmp_path / "db").glob("*.db3"))
    for a, b in zip(BagSamples(path), BagSamples(tmp_path / "db"), strict=True):
        assert a.stamp_ns == b.stamp_ns
        assert np.array_equal(a.image, b.image) and np.array_equal(a.sparse_depth, b.sparse_depth)


def test_truncated_bag_is_input_error(tmp_path, bag):
    path, _ = bag
    copy = tmp_path / "cut"
    shutil.copytree(path, copy)
    mcap = next(copy.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot read bag"):
        list(BagSamples(copy))


def test_topic_selection_and_errors():
    types = {"/cam/image_raw": "sensor_msgs/msg/Image", "/cam/depth/image": "sensor_msgs/msg/Image",
             "/cam/camera_info": "sensor_msgs/msg/CameraInfo", "/other/camera_info": "sensor_msgs/msg/CameraInfo",
             "/velodyne_points": "sensor_msgs/msg/PointCloud2", "/ouster/points": "sensor_msgs/msg/PointCloud2"}
    with pytest.raises(InputError, match="--points-topic"):
        select_topics(types)
    topics = select_topics(types, points="/ouster/points")
    assert (topics.image, topics.camera_info, topics.gt) == ("/cam/image_raw", "/cam/camera_info", None)
    with pytest.raises(InputError, match="not in the bag"):
        select_topics(types, image="/nope")
    with pytest.raises(InputError, match="expected sensor_msgs/msg/Image"):
        select_topics(types, image="/cam/camera_info")


def test_static_transform_chains_and_reports_gaps():
    edges = [TfEdge("base_link", "camera_optical_frame", 0, T_BASE_FROM_CAM),
             TfEdge("base_link", "lidar", 0, T_BASE_FROM_LIDAR)]
    np.testing.assert_allclose(static_transform(edges, "camera_optical_frame", "lidar"), T_CAM_FROM_LIDAR,
                               atol=1e-12)
    np.testing.assert_allclose(static_transform(edges, "lidar", "camera_optical_frame"), invert(T_CAM_FROM_LIDAR),
                               atol=1e-12)
    with pytest.raises(InputError, match="no chain"):
        static_transform(edges, "camera_optical_frame", "radar")


def test_parse_extrinsic_forms():
    np.testing.assert_allclose(parse_extrinsic("1 2 3 0 0 0 1"), from_ros_quaternion((0, 0, 0, 1), (1, 2, 3)))
    np.testing.assert_allclose(parse_extrinsic(",".join(map(str, np.eye(4).ravel()))), np.eye(4))
    with pytest.raises(InputError, match="7"):
        parse_extrinsic("1 2 3")
    with pytest.raises(InputError, match="must be numbers"):
        parse_extrinsic("a b c")


def test_simulated_bag_sparse_depth_agrees_with_rendered_ground_truth(tmp_path):
    config = SimConfig(frames=3, width=160, height=120, beams=32, horizontal_resolution=512, range_noise=0.0,
                       lidar_delay_ms=0.0)
    write_sim_bag(tmp_path / "sim", config)
    source = BagSamples(tmp_path / "sim")
    np.testing.assert_allclose(invert(source.T_cam_from_lidar), sim_rig(config).lidar_from_camera, atol=1e-9)
    samples = list(source)
    assert len(samples) == 3 and source.sync.stats.skipped_total == 0
    for sample in samples:
        lidar = sample.sparse_depth > 0
        assert lidar.sum() > 1000
        both = lidar & (sample.gt_depth > 0)
        assert both.sum() >= 0.99 * lidar.sum()  # LiDAR returns only where the camera sees a surface
        rel = np.abs(sample.sparse_depth[both] - sample.gt_depth[both]) / sample.gt_depth[both]
        # Noise-free LiDAR vs depth rendered at pixel centres: only the slope inside a pixel differs.
        assert np.median(rel) < 0.02


SPEED, YAW_RATE = 3.0, 0.5  # m/s along base_link x, rad/s about z: a robot turning while it drives


def T_odom_from_base(t_ns: int) -> np.ndarray:
    """The robot's pose at ``t_ns``: translation and yaw linear in time, which TF's interpolation (linear,
    slerp about a fixed axis) reproduces exactly between samples."""
    s = (t_ns - T0) / 1e9
    yaw = YAW_RATE * s
    return from_ros_quaternion((0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)), (SPEED * s, 0.2 * SPEED * s, 0.0))


POINTFIELD_TYPE = {"u4": 6, "f4": 7, "f8": 8}  # sensor_msgs/PointField UINT32, FLOAT32, FLOAT64


def timed_cloud(points: np.ndarray, offsets_ns: np.ndarray, stamp_ns: int, field: str, dtype: str,
                absolute: bool = False, unit: float = 1e-9):
    """PointCloud2 with float32 x, y, z and a per-point time ``field`` of ``dtype`` ("u4", "f4", "f8"): the
    offsets from ``stamp_ns`` in units of ``unit`` seconds, or (``absolute``) the time since the epoch."""
    from mf_ros.conversions import rosbags_messages

    m = rosbags_messages()
    packed = np.zeros(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), (field, "<" + dtype)])
    for axis, name in enumerate("xyz"):
        packed[name] = points[:, axis]
    packed[field] = ((stamp_ns if absolute else 0) + offsets_ns.astype(np.float64)) * (1e-9 / unit)
    fields = [m.message("sensor_msgs/msg/PointField", name=n, offset=4 * i, datatype=7, count=1)
              for i, n in enumerate("xyz")]
    fields.append(m.message("sensor_msgs/msg/PointField", name=field, offset=12, datatype=POINTFIELD_TYPE[dtype],
                            count=1))
    step = packed.dtype.itemsize
    return m.message("sensor_msgs/msg/PointCloud2", header=make_header(stamp_ns, "lidar", m), height=1,
                     width=len(points), fields=fields, is_bigendian=False, point_step=step,
                     row_step=step * len(points), data=packed.view(np.uint8), is_dense=True)


def write_moving_bag(path, lidar_offsets_ms, sweep_ms: float = 0.0) -> list[np.ndarray]:
    """Frames at 10 Hz from a moving robot: each sweep measures the scene at its own stamp, /tf odom ->
    base_link every 10 ms from 20 ms before the first image to 440 ms after it; returns each frame's pixels.
    ``sweep_ms`` > 0: a rolling sweep, its returns measured over that long from the sweep's stamp, in column
    order (as a spinning LiDAR's azimuth), each recorded in the field ``t`` (uint32 ns from the stamp, Ouster's)."""
    rng = np.random.default_rng(5)
    pixels = []
    with BagWriter(path) as bag:
        edges = [TfEdge("base_link", "camera_optical_frame", T0, T_BASE_FROM_CAM),
                 TfEdge("base_link", "lidar", T0, T_BASE_FROM_LIDAR)]
        bag.write("/tf_static", edges_to_tf_message(edges), T0)
        for k in range(-2, 45):
            t = T0 + k * 10 * MS
            bag.write("/tf", edges_to_tf_message([TfEdge("odom", "base_link", t, T_odom_from_base(t))]), t)
        for f, offset in enumerate(lidar_offsets_ms):
            t = T0 + f * 100 * MS
            image = rng.integers(0, 256, (CAMERA.height, CAMERA.width, 3), dtype=np.uint8)
            bag.write("/camera/image_raw", rgb_to_image(image, t, "camera_optical_frame"), t)
            bag.write("/camera/camera_info", camera_to_camera_info(CAMERA, t, "camera_optical_frame"), t)
            bag.write("/camera/depth/ground_truth", depth_to_image(gt_depth(f), t, "camera_optical_frame"), t)
            at_image, flat = lidar_points(f, rng)  # where the camera at t sees them, in the LiDAR frame at t
            tl = t + offset * MS
            # Each return's time: the sweep's stamp, or along a rolling sweep by its pixel's column.
            offsets = np.round(flat % CAMERA.width / CAMERA.width * sweep_ms * MS).astype(np.int64)  # (N,) ns
            points = np.empty_like(at_image)
            for i, when in enumerate(tl + offsets):  # the same world point, seen from where the LiDAR is then
                T_lidar_now_from_lidar_then = compose(invert(T_BASE_FROM_LIDAR), invert(T_odom_from_base(when)),
                                                      T_odom_from_base(t), T_BASE_FROM_LIDAR)
                points[i] = T_lidar_now_from_lidar_then[:3, :3] @ at_image[i] + T_lidar_now_from_lidar_then[:3, 3]
            cloud = timed_cloud(points, offsets, tl, "t", "u4") if sweep_ms else \
                xyz_to_pointcloud2(points.astype(np.float32), tl, "lidar")
            bag.write("/lidar/points", cloud, tl)
            pixels.append(flat)
    return pixels


def test_a_fixed_frame_moves_each_sweep_to_its_image_stamp(tmp_path):
    """On a moving robot the sweep is 7-43 ms off its image; with --fixed-frame odom every return lands on
    the pixel and depth the camera saw at its own stamp, while one static extrinsic puts it off by the
    robot's motion. A pair whose sweep lies past the recorded /tf is skipped and counted."""
    path = tmp_path / "moving"
    pixels = write_moving_bag(path, lidar_offsets_ms=[7, 23, -17, 43, 45])  # frame 4's sweep: past /tf's end
    moved = BagSamples(path, fixed_frame="odom")
    assert moved.T_cam_from_lidar is None
    assert len(moved) == 4 and moved.sync.stats.skipped_total == moved.sync.stats.skipped["no_tf"] == 1
    static = {s.stamp_ns: s for s in BagSamples(path)}
    for sample, frame in zip(moved, range(4), strict=True):
        valid = np.flatnonzero(sample.sparse_depth > 0)
        assert set(valid.tolist()) == set(pixels[frame].tolist())
        np.testing.assert_allclose(sample.sparse_depth.flat[valid], gt_depth(frame).flat[valid], rtol=1e-5)
        unmoved = np.flatnonzero(static[sample.stamp_ns].sparse_depth > 0)
        if frame in (1, 3):  # sweeps 23 and 43 ms off: one static extrinsic misplaces nearly every return
            assert np.isin(unmoved, pixels[frame]).mean() < 0.2
    from mf_training.cli import main as mf_main

    assert mf_main(["export", "--bag", str(path), "--out", str(tmp_path / "out"), "--fixed-frame", "odom"]) == 0
    assert len(list((tmp_path / "out").glob("*_sparse.png"))) == 4
    with pytest.raises(InputError, match="no --extrinsic"):
        BagSamples(path, fixed_frame="odom", extrinsic=T_CAM_FROM_LIDAR)
    with pytest.raises(InputError, match="'map'"):
        BagSamples(path, fixed_frame="map")
    write_bag(tmp_path / "still", frames=2)
    with pytest.raises(InputError, match="has no /tf"):
        BagSamples(tmp_path / "still", fixed_frame="odom")


def test_tf_timeline_interpolates_and_never_extrapolates():
    from mf_ros.extrinsics import TfTimeline

    def yaw(angle: float, x: float) -> np.ndarray:
        return from_ros_quaternion((0.0, 0.0, np.sin(angle / 2), np.cos(angle / 2)), (x, 0.0, 0.0))

    timeline = TfTimeline([TfEdge("base", "lidar", 0, yaw(0.0, 0.5))],
                          [TfEdge("odom", "base", T0, yaw(0.0, 0.0)), TfEdge("odom", "base", T0 + 100 * MS,
                                                                              yaw(np.pi / 2, 2.0)),
                           TfEdge("base", "arm", T0 + 500 * MS, yaw(1.0, 0.0))])  # off the chain, sampled later
    np.testing.assert_allclose(timeline.at("odom", "base", T0 + 50 * MS), yaw(np.pi / 4, 1.0), atol=1e-12)
    np.testing.assert_allclose(timeline.at("odom", "lidar", T0 + 25 * MS),
                               compose(yaw(np.pi / 8, 0.5), yaw(0.0, 0.5)), atol=1e-12)
    np.testing.assert_allclose(timeline.at("base", "lidar", 0), yaw(0.0, 0.5))  # static: any stamp
    # The base at 0 ms seen from the base at 100 ms, through odom: a quarter turn back.
    np.testing.assert_allclose(timeline.across("base", T0 + 100 * MS, "base", T0, "odom"),
                               invert(yaw(np.pi / 2, 2.0)), atol=1e-12)
    with pytest.raises(InputError, match="not extrapolated"):
        timeline.at("odom", "lidar", T0 + 101 * MS)
    with pytest.raises(InputError, match="no chain"):
        timeline.at("odom", "camera", T0)
    # Many stamps at once (deskewing): each as its own lookup, and flagged where /tf does not reach.
    stamps = T0 + np.array([0, 13, 50, 99, 100, 101, -1]) * MS
    T, known = timeline.at_stamps("odom", "lidar", stamps)
    np.testing.assert_array_equal(known, [True] * 5 + [False] * 2)
    for stamp, transform in zip(stamps[known], T[known], strict=True):
        np.testing.assert_allclose(transform, timeline.at("odom", "lidar", int(stamp)), atol=1e-12)
    T, known = timeline.across_stamps("base", T0 + 100 * MS, "base", stamps[:2], "odom")
    assert known.all()
    np.testing.assert_allclose(T[0], invert(yaw(np.pi / 2, 2.0)), atol=1e-12)
    np.testing.assert_allclose(T[1], compose(invert(yaw(np.pi / 2, 2.0)), yaw(0.13 * np.pi / 2, 0.26)), atol=1e-12)


def test_a_rolling_sweep_is_deskewed_return_by_return(tmp_path, capsys):
    """A sweep measured over 90 ms from a robot turning while it drives: with a fixed frame each return is moved
    from its own time (the cloud's ``t`` field), landing on the pixel and depth the camera saw; moved as one
    (``point_time="none"``) most of them miss. Returns measured past the recorded /tf keep the sweep stamp's
    transform and are counted; the sweeps' stamps are all inside it."""
    path = tmp_path / "rolling"
    pixels = write_moving_bag(path, lidar_offsets_ms=[7, 23, -17, 7, 7], sweep_ms=90)  # frame 4: 407-497 ms
    deskewed = BagSamples(path, fixed_frame="odom")
    as_one = {s.stamp_ns: s for s in BagSamples(path, fixed_frame="odom", point_time="none")}
    samples = list(deskewed)
    assert len(samples) == 5 and deskewed.sync.stats.skipped_total == 0
    for frame, sample in enumerate(samples[:4]):
        valid = np.flatnonzero(sample.sparse_depth > 0)
        assert set(valid.tolist()) == set(pixels[frame].tolist())
        # Returns within 1 ms share one transform: at 3 m/s and 0.5 rad/s, under 3 mm apart.
        np.testing.assert_allclose(sample.sparse_depth.flat[valid], gt_depth(frame).flat[valid], rtol=1e-3)
        unmoved = np.flatnonzero(as_one[sample.stamp_ns].sparse_depth > 0)
        assert np.isin(unmoved, pixels[frame]).mean() < 0.4  # 15-25 % land right
    late = pixels[4] % CAMERA.width / CAMERA.width * 90 + 407 > 440  # returns measured after /tf's last sample
    assert 0.9 * late.sum() <= deskewed.points_without_tf <= 1.1 * late.sum() + 2
    on_time = np.flatnonzero(samples[4].sparse_depth > 0)
    assert np.isin(pixels[4][~late], on_time).mean() > 0.95
    with pytest.raises(InputError, match="needs --fixed-frame"):
        BagSamples(path, point_time="t")
    with pytest.raises(InputError, match="no field 'stamp'"):
        list(BagSamples(path, fixed_frame="odom", point_time="stamp"))
    from mf_training.cli import main as mf_main

    assert mf_main(["export", "--bag", str(path), "--out", str(tmp_path / "out"), "--fixed-frame", "odom"]) == 0
    assert f"{deskewed.points_without_tf} LiDAR return(s) were measured outside the recorded /tf" in \
        capsys.readouterr().out
    for flags, field in (([], "t"), (["--fixed-frame", "odom", "--point-time", "none"], None)):
        assert mf_main(["inspect", str(path), "--json", *flags]) == 0
        assert json.loads(capsys.readouterr().out)["sync"]["point_time_field"] == field


def test_a_bag_of_compressed_images_reads_like_one_of_raw_ones(tmp_path):
    """Bags usually record image_transport's compressed stream: a PNG one gives the very pixels and LiDAR depth a
    raw one does; a JPEG one the pixels to JPEG's loss; beside a raw stream, the raw one is read."""
    write_bag(tmp_path / "raw", frames=3)
    write_bag(tmp_path / "png", frames=3, image_format="png")
    raw, png = BagSamples(tmp_path / "raw"), BagSamples(tmp_path / "png")
    assert png.topics.image == "/camera/image_raw/compressed" and png.topics.camera_info == "/camera/camera_info"
    for a, b in zip(raw, png, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.sparse_depth, b.sparse_depth)
        assert a.stamp_ns == b.stamp_ns and b.sparse_depth.any()
    write_bag(tmp_path / "jpeg", frames=1, image_format="jpeg")
    (jpeg,), (first,) = BagSamples(tmp_path / "jpeg"), list(BagSamples(tmp_path / "raw"))[:1]
    assert 5 < np.abs(jpeg.image.astype(int) - first.image).mean() < 60  # noise images: JPEG's worst case
    with BagWriter(tmp_path / "both") as bag:  # a raw and a compressed stream of one camera
        for name in ("raw", "png"):
            for m in read_messages(tmp_path / name, decode=False):
                if m.topic.startswith("/camera/image_raw") or name == "raw":
                    bag.write_raw(m.topic, m.raw, m.stamp_ns, m.msgtype)
    assert select_topics(topic_types(tmp_path / "both")).image == "/camera/image_raw"
    assert BagSamples(tmp_path / "both", image_topic="/camera/image_raw/compressed").topics.image.endswith("compressed")
    from mf_training.cli import main as mf_main

    assert mf_main(["export", "--bag", str(tmp_path / "png"), "--out", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").glob("*_sparse.png"))) == 3
    with pytest.raises(InputError, match="--image-topic /camera/camera_info is a sensor_msgs/msg/CameraInfo, expected "
                                         "sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage"):
        BagSamples(tmp_path / "png", image_topic="/camera/camera_info")


def test_a_ros1_bag_reads_like_its_ros2_original(tmp_path, capsys):
    """A ROS 1 .bag (here made by rosbags' own converter: ROS 1 messages, CameraInfo's K and D in capitals,
    headers with seq) gives the same samples as the rosbag2 bag it came from; mf densify, which copies every
    message unchanged, refuses it with the command that converts it, and that command's output densifies."""
    import subprocess
    import sys
    from pathlib import Path

    from mf_ros.bags import ros1_conversion
    from mf_training.cli import main as mf_main

    write_bag(tmp_path / "ros2", frames=3)
    converter = str(Path(sys.executable).with_name("rosbags-convert"))
    ros1 = tmp_path / "run.bag"
    subprocess.run([converter, "--src", str(tmp_path / "ros2"), "--dst", str(ros1), "--dst-typestore", "ros1_noetic"],
                   check=True, capture_output=True)
    first_info = next(iter(read_messages(ros1, ["/camera/camera_info"]))).msg
    assert hasattr(first_info, "K") and not hasattr(first_info, "k")  # really ROS 1 messages
    for a, b in zip(BagSamples(tmp_path / "ros2"), BagSamples(ros1), strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.sparse_depth, b.sparse_depth)
        assert a.camera == b.camera and a.stamp_ns == b.stamp_ns
    # A bag from before tf2: its TF on tf/tfMessage (the same fields), which the reader takes too.
    from rosbags.rosbag1 import Reader, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    store.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf/msg/tfMessage"))
    with Reader(ros1) as reader, Writer(tmp_path / "old.bag") as writer:
        renamed = {c.id: writer.add_connection(c.topic, "tf/msg/tfMessage" if c.topic == "/tf_static" else c.msgtype,
                                               typestore=store) for c in reader.connections}
        for connection, stamp, raw in reader.messages():
            writer.write(renamed[connection.id], stamp, raw)
    assert dict((t.topic, t.msgtype) for t in bag_topics(tmp_path / "old.bag"))["/tf_static"] == "tf/msg/tfMessage"
    np.testing.assert_array_equal(BagSamples(tmp_path / "old.bag").T_cam_from_lidar, BagSamples(ros1).T_cam_from_lidar)
    assert mf_main(["densify", "--bag", str(ros1), "--out", str(tmp_path / "dense"), "--mode", "classical"]) != 0
    assert re.search(r"is a ROS 1 bag.*rosbags-convert --src .*run\.bag --dst .*run_ros2", capsys.readouterr().err)
    assert not (tmp_path / "dense").exists()
    command = ros1_conversion(ros1).split()
    subprocess.run([converter, *command[1:]], check=True, capture_output=True)
    assert mf_main(["densify", "--bag", str(tmp_path / "run_ros2"), "--out", str(tmp_path / "dense"), "--mode",
                    "classical"]) == 0
    assert "3 frames with depth" in capsys.readouterr().out


OST_YAML = """image_width: 64
image_height: 48
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [50.0, 0.0, 31.5, 0.0, 52.0, 23.5, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.0, 0.0, 0.0, 0.0, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [50.0, 0.0, 31.5, 0.0, 0.0, 52.0, 23.5, 0.0, 0.0, 0.0, 1.0, 0.0]
"""  # camera_calibration's ost.yaml of CAMERA


def test_a_bag_without_camera_info_reads_with_its_calibration_file(tmp_path, capsys):
    """A bag recorded without camera_info plus the camera's calibration YAML (--camera-info) gives the samples
    of the same bag with camera_info; a wrong or missing file is named with what to fix."""
    write_bag(tmp_path / "with", frames=3)
    with BagWriter(tmp_path / "without") as bag:
        for m in read_messages(tmp_path / "with", decode=False):
            if m.topic != "/camera/camera_info":
                bag.write_raw(m.topic, m.raw, m.stamp_ns, m.msgtype)
    (tmp_path / "ost.yaml").write_text(OST_YAML)
    with pytest.raises(InputError, match="or pass its calibration file with --camera-info"):
        BagSamples(tmp_path / "without")
    calibrated = BagSamples(tmp_path / "without", camera_info_file=tmp_path / "ost.yaml")
    assert calibrated.topics.camera_info is None
    for a, b in zip(BagSamples(tmp_path / "with"), calibrated, strict=True):
        assert a.camera == b.camera == CAMERA
        np.testing.assert_array_equal(a.sparse_depth, b.sparse_depth)
    from mf_training.cli import main as mf_main

    out = tmp_path / "dense"
    assert mf_main(["densify", "--bag", str(tmp_path / "without"), "--out", str(out), "--mode", "classical",
                    "--camera-info", str(tmp_path / "ost.yaml")]) == 0
    assert "3 frames with depth" in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text(OST_YAML.replace("data: [50.0, 0.0, 31.5, 0.0, 52.0, 23.5, 0.0, 0.0, 1.0]",
                                                        "data: [50.0, 0.0, 31.5]"))
    with pytest.raises(InputError, match=r"bad.yaml: 'camera_matrix' must be \{rows, cols, data: \[9 numbers\]\}"):
        BagSamples(tmp_path / "without", camera_info_file=tmp_path / "bad.yaml")
    (tmp_path / "small.yaml").write_text(OST_YAML.replace("image_width: 64", "image_width: 32"))
    with pytest.raises(InputError, match=r"small\.yaml says 32x48 but /camera/image_raw is 64x48"):
        list(BagSamples(tmp_path / "without", camera_info_file=tmp_path / "small.yaml"))
    with pytest.raises(InputError, match="cannot read camera calibration"):
        BagSamples(tmp_path / "without", camera_info_file=tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="either --camera-info-topic or --camera-info"):
        BagSamples(tmp_path / "with", camera_info_topic="/camera/camera_info", camera_info_file=tmp_path / "ost.yaml")
