"""One frame of the depth node, without rclpy: messages in, depth messages out.

Shared by ``depth_node`` (rclpy messages) and ``mf densify`` (rosbags messages): the
message flavour is the caller's :class:`~mf_ros.conversions.MessageFactory`.

Stages (each timed in ms): ``decode`` (image, camera_info), ``project`` (cloud -> sparse
depth), ``model`` (DepthEstimator or the classical baseline), ``encode`` (depth image,
camera_info, organized XYZRGB cloud, confidence). A bad message raises
:class:`FrameError` whose ``kind`` names what was wrong, for the caller to count.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mf_core.align import MIN_POINTS
from mf_core.camera import PinholeCamera
from mf_core.colormap import DepthScale, colorize_depth
from mf_core.completion import complete_classical
from mf_core.errors import InputError
from mf_core.files import MAX_IMAGE_PIXELS, ImageTooLarge, check_image_size
from mf_core.geometry import points_to_depth_map
from mf_core.lidar_support import lidar_support
from mf_core.modes import DEFAULT_MODE, NODE_MODES
from mf_core.pipeline import DepthEstimator
from mf_core.self_validation import NearestShareStream, parse_nearest_share
from mf_ros import conversions as conv
from mf_ros.deskew import SweepMotion


class FrameError(InputError):
    """A message that cannot be turned into depth; ``kind`` is the drop counter it goes to."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class PipelineOptions:
    """How frames are turned into depth.

    mode: one of NODE_MODES; without LiDAR the estimator runs "i2d" (relative, unit mean).
    steps, seed: sampler steps (1 = one forward pass) and noise seed.
    max_range: no depth (NaN) farther than this (metres); 0 = no cap beyond the estimator's own rule
        (``mf_core.lidar_support``: no depth beyond RANGE_MARGIN x the farthest LiDAR return, nor where the
        LiDAR scanned and got no return).
    stride: keep every stride-th row and column in ``depth/points``.
    confidence: also build a 32FC1 confidence image (model modes only).
    max_pixels, max_points: larger images (width x height, read from the header before any
        decoding) and clouds are dropped as "too_large": one absurd message must not cost
        gigabytes of decode buffers that the kept heap then holds for good.
    """

    mode: str = DEFAULT_MODE
    steps: int = 1
    seed: int = 0
    max_range: float = 0.0
    stride: int = 1
    confidence: bool = False
    max_pixels: int = MAX_IMAGE_PIXELS
    max_points: int = 4_000_000  # the densest spinning LiDARs give about 0.3 M points per sweep


@dataclass
class DepthFrame:
    """The messages of one processed frame (header = the input image's) and its timings."""

    depth: Any  # 32FC1 image: metres when ``metric``, else relative (unit mean)
    camera_info: Any
    points: Any | None  # organized XYZRGB; None for relative depth (it has no metric geometry)
    confidence: Any | None
    metric: bool
    depth_array: np.ndarray  # (H, W) float32 as published, NaN = no depth
    timings: dict[str, float] = field(default_factory=dict)


def load_estimator(model: str, device: str, processing_size: tuple[int, int] | None,
                   onnx_model: str = "", nearest_share: str = "") -> DepthEstimator:
    """A DepthEstimator from a checkpoint folder ("default": the shipped model), or a randomly
    initialised registry size (testing only).

    ``model`` naming a registry size (e.g. "MF-XS") builds random weights: the output is
    then not a depth estimate, which is warned about. ``processing_size`` is (height, width).
    ``onnx_model`` (a file from ``mf export-onnx``) runs mode conditioned on onnxruntime.
    ``nearest_share`` ("auto", "none" or a number; "" = the checkpoint's) overrides the checkpoint's
    (:mod:`mf_core.self_validation`).
    """
    estimator = _estimator(model, device, processing_size, onnx_model)
    if nearest_share != "":
        estimator.nearest_share = parse_nearest_share(nearest_share, "nearest_share")
    return estimator


def _estimator(model: str, device: str, processing_size: tuple[int, int] | None, onnx_model: str) -> DepthEstimator:
    from mf_core.checkpoint import resolve_model_path
    from mf_core.model import MODEL_SIZES, build_model

    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but torch sees no CUDA GPU; set device:=cpu "
                         "or install a CUDA build of torch")
    if resolve_model_path(model).is_dir():
        return DepthEstimator.from_checkpoint(model, device, processing_size=processing_size,
                                              onnx_model=onnx_model or None)
    if model in MODEL_SIZES:
        warnings.warn(f"model {model!r} is a registry size, not a checkpoint: using RANDOM weights (for testing "
                      "the plumbing only); pass a checkpoint folder for real depth", stacklevel=2)
        torch.manual_seed(0)
        return DepthEstimator(build_model(model), device, processing_size)
    raise InputError(f"model {model!r} is neither 'default' (the shipped model), a checkpoint folder "
                     f"(config.json + model.safetensors) nor a registry size {list(MODEL_SIZES)}; "
                     "set the 'model' parameter to one of those")


class DepthPipeline:
    """image + camera_info (+ LiDAR cloud and ``T_camera_from_lidar``) -> depth messages.

    Args:
        options: PipelineOptions.
        estimator: the DepthEstimator; None only for mode "classical".
        messages: factory for the output messages (rclpy or rosbags flavour).
    """

    def __init__(self, options: PipelineOptions, estimator: DepthEstimator | None,
                 messages: conv.MessageFactory) -> None:
        if options.mode not in NODE_MODES:
            raise InputError(f"mode {options.mode!r} is not one of {NODE_MODES}")
        if options.mode != "classical" and estimator is None:
            raise InputError(f"mode {options.mode!r} needs a model")
        self.options = options
        self.estimator = estimator
        self.messages = messages
        self._classical = complete_classical if options.mode == "classical" else None
        self.share_stream = NearestShareStream()  # the camera's frames so far: a steady nearest share

    def warm_up(self, width: int, height: int, use_lidar: bool) -> None:
        """One pass on a synthetic frame so the first real frame pays no first-call costs."""
        if use_lidar:  # numba compiles (first run) or loads (cached) the projection for float32 clouds
            camera = PinholeCamera(width, height, float(width), float(width), width / 2, height / 2)
            points_to_depth_map(np.ones((1, 3), np.float32), np.eye(4), camera)
        if self.estimator is None:
            return
        image = np.full((height, width, 3), 128, dtype=np.uint8)
        sparse = None
        if use_lidar:
            sparse = np.zeros((height, width), dtype=np.float32)
            sparse[::max(height // 8, 1), ::max(width // 8, 1)] = 10.0  # an 8x8 grid of points
        with torch.inference_mode():
            self.estimator.predict(image, sparse, self._estimator_mode(use_lidar), self.options.steps,
                                   self.options.seed)

    def _estimator_mode(self, use_lidar: bool) -> str:
        return self.options.mode if use_lidar else "i2d"

    def process(self, image_msg: Any, info_msg: Any, cloud_msg: Any | None,
                T_camera_from_lidar: np.ndarray | SweepMotion | None) -> DepthFrame:
        """Run one frame; ``cloud_msg`` None gives relative depth (not metric). ``T_camera_from_lidar``: one
        transform for the whole sweep, or each return's own (:class:`mf_ros.deskew.SweepMotion`)."""
        timings: dict[str, float] = {}
        start = time.perf_counter()
        rgb, camera = self._decode(image_msg, info_msg)
        stamp_ns, frame_id = conv.header_stamp_ns(image_msg), image_msg.header.frame_id
        timings["decode"] = 1000 * (time.perf_counter() - start)

        start = time.perf_counter()
        sparse = None if cloud_msg is None else self._sparse_depth(cloud_msg, T_camera_from_lidar, camera)
        timings["project"] = 1000 * (time.perf_counter() - start)

        start = time.perf_counter()
        depth, confidence, metric = self._infer(rgb, sparse, camera)
        timings["model"] = 1000 * (time.perf_counter() - start)

        start = time.perf_counter()
        frame = self._encode(rgb, depth, confidence, camera, stamp_ns, frame_id, metric)
        timings["encode"] = 1000 * (time.perf_counter() - start)
        frame.timings = timings
        return frame

    def _decode(self, image_msg: Any, info_msg: Any) -> tuple[np.ndarray, PinholeCamera]:
        try:
            check_image_size(*conv.camera_image_size(image_msg), self.options.max_pixels, "the image")  # header only
            rgb = conv.camera_image_to_rgb(image_msg)  # (H, W, 3)
        except ImageTooLarge as err:
            raise FrameError("too_large", f"image skipped: {err}") from err
        except InputError as err:
            raise FrameError("bad_image", f"image skipped: {err}") from err
        try:
            camera = conv.camera_info_to_camera(info_msg)
        except InputError as err:
            raise FrameError("bad_camera_info", f"camera_info skipped: {err}") from err
        if (camera.width, camera.height) != (rgb.shape[1], rgb.shape[0]):
            raise FrameError("camera_info_mismatch",
                             f"camera_info is {camera.width}x{camera.height} but the image is "
                             f"{rgb.shape[1]}x{rgb.shape[0]}; remap camera_info to this camera's topic")
        return rgb, camera

    def _sparse_depth(self, cloud_msg: Any, T_camera_from_lidar: np.ndarray | SweepMotion,
                      camera: PinholeCamera) -> np.ndarray:
        """(H, W) float32 LiDAR depth in metres, 0 = no point; FrameError when unusable."""
        total = int(cloud_msg.width) * int(cloud_msg.height)
        if total > self.options.max_points:
            raise FrameError("too_large", f"LiDAR cloud skipped: {total} points is over max_points "
                             f"{self.options.max_points}; raise the parameter if this LiDAR is real")
        try:
            if isinstance(T_camera_from_lidar, SweepMotion):  # (N, 3) finite points, already in the camera frame
                xyz, T_camera_from_lidar = T_camera_from_lidar.camera_points(cloud_msg), np.eye(4)
            else:
                xyz = conv.pointcloud2_to_xyz(cloud_msg)  # (N, 3) finite points
        except InputError as err:
            raise FrameError("bad_cloud", f"LiDAR cloud skipped: {err}") from err
        if total == 0:
            raise FrameError("empty_cloud", "LiDAR cloud has no points; check the LiDAR driver")
        if xyz.shape[0] == 0:
            raise FrameError("nan_cloud", f"all {total} LiDAR points are NaN/inf; the sensor returned nothing")
        sparse = points_to_depth_map(xyz, T_camera_from_lidar, camera)  # (H, W)
        count = int(np.count_nonzero(sparse))
        if count < MIN_POINTS:
            raise FrameError("too_few_points", f"only {count} LiDAR points fall in the image (need {MIN_POINTS}); "
                             "check the extrinsic / TF between the LiDAR and camera frames")
        return sparse

    def _infer(self, rgb: np.ndarray, sparse: np.ndarray | None, camera: PinholeCamera
               ) -> tuple[np.ndarray, np.ndarray | None, bool]:
        """(depth (H, W) 0 = none, confidence (H, W) or None, metric)."""
        if self._classical is not None:  # the same validity as the model's output (REP 118: NaN where unsupported)
            depth = self._classical(rgb, sparse, camera).astype(np.float32)
            return np.where(lidar_support(depth, sparse), depth, np.float32(0)), None, True
        with torch.inference_mode():
            result = self.estimator.predict(rgb, sparse, self._estimator_mode(sparse is not None),
                                            self.options.steps, self.options.seed,
                                            with_confidence=self.options.confidence, share_stream=self.share_stream)
        depth = result.depth if result.valid is None else np.where(result.valid, result.depth, np.float32(0))
        return depth, result.confidence, result.metric  # 0 = no valid depth: NaN in the messages (REP 118)

    def _encode(self, rgb: np.ndarray, depth: np.ndarray, confidence: np.ndarray | None, camera: PinholeCamera,
                stamp_ns: int, frame_id: str, metric: bool) -> DepthFrame:
        m, stride = self.messages, self.options.stride
        if metric and self.options.max_range > 0:
            depth = np.where(depth > self.options.max_range, np.float32(0), depth)  # (H, W) beyond: no depth
        depth_msg = conv.depth_to_image(depth, stamp_ns, frame_id, "32FC1", m)
        info_msg = conv.camera_to_camera_info(camera, stamp_ns, frame_id, m)
        points_msg = conv.depth_to_xyzrgb_pointcloud2(depth, rgb, camera, stamp_ns, frame_id, stride, m) \
            if metric else None
        confidence_msg = None
        if confidence is not None:
            confidence_msg = conv.depth_to_image(np.where(depth > 0, confidence, np.nan).astype(np.float32),
                                                 stamp_ns, frame_id, "32FC1", m)
        published = np.where(depth > 0, depth, np.nan).astype(np.float32)  # (H, W) NaN = none (REP 118)
        return DepthFrame(depth_msg, info_msg, points_msg, confidence_msg, metric, published)

    def colormap(self, frame: DepthFrame) -> Any:
        """An rgb8 image of the frame's depth (turbo, black = no depth) with its header, for RViz."""
        scale = DepthScale.from_depths(frame.depth_array)
        rgb = colorize_depth(frame.depth_array, scale)  # (H, W, 3)
        header = frame.depth.header
        return conv.rgb_to_image(rgb, conv.header_stamp_ns(frame.depth), header.frame_id, "rgb8", self.messages)
