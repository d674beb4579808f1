"""``mf bench geometry``: one-core timings of LiDAR projection and depth -> PointCloud2.

(a) 130k LiDAR points -> 1920x1200 sparse depth map (z-buffer), all points in view
    (the worst case for the z-buffer), for a pinhole, a plumb_bob and a fisheye (equidistant) camera.
(b) 640x480 depth map + image -> organized XYZRGB PointCloud2
    (mf_ros.conversions.depth_to_xyzrgb_pointcloud2 with rosbags messages, as the depth node does).
(c) deskewing a 130k-point sweep of 100 ms (mf_ros.deskew.SweepMotion through a bag's /tf at 100 Hz, as the bag
    commands do with --fixed-frame) against moving it as one (decode + one transform), timed in the same run.

Each timing is the median of ``--repeats`` runs and is also given as a ratio to a plain
numpy copy of the bytes the operation must at least touch (its inputs plus its output),
timed in the same run. Targets: (a) and (b) < 10 ms; ratio <= 5.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

TARGET_MS = 10.0
TARGET_COPY_RATIO = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, default=130_000, help="LiDAR points for (a) (default 130000)")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per measurement (default 30)")
    parser.add_argument("--keep-heap", action="store_true",
                        help="configure the allocator as depth_node does (mf_ros.heap): no page faults on reused "
                             "buffers; default: as a plain Python process")
    parser.add_argument("--core", type=int, default=None,
                        help="CPU core to pin to (default: the first core this process may use)")


def _pin_one_core(core: int | None) -> list[int]:
    """Run on one core with one thread in every pool we use; returns the affinity set."""
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[0] if core is None else core
    if chosen not in allowed:
        from mf_core.errors import InputError

        raise InputError(f"--core {chosen} is not available to this process; choose one of {allowed}")
    os.sched_setaffinity(0, {chosen})
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # effective only if numpy is not loaded yet
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    return sorted(os.sched_getaffinity(0))


def _median_ms(fn, repeats: int) -> float:
    import numpy as np

    fn()  # warm caches (pixel rays, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def _timing(fn, touched_bytes: int, repeats: int) -> dict:
    """Median time of ``fn`` and of copying ``touched_bytes`` with numpy, and their ratio."""
    import numpy as np

    buffer = np.ones(touched_bytes, dtype=np.uint8)
    ms = _median_ms(fn, repeats)
    copy_ms = _median_ms(buffer.copy, repeats)
    return {"median_ms": round(ms, 3), "copy_ms": round(copy_ms, 3), "copy_bytes": touched_bytes,
            "ratio_to_copy": round(ms / copy_ms, 2), "meets_target_ms": ms < TARGET_MS,
            "meets_target_ratio": ms / copy_ms <= TARGET_COPY_RATIO}


def _machine(affinity: list[int]) -> dict:
    import cv2
    import numpy as np

    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return {"cpu": model, "cpu_count": os.cpu_count(), "sched_getaffinity": affinity,
            "python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
            "platform": platform.platform()}


# (a)'s cameras: the lens, its focal length in pixels and its coefficients (the fisheye sees 120 degrees across).
_LENSES = {"none": (1000.0, ()), "plumb_bob": (1000.0, (-0.05, 0.01, 0.0005, -0.0005, 0.0)),
           "equidistant": (800.0, (-0.02, 0.003, 0.0, 0.0))}


def _lidar_case(n_points: int, repeats: int, lens: str) -> dict:
    import numpy as np

    from mf_core.camera import PinholeCamera
    from mf_core.geometry import points_to_depth_map, undistort_pixels

    focal, coefficients = _LENSES[lens]
    camera = PinholeCamera(1920, 1200, focal, focal, 959.5, 599.5, lens, coefficients)
    rng = np.random.default_rng(0)
    pixels = np.c_[rng.uniform(0, camera.width, n_points), rng.uniform(0, camera.height, n_points)]  # (N, 2)
    depth = rng.uniform(1.0, 80.0, n_points)  # (N,)
    points = np.c_[undistort_pixels(pixels, camera) * depth[:, None], depth]  # (N, 3) all in view
    T = np.eye(4)
    result = _timing(lambda: points_to_depth_map(points, T, camera), points.nbytes + 4 * 1920 * 1200, repeats)
    result["points_in_image"] = n_points
    result["filled_pixels"] = int(np.count_nonzero(points_to_depth_map(points, T, camera)))
    return result


def _cloud_case(repeats: int) -> dict:
    import numpy as np

    from mf_core.camera import PinholeCamera
    from mf_ros.conversions import depth_to_xyzrgb_pointcloud2

    camera = PinholeCamera(640, 480, 525.0, 525.0, 319.5, 239.5)
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 10.0, (480, 640)).astype(np.float32)  # (H, W)
    depth[rng.random(depth.shape) < 0.05] = 0.0  # a few holes -> NaN points
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)  # (H, W, 3)

    def build():
        return depth_to_xyzrgb_pointcloud2(depth, image, camera, 0, "camera_optical_frame")

    cloud = build()
    result = _timing(build, depth.nbytes + image.nbytes + len(cloud.data), repeats)
    result["point_step"] = int(cloud.point_step)
    return result


def _deskew_case(n_points: int, repeats: int) -> dict:
    import numpy as np

    from mf_core.transforms import apply, from_ros_quaternion
    from mf_ros.conversions import TfEdge, pointcloud2_to_xyz, xyz_to_pointcloud2
    from mf_ros.deskew import SweepMotion
    from mf_ros.extrinsics import TfTimeline

    ms = 1_000_000
    rng = np.random.default_rng(0)
    points = (rng.normal(size=(n_points, 3)) * 10.0).astype(np.float32)  # (N, 3)
    offsets = np.sort(rng.integers(0, 100 * ms, n_points))  # (N,) a 100 ms revolution

    def pose(t_ns: int) -> np.ndarray:  # 3 m/s and 0.5 rad/s
        yaw = 0.5 * t_ns / 1e9
        return from_ros_quaternion((0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)), (3.0 * t_ns / 1e9, 0.0, 0.0))

    static = [TfEdge("base_link", "lidar", 0, from_ros_quaternion((0, 0, 0, 1), (0.1, 0.0, 1.5))),
              TfEdge("base_link", "camera", 0, from_ros_quaternion((-0.5, 0.5, -0.5, 0.5), (0.3, 0.0, 1.2)))]
    timeline = TfTimeline(static, [TfEdge("odom", "base_link", k * 10 * ms, pose(k * 10 * ms)) for k in range(21)])
    cloud = xyz_to_pointcloud2(points, 0, "lidar", point_time_ns=offsets)
    image_ns = 50 * ms
    fallback = timeline.across("camera", image_ns, "lidar", 0, "odom")
    motion = SweepMotion(lambda s: timeline.across_stamps("camera", image_ns, "lidar", s, "odom"), fallback, "t")
    deskew_ms = _median_ms(lambda: motion.camera_points(cloud), repeats)
    as_one_ms = _median_ms(lambda: apply(fallback, pointcloud2_to_xyz(cloud)), repeats)
    return {"points": n_points, "sweep_ms": 100, "median_ms": round(deskew_ms, 3),
            "as_one_ms": round(as_one_ms, 3), "ratio_to_as_one": round(deskew_ms / as_one_ms, 2)}


def run(args: argparse.Namespace) -> dict:
    """Time (a) LiDAR -> depth map and (b) depth + image -> PointCloud2 on one core."""
    from mf_core.errors import InputError

    if args.points <= 0 or args.repeats <= 0:
        raise InputError("--points and --repeats must be positive")
    affinity = _pin_one_core(args.core)
    heap_kept = False
    if args.keep_heap:
        from mf_ros.heap import keep_heap_memory

        heap_kept = keep_heap_memory()
    return {
        "benchmark": "geometry",
        "machine": _machine(affinity),
        "heap_kept": heap_kept,
        "repeats": args.repeats,
        "targets": {"median_ms": TARGET_MS, "ratio_to_copy": TARGET_COPY_RATIO},
        "lidar_to_depth_1920x1200": _lidar_case(args.points, args.repeats, "none"),
        "lidar_to_depth_1920x1200_plumb_bob": _lidar_case(args.points, args.repeats, "plumb_bob"),
        "lidar_to_depth_1920x1200_equidistant": _lidar_case(args.points, args.repeats, "equidistant"),
        "depth_to_xyzrgb_pointcloud2_640x480": _cloud_case(args.repeats),
        "deskew_sweep_100ms": _deskew_case(args.points, args.repeats),
    }
