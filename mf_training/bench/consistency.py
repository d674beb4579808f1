"""``mf bench consistency``: temporal consistency on a moving camera, the model against the classical fills.

``mf bench stability`` measures flicker on a static scene; a robot moves. Here a real moving sequence is
used: the 7-Scenes test frames in order (frames 750-995, every 5th of the 30 Hz recording, camera poses
from KinectFusion), each fed its simulated scan lines as ``mf bench quality`` feeds them. For every pair
of consecutive frames each method's depth of the first is moved into the second with the camera motion
(back-projected, transformed, z-buffered) and compared with that method's depth of the second, on the
pixels where the ground truth itself agrees across the pair within ``--visible`` (the surface is seen in
both and the poses fit there). Reported per method: the mean and median of |moved - next| / ground truth,
the ground truth's own figure (the floor set by pose and depth noise), and the model's figures as ratios
to the most consistent classical method of the same run. A ratio above 1 means the model's depth changes
more from frame to frame than interpolating the same LiDAR would, beyond what the motion explains. A model
whose nearest share is fitted per frame is run as the depth node runs it, with the share of the stream.
"""

from __future__ import annotations

import argparse

from mf_training.bench.quality import PRIOR_LABEL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="checkpoint folder ('default' = the shipped model)")
    parser.add_argument("--data-root", help="folder of the real sets (default $MF_DATA_ROOT or ../shared/data)")
    parser.add_argument("--limit", type=int, default=0, help="use at most this many frames (default all 50)")
    parser.add_argument("--visible", type=float, default=0.03,
                        help="ground truth moved into the next frame within this share of its depth marks a pixel "
                             "seen in both (default 0.03)")
    parser.add_argument("--device", default="cpu")


def moved_depth(depth, camera, T_next_from_this):
    """(H, W) depth of ``depth`` (H, W, 0 or NaN = none) seen from the next camera pose: back-projected,
    moved by ``T_next_from_this`` (4, 4) and z-buffered into the same camera (0 = nothing lands there)."""
    import numpy as np

    from mf_core.geometry import backproject_depth, points_to_depth_map

    points = backproject_depth(np.where(np.isfinite(depth), depth, 0).astype(np.float32), camera)  # (H, W, 3)
    return points_to_depth_map(points.reshape(-1, 3), T_next_from_this, camera)


def pair_change(this, following, camera, T_next_from_this, seen) -> tuple[float, float]:
    """(mean, median) of |``this`` moved into the next frame - ``following``| / ground truth over ``seen``
    (H, W bool; its ground truth is the next frame's, given as the dict entry "gt")."""
    import numpy as np

    moved = moved_depth(this, camera, T_next_from_this)
    valid = seen["mask"] & (moved > 0) & np.isfinite(following) & (following > 0)
    change = np.abs(moved[valid] - following[valid]) / seen["gt"][valid]
    return float(change.mean()), float(np.median(change))


def run(args: argparse.Namespace) -> dict:
    import cv2
    import numpy as np

    from mf_core.checkpoint import read_checkpoint_config, resolve_model_path
    from mf_core.completion import CLASSICAL_BASELINES
    from mf_core.errors import InputError
    from mf_core.modes import recommended_mode
    from mf_core.pipeline import DepthEstimator
    from mf_core.self_validation import AUTO, NearestShareStream
    from mf_core.transforms import compose, invert
    from mf_training.data.real_sets import data_root, get_real_set
    from mf_training.data.sevenscenes import COLOUR_FROM_DEPTH_M, SevenScenes
    from mf_training.eval.harness import baseline_method

    if args.limit < 0 or not 0 < args.visible < 1:
        raise InputError("--limit must be >= 0 and --visible in (0, 1)")
    cv2.setNumThreads(1)
    real_set = get_real_set("sevenscenes")
    folder = data_root(args.data_root) / real_set.folder
    if not folder.exists():  # as mf bench quality skips an absent set: said, not an error
        return {"skipped": f"7-Scenes not found at {folder}; set --data-root or $MF_DATA_ROOT"}
    frames = SevenScenes(folder)
    order = [i for i in range(len(frames)) if real_set.part_of(frames.frame_stems[i]) == "test"]
    order = order[:args.limit] if args.limit else order
    if len(order) < 2:
        raise InputError(f"need at least 2 consecutive 7-Scenes test frames, got {len(order)}")
    samples = [frames[i] for i in order]
    T_colour_from_depth = np.eye(4)
    T_colour_from_depth[:3, 3] = COLOUR_FROM_DEPTH_M
    # The poses are the depth camera's; the depth (registered) and the image are the colour camera's.
    poses = [compose(frames.pose(i), invert(T_colour_from_depth)) for i in order]  # T_world_from_colour
    motions = [compose(invert(poses[k + 1]), poses[k]) for k in range(len(order) - 1)]  # T_next_from_this

    config, metadata = read_checkpoint_config(resolve_model_path(args.model))
    mode = recommended_mode(metadata, config.depth_conditioned)
    estimator = DepthEstimator.from_checkpoint(args.model, args.device)
    depths: dict[str, list] = {"ground truth": [s.gt_depth for s in samples]}
    for name in CLASSICAL_BASELINES:
        method = baseline_method(name)
        depths[method.name] = [method.predict(s.image, s.sparse_depth, s.camera) for s in samples]
    prior = baseline_method("scanline")
    depths[PRIOR_LABEL] = [prior.predict(s.image, s.sparse_depth, s.camera) for s in samples]
    stream = NearestShareStream() if mode == "conditioned" and estimator.nearest_share == AUTO else None
    model_label = f"model:{mode}" + (" (node: share of the stream)" if stream is not None else "")
    depths[model_label] = [estimator.predict(s.image, s.sparse_depth, mode, with_confidence=False,
                                             share_stream=stream).depth for s in samples]

    camera = samples[0].camera
    seen = []  # per pair: the pixels whose ground truth agrees across it, and the next frame's ground truth
    for k, T in enumerate(motions):
        gt_next = samples[k + 1].gt_depth
        moved = moved_depth(samples[k].gt_depth, camera, T)
        mask = (moved > 0) & (gt_next > 0) & (np.abs(moved - gt_next) <= args.visible * np.maximum(gt_next, 1e-6))
        seen.append({"mask": mask, "gt": gt_next})
    rows = {}
    for label, series in depths.items():
        changes = np.array([pair_change(series[k], series[k + 1], camera, T, seen[k])
                            for k, T in enumerate(motions)])  # (P, 2)
        rows[label] = {"change_mean": round(float(changes[:, 0].mean()), 5),
                       "change_median": round(float(changes[:, 1].mean()), 5)}
    classical = {k: v for k, v in rows.items() if k.startswith("baseline:")}
    best = min(classical, key=lambda k: classical[k]["change_mean"])
    return {
        "sequence": {"set": "sevenscenes", "split": "test", "frames": [samples[0].name, samples[-1].name],
                     "pairs": len(motions), "visible_within": args.visible,
                     "seen_pixels_per_pair": int(np.mean([s["mask"].sum() for s in seen]))},
        "methods": rows,
        "most_consistent_classical": best,
        "model_ratio_to_most_consistent": {k: round(rows[model_label][k] / max(classical[best][k], 1e-9), 3)
                                           for k in ("change_mean", "change_median")},
    }
