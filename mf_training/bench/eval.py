"""``mf bench eval``: per-frame time of each baseline (and each model mode) at 640x480.

The frame is the first one of ``--data`` (resized to ``--size``) or, by default, an
analytic planes-and-boxes scene seen by a 64-beam-like LiDAR (``mf_training.eval.synthetic``).
Every method runs through the same wrapper ``mf eval`` uses. Each time is the median of
``--repeats`` runs, with OpenCV on one thread, and is also given as a ratio to a plain numpy
copy of the image timed in the same run. For reference, IP-Basic reports 11 ms per KITTI
frame (1242x375) on one CPU core.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

IPBASIC_PAPER_MS = 11.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="take the first frame of this sample folder / bag (default: synthetic scene)")
    parser.add_argument("--model", metavar="CKPT", help="also time every mode of this checkpoint")
    parser.add_argument("--steps", type=int, default=1, help="model sampler steps (default 1)")
    parser.add_argument("--onnx-model", help="also time on onnxruntime the mode this mf export-onnx file was made for")
    parser.add_argument("--compile", action="store_true", help="also time mode conditioned with torch.compile")
    parser.add_argument("--device", default="cpu", help="torch device for --model (default cpu)")
    parser.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per method (default 10)")


def _interleaved_median_ms(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median wall time of each of ``fns`` in milliseconds, timed round-robin (one run of each per round,
    after one warm-up run each): a machine that speeds up or slows down during the benchmark shifts every
    method alike, so their ratios stay fair (timed one after another, the same torch path measured 222 and
    301 ms in two runs of one session)."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, own in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            own.append(time.perf_counter() - start)
    return [1000.0 * statistics.median(own) for own in times]


def parse_size(text: str, flag: str = "--size") -> tuple[int, int]:
    """``"WxH"`` -> (width, height), the one spelling of a size on every command line; InputError otherwise."""
    from mf_core.errors import InputError

    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise InputError(f"{flag} must be WxH with positive integers (e.g. 640x480), got {text!r}")
    return int(parts[0]), int(parts[1])


def benchmark_frame(data: str | None, width: int, height: int):
    """The benchmark Sample at ``width`` x ``height``."""
    from mf_core.errors import InputError
    from mf_core.resize import resize_dense_depth, resize_image, resize_sparse_depth
    from mf_training.data.sample import Sample
    from mf_training.eval.synthetic import default_camera, synthetic_sample

    if data is None:
        return synthetic_sample("synthetic", default_camera(width, height), seed=0)
    from mf_training.data.sources import open_samples

    sample = next(iter(open_samples(data, limit=1)), None)
    if sample is None:
        raise InputError(f"{data} holds no frames to time")
    gt = None if sample.gt_depth is None else resize_dense_depth(sample.gt_depth, width, height, "nearest")
    return Sample(sample.name, resize_image(sample.image, width, height),
                  resize_sparse_depth(sample.sparse_depth, width, height), sample.camera.resized(width, height),
                  sample.stamp_ns, gt)


def run(args: argparse.Namespace) -> dict:
    import cv2
    import numpy as np

    from mf_core.completion import BASELINES
    from mf_core.errors import InputError
    from mf_training.eval.harness import baseline_method, model_method
    from mf_training.eval.metrics import depth_metrics

    if args.repeats < 1:
        raise InputError(f"--repeats must be at least 1, got {args.repeats}")
    width, height = parse_size(args.size)
    cv2.setNumThreads(1)
    sample = benchmark_frame(args.data, width, height)
    (copy_ms,) = _interleaved_median_ms([sample.image.copy], args.repeats)
    methods = [baseline_method(name) for name, baseline in BASELINES.items() if baseline.metric]
    skipped = {}
    if args.model:
        from mf_core.modes import MODES

        for mode in MODES:
            try:
                method = model_method(args.model, mode, args.steps, 0, None, args.device)
                method.predict(sample.image, sample.sparse_depth, sample.camera)  # fails early on a bad mode
                methods.append(method)
            except InputError as exc:
                skipped[mode] = str(exc)
    labels = [m.name if m.mode is None else f"model:{m.mode}" for m in methods]
    if args.model and (args.onnx_model or args.compile):
        from mf_core.pipeline import DepthEstimator
        from mf_training.eval.harness import estimator_method
    if args.model and args.onnx_model:
        exported = DepthEstimator.from_checkpoint(args.model, args.device, onnx_model=args.onnx_model)
        methods.append(estimator_method(exported, args.model, exported.onnx_mode, args.steps))
        labels.append(f"model:{exported.onnx_mode} (onnxruntime)")
    if args.model and args.compile:
        import torch

        compiled = DepthEstimator.from_checkpoint(args.model, args.device)
        compiled.model = torch.compile(compiled.model)
        methods.append(estimator_method(compiled, args.model, "conditioned", args.steps))
        labels.append("model:conditioned (torch.compile)")
    timings = _interleaved_median_ms([lambda m=method: m.predict(sample.image, sample.sparse_depth, sample.camera)
                                      for method in methods], args.repeats)
    rows = []
    for method, label, median_ms in zip(methods, labels, timings, strict=True):
        row = {"method": label}
        row["median_ms"] = round(median_ms, 3)
        row["ratio_to_copy"] = round(row["median_ms"] / copy_ms, 1)
        if sample.gt_depth is not None and method.metric:
            depth = method.predict(sample.image, sample.sparse_depth, sample.camera)
            scores = depth_metrics(depth, sample.gt_depth)
            row.update({k: round(scores[k], 4) for k in ("abs_rel", "rmse", "mae", "coverage")})
        rows.append(row)
    return {
        "frame": {"source": args.data or "synthetic", "size": f"{width}x{height}",
                  "lidar_pixels": int(np.count_nonzero(sample.sparse_depth))},
        "opencv_threads": cv2.getNumThreads(),
        "repeats": args.repeats,
        "image_copy_ms": round(copy_ms, 4),
        "methods": rows,
        "skipped_modes": skipped,
        "reference": {"ip_basic_paper_ms_per_kitti_frame_one_core": IPBASIC_PAPER_MS},
    }
