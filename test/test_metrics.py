"""Depth metrics and scoring protocols against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_training.data.sample import Sample
from mf_training.eval.metrics import depth_metrics, mean_metrics, valid_depth_mask
from mf_training.eval.protocols import REGIONS, fit_affine_to_gt, make_protocol


def _sample(sparse: np.ndarray, gt: np.ndarray | None = None, name: str = "f0") -> Sample:
    h, w = sparse.shape
    return Sample(name, np.zeros((h, w, 3), np.uint8), sparse.astype(np.float32),
                  PinholeCamera(w, h, 100.0, 100.0, w / 2, h / 2), 0, gt)


def test_metrics_match_hand_computed_values_and_skip_invalid_ground_truth():
    gt = np.array([[1.0, 4.0, 0.0, np.nan]], np.float32)
    pred = np.array([[2.0, 4.0, 7.0, 9.0]], np.float32)
    m = depth_metrics(pred, gt)
    assert m["n_valid"] == 2 and m["coverage"] == 1.0
    assert m["abs_rel"] == pytest.approx(0.5)  # (|2-1|/1 + 0) / 2
    assert m["sq_rel"] == pytest.approx(0.5)  # (1/1 + 0) / 2
    assert m["rmse"] == pytest.approx(math.sqrt(0.5))
    assert m["mae"] == pytest.approx(0.5)
    assert m["rmse_log"] == pytest.approx(math.log(2) / math.sqrt(2))
    assert m["irmse"] == pytest.approx(math.sqrt((1000 / 2 - 1000 / 1) ** 2 / 2))  # 1/km
    assert m["delta1"] == m["delta2"] == m["delta3"] == pytest.approx(0.5)  # ratio 2 > 1.25**3 = 1.95


def test_deltas_use_the_powers_of_1_25():
    gt = np.ones((1, 3), np.float32)
    pred = np.array([[1.2, 1.5, 1.9]], np.float32)  # ratios below 1.25, 1.5625, 1.953
    m = depth_metrics(pred, gt)
    assert (m["delta1"], m["delta2"], m["delta3"]) == pytest.approx((1 / 3, 2 / 3, 1.0))


def test_missing_predictions_lower_coverage_and_masks_and_caps_restrict_scoring():
    gt = np.array([[1.0, 2.0, 50.0, 100.0]], np.float32)
    pred = np.array([[1.0, 0.0, 50.0, 100.0]], np.float32)
    assert depth_metrics(pred, gt)["coverage"] == pytest.approx(0.75)
    capped = valid_depth_mask(gt, max_depth=80.0)
    assert capped.tolist() == [[True, True, True, False]]
    assert depth_metrics(pred, gt, capped)["n_valid"] == 2
    with pytest.raises(InputError, match="no pixel to score"):
        depth_metrics(np.zeros_like(gt), gt)
    with pytest.raises(InputError, match="must match"):
        depth_metrics(pred[:, :2], gt)


def test_mean_is_the_plain_mean_over_frames_and_counts_add_up():
    gt = np.ones((2, 2), np.float32)
    a, b = depth_metrics(gt * 2, gt), depth_metrics(gt, gt)
    mean = mean_metrics([a, b])
    assert mean["abs_rel"] == pytest.approx(0.5) and mean["n_valid"] == 8 and mean["n_frames"] == 2
    with pytest.raises(InputError):
        mean_metrics([])


def test_affine_fit_recovers_scale_and_shift_and_aligned_prediction_scores_zero():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1.0, 20.0, (12, 16)).astype(np.float32)
    gt[0, :4] = 0.0  # invalid pixels must not disturb the fit
    pred = 3.0 * gt + 2.0
    scale, shift = fit_affine_to_gt(pred, gt, gt > 0)
    assert (scale, shift) == pytest.approx((1 / 3, -2 / 3), rel=1e-6)
    protocol = make_protocol("affine")
    split = protocol.split(_sample(np.zeros_like(gt), gt))
    m = depth_metrics(protocol.finalize(pred, split), split.target, split.score_mask)
    assert m["abs_rel"] < 1e-6 and m["delta1"] == 1.0
    # Without alignment the same prediction is far off.
    assert depth_metrics(pred, gt)["abs_rel"] > 2.0


def test_affine_fit_of_a_constant_prediction_is_the_mean_depth():
    gt = np.array([[1.0, 2.0, 6.0]], np.float32)
    assert fit_affine_to_gt(np.full_like(gt, 0.5), gt, gt > 0) == (0.0, pytest.approx(3.0))
    with pytest.raises(InputError, match="at least 2"):
        fit_affine_to_gt(gt, gt, np.array([[True, False, False]]))


def test_metric_protocol_does_not_align():
    gt = np.full((4, 4), 5.0, np.float32)
    protocol = make_protocol("metric")
    split = protocol.split(_sample(np.zeros_like(gt), gt))
    pred = protocol.finalize(gt * 1.1, split)
    assert depth_metrics(pred, split.target)["abs_rel"] == pytest.approx(0.1)


@pytest.mark.parametrize("name", ["affine", "metric"])
def test_ground_truth_protocols_name_lidar_holdout_when_there_is_no_ground_truth(name):
    with pytest.raises(InputError, match="lidar-holdout"):
        make_protocol(name).split(_sample(np.ones((4, 4), np.float32)))


def test_regions_crop_and_cap():
    kitti = REGIONS["kitti"]
    mask = kitti.mask((375, 1242))
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (153, 371, 44, 1197)
    nyu = REGIONS["nyu"].mask((480, 640))
    rows, cols = np.nonzero(nyu)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (45, 471, 41, 601)
    clipped = kitti.clip(np.array([[0.0, 0.0001, 50.0, 120.0]], np.float32))
    assert clipped[0].tolist() == pytest.approx([0.0, 0.001, 50.0, 80.0])
    with pytest.raises(InputError, match="region"):
        make_protocol("metric", region="mars")


def _holdout_sample(seed: int = 0) -> Sample:
    rng = np.random.default_rng(seed)
    sparse = np.where(rng.random((40, 50)) < 0.3, rng.uniform(1, 30, (40, 50)), 0.0).astype(np.float32)
    return _sample(sparse)


def test_lidar_holdout_never_scores_a_fed_point_and_never_feeds_a_scored_point():
    sample = _holdout_sample()
    original = sample.sparse_depth.copy()
    split = make_protocol("lidar-holdout", holdout_fraction=0.2, seed=3).split(sample)
    fed, held = split.fed_sparse > 0, split.target > 0
    points = original > 0
    assert not np.any(fed & held)
    assert np.array_equal(fed | held, points)
    assert held.sum() == round(0.2 * points.sum())
    assert np.array_equal(split.target[held], original[held]) and np.array_equal(split.fed_sparse[fed], original[fed])
    assert split.target_is_sparse
    # The method gets a copy: the sample is untouched and shares no memory with what is fed.
    assert np.array_equal(sample.sparse_depth, original)
    assert not np.shares_memory(split.fed_sparse, sample.sparse_depth)


def test_lidar_holdout_split_depends_on_seed_and_frame_name_only():
    sample = _holdout_sample()
    a = make_protocol("lidar-holdout", seed=1).split(sample).target
    b = make_protocol("lidar-holdout", seed=1).split(sample).target
    c = make_protocol("lidar-holdout", seed=2).split(sample).target
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_lidar_holdout_rejects_bad_fractions_and_frames_too_sparse_to_split():
    for fraction in (0.0, 1.0, 1.5):
        with pytest.raises(InputError, match="holdout-fraction"):
            make_protocol("lidar-holdout", holdout_fraction=fraction)
    lone = np.zeros((4, 4), np.float32)
    lone[1, 1] = 5.0
    with pytest.raises(InputError, match="too few"):
        make_protocol("lidar-holdout").split(_sample(lone))
