"""Image / CameraInfo / PointCloud2 / TF conversions: numpy -> message -> numpy, through CDR and bags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import transforms3d.euler as te
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_ros import conversions as conv
from mf_ros.bags import BagWriter

TS = conv.rosbags_messages().typestore
STAMP = 1_700_000_123_456_789_012
RNG = np.random.default_rng(7)
H, W = 6, 8


def cdr_round_trip(msg):
    """Serialise with rosbags and deserialise again."""
    return TS.deserialize_cdr(TS.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


def mcap_round_trip(tmp_path: Path, msg):
    """Write ``msg`` with BagWriter, read it back with the independent mcap + mcap_ros2 decoder."""
    bag = tmp_path / f"bag{len(list(tmp_path.iterdir()))}"
    with BagWriter(bag) as writer:
        writer.write("/topic", msg, 5)
    with open(next(bag.glob("*.mcap")), "rb") as f:
        decoded = [m for _, _, _, m in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages()]
    assert len(decoded) == 1
    return decoded[0]


TRANSPORTS = ["direct", "cdr", "mcap"]


def transport(kind: str, msg, tmp_path: Path):
    """The message as a consumer of ``kind`` sees it."""
    return {"direct": lambda: msg, "cdr": lambda: cdr_round_trip(msg),
            "mcap": lambda: mcap_round_trip(tmp_path, msg)}[kind]()


def random_rgb(h: int = H, w: int = W) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def random_depth() -> np.ndarray:
    depth = RNG.uniform(0.3, 60.0, (H, W)).astype(np.float32)
    depth[0, :3] = np.nan
    return depth


# ------------------------------------------------------------------------------ stamps


def test_stamp_round_trip_keeps_every_nanosecond():
    stamp = conv.ns_to_stamp(STAMP)
    assert (stamp.sec, stamp.nanosec) == (1_700_000_123, 456_789_012)
    assert conv.stamp_to_ns(stamp) == STAMP
    with pytest.raises(InputError, match=">= 0"):
        conv.ns_to_stamp(-1)


# ------------------------------------------------------------------------------ images


@pytest.mark.parametrize("kind", TRANSPORTS)
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_colour_image_round_trip(tmp_path, kind, encoding):
    rgb = random_rgb()
    msg = conv.rgb_to_image(rgb, STAMP, "cam", encoding)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (H, W, W * 3, encoding)
    if encoding == "bgr8":
        assert msg.data[:3].tolist() == rgb[0, 0, ::-1].tolist()
    got = transport(kind, msg, tmp_path)
    assert conv.header_stamp_ns(got) == STAMP and got.header.frame_id == "cam"
    np.testing.assert_array_equal(conv.image_to_rgb(got), rgb)


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_mono8_round_trip_of_a_grey_image(tmp_path, kind):
    grey = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    msg = conv.rgb_to_image(rgb, STAMP, "cam", "mono8")
    assert msg.step == W
    np.testing.assert_array_equal(conv.image_to_rgb(transport(kind, msg, tmp_path)), rgb)
    np.testing.assert_array_equal(conv.image_to_rgb(conv.rgb_to_image(grey, STAMP, "cam", "mono8")), rgb)


def test_colour_image_with_row_padding_and_alpha():
    rgb = random_rgb()
    for encoding, order in (("rgba8", [0, 1, 2]), ("bgra8", [2, 1, 0])):
        step = W * 4 + 5  # 5 bytes of padding at the end of each row
        rows = np.zeros((H, step), np.uint8)
        pixels = np.concatenate([rgb[:, :, order], np.full((H, W, 1), 255, np.uint8)], axis=2)
        rows[:, : W * 4] = pixels.reshape(H, W * 4)
        msg = TS.types["sensor_msgs/msg/Image"](header=conv.make_header(0, "cam"), height=H, width=W,
                                                 encoding=encoding, is_bigendian=0, step=step, data=rows.ravel())
        np.testing.assert_array_equal(conv.image_to_rgb(msg), rgb)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_mosaics_are_demosaiced_in_their_own_pattern(pattern):
    """A camera driver's raw Bayer image_raw: each ROS pattern is demosaiced with its own layout (a wrong one
    swaps red and blue or shifts green: a mean error of about 60 on this image instead of under 1)."""
    rows, cols = np.mgrid[0:48, 0:64]
    rgb = np.stack([4 * cols, 40 + 3 * rows, 250 - 3 * cols], axis=-1).astype(np.uint8)  # smooth: exact to demosaic
    mosaic = np.zeros(rows.shape, np.uint8)
    for (dy, dx), colour in zip(((0, 0), (0, 1), (1, 0), (1, 1)), pattern, strict=True):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(colour)]
    msg = TS.types["sensor_msgs/msg/Image"](header=conv.make_header(0, "cam"), height=48, width=64,
                                             encoding=f"bayer_{pattern}8", is_bigendian=0, step=64, data=mosaic.ravel())
    got = conv.image_to_rgb(msg)
    assert got.shape == (48, 64, 3)
    assert np.abs(got.astype(int) - rgb)[2:-2, 2:-2].mean() < 1.0


@pytest.mark.parametrize("encoding", ["uyvy", "yuv422", "yuyv", "yuv422_yuy2"])
def test_packed_yuv422_images_decode_in_their_own_byte_order(encoding):
    """A USB camera's YUV 4:2:2 image_raw, encoded here with the BT.601 video-range formulas from colours that are
    constant over each pixel pair: decoded within 2 of them (the other byte order swaps luma and chroma)."""
    rng = np.random.default_rng(3)
    rgb = np.repeat(rng.integers(0, 256, (6, 4, 3)), 2, axis=1).astype(np.uint8)  # (6, 8, 3), pairs equal
    r, g, b = np.moveaxis(rgb / 255.0, -1, 0)
    y = np.rint(16 + 65.481 * r + 128.553 * g + 24.966 * b)
    u = np.rint(128 - 37.797 * r - 74.203 * g + 112.0 * b)[:, ::2]
    v = np.rint(128 + 112.0 * r - 93.786 * g - 18.214 * b)[:, ::2]
    chroma = np.stack([u, v], axis=-1).reshape(6, 8)  # U0 V0 U2 V2 ...: one chroma byte per pixel
    pairs = np.stack([chroma, y] if encoding in ("uyvy", "yuv422") else [y, chroma], axis=-1)  # (6, 8, 2)
    msg = TS.types["sensor_msgs/msg/Image"](header=conv.make_header(0, "cam"), height=6, width=8, encoding=encoding,
                                             is_bigendian=0, step=16, data=pairs.astype(np.uint8).ravel())
    assert np.abs(conv.image_to_rgb(msg).astype(int) - rgb).max() <= 2
    odd = TS.types["sensor_msgs/msg/Image"](header=conv.make_header(0, "cam"), height=6, width=7, encoding=encoding,
                                            is_bigendian=0, step=14, data=np.zeros(84, np.uint8))
    with pytest.raises(InputError, match="odd width 7"):
        conv.image_to_rgb(odd)


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_depth_32fc1_round_trip_is_exact(tmp_path, kind):
    depth = random_depth()
    msg = conv.depth_to_image(depth, STAMP, "cam", "32FC1")
    assert (msg.encoding, msg.step) == ("32FC1", W * 4)
    got = conv.image_to_depth(transport(kind, msg, tmp_path))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, depth)  # NaN positions compared too


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_depth_16uc1_round_trip_in_millimetres(tmp_path, kind):
    depth = random_depth()
    depth[1, 1] = 0.0  # sample convention "no value"
    depth[1, 2] = 70.0  # beyond 65.535 m: not representable -> no value
    msg = conv.depth_to_image(depth, STAMP, "cam", "16UC1")
    raw = np.frombuffer(bytes(msg.data), "<u2").reshape(H, W)
    assert raw[1, 1] == 0 and raw[1, 2] == 0 and raw[0, 0] == 0
    assert raw[2, 3] == round(float(depth[2, 3]) * 1000)
    got = conv.image_to_depth(transport(kind, msg, tmp_path))
    expected = np.where(raw > 0, np.round(depth * 1000) / 1000, np.nan).astype(np.float32)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert np.isnan(got[1, 1]) and np.isnan(got[1, 2])


def test_big_endian_depth_images_are_decoded():
    depth = np.linspace(0.5, 9.5, H * W, dtype=np.float32).reshape(H, W)
    make = TS.types["sensor_msgs/msg/Image"]
    f32 = make(header=conv.make_header(0, "cam"), height=H, width=W, encoding="32FC1", is_bigendian=1,
               step=W * 4, data=np.frombuffer(depth.astype(">f4").tobytes(), np.uint8))
    np.testing.assert_array_equal(conv.image_to_depth(f32), depth)
    mm = np.arange(1, H * W + 1, dtype=np.uint16).reshape(H, W) * 100
    u16 = make(header=conv.make_header(0, "cam"), height=H, width=W, encoding="16UC1", is_bigendian=1,
               step=W * 2, data=np.frombuffer(mm.astype(">u2").tobytes(), np.uint8))
    np.testing.assert_allclose(conv.image_to_depth(u16), mm / 1000.0, rtol=1e-7)


def test_bad_images_raise_input_error():
    msg = conv.rgb_to_image(random_rgb(), 0, "cam")
    msg.encoding = "nv12"  # planar 4:2:0: not supported
    with pytest.raises(InputError, match=r"'nv12'.*bgr8.*rgb8"):
        conv.image_to_rgb(msg)
    with pytest.raises(InputError, match=r"'nv12'.*32FC1"):
        conv.image_to_depth(msg)
    msg = conv.rgb_to_image(random_rgb(), 0, "cam")
    msg.data = msg.data[:-1]
    with pytest.raises(InputError, match=f"{H * W * 3 - 1} bytes.*{H * W * 3}"):
        conv.image_to_rgb(msg)
    msg = conv.rgb_to_image(random_rgb(), 0, "cam")
    msg.step = W * 3 - 1
    with pytest.raises(InputError, match="step"):
        conv.image_to_rgb(msg)
    with pytest.raises(InputError, match="uint8 RGB"):
        conv.rgb_to_image(np.zeros((H, W, 3), np.float32), 0, "cam")
    with pytest.raises(InputError, match="32FC1"):
        conv.depth_to_image(random_depth(), 0, "cam", "mono16")


# -------------------------------------------------------------------------- CameraInfo

CAMERAS = [
    PinholeCamera(640, 480, 525.5, 524.25, 319.75, 241.125),
    PinholeCamera(1280, 720, 910.0, 905.0, 640.5, 360.5, "plumb_bob", (-0.1, 0.02, 0.001, -0.002, 0.003)),
    PinholeCamera(800, 600, 400.0, 401.0, 399.0, 301.0, "rational_polynomial",
                  (0.1, -0.2, 0.001, 0.002, 0.01, 0.05, -0.04, 0.003)),
    PinholeCamera(1280, 800, 420.0, 419.5, 639.5, 399.5, "equidistant", (-0.02, 0.004, -0.001, 0.0002)),
    PinholeCamera(640, 480, 210.0, 210.0, 319.5, 239.5, "equidistant", (0.0, 0.0, 0.0, 0.0)),
]


@pytest.mark.parametrize("kind", TRANSPORTS)
@pytest.mark.parametrize("camera", CAMERAS, ids=["pinhole", "plumb_bob", "rational", "fisheye", "ideal_fisheye"])
def test_camera_info_round_trip(tmp_path, kind, camera):
    msg = conv.camera_to_camera_info(camera, STAMP, "cam_optical_frame")
    np.testing.assert_array_equal(np.asarray(msg.r).reshape(3, 3), np.eye(3))
    np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4), np.hstack([camera.K, np.zeros((3, 1))]))
    got = transport(kind, msg, tmp_path)
    assert got.header.frame_id == "cam_optical_frame" and conv.header_stamp_ns(got) == STAMP
    assert conv.camera_info_to_camera(got) == camera


def test_uncalibrated_camera_info_raises_input_error():
    msg = conv.camera_to_camera_info(CAMERAS[0], 0, "cam")
    msg.k = np.zeros(9)
    with pytest.raises(InputError, match=r"fx must be a positive focal length.*calibrate"):
        conv.camera_info_to_camera(msg)
    msg.k = np.ones(4)
    with pytest.raises(InputError, match="K has 4 values"):
        conv.camera_info_to_camera(msg)


# -------------------------------------------------------------------------- PointCloud2


def random_points(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.normal(0, 10, (*shape, 3)).astype(np.float32)


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_unorganized_xyz_and_xyzi_round_trip(tmp_path, kind):
    points = random_points((50,))
    msg = conv.xyz_to_pointcloud2(points, STAMP, "lidar")
    assert (msg.height, msg.width, msg.point_step, msg.is_dense) == (1, 50, 12, True)
    np.testing.assert_array_equal(conv.pointcloud2_to_xyz(transport(kind, msg, tmp_path)), points)
    intensity = RNG.uniform(0, 255, 50).astype(np.float32)
    msg = conv.xyz_to_pointcloud2(points, STAMP, "lidar", intensity=intensity)
    assert [(f.name, f.offset, f.datatype) for f in msg.fields] == [
        ("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("intensity", 12, 7)]
    got = transport(kind, msg, tmp_path)
    fields = conv.pointcloud2_fields(got, ["intensity", "z"])
    np.testing.assert_array_equal(fields["intensity"], intensity)
    np.testing.assert_array_equal(fields["z"], points[:, 2])


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_organized_xyzrgb_round_trip_keeps_nan_and_layout(tmp_path, kind):
    points, rgb = random_points((H, W)), random_rgb()
    points[2, 3] = np.nan
    msg = conv.xyzrgb_to_pointcloud2(points, rgb, STAMP, "cam_optical_frame")
    assert (msg.height, msg.width, msg.point_step, msg.row_step, msg.is_dense) == (H, W, 16, W * 16, False)
    assert [(f.name, f.offset) for f in msg.fields] == [("x", 0), ("y", 4), ("z", 8), ("rgb", 12)]
    got = transport(kind, msg, tmp_path)
    np.testing.assert_array_equal(conv.pointcloud2_to_xyz(got, drop_invalid=False).reshape(H, W, 3), points)
    np.testing.assert_array_equal(conv.pointcloud2_rgb(got).reshape(H, W, 3), rgb)
    assert len(conv.pointcloud2_to_xyz(got)) == H * W - 1
    # packed rgb bits are 0x00RRGGBB
    first = np.frombuffer(bytes(got.data)[12:16], "<u4")[0]
    assert first == (int(rgb[0, 0, 0]) << 16) | (int(rgb[0, 0, 1]) << 8) | int(rgb[0, 0, 2])



@pytest.mark.parametrize("stride", [1, 2])
def test_depth_to_xyzrgb_cloud_equals_backprojecting_first(stride):
    from mf_core.geometry import backproject_depth

    camera = PinholeCamera(W, H, 5.0, 6.0, 3.5, 2.5)
    depth = RNG.uniform(0.5, 9.0, (H, W)).astype(np.float32)
    depth[1, 2], depth[2, 4], depth[4, 0] = 0.0, np.nan, np.inf
    rgb = random_rgb()
    msg = conv.depth_to_xyzrgb_pointcloud2(depth, rgb, camera, STAMP, "cam", stride=stride)
    points = backproject_depth(depth, camera)[::stride, ::stride]  # (h, w, 3)
    reference = conv.xyzrgb_to_pointcloud2(points, rgb[::stride, ::stride], STAMP, "cam")
    assert (msg.height, msg.width) == points.shape[:2] == (reference.height, reference.width)
    assert bytes(msg.data) == bytes(reference.data)
    assert np.isnan(conv.pointcloud2_to_xyz(msg, drop_invalid=False)).any(axis=1).sum() == np.sum(
        ~np.isfinite(points[..., 2]))
    with pytest.raises(InputError, match="rgb must be uint8"):
        conv.depth_to_xyzrgb_pointcloud2(depth, rgb[:, :-1], camera, STAMP, "cam")

def hand_built_cloud(big_endian: bool):
    """Cloud with odd offsets, padding inside points and at row ends, every datatype, 2 rows."""
    order = ">" if big_endian else "<"
    layout = [("ring", "u1", 0, 2), ("x", "f4", 1, 7), ("y", "f8", 5, 8), ("z", "f4", 13, 7),
              ("intensity", "u2", 18, 4), ("t", "i4", 20, 5), ("a", "i1", 24, 1), ("b", "i2", 25, 3),
              ("c", "u4", 27, 6)]
    point_step, h, w = 33, 2, 5
    dtype = np.dtype({"names": [n for n, *_ in layout], "formats": [order + f for _, f, *_ in layout],
                      "offsets": [o for _, _, o, _ in layout], "itemsize": point_step})
    points = np.zeros((h, w), dtype)  # (2, 5) structured
    values = {n: RNG.integers(-100 if f[0] in "if" else 0, 100, (h, w)).astype(f) for n, f, *_ in layout}
    values["x"] = RNG.normal(size=(h, w)).astype("f4")
    values["x"][1, 2] = np.nan
    for name, v in values.items():
        points[name] = v
    row_step = w * point_step + 3  # 3 bytes of padding after every row
    data = np.zeros((h, row_step), np.uint8)
    data[:, : w * point_step] = points.view(np.uint8).reshape(h, w * point_step)
    fields = [TS.types["sensor_msgs/msg/PointField"](name=n, offset=o, datatype=d, count=1) for n, _, o, d in layout]
    msg = TS.types["sensor_msgs/msg/PointCloud2"](
        header=conv.make_header(0, "lidar"), height=h, width=w, fields=fields, is_bigendian=big_endian,
        point_step=point_step, row_step=row_step, data=data.ravel(), is_dense=False)
    return msg, {n: v.ravel() for n, v in values.items()}


@pytest.mark.parametrize("big_endian", [False, True], ids=["little", "big"])
def test_any_field_layout_and_endianness_is_decoded(tmp_path, big_endian):
    msg, values = hand_built_cloud(big_endian)
    for got in (msg, cdr_round_trip(msg), mcap_round_trip(tmp_path, msg)):
        fields = conv.pointcloud2_fields(got, list(values))
        for name, expected in values.items():
            assert fields[name].dtype == expected.dtype.newbyteorder("=")
            np.testing.assert_array_equal(fields[name], expected, err_msg=name)
        xyz = conv.pointcloud2_to_xyz(got)
        assert xyz.dtype == np.float32 and xyz.shape == (9, 3)
        keep = np.isfinite(values["x"])
        np.testing.assert_array_equal(xyz[:, 1], values["y"][keep].astype(np.float32))


def test_bad_clouds_raise_input_error():
    msg, _ = hand_built_cloud(False)
    msg.data = msg.data[:-7]
    with pytest.raises(InputError, match=r"has 329 bytes but row_step\*height = 168\*2 = 336"):
        conv.pointcloud2_to_xyz(msg)
    msg = conv.xyz_to_pointcloud2(random_points((4,)), 0, "lidar")
    msg.fields = msg.fields[:2]
    with pytest.raises(InputError, match=r"no field\(s\) \['z'\]; it has \['x', 'y'\]"):
        conv.pointcloud2_to_xyz(msg)
    msg.fields[0].datatype = 9
    with pytest.raises(InputError, match="unknown datatype 9"):
        conv.pointcloud2_to_xyz(msg)
    msg = conv.xyz_to_pointcloud2(random_points((4,)), 0, "lidar")
    msg.fields[2].offset = 10
    with pytest.raises(InputError, match="does not fit in point_step 12"):
        conv.pointcloud2_to_xyz(msg)
    with pytest.raises(InputError, match="rgb must have shape"):
        conv.xyzrgb_to_pointcloud2(random_points((H, W)), random_rgb(H, W + 1), 0, "cam")
    with pytest.raises(InputError, match="points must be"):
        conv.xyz_to_pointcloud2(np.zeros((5, 2), np.float32), 0, "lidar")


def _lidar_like(n: int = 4000) -> np.ndarray:
    """(n, 3) float32 points 2-60 m away, like a real sweep."""
    directions = RNG.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return (directions * RNG.uniform(2, 60, (n, 1))).astype(np.float32)


def test_clouds_in_the_wrong_unit_or_byte_order_are_diagnosed():
    points = _lidar_like()
    good = conv.xyz_to_pointcloud2(points, 0, "lidar")
    np.testing.assert_array_equal(conv.pointcloud2_to_xyz(good), points)
    millimetres = conv.xyz_to_pointcloud2(points * 1000, 0, "lidar")
    with pytest.raises(InputError, match="in millimetres"):
        conv.pointcloud2_to_xyz(millimetres)
    flipped = conv.xyz_to_pointcloud2(points, 0, "lidar")
    flipped.is_bigendian = True  # little-endian bytes, flag says big
    with pytest.raises(InputError, match="is_bigendian flag is wrong"):
        conv.pointcloud2_to_xyz(flipped)
    as_int16 = np.round(points * 1000).clip(-32768, 32767).astype("<i2")  # (n, 3) millimetres
    fields = [TS.types["sensor_msgs/msg/PointField"](name=n, offset=2 * i, datatype=3, count=1)
              for i, n in enumerate("xyz")]
    integer = TS.types["sensor_msgs/msg/PointCloud2"](
        header=conv.make_header(0, "lidar"), height=1, width=len(points), fields=fields, is_bigendian=False,
        point_step=6, row_step=6 * len(points), data=as_int16.view(np.uint8).ravel(), is_dense=True)
    with pytest.raises(InputError, match="x/y/z are int16"):
        conv.pointcloud2_to_xyz(integer)
    twice = conv.xyz_to_pointcloud2(points, 0, "lidar")
    twice.fields[1].name = "x"
    with pytest.raises(InputError, match="the field 'x' twice"):
        conv.pointcloud2_to_xyz(twice)


def _fuzzed_cloud(rng: np.random.Generator):
    """A valid xyz cloud with one to three random changes to its field table, sizes or byte order."""
    msg = conv.xyz_to_pointcloud2(_lidar_like(int(rng.integers(1, 50))), 0, "lidar")
    field_type = TS.types["sensor_msgs/msg/PointField"]
    for _ in range(int(rng.integers(1, 4))):
        change = int(rng.integers(0, 8))
        fields = list(msg.fields)
        i = int(rng.integers(0, len(fields))) if fields else 0
        if change == 0 and fields:
            fields[i].datatype = int(rng.integers(0, 11))
        elif change == 1 and fields:
            fields[i].offset = int(rng.integers(0, 40))
        elif change == 2 and fields:
            fields[i].count = int(rng.integers(0, 4))
        elif change == 3 and fields:
            fields[i].name = str(rng.choice(["x", "y", "z", "", "intensity"]))
        elif change == 4:
            fields.insert(i, field_type(name=str(rng.choice(["x", "t"])), offset=int(rng.integers(0, 16)),
                                        datatype=int(rng.integers(1, 9)), count=1))
        elif change == 5 and fields:
            fields.pop(i)
        elif change == 6:
            msg.point_step = int(rng.integers(0, 24))
            msg.row_step = msg.point_step * msg.width + int(rng.integers(-1, 3))
        else:
            msg.is_bigendian = not msg.is_bigendian
        msg.fields = fields
    return msg


def test_fuzzed_pointcloud2_field_tables_raise_only_input_errors():
    rng = np.random.default_rng(99)
    outcomes = {"accepted": 0, "refused": 0}
    for _ in range(400):
        msg = _fuzzed_cloud(rng)
        try:
            xyz = conv.pointcloud2_to_xyz(msg)
        except InputError:
            outcomes["refused"] += 1
            continue
        outcomes["accepted"] += 1
        assert xyz.dtype == np.float32 and xyz.ndim == 2 and xyz.shape[1] == 3
    assert min(outcomes.values()) > 20, outcomes  # the fuzzing reaches both outcomes


# ---------------------------------------------------------------------------------- TF


def random_pose() -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = te.euler2mat(*RNG.uniform(-np.pi, np.pi, 3))
    T[:3, 3] = RNG.normal(0, 2, 3)
    return T


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_tf_message_round_trip(tmp_path, kind):
    edges = [conv.TfEdge("base_link", "lidar", STAMP, random_pose()),
             conv.TfEdge("base_link", "cam_optical_frame", STAMP + 1, random_pose())]
    msg = conv.edges_to_tf_message(edges)
    got = conv.tf_message_to_edges(transport(kind, msg, tmp_path))
    for want, have in zip(edges, got, strict=True):
        assert (have.parent, have.child, have.stamp_ns) == (want.parent, want.child, want.stamp_ns)
        np.testing.assert_allclose(have.T_parent_from_child, want.T_parent_from_child, atol=1e-12)


def test_tf_quaternion_order_is_xyzw_and_maps_child_to_parent():
    # 90 degrees about z: the child x axis is the parent y axis.
    T = np.eye(4)
    T[:3, :3] = te.euler2mat(0, 0, np.pi / 2)
    T[:3, 3] = [1.0, 2.0, 3.0]
    stamped = conv.edge_to_transform_stamped(conv.TfEdge("map", "robot", 0, T))
    q = stamped.transform.rotation
    np.testing.assert_allclose([q.x, q.y, q.z, q.w], [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)
    edge = conv.transform_stamped_to_edge(stamped)
    assert (edge.parent, edge.child) == ("map", "robot")
    np.testing.assert_allclose(edge.T_parent_from_child @ [1, 0, 0, 1], [1, 3, 3, 1], atol=1e-12)


def test_bad_transforms_raise_input_error():
    with pytest.raises(InputError, match="not a proper rotation"):
        conv.matrix_to_transform(np.diag([2.0, 1.0, 1.0, 1.0]))
    stamped = conv.edge_to_transform_stamped(conv.TfEdge("a", "b", 0, np.eye(4)))
    stamped.transform.rotation.w = 0.0
    with pytest.raises(InputError, match="all zero"):
        conv.transform_stamped_to_edge(stamped)
