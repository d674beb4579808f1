"""Robust scale/shift alignment of a relative depth prediction to the frame's LiDAR pixels (numpy).

Model:   target ~ scale * prediction + shift, in depth space, or in inverse-depth space
         (1 / target ~ scale / prediction + shift), which weights near points more.

Method (seeded, vectorised):
  1. RANSAC over 2-point minimal fits: ``iterations`` hypotheses with positive scale, each scored
     by how many points it fits within ``threshold`` relative error |fit - y| / |y| (10% default:
     a relative prediction from a good monocular model is within ~5% after alignment, while
     LiDAR/camera parallax at occlusion edges, rain or glass give errors far beyond 10%).
     Scoring uses at most ``MAX_SCORING_POINTS`` random points to bound memory and time.
  2. Least squares on the best hypothesis' inliers, then re-select inliers with the same
     threshold and refit, until the inlier set stops changing (at most ``REFITS`` times).
Fallback: when the prediction is constant over the points (shift not identifiable) or no
positive-scale fit exists, scale-only: scale = median(y / x), shift = 0; ``fallback`` says why.
Too few points (< ``min_points``) is an InputError: the frame cannot be made metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mf_core.errors import InputError

SPACES = ("depth", "inverse_depth")
MIN_POINTS = 10
MAX_SCORING_POINTS = 2048
REFITS = 5


@dataclass(frozen=True)
class Alignment:
    """A fitted scale/shift and how well it agrees with the LiDAR points.

    ``inliers`` is (N,) bool over the points that were fitted; residual statistics are in
    metres over the inliers (``rmse``, ``mae``) and relative (``abs_rel`` = mean |e| / depth).
    """

    scale: float
    shift: float
    space: str
    inliers: np.ndarray
    rmse: float
    mae: float
    abs_rel: float
    fallback: str | None = None

    @property
    def inlier_fraction(self) -> float:
        return float(self.inliers.mean()) if self.inliers.size else 0.0

    def apply(self, prediction: np.ndarray) -> np.ndarray:
        """Metric depth from a relative ``prediction`` (any shape); 0 where the fit gives no positive depth."""
        return _to_metric(np.asarray(prediction, dtype=np.float64), self.scale, self.shift, self.space)

    def to_relative(self, metric: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`apply`: metric depth (any shape) in the prediction's relative frame; 0 where none."""
        metric = np.asarray(metric, dtype=np.float64)
        relative = (metric - self.shift) / self.scale
        if self.space == "inverse_depth":
            with np.errstate(divide="ignore"):
                inverse = (1.0 / metric - self.shift) / self.scale
                relative = np.where(inverse > 0, 1.0 / np.where(inverse > 0, inverse, 1.0), 0.0)
        return np.where(np.isfinite(relative) & (relative > 0), relative, 0.0).astype(np.float32)


def _to_metric(prediction: np.ndarray, scale: float, shift: float, space: str) -> np.ndarray:
    if space == "depth":
        metric = scale * prediction + shift
    else:
        with np.errstate(divide="ignore"):
            inverse = scale / prediction + shift
            metric = np.where(inverse > 0, 1.0 / np.where(inverse > 0, inverse, 1.0), 0.0)
    return np.where(np.isfinite(metric) & (metric > 0), metric, 0.0).astype(np.float32)


def _relative_residual(x: np.ndarray, y: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """|scale * x + shift - y| / |y|, broadcasting hypotheses (K, 1) against points (N,)."""
    return np.abs(scale * x + shift - y) / np.abs(y)


def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    design = np.stack([x, np.ones_like(x)], axis=1)  # (N, 2)
    (scale, shift), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(scale), float(shift)


def _ransac(x: np.ndarray, y: np.ndarray, threshold: float, iterations: int, rng: np.random.Generator
            ) -> tuple[float, float] | None:
    """Best 2-point hypothesis (scale > 0) by inlier count, or None when none has positive scale."""
    pairs = rng.integers(0, x.size, size=(iterations, 2))  # (K, 2)
    dx = x[pairs[:, 1]] - x[pairs[:, 0]]  # (K,)
    usable = np.abs(dx) > 1e-12
    scale = np.where(usable, (y[pairs[:, 1]] - y[pairs[:, 0]]) / np.where(usable, dx, 1.0), 0.0)  # (K,)
    shift = y[pairs[:, 0]] - scale * x[pairs[:, 0]]  # (K,)
    keep = usable & (scale > 0)
    if not keep.any():
        return None
    scale, shift = scale[keep], shift[keep]
    scoring = rng.choice(x.size, size=min(x.size, MAX_SCORING_POINTS), replace=False)  # (M,)
    residual = _relative_residual(x[scoring], y[scoring], scale[:, None], shift[:, None])  # (K, M)
    best = int(np.argmax((residual <= threshold).sum(axis=1)))
    return float(scale[best]), float(shift[best])


def fit_scale_shift(
    prediction: np.ndarray,
    target: np.ndarray,
    space: str = "depth",
    threshold: float = 0.1,
    iterations: int = 256,
    min_points: int = MIN_POINTS,
    seed: int = 0,
) -> Alignment:
    """Robustly fit ``target ~ scale * prediction + shift`` (in ``space``) over paired points.

    Args:
        prediction: (N,) relative depth at the LiDAR pixels, > 0.
        target: (N,) LiDAR depth in metres, > 0.
        space: "depth" or "inverse_depth".
        threshold: inlier bound on the relative residual |fit - y| / |y| in the fitting space.
        iterations: RANSAC hypotheses.
        min_points: fewer valid pairs than this raise InputError.
        seed: RANSAC seed (results are deterministic for a seed).

    Returns:
        Alignment; ``inliers`` is over the N input pairs (pairs with a non-positive or
        non-finite value are never inliers).
    """
    if space not in SPACES:
        raise InputError(f"unknown alignment space {space!r}; use one of {SPACES}")
    if threshold <= 0 or iterations < 1:
        raise InputError(f"need threshold > 0 and iterations >= 1, got {threshold}, {iterations}")
    prediction = np.asarray(prediction, dtype=np.float64).ravel()
    target = np.asarray(target, dtype=np.float64).ravel()
    if prediction.shape != target.shape:
        raise InputError(f"prediction and target need the same number of points: {prediction.size} vs {target.size}")
    usable = np.isfinite(prediction) & np.isfinite(target) & (prediction > 0) & (target > 0)
    count = int(usable.sum())
    if count < min_points:
        raise InputError(
            f"too few LiDAR points to align depth: {count} usable, need at least {min_points} "
            "(check the LiDAR-camera extrinsic and time sync, or use a relative mode such as 'i2d')"
        )
    x, y = prediction[usable], target[usable]
    if space == "inverse_depth":
        x, y = 1.0 / x, 1.0 / y

    fallback = None
    fit = None
    if np.ptp(x) <= 1e-6 * np.abs(x).mean():
        fallback = "prediction is constant over the LiDAR points: shift not identifiable, scale only"
    else:
        fit = _ransac(x, y, threshold, iterations, np.random.default_rng(seed))
        if fit is None:
            fallback = "no positive-scale fit between prediction and LiDAR: scale only"
    if fit is None:
        fit = (float(np.median(y / x)), 0.0)
    inside = _relative_residual(x, y, *fit) <= threshold
    for _ in range(REFITS if fallback is None else 0):
        if inside.sum() < 2:
            break
        refit = _least_squares(x[inside], y[inside])
        if refit[0] <= 0:
            break
        fit = refit
        new_inside = _relative_residual(x, y, *fit) <= threshold
        if np.array_equal(new_inside, inside):
            break
        inside = new_inside

    inliers = np.zeros(prediction.size, dtype=bool)
    inliers[np.flatnonzero(usable)[inside]] = True
    error = _to_metric(prediction[inliers], *fit, space) - target[inliers]  # (I,) metres
    if error.size:
        rmse, mae = float(np.sqrt(np.mean(error**2))), float(np.mean(np.abs(error)))
        abs_rel = float(np.mean(np.abs(error) / target[inliers]))
    else:
        rmse = mae = abs_rel = float("nan")
    return Alignment(fit[0], fit[1], space, inliers, rmse, mae, abs_rel, fallback)


def align_to_lidar(prediction: np.ndarray, sparse_depth: np.ndarray, **options) -> Alignment:
    """Fit a relative (H, W) ``prediction`` to (H, W) ``sparse_depth`` (metres, 0 = no point).

    ``options`` go to :func:`fit_scale_shift`. ``inliers`` is over the LiDAR pixels in
    row-major order (``np.nonzero(sparse_depth > 0)``).
    """
    prediction = np.asarray(prediction)
    sparse_depth = np.asarray(sparse_depth)
    if prediction.shape != sparse_depth.shape or prediction.ndim != 2:
        raise InputError(
            f"prediction {prediction.shape} and sparse depth {sparse_depth.shape} must be the same (H, W)"
        )
    points = np.isfinite(sparse_depth) & (sparse_depth > 0)
    return fit_scale_shift(prediction[points], sparse_depth[points], **options)
