"""``mf bench stability``: flicker on a static scene, the model against the classical fills.

A robot standing still sees the same scene every frame, but each LiDAR sweep returns slightly
different ranges (noise) and misses some points (dropouts). Here one frame (``--data``, or the
analytic scene of ``mf bench eval``) is fed ``--repeats`` times, each time with fresh range
noise (``--noise`` metres, gaussian) and ``--dropout`` of the returns removed; every method
sees the same sweeps. Reported per method: the per-pixel standard deviation of depth over the
repeats (median and 95th percentile, metres, over pixels with depth in every repeat) and the
mean frame-to-frame change relative to depth; and the model's figures as ratios to the best
classical method of the same run. A ratio above 1 means the model flickers more than
interpolating the same LiDAR would. A model whose nearest share is fitted per frame
(:mod:`mf_core.self_validation`) is also run as the depth node runs it, with the share of the
stream, and that row is the one the ratios use.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="checkpoint folder ('default' = the shipped model)")
    parser.add_argument("--data", help="take the first frame of this sample folder / bag (default: synthetic scene)")
    parser.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    parser.add_argument("--repeats", type=int, default=8, help="sweeps of the static scene (default 8)")
    parser.add_argument("--noise", type=float, default=0.02, help="LiDAR range noise std in metres (default 0.02)")
    parser.add_argument("--dropout", type=float, default=0.05, help="share of returns missing per sweep")
    parser.add_argument("--device", default="cpu")


def _sweeps(sparse, repeats: int, noise: float, dropout: float):
    """``repeats`` noisy, partly dropped copies of a (H, W) sparse depth map (0 = no return)."""
    import numpy as np

    rng = np.random.default_rng(0)
    hit = sparse > 0
    for _ in range(repeats):
        keep = hit & (rng.random(sparse.shape) >= dropout)
        noisy = sparse + rng.normal(0.0, noise, sparse.shape).astype(np.float32)
        yield np.where(keep, np.maximum(noisy, 0.01), 0).astype(np.float32)


def flicker(depths) -> dict:
    """Per-pixel std over repeats (median, p95, metres) and mean relative frame-to-frame change."""
    import numpy as np

    stack = np.stack([np.where(np.isfinite(d) & (d > 0), d, np.nan) for d in depths])  # (R, H, W)
    everywhere = np.all(np.isfinite(stack), axis=0)  # (H, W) depth in every repeat
    std = np.nanstd(stack, axis=0)[everywhere]
    change = np.abs(np.diff(stack, axis=0))[:, everywhere] / stack[1:, everywhere]
    return {"std_median_m": round(float(np.median(std)), 5), "std_p95_m": round(float(np.percentile(std, 95)), 5),
            "frame_change_mean": round(float(np.mean(change)), 5), "pixels": int(everywhere.sum())}


def run(args: argparse.Namespace) -> dict:
    import cv2

    from mf_core.checkpoint import read_checkpoint_config, resolve_model_path
    from mf_core.completion import CLASSICAL_BASELINES
    from mf_core.errors import InputError
    from mf_core.modes import recommended_mode
    from mf_core.pipeline import DepthEstimator
    from mf_core.self_validation import AUTO, NearestShareStream
    from mf_training.bench.eval import benchmark_frame, parse_size
    from mf_training.eval.harness import baseline_method, estimator_method

    if args.repeats < 2 or not 0 <= args.dropout < 1 or args.noise < 0:
        raise InputError("--repeats must be >= 2, --dropout in [0, 1), --noise >= 0")
    cv2.setNumThreads(1)
    width, height = parse_size(args.size)
    sample = benchmark_frame(args.data, width, height)
    config, metadata = read_checkpoint_config(resolve_model_path(args.model))
    mode = recommended_mode(metadata, config.depth_conditioned)
    estimator = DepthEstimator.from_checkpoint(args.model, args.device)
    methods = [baseline_method(name) for name in CLASSICAL_BASELINES]
    methods.append(estimator_method(estimator, str(args.model), mode))
    sweeps = list(_sweeps(sample.sparse_depth, args.repeats, args.noise, args.dropout))
    rows = {}
    for method in methods:
        label = method.name if method.mode is None else f"model:{method.mode}"
        rows[label] = flicker([method.predict(sample.image, sweep, sample.camera) for sweep in sweeps])
    if mode == "conditioned" and estimator.nearest_share == AUTO:
        # As the depth node runs it: the nearest share of the stream, settled on the same static scene's
        # sweeps first (the node's first frames, before it settles, flicker like the per-frame row above).
        stream = NearestShareStream()
        for sweep in sweeps:
            stream.update(sample.image, sweep)
        rows[f"model:{mode} (node: share of the stream)"] = flicker(
            [estimator.predict(sample.image, sweep, mode, with_confidence=False, share_stream=stream).depth
             for sweep in sweeps])
        mode = f"{mode} (node: share of the stream)"
    model_row = rows[f"model:{mode}"]
    classical = {k: v for k, v in rows.items() if k.startswith("baseline:")}
    best = min(classical, key=lambda k: classical[k]["std_median_m"])
    return {
        "frame": {"source": args.data or "synthetic", "size": f"{width}x{height}"},
        "sweeps": {"repeats": args.repeats, "noise_m": args.noise, "dropout": args.dropout},
        "methods": rows,
        "steadiest_classical": best,
        "model_ratio_to_steadiest": {k: round(model_row[k] / max(classical[best][k], 1e-9), 3)
                                     for k in ("std_median_m", "std_p95_m", "frame_change_mean")},
    }
