"""``mf bench node``: depth_node's per-frame overhead apart from the model, and end-to-end latency.

(a) Overhead at 640x480 with a 64-beam x 2048 sweep (131k points), one core: sync (three
    StampSync inserts), decode (Image + CameraInfo -> numpy), project (PointCloud2 -> sparse
    depth), encode (depth Image, CameraInfo, organized XYZRGB cloud as rclpy messages) and
    publish (rclpy serialisation of the three outputs, what ``publish`` costs the node's
    thread). The model stage is replaced by the LiDAR depth itself. Target: < 15 ms total.
(b) End to end: DepthPipeline.process with ``--model`` (default MF-XS, random weights: a
    stand-in until a checkpoint ships) at ``--processing-size``: median latency and rate.
"""

from __future__ import annotations

import argparse
import time

TARGET_OVERHEAD_MS = 15.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per measurement (default 20)")
    parser.add_argument("--model", default="MF-XS", help="checkpoint folder or registry size (default MF-XS)")
    parser.add_argument("--mode", default="i2d-aligned", help="model mode for (b) (default i2d-aligned)")
    parser.add_argument("--processing-size", type=int, nargs=2, default=(320, 240), metavar=("WIDTH", "HEIGHT"),
                        help="model resolution for (b) (default 320 240)")
    parser.add_argument("--frames", type=int, default=5, help="frames timed for (b) (default 5)")
    parser.add_argument("--core", type=int, default=None, help="CPU core to pin to (default: the first allowed)")


def _sweep(beams: int = 64, columns: int = 2048):
    """(beams*columns, 3) float32 points of a spinning LiDAR in a 2..60 m scene; LiDAR frame x forward, z up."""
    import numpy as np

    rng = np.random.default_rng(0)
    elevation = np.deg2rad(np.linspace(-22.5, 22.5, beams))[:, None]  # (B, 1)
    azimuth = np.linspace(-np.pi, np.pi, columns, endpoint=False)[None, :]  # (1, C)
    rng_m = rng.uniform(2.0, 60.0, (beams, columns))
    xyz = np.stack([rng_m * np.cos(elevation) * np.cos(azimuth), rng_m * np.cos(elevation) * np.sin(azimuth),
                    rng_m * np.sin(elevation) * np.ones_like(azimuth)], -1)  # (B, C, 3)
    return xyz.reshape(-1, 3).astype(np.float32)


def _inputs(messages):
    """rclpy (or rosbags) image, camera_info and cloud at 640x480, and T_camera_from_lidar."""
    import numpy as np

    from mf_core.camera import PinholeCamera
    from mf_ros import conversions as conv

    camera = PinholeCamera(640, 480, 500.0, 500.0, 319.5, 239.5)
    image = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    T = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)  # optical <- x fwd
    return (conv.rgb_to_image(image, 1000, "camera", "rgb8", messages),
            conv.camera_to_camera_info(camera, 1000, "camera", messages),
            conv.xyz_to_pointcloud2(_sweep(), 1000, "lidar", messages=messages), T)


def _overhead(messages, serialize, repeats: int) -> dict:
    from mf_ros.depth_pipeline import DepthPipeline, PipelineOptions
    from mf_ros.sync import StampSync
    from mf_training.bench.geometry import _median_ms

    image, info, cloud, T = _inputs(messages)
    pipeline = DepthPipeline(PipelineOptions("classical"), None, messages)
    rgb, camera = pipeline._decode(image, info)
    sparse = pipeline._sparse_depth(cloud, T, camera)

    def sync():
        s = StampSync(50_000_000)
        s.add_info(1000, info)
        s.add_cloud(1000, cloud)
        assert s.add_image(1000, image)

    frame = pipeline._encode(rgb, sparse, None, camera, 1000, "camera", True)
    stages = {
        "sync": sync,
        "decode": lambda: pipeline._decode(image, info),
        "project": lambda: pipeline._sparse_depth(cloud, T, camera),
        "encode": lambda: pipeline._encode(rgb, sparse, None, camera, 1000, "camera", True),
        "publish": lambda: [serialize(m) for m in (frame.depth, frame.camera_info, frame.points)],
    }
    result = {name: round(_median_ms(fn, repeats), 3) for name, fn in stages.items()}
    result["total_ms"] = round(sum(result.values()), 3)
    result["meets_target"] = result["total_ms"] < TARGET_OVERHEAD_MS
    result["lidar_points"] = int(cloud.width * cloud.height)
    result["points_in_image"] = int((sparse > 0).sum())
    return result


def _end_to_end(args: argparse.Namespace, messages) -> dict:
    import numpy as np

    from mf_ros.depth_pipeline import DepthPipeline, PipelineOptions, load_estimator

    width, height = args.processing_size
    estimator = load_estimator(args.model, "cpu", (height, width))
    pipeline = DepthPipeline(PipelineOptions(args.mode), estimator, messages)
    image, info, cloud, T = _inputs(messages)
    pipeline.warm_up(640, 480, True)
    times, stages = [], []
    for _ in range(args.frames):
        start = time.perf_counter()
        out = pipeline.process(image, info, cloud, T)
        times.append(time.perf_counter() - start)
        stages.append(out.timings)
    median_s = float(np.median(times))
    return {"model": args.model, "mode": args.mode, "processing_size": [width, height],
            "median_latency_ms": round(1000 * median_s, 1), "rate_hz": round(1 / median_s, 2),
            "stage_median_ms": {k: round(float(np.median([s[k] for s in stages])), 2) for k in stages[0]}}


def run(args: argparse.Namespace) -> dict:
    from mf_ros.heap import keep_heap_memory
    from mf_training.bench.geometry import _machine, _pin_one_core

    affinity = _pin_one_core(args.core)
    heap_kept = keep_heap_memory()  # as depth_node does at start-up
    try:
        from rclpy.serialization import serialize_message

        from mf_ros.conversions import RclpyMessages

        messages, serialize, flavour = RclpyMessages(), serialize_message, "rclpy"
    except ImportError:  # no rclpy: rosbags messages and their CDR serialiser stand in
        from mf_ros.conversions import rosbags_messages

        messages = rosbags_messages()
        serialize, flavour = (lambda m: messages.typestore.serialize_cdr(m, m.__msgtype__)), "rosbags"
    return {"machine": _machine(affinity), "messages": flavour, "heap_kept": heap_kept,
            "target_overhead_ms": TARGET_OVERHEAD_MS,
            "overhead_640x480_64_beams": _overhead(messages, serialize, args.repeats),
            "end_to_end": _end_to_end(args, messages)}
