"""Image / CameraInfo / PointCloud2 / TF messages <-> numpy, for rclpy AND rosbags messages.

Both message kinds share field names, so decoders only read attributes (duck typing).
Encoders build messages through a :class:`MessageFactory`: :class:`RosbagsMessages`
(rosbags typestore classes, used offline and for bags) or :class:`RclpyMessages`
(generated rclpy classes, imported lazily). This module imports no rclpy.

The ROS-message wire formats (row ``step``, PointField offsets, packed RGB) are decoded
here by hand with numpy views because no maintained, ROS-free library does it
(sensor_msgs_py and cv_bridge need a ROS install; see docs ROS.md).
"""

from __future__ import annotations

import array
import functools
import importlib
from typing import Any, NamedTuple, Protocol

import cv2
import numpy as np
from rosbags.typesys import Stores, get_typestore

from mf_core import transforms
from mf_core.camera import FISHEYE_MODEL, PinholeCamera
from mf_core.errors import InputError
from mf_core.files import encoded_image_size
from mf_core.geometry import backproject_depth

# ---------------------------------------------------------------------------- factories


class MessageFactory(Protocol):
    """Builds messages of one flavour (rclpy or rosbags) by ROS type name."""

    def message(self, msgtype: str, **fields: Any) -> Any:
        """A message of ``msgtype`` (e.g. ``"sensor_msgs/msg/Image"``) with every field given."""

    def uint8_array(self, data: np.ndarray) -> Any:
        """The value for a ``uint8[]`` field holding the bytes of the contiguous array ``data``."""

    def float64_array(self, values: np.ndarray) -> Any:
        """The value for a ``float64[]`` or ``float64[N]`` field."""


class RosbagsMessages:
    """Messages as rosbags dataclasses from a typestore (no ROS needed)."""

    def __init__(self, typestore: Any) -> None:
        self.typestore = typestore

    def message(self, msgtype: str, **fields: Any) -> Any:
        """A rosbags message of ``msgtype``; unknown types raise InputError."""
        try:
            cls = self.typestore.types[msgtype]
        except KeyError:
            raise InputError(f"message type {msgtype!r} is not in the rosbags typestore; "
                             "register it or use a typestore that has it") from None
        return cls(**fields)

    def uint8_array(self, data: np.ndarray) -> np.ndarray:
        """A flat uint8 view of ``data`` (no copy; rosbags serialises numpy arrays directly)."""
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)

    def float64_array(self, values: np.ndarray) -> np.ndarray:
        """``values`` as a flat float64 numpy array."""
        return np.asarray(values, dtype=np.float64).reshape(-1)


class RclpyMessages:
    """Messages as rclpy-generated classes (``sensor_msgs.msg.Image`` ...), imported on first use."""

    def message(self, msgtype: str, **fields: Any) -> Any:
        """An rclpy message of ``msgtype``; a package that is not installed raises InputError."""
        # Large uint8[] fields are set after construction: __init__ would copy them twice
        # (array.array() in __init__, then again in the setter), the setter alone once.
        arrays = {name: value for name, value in fields.items() if isinstance(value, array.array)}
        msg = _rclpy_class(msgtype)(**{name: value for name, value in fields.items() if name not in arrays})
        for name, value in arrays.items():
            setattr(msg, name, value)
        return msg

    def uint8_array(self, data: np.ndarray) -> array.array:
        """``array.array('B')`` filled with one memcpy; the generated setter takes it as is when
        ROS_PYTHON_CHECK_FIELDS=1 and with one more memcpy otherwise (bytes would be checked item by item)."""
        out = array.array("B")
        out.frombytes(np.ascontiguousarray(data).reshape(-1).view(np.uint8))
        return out

    def float64_array(self, values: np.ndarray) -> array.array:
        """``array.array('d')``, accepted by rclpy for both bounded and fixed-size float64 fields."""
        out = array.array("d")
        out.frombytes(np.ascontiguousarray(values, dtype=np.float64).reshape(-1).view(np.uint8))
        return out


@functools.cache
def _rclpy_class(msgtype: str) -> type:
    package, kind, name = _split_msgtype(msgtype)
    try:
        module = importlib.import_module(f"{package}.{kind}")
    except ImportError:
        raise InputError(f"ROS package {package!r} is not installed for rclpy, so {msgtype} cannot be built; "
                         f"install it (e.g. ros-jazzy-{package.replace('_', '-')}) or source a ROS install") from None
    return getattr(module, name)


def _split_msgtype(msgtype: str) -> tuple[str, str, str]:
    parts = msgtype.split("/")
    if len(parts) != 3:
        raise InputError(f"message type {msgtype!r} must look like 'package/msg/Name'")
    return parts[0], parts[1], parts[2]


@functools.cache
def rosbags_messages() -> RosbagsMessages:
    """The default factory: rosbags classes from the ROS 2 Jazzy typestore."""
    return RosbagsMessages(get_typestore(Stores.ROS2_JAZZY))


def _factory(messages: MessageFactory | None) -> MessageFactory:
    return rosbags_messages() if messages is None else messages


# ------------------------------------------------------------------------------- stamps

NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int, messages: MessageFactory | None = None) -> Any:
    """Integer nanoseconds -> ``builtin_interfaces/Time``; negative stamps raise InputError."""
    stamp_ns = int(stamp_ns)
    if stamp_ns < 0:
        raise InputError(f"stamp must be >= 0 ns, got {stamp_ns}")
    sec, nanosec = divmod(stamp_ns, NS_PER_S)
    return _factory(messages).message("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)


def make_header(stamp_ns: int, frame_id: str, messages: MessageFactory | None = None) -> Any:
    """``std_msgs/Header`` with the given stamp (ns) and frame."""
    m = _factory(messages)
    return m.message("std_msgs/msg/Header", stamp=ns_to_stamp(stamp_ns, m), frame_id=frame_id)


def header_stamp_ns(msg: Any) -> int:
    """Stamp of a stamped message's header in nanoseconds."""
    return stamp_to_ns(msg.header.stamp)


# ------------------------------------------------------------------------------- images

# Bytes per pixel of each supported colour encoding (all uint8 channels).
# Raw Bayer mosaics (a camera driver's image_raw before image_proc) -> OpenCV's demosaicing code. OpenCV names a
# pattern by the 2x2 block at its second row and column, so ROS's rggb is OpenCV's BG (checked in the tests on a
# mosaic made from a known image).
BAYER_CODES: dict[str, int] = {"bayer_rggb8": cv2.COLOR_BayerBG2RGB, "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
                               "bayer_gbrg8": cv2.COLOR_BayerGR2RGB, "bayer_grbg8": cv2.COLOR_BayerGB2RGB}
# Packed YUV 4:2:2 (USB cameras through usb_cam or v4l2_camera) -> OpenCV's conversion code (BT.601, video range);
# sensor_msgs names each byte order twice: uyvy = yuv422 (deprecated name), yuyv = yuv422_yuy2 (deprecated name).
YUV422_CODES: dict[str, int] = {"uyvy": cv2.COLOR_YUV2RGB_UYVY, "yuv422": cv2.COLOR_YUV2RGB_UYVY,
                                "yuyv": cv2.COLOR_YUV2RGB_YUYV, "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV}
COLOR_ENCODINGS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1,
                                   **dict.fromkeys(BAYER_CODES, 1), **dict.fromkeys(YUV422_CODES, 2)}
# Element type (little-endian form) of each supported depth encoding.
DEPTH_ENCODINGS: dict[str, str] = {"32FC1": "<f4", "16UC1": "<u2"}
MM_PER_M = 1000.0


def _byte_view(data: Any) -> np.ndarray:
    """(n,) uint8 view of a message's ``uint8[]`` field (numpy, array.array, bytes) without copying."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def _image_pixels(msg: Any, element: np.dtype, channels: int) -> np.ndarray:
    """(H, W, C) view of an Image's pixels honouring step and is_bigendian; checks sizes."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    element = element.newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = width * channels * element.itemsize
    if height <= 0 or width <= 0:
        raise InputError(f"{msg.encoding} image has size {width}x{height}; both must be positive")
    if step < row_bytes:
        raise InputError(f"{msg.encoding} image step {step} is smaller than width*bytes_per_pixel = {row_bytes}; "
                         "the publisher filled step wrongly")
    data = _byte_view(msg.data)
    if data.size != step * height:
        raise InputError(f"{msg.encoding} image data has {data.size} bytes but step*height = {step}*{height} = "
                         f"{step * height}; the message is truncated or its step/height are wrong")
    # (H, W, C) strided view: rows are `step` apart, trailing row padding is skipped.
    return np.ndarray((height, width, channels), dtype=element, buffer=data,
                      strides=(step, channels * element.itemsize, element.itemsize))


def image_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8, 8-bit Bayer, packed YUV 4:2:2) -> (H, W, 3) uint8 RGB
    (a new array); Bayer mosaics are demosaiced by OpenCV's bilinear method, as image_proc's default does."""
    channels = COLOR_ENCODINGS.get(msg.encoding)
    if channels is None:
        raise InputError(f"colour image encoding {msg.encoding!r} is not supported; "
                         f"publish one of {sorted(COLOR_ENCODINGS)}")
    pixels = _image_pixels(msg, np.dtype(np.uint8), channels)  # (H, W, C)
    if msg.encoding in BAYER_CODES:
        return cv2.cvtColor(np.ascontiguousarray(pixels[:, :, 0]), BAYER_CODES[msg.encoding])
    if msg.encoding in YUV422_CODES:  # two pixels share one U and one V sample
        if pixels.shape[1] % 2:
            raise InputError(f"{msg.encoding} image has odd width {pixels.shape[1]}; 4:2:2 pixels come in pairs")
        return cv2.cvtColor(np.ascontiguousarray(pixels), YUV422_CODES[msg.encoding])
    if msg.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    order = [2, 1, 0] if msg.encoding.startswith("bgr") else [0, 1, 2]
    return np.ascontiguousarray(pixels[:, :, order])


def camera_image_size(msg: Any) -> tuple[int, int]:
    """(width, height) of a sensor_msgs/Image or CompressedImage without decoding its pixels (a compressed
    image's from its JPEG / PNG header)."""
    if hasattr(msg, "encoding"):
        return int(msg.width), int(msg.height)
    return encoded_image_size(bytes(msg.data), f"CompressedImage ({msg.format!r})")


def camera_image_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image (:func:`image_to_rgb`) or CompressedImage (JPEG / PNG, as image_transport's
    ``compressed`` publishes) -> (H, W, 3) uint8 RGB."""
    if hasattr(msg, "encoding"):
        return image_to_rgb(msg)
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise InputError(f"CompressedImage ({msg.format!r}, {data.size} bytes) is not a JPEG/PNG OpenCV can decode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_to_depth(msg: Any) -> np.ndarray:
    """Depth Image -> (H, W) float32 metres, NaN = no value.

    32FC1 is metres (non-finite or <= 0 -> NaN); 16UC1 is millimetres (0 -> NaN).
    """
    element = DEPTH_ENCODINGS.get(msg.encoding)
    if element is None:
        raise InputError(f"depth image encoding {msg.encoding!r} is not supported; "
                         f"publish one of {sorted(DEPTH_ENCODINGS)} (REP 118: 32FC1 metres)")
    raw = _image_pixels(msg, np.dtype(element), 1)[:, :, 0]  # (H, W)
    depth = raw.astype(np.float32)
    if msg.encoding == "16UC1":
        depth /= np.float32(MM_PER_M)
    depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth


def _image_message(pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str,
                   messages: MessageFactory | None) -> Any:
    """Image message from (H, W[, C]) little-endian/uint8 pixels, rows packed (step = W*C*itemsize)."""
    m = _factory(messages)
    height, width = pixels.shape[:2]
    return m.message("sensor_msgs/msg/Image", header=make_header(stamp_ns, frame_id, m), height=height,
                     width=width, encoding=encoding, is_bigendian=0, step=pixels[0].nbytes,
                     data=m.uint8_array(pixels))


def rgb_to_image(rgb: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "rgb8",
                 messages: MessageFactory | None = None) -> Any:
    """(H, W, 3) uint8 RGB -> Image in ``encoding`` rgb8, bgr8 or mono8 (grey via OpenCV weights).

    For mono8 an (H, W) uint8 array is taken as already grey.
    """
    if encoding not in ("rgb8", "bgr8", "mono8"):
        raise InputError(f"cannot write colour image encoding {encoding!r}; use rgb8, bgr8 or mono8")
    rgb = np.asarray(rgb)
    grey_given = encoding == "mono8" and rgb.ndim == 2
    if rgb.dtype != np.uint8 or not (grey_given or (rgb.ndim == 3 and rgb.shape[2] == 3)):
        raise InputError(f"image must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if encoding == "bgr8":
        pixels = np.ascontiguousarray(rgb[:, :, ::-1])
    elif encoding == "mono8":
        pixels = rgb if grey_given else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    else:
        pixels = rgb
    return _image_message(pixels, encoding, stamp_ns, frame_id, messages)


def depth_to_image(depth: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "32FC1",
                   messages: MessageFactory | None = None) -> Any:
    """(H, W) metres -> depth Image; non-finite or <= 0 is "no value".

    32FC1 (REP 118) writes NaN for no value; 16UC1 writes rounded millimetres and 0 for
    no value, and also for depths beyond 65.535 m that 16 bits cannot hold.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.dtype.kind != "f":
        raise InputError(f"depth must be an (H, W) float array in metres, got {depth.shape} {depth.dtype}")
    valid = np.isfinite(depth) & (depth > 0)  # (H, W)
    if encoding == "32FC1":
        pixels = np.where(valid, depth, np.nan).astype("<f4")
    elif encoding == "16UC1":
        mm = np.rint(np.where(valid, depth, 0.0) * MM_PER_M)
        pixels = np.where(mm <= np.iinfo(np.uint16).max, mm, 0).astype("<u2")
    else:
        raise InputError(f"cannot write depth encoding {encoding!r}; use one of {sorted(DEPTH_ENCODINGS)}")
    return _image_message(pixels, encoding, stamp_ns, frame_id, messages)


# --------------------------------------------------------------------------- CameraInfo


def camera_info_to_camera(msg: Any) -> PinholeCamera:
    """sensor_msgs/CameraInfo -> PinholeCamera (K, D, distortion model, size).

    An all-zero D is read as an ideal pinhole (``distortion_model="none"``), except for the fisheye model
    (``equidistant``), whose zero coefficients are an ideal fisheye lens. Binning and ROI are not applied:
    the camera describes the full-resolution image. ROS 1 bags read directly name the arrays K and D.
    """
    ros1 = not hasattr(msg, "k")
    k = np.asarray(msg.K if ros1 else msg.k, dtype=np.float64)
    if k.size != 9:
        raise InputError(f"camera_info K has {k.size} values, expected 9 (row-major 3x3)")
    d = tuple(float(v) for v in (msg.D if ros1 else msg.d))
    if not any(d) and msg.distortion_model != FISHEYE_MODEL:
        model, d = "none", ()
    else:
        model = msg.distortion_model
    return PinholeCamera(int(msg.width), int(msg.height), float(k[0]), float(k[4]), float(k[2]), float(k[5]),
                         model, d)


def camera_to_camera_info(camera: PinholeCamera, stamp_ns: int, frame_id: str,
                          messages: MessageFactory | None = None) -> Any:
    """PinholeCamera -> CameraInfo with K, D, R = identity and P = [K | 0].

    An ideal pinhole is written as plumb_bob with five zero coefficients (what ROS tools expect).
    """
    m = _factory(messages)
    if camera.is_distorted:
        model, d = camera.distortion_model, np.asarray(camera.distortion)
    else:
        model, d = "plumb_bob", np.zeros(5)
    p = np.hstack([camera.K, np.zeros((3, 1))])  # (3, 4)
    roi = m.message("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0,
                    do_rectify=False)
    return m.message("sensor_msgs/msg/CameraInfo", header=make_header(stamp_ns, frame_id, m),
                     height=camera.height, width=camera.width, distortion_model=model,
                     d=m.float64_array(d), k=m.float64_array(camera.K), r=m.float64_array(np.eye(3)),
                     p=m.float64_array(p), binning_x=0, binning_y=0, roi=roi)


# --------------------------------------------------------------------------- PointCloud2

# sensor_msgs/PointField datatype constants -> numpy element type (little-endian form).
POINTFIELD_DTYPES: dict[int, str] = {1: "i1", 2: "u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 8: "<f8"}
UINT32, FLOAT32 = 6, 7


def pointcloud2_dtype(msg: Any) -> np.dtype:
    """Structured numpy dtype of one point: every field at its offset, itemsize = point_step."""
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    seen: set[str] = set()
    for f in msg.fields:
        if f.name in seen:
            raise InputError(f"PointCloud2 has the field {f.name!r} twice; the publisher's field table is wrong")
        seen.add(f.name)
        if f.datatype not in POINTFIELD_DTYPES:
            raise InputError(f"PointCloud2 field {f.name!r} has unknown datatype {f.datatype}; "
                             "expected 1..8 (INT8..FLOAT64)")
        element = np.dtype(POINTFIELD_DTYPES[f.datatype]).newbyteorder(order)
        count = max(int(f.count), 1)
        fmt = element if count == 1 else np.dtype((element, (count,)))
        if f.offset + fmt.itemsize > msg.point_step:
            raise InputError(f"PointCloud2 field {f.name!r} at offset {f.offset} ({fmt.itemsize} bytes) does not fit "
                             f"in point_step {msg.point_step}")
        names.append(f.name)
        formats.append(fmt)
        offsets.append(int(f.offset))
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(msg.point_step)})


def pointcloud2_points(msg: Any) -> np.ndarray:
    """(H, W) structured view of a PointCloud2's points (no copy); checks the data length."""
    dtype = pointcloud2_dtype(msg)
    height, width = int(msg.height), int(msg.width)
    row_step, point_step = int(msg.row_step), int(msg.point_step)
    if row_step < width * point_step:
        raise InputError(f"PointCloud2 row_step {row_step} is smaller than width*point_step = "
                         f"{width}*{point_step}; the publisher filled row_step wrongly")
    data = _byte_view(msg.data)
    if data.size != row_step * height:
        raise InputError(f"PointCloud2 data has {data.size} bytes but row_step*height = {row_step}*{height} = "
                         f"{row_step * height} (width*height*point_step = {width * height * point_step}); "
                         "the message is truncated or its sizes are wrong")
    return np.ndarray((height, width), dtype=dtype, buffer=data, strides=(row_step, point_step))


def pointcloud2_fields(msg: Any, names: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
    """Named fields of a PointCloud2 as flat native-endian arrays, each (H*W,) (or (H*W, count))."""
    points = pointcloud2_points(msg)  # (H, W) structured
    missing = [n for n in names if n not in points.dtype.names]
    if missing:
        raise InputError(f"PointCloud2 has no field(s) {missing}; it has {list(points.dtype.names)}")
    out = {}
    for name in names:
        column = points[name].reshape(points.size, *points.dtype[name].shape)
        out[name] = column.astype(column.dtype.newbyteorder("="))
    return out


def pointcloud2_to_xyz(msg: Any, drop_invalid: bool = True) -> np.ndarray:
    """PointCloud2 -> (N, 3) float32 x, y, z; ``drop_invalid`` removes points with a non-finite coordinate.

    With ``drop_invalid=False`` N = height*width in row-major order (reshape to (H, W, 3)
    for an organized cloud).
    """
    fields = pointcloud2_fields(msg, ("x", "y", "z"))  # each (N,)
    if any(fields[axis].ndim != 1 for axis in "xyz"):
        raise InputError("PointCloud2 x/y/z must be one value per point (PointField count 1), got counts "
                         f"{[fields[axis].shape[1:] or (1,) for axis in 'xyz']}")
    kinds = {fields[axis].dtype.kind for axis in "xyz"}
    if kinds != {"f"}:
        raise InputError(f"PointCloud2 x/y/z are {fields['x'].dtype.name}: REP 103 clouds are FLOAT32/FLOAT64 metres; "
                         "integer coordinates are usually millimetres or raw counts: convert them in the driver")
    columns = [fields[axis].astype(np.float32, copy=False) for axis in "xyz"]
    _check_cloud_scale(msg, columns)
    if drop_invalid:
        keep = np.isfinite(columns[0]) & np.isfinite(columns[1]) & np.isfinite(columns[2])  # (N,)
        columns = [column[keep] for column in columns]
    return np.stack(columns, axis=1)  # (N, 3)


MAX_PLAUSIBLE_MEDIAN_RANGE_M = 2000.0  # no LiDAR's typical return is this far: the unit or byte order is wrong
_SCALE_SAMPLE = 64  # the check looks at every 64th point: a few microseconds for a 130k-point sweep


def _median_range(columns: list[np.ndarray]) -> float:
    sample = np.stack([c[::_SCALE_SAMPLE] for c in columns], axis=1).astype(np.float64)  # (n, 3)
    ranges = np.linalg.norm(sample, axis=1)
    ranges = ranges[np.isfinite(ranges)]
    return float(np.median(ranges)) if ranges.size else 0.0


def _check_cloud_scale(msg: Any, columns: list[np.ndarray]) -> None:
    """InputError when the cloud's median range is implausible for metres, naming the likely cause."""
    with np.errstate(all="ignore"):  # garbage values overflow or are NaN: that is what is measured here
        median = _median_range(columns)
        if median <= MAX_PLAUSIBLE_MEDIAN_RANGE_M:
            return
        swapped = [c.byteswap() for c in columns]  # what the bytes say in the other byte order
        if 0.1 < _median_range(swapped) <= MAX_PLAUSIBLE_MEDIAN_RANGE_M:
            raise InputError(f"PointCloud2 median range is {median:.3g} m as is_bigendian={bool(msg.is_bigendian)} "
                             "says, but plausible with the other byte order: the is_bigendian flag is wrong")
    raise InputError(f"PointCloud2 median range is {median:.3g} m: REP 103 clouds are in metres; is it in "
                     "millimetres (divide by 1000)?")


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """(N,) packed ``rgb`` values (float32 or uint32 holding 0x00RRGGBB bits) -> (N, 3) uint8 RGB."""
    bits = np.ascontiguousarray(packed).view(np.uint32)  # (N,)
    return np.stack([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF], axis=1).astype(np.uint8)


def pointcloud2_rgb(msg: Any) -> np.ndarray:
    """(N, 3) uint8 colours of a cloud with a packed ``rgb`` (or ``rgba``) field, row-major."""
    names = pointcloud2_points(msg).dtype.names
    name = "rgb" if "rgb" in names else "rgba"
    return unpack_rgb(pointcloud2_fields(msg, (name,))[name])


def _float32_cloud(points: np.ndarray, extra: int) -> np.ndarray:
    """(H, W, 3 + extra) little-endian float32 point buffer (N points -> H=1) with x, y, z filled in."""
    shape = points.shape[:2] if points.ndim == 3 else (1, points.shape[0])  # (H, W)
    packed = np.empty((*shape, 3 + extra), dtype="<f4")  # one point per (h, w), fields back to back
    points = points.reshape(*shape, 3)
    for axis in range(3):  # one column at a time: 2x faster than copying (..., 3) blocks (measured)
        packed[..., axis] = points[..., axis]
    return packed


def _cloud_message(packed: np.ndarray, names: list[str], organized: bool, stamp_ns: int, frame_id: str,
                   messages: MessageFactory | None, uint32_fields: tuple[str, ...] = ()) -> Any:
    """PointCloud2 of an (H, W, F) float32 buffer whose F fields are ``names`` (offsets 0, 4, ...); those in
    ``uint32_fields`` hold uint32 bits (written through a view)."""
    m = _factory(messages)
    height, width, _ = packed.shape
    fields = [m.message("sensor_msgs/msg/PointField", name=n, offset=4 * i,
                        datatype=UINT32 if n in uint32_fields else FLOAT32, count=1) for i, n in enumerate(names)]
    point_step = 4 * len(names)
    return m.message("sensor_msgs/msg/PointCloud2", header=make_header(stamp_ns, frame_id, m),
                     height=height, width=width, fields=fields, is_bigendian=False,
                     point_step=point_step, row_step=point_step * width, data=m.uint8_array(packed),
                     is_dense=bool(not organized and np.isfinite(packed[..., :3]).all()))


def _check_points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points)
    if points.ndim not in (2, 3) or points.shape[-1] != 3 or points.dtype.kind != "f":
        raise InputError(f"points must be float (N, 3) or organized (H, W, 3), got {points.shape} {points.dtype}")
    return points


def _check_per_point(name: str, values: np.ndarray, points: np.ndarray, trailing: tuple[int, ...]) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != points.shape[:-1] + trailing:
        raise InputError(f"{name} must have shape {points.shape[:-1] + trailing} to match points {points.shape}, "
                         f"got {values.shape}")
    return values


def xyz_to_pointcloud2(points: np.ndarray, stamp_ns: int, frame_id: str, intensity: np.ndarray | None = None,
                       messages: MessageFactory | None = None, point_time_ns: np.ndarray | None = None) -> Any:
    """Points -> PointCloud2 with float32 x, y, z (point_step 12) [+ float32 intensity] [+ uint32 ``t``].

    ``points`` is (N, 3) for an unorganized cloud or (H, W, 3) for an organized one
    (height=H, width=W, is_dense=False, NaN marks invalid points); ``intensity`` is (N,) / (H, W);
    ``point_time_ns`` (N,) / (H, W) each return's time after ``stamp_ns`` in ns, as field ``t`` (Ouster's
    convention, read back by :mod:`mf_ros.deskew`).
    """
    points = _check_points(points)
    names = ["x", "y", "z"] + (["intensity"] if intensity is not None else []) + \
        (["t"] if point_time_ns is not None else [])
    packed = _float32_cloud(points, len(names) - 3)  # (H, W, F)
    if intensity is not None:
        packed[..., 3] = _check_per_point("intensity", intensity, points, ()).reshape(packed.shape[:2])
    if point_time_ns is not None:
        offsets = _check_per_point("point_time_ns", point_time_ns, points, ())
        if offsets.size and not (offsets.min() >= 0 and offsets.max() <= np.iinfo(np.uint32).max):
            raise InputError("point_time_ns must be 0..4.29e9 ns after the cloud's stamp (uint32 field 't')")
        packed[..., -1] = offsets.astype(np.uint32).reshape(packed.shape[:2]).view(np.float32)
    return _cloud_message(packed, names, points.ndim == 3, stamp_ns, frame_id, messages, ("t",))


def xyzrgb_to_pointcloud2(points: np.ndarray, rgb: np.ndarray, stamp_ns: int, frame_id: str,
                          messages: MessageFactory | None = None) -> Any:
    """Coloured points -> PointCloud2 x, y, z float32 at 0/4/8 and packed ``rgb`` float32 at 12, point_step 16.

    Args:
        points: (H, W, 3) float metres for an organized cloud (e.g. a back-projected
            depth image; NaN = invalid pixel, is_dense=False), or (N, 3) unorganized.
        rgb: uint8 RGB with the same leading shape, (H, W, 3) or (N, 3).
        stamp_ns: header stamp in nanoseconds.
        frame_id: header frame (the camera optical frame for a depth cloud).
        messages: factory for rclpy or rosbags messages (default: rosbags).
    """
    points = _check_points(points)
    rgb = _check_per_point("rgb", rgb, points, (3,))
    if rgb.dtype != np.uint8:
        raise InputError(f"rgb must be uint8, got {rgb.dtype}")
    packed = _float32_cloud(points, 1)  # (H, W, 4)
    if rgb.size:
        packed[..., 3] = _packed_rgb(rgb.reshape(*packed.shape[:2], 3)).view("<f4")
    return _cloud_message(packed, ["x", "y", "z", "rgb"], points.ndim == 3, stamp_ns, frame_id, messages)


def depth_to_xyzrgb_pointcloud2(depth: np.ndarray, rgb: np.ndarray, camera: PinholeCamera, stamp_ns: int,
                                frame_id: str, stride: int = 1, messages: MessageFactory | None = None) -> Any:
    """Depth image + colours -> organized PointCloud2 with the layout of :func:`xyzrgb_to_pointcloud2`.

    Back-projects straight into the message buffer (no (H, W, 3) point array in between).

    Args:
        depth: (H, W) metres along the optical axis; 0, NaN or inf = no point (NaN point).
        rgb: (H, W, 3) uint8 RGB of the same pixels.
        camera: the depth image's camera.
        stamp_ns, frame_id: header stamp and frame (the camera optical frame).
        stride: keep every stride-th row and column.
        messages: factory for rclpy or rosbags messages (default: rosbags).
    """
    rgb = np.asarray(rgb)
    if rgb.shape != (*np.shape(depth), 3) or rgb.dtype != np.uint8:
        raise InputError(f"rgb must be uint8 {(*np.shape(depth), 3)} to match depth, got {rgb.shape} {rgb.dtype}")
    colours = rgb[::stride, ::stride]  # (h, w, 3)
    packed = np.empty((*colours.shape[:2], 4), dtype="<f4")  # (h, w, 4): x, y, z, rgb
    backproject_depth(depth, camera, stride, out=packed)
    packed[..., 3] = _packed_rgb(colours).view("<f4")
    return _cloud_message(packed, ["x", "y", "z", "rgb"], True, stamp_ns, frame_id, messages)


def _packed_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> (H, W) little-endian uint32 0x00RRGGBB, the PointCloud2 ``rgb`` field's bits."""
    packed = rgb[..., 0].astype("<u4")  # (H, W)
    packed <<= 8
    packed |= rgb[..., 1]
    packed <<= 8
    packed |= rgb[..., 2]
    return packed


# ----------------------------------------------------------------------------------- TF


class TfEdge(NamedTuple):
    """One transform of a TF tree: ``T_parent_from_child`` maps child-frame points into the parent frame."""

    parent: str
    child: str
    stamp_ns: int
    T_parent_from_child: np.ndarray  # (4, 4) float64


def transform_to_matrix(transform: Any) -> np.ndarray:
    """geometry_msgs/Transform -> (4, 4) float64; the quaternion (x, y, z, w) is normalised."""
    t, q = transform.translation, transform.rotation
    return transforms.from_ros_quaternion((q.x, q.y, q.z, q.w), (t.x, t.y, t.z))


def matrix_to_transform(T: np.ndarray, messages: MessageFactory | None = None) -> Any:
    """(4, 4) rigid transform -> geometry_msgs/Transform; a non-rigid matrix raises InputError."""
    m = _factory(messages)
    (w, x, y, z), t = transforms.to_quaternion(T)
    return m.message("geometry_msgs/msg/Transform",
                     translation=m.message("geometry_msgs/msg/Vector3", x=float(t[0]), y=float(t[1]), z=float(t[2])),
                     rotation=m.message("geometry_msgs/msg/Quaternion", x=float(x), y=float(y), z=float(z),
                                        w=float(w)))


def transform_stamped_to_edge(msg: Any) -> TfEdge:
    """geometry_msgs/TransformStamped -> TfEdge(header.frame_id, child_frame_id, stamp, T_parent_from_child)."""
    return TfEdge(msg.header.frame_id, msg.child_frame_id, header_stamp_ns(msg), transform_to_matrix(msg.transform))


def tf_message_to_edges(msg: Any) -> list[TfEdge]:
    """tf2_msgs/TFMessage -> one TfEdge per transform, in message order."""
    return [transform_stamped_to_edge(t) for t in msg.transforms]


def edge_to_transform_stamped(edge: TfEdge, messages: MessageFactory | None = None) -> Any:
    """TfEdge -> geometry_msgs/TransformStamped (header.frame_id = parent, child_frame_id = child)."""
    m = _factory(messages)
    return m.message("geometry_msgs/msg/TransformStamped", header=make_header(edge.stamp_ns, edge.parent, m),
                     child_frame_id=edge.child, transform=matrix_to_transform(edge.T_parent_from_child, m))


def edges_to_tf_message(edges: list[TfEdge], messages: MessageFactory | None = None) -> Any:
    """TfEdges -> tf2_msgs/TFMessage (e.g. for /tf_static)."""
    m = _factory(messages)
    return m.message("tf2_msgs/msg/TFMessage", transforms=[edge_to_transform_stamped(e, m) for e in edges])
