"""KITTI-convention sample folders <-> Samples.

One frame ``NAME`` is four files side by side:

- ``NAME_rgb.png`` (or ``.jpg``): the camera image;
- ``NAME_sparse.png``: the LiDAR depth, 16-bit PNG, metres = value / 256, 0 = no value;
- ``NAME_gt.png`` (optional): dense ground-truth depth in the same encoding;
- ``NAME_calib.json``: ``fx, fy, cx, cy`` in pixels, optionally ``width, height``,
  ``distortion_model, distortion`` and ``stamp_ns`` (the camera stamp, integer ns).

Depths beyond 65535 / 256 = 255.996 m do not fit the encoding; they are clipped to the
largest code (never wrapped) and counted. Every file is written to a temporary name and
renamed into place, so an interrupted export never leaves a half-written PNG.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_core.files import MAX_IMAGE_PIXELS, atomic_write, check_image_size, encoded_image_size, safe_file_name
from mf_training.data.sample import Sample

DEPTH_SCALE = 256.0  # PNG code per metre
MAX_CODE = np.iinfo(np.uint16).max
MAX_DEPTH_M = MAX_CODE / DEPTH_SCALE
IMAGE_SUFFIXES = ("_rgb.png", "_rgb.jpg", "_rgb.jpeg")


def encode_depth(depth: np.ndarray) -> tuple[np.ndarray, int]:
    """Metres (0 = no value) -> uint16 codes; returns the codes and how many pixels were clipped.

    A valid depth never becomes 0: the smallest positive code is 1 (1/256 m).
    """
    depth = np.asarray(depth, dtype=np.float64)  # (H, W)
    if not np.all(np.isfinite(depth)) or depth.min(initial=0.0) < 0:
        raise ValueError("depth to encode must be finite and >= 0 (0 = no value), got NaN/inf/negative values")
    valid = depth > 0
    codes = np.rint(depth * DEPTH_SCALE)
    clipped = int((valid & (codes > MAX_CODE)).sum())
    codes = np.where(valid, np.clip(codes, 1, MAX_CODE), 0).astype(np.uint16)  # (H, W)
    return codes, clipped


def decode_depth(codes: np.ndarray) -> np.ndarray:
    """uint16 codes -> float32 metres (0 stays 0 = no value)."""
    return (codes.astype(np.float32) / np.float32(DEPTH_SCALE)).astype(np.float32)


def _write_file(path: Path, data: bytes) -> None:
    # Exported samples can be regenerated from their source, so no fsync per file (it would
    # dominate export time); the write is still atomic and never goes through a planted name.
    atomic_write(path, data, durable=False)


def _encode(ext: str, image: np.ndarray, params: tuple[int, ...] = ()) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    if not ok:
        raise InputError(f"OpenCV could not encode a {image.shape} {image.dtype} image as {ext}")
    return buf.tobytes()


class SampleFolderWriter:
    """Writes Samples into a folder (created if needed) and counts what it wrote and clipped."""

    def __init__(self, folder: str | os.PathLike, image_format: str = "png", jpeg_quality: int = 95):
        if image_format not in ("png", "jpg"):
            raise InputError(f"image format must be 'png' (lossless) or 'jpg', got {image_format!r}")
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"{self.folder} exists and is not a folder; choose another --out")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self.written = 0
        self.clipped_pixels = 0

    def write(self, sample: Sample) -> None:
        """Write one sample's files (image, sparse, optional gt, calib) under ``sample.name``."""
        base = self.folder / safe_file_name(sample.name, "sample name")
        bgr = cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)
        params = (cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality) if self.image_format == "jpg" else ()
        image_bytes = _encode(f".{self.image_format}", bgr, params)
        _write_file(base.with_name(f"{sample.name}_rgb.{self.image_format}"), image_bytes)
        for suffix, depth in (("sparse", sample.sparse_depth), ("gt", sample.gt_depth)):
            if depth is None:
                continue
            codes, clipped = encode_depth(depth)
            self.clipped_pixels += clipped
            _write_file(base.with_name(f"{sample.name}_{suffix}.png"), _encode(".png", codes))
        calib = {**sample.camera.to_dict(), "stamp_ns": int(sample.stamp_ns)}
        _write_file(base.with_name(f"{sample.name}_calib.json"), (json.dumps(calib, indent=2) + "\n").encode())
        self.written += 1

    def summary(self) -> str:
        """``wrote N samples to DIR``, plus a warning line when depths were clipped."""
        text = f"wrote {self.written} samples to {self.folder}"
        if self.clipped_pixels:
            text += (f"\nwarning: {self.clipped_pixels} depth pixels beyond {MAX_DEPTH_M:.2f} m were clipped to "
                     f"{MAX_DEPTH_M:.2f} m (the 16-bit PNG limit)")
        return text


def write_sample_folder(folder: str | os.PathLike, samples, image_format: str = "png") -> SampleFolderWriter:
    """Write every sample of an iterable; returns the writer with its counts."""
    writer = SampleFolderWriter(folder, image_format)
    for sample in samples:
        writer.write(sample)
    return writer


def _read_depth_png(path: Path, shape: tuple[int, int]) -> np.ndarray:
    codes = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if codes is None:
        raise InputError(f"{path} is not a readable PNG; re-export it")
    if codes.dtype != np.uint16 or codes.ndim != 2:
        raise InputError(
            f"{path} is a {codes.dtype} PNG with shape {codes.shape}; depth must be a single-channel "
            "16-bit PNG with metres * 256 (an 8-bit PNG loses the depth: re-export it as 16-bit)"
        )
    if codes.shape != shape:
        raise InputError(f"{path} is {codes.shape[1]}x{codes.shape[0]} but the image is {shape[1]}x{shape[0]}; "
                         "depth and image must have the same size")
    return decode_depth(codes)  # (H, W) float32 metres


class SampleFolder:
    """A sample folder on disk: ``len()``, indexing and iteration yield validated Samples.

    The frame list is checked when opening (every frame has its image, sparse and calib
    files); image contents are checked when each sample is read.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"{self.folder} is not a folder; pass a sample folder (NAME_rgb.png, NAME_sparse.png, "
                             "NAME_calib.json per frame)")
        files = {p.name for p in self.folder.iterdir() if p.is_file()}
        names = {f[: -len(s)] for f in files for s in (*IMAGE_SUFFIXES, "_sparse.png", "_calib.json", "_gt.png")
                 if f.endswith(s)}
        if not names:
            raise InputError(f"{self.folder} holds no samples; expected NAME_rgb.png, NAME_sparse.png and "
                             "NAME_calib.json per frame (write one with `mf export`)")
        self._images: dict[str, str] = {}
        for name in sorted(names):
            image = next((name + s for s in IMAGE_SUFFIXES if name + s in files), None)
            missing = [name + s for s in ("_sparse.png", "_calib.json") if name + s not in files]
            if image is None:
                missing.insert(0, f"{name}_rgb.png (or .jpg)")
            if missing:
                raise InputError(f"{self.folder}: frame {name!r} is missing {', '.join(missing)}; "
                                 "add the file(s) or remove the frame's other files")
            self._images[name] = image
        self.names: list[str] = sorted(self._images)
        self._has_gt = {name: f"{name}_gt.png" in files for name in self.names}

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[Sample]:
        for name in self.names:
            yield self.read(name)

    def __getitem__(self, index: int) -> Sample:
        return self.read(self.names[index])

    def read(self, name: str) -> Sample:
        """Read and validate one frame by name."""
        image_path = self.folder / self._images[name]
        try:
            data = image_path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {image_path}: {exc}") from exc
        check_image_size(*encoded_image_size(data, str(image_path)), MAX_IMAGE_PIXELS, str(image_path))  # header only
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"{image_path} is not a readable PNG/JPEG image; replace or remove it")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # (H, W, 3) uint8
        h, w = image.shape[:2]
        calib_path = self.folder / f"{name}_calib.json"
        try:
            calib = json.loads(calib_path.read_text())
        except (OSError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
            raise InputError(f"{calib_path} is not valid JSON ({exc}); it needs fx, fy, cx, cy") from exc
        if not isinstance(calib, dict):
            raise InputError(f"{calib_path} must hold a JSON object with fx, fy, cx, cy")
        try:
            camera = PinholeCamera.from_dict(calib, width=w, height=h)
        except InputError as exc:
            raise InputError(f"{calib_path}: {exc}") from exc
        if (camera.width, camera.height) != (w, h):
            raise InputError(f"{calib_path} says {camera.width}x{camera.height} but {image_path.name} is {w}x{h}; "
                             "fix width/height in the calibration")
        sparse = _read_depth_png(self.folder / f"{name}_sparse.png", (h, w))
        gt = _read_depth_png(self.folder / f"{name}_gt.png", (h, w)) if self._has_gt[name] else None
        stamp_ns = calib.get("stamp_ns", 0)
        if not isinstance(stamp_ns, int) or isinstance(stamp_ns, bool) or stamp_ns < 0:
            raise InputError(f"{calib_path}: stamp_ns must be a whole number of nanoseconds >= 0, got {stamp_ns!r}")
        return Sample(name=name, image=image, sparse_depth=sparse, camera=camera, stamp_ns=stamp_ns, gt_depth=gt)
