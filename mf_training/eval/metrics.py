"""Standard depth-estimation error metrics (KITTI / Eigen et al. definitions), float64 maths.

Every metric is computed on the pixels of one frame where the ground truth is valid
(finite and > 0, optionally inside ``[min_depth, max_depth]``) and the prediction is a
positive finite depth; the mean over a run is the plain mean of the per-frame values.
"""

from __future__ import annotations

import numpy as np

from mf_core.errors import InputError

# Lower is better for the first six, higher for the deltas.
METRIC_NAMES: tuple[str, ...] = (
    "abs_rel", "sq_rel", "rmse", "rmse_log", "mae", "irmse", "delta1", "delta2", "delta3",
)
# Every per-frame key written by :func:`depth_metrics`.
FRAME_KEYS: tuple[str, ...] = (*METRIC_NAMES, "n_valid", "coverage")


def valid_depth_mask(depth: np.ndarray, min_depth: float | None = None, max_depth: float | None = None
                     ) -> np.ndarray:
    """(H, W) bool: finite, > 0 and inside the optional ``[min_depth, max_depth]`` caps."""
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(depth) & (depth > 0)
        if min_depth is not None:
            mask &= depth >= min_depth
        if max_depth is not None:
            mask &= depth <= max_depth
    return mask


def depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Error metrics of ``pred`` against ``gt`` (both (H, W) metres) on one frame.

    ``mask`` (H, W) bool restricts the scored pixels further (crops, depth caps, held-out
    points); invalid ground truth never counts. A pixel where the prediction is missing
    (0, NaN or inf) is not scored; ``coverage`` is the fraction of valid ground-truth
    pixels that were scored, so a method that leaves holes shows it.

    Returns ``abs_rel, sq_rel, rmse, rmse_log, mae`` (metres), ``irmse`` (RMSE of inverse
    depth in 1/km, as on the KITTI benchmark), ``delta1..3`` (fraction with
    ``max(pred/gt, gt/pred) < 1.25**k``), ``n_valid`` and ``coverage``.
    Raises InputError when no pixel can be scored.
    """
    if pred.shape != gt.shape:
        raise InputError(f"prediction is {pred.shape} but ground truth is {gt.shape}; they must match")
    gt_valid = valid_depth_mask(gt)  # (H, W)
    if mask is not None:
        if mask.shape != gt.shape:
            raise InputError(f"score mask is {mask.shape} but ground truth is {gt.shape}")
        gt_valid &= mask
    scored = gt_valid & valid_depth_mask(pred)  # (H, W)
    n_gt = int(gt_valid.sum())
    n = int(scored.sum())
    if n == 0:
        raise InputError(f"no pixel to score: {n_gt} valid ground-truth pixels, none with a positive prediction")
    p = pred[scored].astype(np.float64)  # (N,)
    g = gt[scored].astype(np.float64)  # (N,)
    diff = p - g
    ratio = np.maximum(p / g, g / p)
    return {
        "abs_rel": float(np.mean(np.abs(diff) / g)),
        "sq_rel": float(np.mean(diff**2 / g)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
        "mae": float(np.mean(np.abs(diff))),
        "irmse": float(np.sqrt(np.mean((1000.0 / p - 1000.0 / g) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "n_valid": n,
        "coverage": n / n_gt,
    }


def mean_metrics(frames: list[dict]) -> dict[str, float]:
    """Plain mean over frames of every metric (and coverage); ``n_valid`` is the total, ``n_frames`` the count."""
    if not frames:
        raise InputError("no frames were scored; check --data and --limit")
    out: dict[str, float] = {key: float(np.mean([f[key] for f in frames])) for key in (*METRIC_NAMES, "coverage")}
    out["n_valid"] = int(sum(f["n_valid"] for f in frames))
    out["n_frames"] = len(frames)
    return out


def geometric_mean(values: list[float] | np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Geometric mean of positive numbers (NaN for an empty list): how RMSE ratios are averaged over sets.
    With ``axis``, of an array along that axis (e.g. (sets, draws) -> (draws,))."""
    if axis is not None:
        return np.exp(np.mean(np.log(values), axis=axis))
    return float(np.exp(np.mean(np.log(values)))) if len(values) else float("nan")
