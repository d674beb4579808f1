"""Reader for TRI DGP scenes (DDAD layout): multi-camera JPEGs + one LiDAR sweep per sample.

Layout (see ``shared/data/dgp/SOURCE.md``): ``scene_dataset*.json`` lists scene jsons;
a scene json has ``data`` (one datum per sensor reading: file name and sensor->world
pose) and ``samples`` (``datum_keys`` grouping one LiDAR sweep with its camera frames,
``calibration_key`` naming ``calibration/<key>.json`` with per-sensor intrinsics and
sensor->vehicle extrinsics). Camera frames are optical (z forward, x right, y down).

The camera<-LiDAR transform is taken from the two world poses,
``inv(T_world_from_camera) @ T_world_from_lidar``, which also absorbs the ego motion
between the LiDAR and camera stamps; the calibration extrinsics ignore it (2-5 cm off
in moving scenes) but are kept for a static TF tree.

Stamps: DGP file names and ``id.timestamp`` carry one integer count. Read as
microseconds (as DGP's protobuf Timestamp does) it lands in the year 2463 and does not
fit int64 nanoseconds; read as 100 ns ticks it gives 2019 (when DDAD was recorded) and
10 Hz LiDAR sweeps, so ``stamp_ns = count * 100``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_core.files import safe_file_name
from mf_core.geometry import points_to_depth_map
from mf_core.transforms import compose, from_quaternion, invert
from mf_training.data.sample import Sample

# Nanoseconds per unit of DGP's timestamp count (see the module docstring).
NS_PER_DGP_TICK = 100
# TF frame ids used when a DGP scene becomes a ROS bag (REP 105 / REP 103 names).
VEHICLE_FRAME = "base_link"
WORLD_FRAME = "map"


def camera_frame_id(camera_name: str) -> str:
    """TF frame of a DGP camera, e.g. ``CAMERA_01`` -> ``camera_01_optical_frame``."""
    return f"{camera_name.lower()}_optical_frame"


def lidar_frame_id(lidar_name: str) -> str:
    """TF frame of a DGP LiDAR, e.g. ``LIDAR`` -> ``lidar``."""
    return lidar_name.lower()


@dataclass(frozen=True, eq=False)
class DgpFrame:
    """One camera frame of a DGP sample with the sample's LiDAR sweep: everything needed
    to build a training Sample or to write the pair (plus its TF tree) into a rosbag."""

    scene: str  # scene directory name, e.g. "scene_01"
    sample_index: int  # position of the sample in the scene's ``samples`` list
    camera_name: str  # DGP sensor name, e.g. "CAMERA_01"
    lidar_name: str  # DGP sensor name, e.g. "LIDAR"
    image_path: Path
    camera: PinholeCamera
    camera_stamp_ns: int
    lidar_stamp_ns: int
    lidar_points: np.ndarray  # (N, 3) float64 metres, LiDAR frame
    lidar_intensity: np.ndarray  # (N,) float64 as stored (0..1)
    T_cam_from_lidar: np.ndarray  # (4, 4) pose-based, at the two stamps
    T_world_from_camera: np.ndarray  # (4, 4) camera pose at camera_stamp_ns
    T_world_from_lidar: np.ndarray  # (4, 4) LiDAR pose at lidar_stamp_ns
    T_vehicle_from_camera: np.ndarray  # (4, 4) calibration extrinsic (static)
    T_vehicle_from_lidar: np.ndarray  # (4, 4) calibration extrinsic (static)

    @property
    def name(self) -> str:
        """Unique sample name, e.g. ``scene_01_sample0_CAMERA_05``."""
        return f"{self.scene}_sample{self.sample_index}_{self.camera_name}"

    @property
    def camera_frame_id(self) -> str:
        return camera_frame_id(self.camera_name)

    @property
    def lidar_frame_id(self) -> str:
        return lidar_frame_id(self.lidar_name)

    @cached_property
    def image(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB, decoded on first use."""
        bgr = cv2.imread(str(self.image_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"cannot read image {self.image_path}: missing or not a JPEG/PNG")
        if bgr.shape[:2] != (self.camera.height, self.camera.width):
            raise InputError(
                f"{self.image_path} is {bgr.shape[1]}x{bgr.shape[0]}, the scene json says "
                f"{self.camera.width}x{self.camera.height}: the file does not belong to this datum"
            )
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def sparse_depth(self) -> np.ndarray:
        """(H, W) float32 metres: the LiDAR sweep projected into this camera, 0 = no return."""
        return points_to_depth_map(self.lidar_points, self.T_cam_from_lidar, self.camera)

    def to_sample(self) -> Sample:
        """The training record: image, projected sparse depth, camera; no dense ground truth."""
        return Sample(self.name, self.image, self.sparse_depth(), self.camera, self.camera_stamp_ns)


def _field(record: dict, *keys: str, where: str):
    value = record
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise InputError(f"{where}: missing '{'.'.join(keys)}'; is this a DGP scene/calibration json?")
        value = value[key]
    return value


def _read_json(path: Path) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError as exc:
        raise InputError(f"DGP file not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); re-copy the DGP scene") from exc


def _pose(pose: dict, where: str) -> np.ndarray:
    r = _field(pose, "rotation", where=where)
    t = _field(pose, "translation", where=where)
    return from_quaternion(
        [r.get("qw", 0.0), r.get("qx", 0.0), r.get("qy", 0.0), r.get("qz", 0.0)],
        [t.get("x", 0.0), t.get("y", 0.0), t.get("z", 0.0)],
    )


def _stamp_ns(filename: str, where: str) -> int:
    stem = Path(filename).stem
    if not stem.isdigit():
        raise InputError(f"{where}: file name {filename!r} is not a DGP timestamp count")
    return int(stem) * NS_PER_DGP_TICK


@dataclass(frozen=True, eq=False)
class _Calibration:
    cameras: dict[str, PinholeCamera]
    T_vehicle_from: dict[str, np.ndarray]  # sensor name -> (4, 4)


def _read_calibration(path: Path, image_sizes: dict[str, tuple[int, int]]) -> _Calibration:
    calib = _read_json(path)
    where = str(path)
    names = _field(calib, "names", where=where)
    intrinsics = _field(calib, "intrinsics", where=where)
    extrinsics = _field(calib, "extrinsics", where=where)
    if not len(names) == len(intrinsics) == len(extrinsics):
        raise InputError(f"{where}: names, intrinsics and extrinsics have different lengths")
    for name in names:  # sensor names become file names (bags, panels, samples)
        safe_file_name(name, f"{where}: sensor name")
    cameras = {}
    for name, k in zip(names, intrinsics, strict=True):
        if name in image_sizes:
            if k.get("skew", 0.0) != 0.0:
                raise InputError(f"{where}: {name} has skew {k['skew']}; skewed pinholes are not supported")
            w, h = image_sizes[name]
            # DGP's intrinsics put pixel (0, 0)'s corner at the origin (its reference projections
            # take floor(u), floor(v)); ours and ROS's put its centre there, hence -0.5.
            centred = {**k, "cx": k["cx"] - 0.5, "cy": k["cy"] - 0.5}
            cameras[name] = PinholeCamera.from_dict(centred, width=w, height=h)
    T = {name: _pose(e, f"{where} extrinsics of {name}") for name, e in zip(names, extrinsics, strict=True)}
    return _Calibration(cameras, T)


def _load_lidar(path: Path) -> np.ndarray:
    try:
        with np.load(path) as npz:
            data = npz["data"]
    except FileNotFoundError as exc:
        raise InputError(f"LiDAR file not found: {path}") from exc
    except KeyError as exc:
        raise InputError(f"{path} has no 'data' array; DGP point clouds store (N, 4) X,Y,Z,INTENSITY") from exc
    if data.ndim != 2 or data.shape[1] < 4:
        raise InputError(f"{path}: 'data' is {data.shape}, expected (N, 4) X,Y,Z,INTENSITY")
    return data


def read_scene(scene_json: str | Path) -> Iterator[DgpFrame]:
    """Yield one DgpFrame per (sample, camera) of a DGP scene json, in sample then camera order."""
    scene_json = Path(scene_json)
    root = scene_json.parent
    scene = _read_json(scene_json)
    where = str(scene_json)
    data = {d["key"]: d for d in _field(scene, "data", where=where)}
    calibrations: dict[str, _Calibration] = {}
    for sample_index, sample in enumerate(_field(scene, "samples", where=where)):
        try:
            datums = [data[k] for k in _field(sample, "datum_keys", where=where)]
        except KeyError as exc:
            raise InputError(f"{where}: sample {sample_index} names datum {exc} that is not in 'data'") from exc
        images = [d for d in datums if "image" in d["datum"]]
        clouds = [d for d in datums if "point_cloud" in d["datum"]]
        if len(clouds) != 1:
            raise InputError(f"{where}: sample {sample_index} has {len(clouds)} point clouds, expected one LiDAR")
        key = _field(sample, "calibration_key", where=where)
        if key not in calibrations:
            sizes = {d["id"]["name"]: (d["datum"]["image"]["width"], d["datum"]["image"]["height"]) for d in images}
            calibrations[key] = _read_calibration(root / "calibration" / f"{key}.json", sizes)
        calib = calibrations[key]
        lidar = clouds[0]
        lidar_name = lidar["id"]["name"]
        cloud = lidar["datum"]["point_cloud"]
        xyzi = _load_lidar(root / cloud["filename"])  # (N, 4)
        points = np.ascontiguousarray(xyzi[:, :3])  # (N, 3)
        intensity = np.ascontiguousarray(xyzi[:, 3])  # (N,)
        points.flags.writeable = False
        intensity.flags.writeable = False
        T_world_from_lidar = _pose(cloud["pose"], f"{where} pose of {cloud['filename']}")
        lidar_stamp = _stamp_ns(cloud["filename"], where)
        for d in images:
            name = d["id"]["name"]
            image = d["datum"]["image"]
            if name not in calib.cameras:
                raise InputError(f"{where}: camera {name} has no intrinsics in calibration {key}")
            T_world_from_camera = _pose(image["pose"], f"{where} pose of {image['filename']}")
            yield DgpFrame(
                scene=root.name,
                sample_index=sample_index,
                camera_name=name,
                lidar_name=lidar_name,
                image_path=root / image["filename"],
                camera=calib.cameras[name],
                camera_stamp_ns=_stamp_ns(image["filename"], where),
                lidar_stamp_ns=lidar_stamp,
                lidar_points=points,
                lidar_intensity=intensity,
                T_cam_from_lidar=compose(invert(T_world_from_camera), T_world_from_lidar),
                T_world_from_camera=T_world_from_camera,
                T_world_from_lidar=T_world_from_lidar,
                T_vehicle_from_camera=calib.T_vehicle_from[name],
                T_vehicle_from_lidar=calib.T_vehicle_from[lidar_name],
            )


def scene_files(path: str | Path) -> list[Path]:
    """Scene jsons under ``path``: a scene json itself, a scene directory, or a dataset
    directory/json (``scene_dataset*.json`` listing scenes per split; each scene once)."""
    path = Path(path)
    if path.is_dir():
        datasets = sorted(path.glob("scene_dataset*.json"))
        scenes = sorted(path.glob("scene_*.json"))
        if datasets:
            path = datasets[0]
        elif scenes:
            return scenes
        else:
            raise InputError(f"{path} has no scene_dataset*.json or scene_*.json; point at a DGP dataset or scene")
    if not path.is_file():
        raise InputError(f"DGP path not found: {path}")
    content = _read_json(path)
    if "samples" in content:
        return [path]
    splits = _field(content, "scene_splits", where=str(path))
    names = dict.fromkeys(f for split in splits.values() for f in split.get("filenames", []))
    return [path.parent / name for name in names]


def read_frames(path: str | Path) -> Iterator[DgpFrame]:
    """Every (sample, camera) frame of a DGP dataset, scene directory or scene json."""
    for scene_json in scene_files(path):
        yield from read_scene(scene_json)


def read_samples(path: str | Path) -> Iterator[Sample]:
    """Training Samples (image + projected LiDAR) of a DGP dataset, scene directory or scene json."""
    for frame in read_frames(path):
        yield frame.to_sample()
