"""Robust scale/shift alignment of relative depth to LiDAR."""

from __future__ import annotations

import numpy as np
import pytest

from mf_core.align import align_to_lidar, fit_scale_shift
from mf_core.errors import InputError


def _points(n: int, outlier_fraction: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    prediction = rng.uniform(0.3, 3.0, n)
    target = 12.0 * prediction + 1.5
    target *= 1 + rng.normal(0, 0.005, n)  # LiDAR noise, 0.5%
    outliers = rng.random(n) < outlier_fraction
    target[outliers] = rng.uniform(0.5, 60.0, outliers.sum())
    return prediction, target, outliers


def test_recovers_scale_and_shift_with_30_percent_outliers():
    prediction, target, outliers = _points(2000, 0.3)
    fit = fit_scale_shift(prediction, target)
    assert fit.scale == pytest.approx(12.0, rel=0.01)
    assert fit.shift == pytest.approx(1.5, abs=0.1)
    assert fit.fallback is None
    # Nearly every clean point is an inlier; outliers that happen to land near the line may be too.
    assert fit.inliers[~outliers].mean() > 0.98
    assert fit.inliers[outliers].mean() < 0.15
    assert fit.abs_rel < 0.02
    # Plain least squares is pulled far off by the outliers.
    scale_ls, _ = np.polyfit(prediction, target, 1)
    assert abs(scale_ls - 12.0) > 1.0


def test_inverse_depth_space_and_round_trip():
    rng = np.random.default_rng(3)
    prediction = rng.uniform(0.5, 4.0, 500)
    target = 1.0 / (0.4 / prediction + 0.05)
    fit = fit_scale_shift(prediction, target, space="inverse_depth")
    assert (fit.scale, fit.shift) == pytest.approx((0.4, 0.05), rel=1e-6)
    np.testing.assert_allclose(fit.apply(prediction), target, rtol=1e-5)
    np.testing.assert_allclose(fit.to_relative(target), prediction, rtol=1e-5)


def test_seeded_and_deterministic():
    prediction, target, _ = _points(500, 0.4, seed=5)
    a, b = fit_scale_shift(prediction, target, seed=7), fit_scale_shift(prediction, target, seed=7)
    assert (a.scale, a.shift) == (b.scale, b.shift)
    assert np.array_equal(a.inliers, b.inliers)


def test_constant_prediction_falls_back_to_scale_only():
    fit = fit_scale_shift(np.full(50, 2.0), np.full(50, 9.0))
    assert fit.fallback is not None and "scale only" in fit.fallback
    assert (fit.scale, fit.shift) == (4.5, 0.0)
    assert fit.inliers.all()


def test_too_few_points_is_a_clear_error():
    with pytest.raises(InputError, match=r"too few LiDAR points.*4 usable, need at least 10"):
        fit_scale_shift(np.ones(6), np.array([1.0, 2, 3, 4, 0, np.nan]))


def test_align_to_lidar_uses_only_lidar_pixels():
    rng = np.random.default_rng(1)
    prediction = rng.uniform(0.5, 2.0, (30, 40)).astype(np.float32)
    sparse = np.zeros_like(prediction)
    rows, cols = rng.integers(0, 30, 200), rng.integers(0, 40, 200)
    sparse[rows, cols] = 3.0 * prediction[rows, cols] + 0.5
    fit = align_to_lidar(prediction, sparse)
    assert (fit.scale, fit.shift) == pytest.approx((3.0, 0.5), rel=1e-4)
    assert fit.inliers.size == np.count_nonzero(sparse)
    with pytest.raises(InputError, match="same"):
        align_to_lidar(prediction, sparse[:, :-1])
