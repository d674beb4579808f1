"""Classical completion baselines: coverage of the LiDAR hull, accuracy on analytic scenes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull, cKDTree

from mf_core.completion import (
    BASELINES,
    complete_classical,
    complete_linear,
    complete_nearest,
    get_baseline,
    nearest_lidar_pixel,
)
from mf_core.errors import InputError
from mf_training.eval.synthetic import default_camera, lidar_scan, plane_depth, synthetic_sample

CAMERA = default_camera(320, 240)
IMAGE = np.zeros((240, 320, 3), np.uint8)


def _hull_mask(sparse: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixel centres inside the convex hull of the LiDAR pixels (scipy's Qhull as the reference)."""
    rows, cols = np.nonzero(sparse > 0)
    hull = ConvexHull(np.stack([cols, rows], axis=1).astype(np.float64))
    grid_rows, grid_cols = np.mgrid[0:sparse.shape[0], 0:sparse.shape[1]]
    queries = np.stack([grid_cols.ravel(), grid_rows.ravel()]).astype(np.float64)  # (2, H*W) x, y
    # Inside = on the inner side of every hull edge: normal . p + offset <= 0.
    inside = np.all(hull.equations[:, :2] @ queries + hull.equations[:, 2:] <= 1e-9, axis=0)
    return inside.reshape(sparse.shape)


@pytest.fixture(scope="module")
def scene():
    return synthetic_sample("scene", CAMERA, seed=4)


LIDAR_BASELINES = [n for n, b in BASELINES.items() if b.metric]


@pytest.mark.parametrize("name", [n for n, b in BASELINES.items() if b.dense and b.metric])
def test_dense_baselines_fill_every_pixel_inside_the_lidar_hull(scene, name):
    depth = get_baseline(name).complete(scene.image, scene.sparse_depth, scene.camera)
    hull = _hull_mask(scene.sparse_depth)
    assert depth.shape == scene.sparse_depth.shape and depth.dtype == np.float32
    assert hull.sum() > 0.3 * hull.size
    assert np.all(np.isfinite(depth[hull]) & (depth[hull] > 0))
    # Every value lies within the range of the measurements (no extrapolated nonsense).
    lidar = scene.sparse_depth[scene.sparse_depth > 0]
    assert depth[hull].min() >= lidar.min() - 1e-3 and depth[hull].max() <= lidar.max() + 1e-3


@pytest.mark.parametrize("name", [n for n, b in BASELINES.items() if b.dense and b.metric])
def test_dense_baselines_are_accurate_on_the_analytic_scene(scene, name):
    depth = get_baseline(name).complete(scene.image, scene.sparse_depth, scene.camera)
    hull = _hull_mask(scene.sparse_depth) & (scene.gt_depth > 0)
    rel = np.abs(depth[hull] - scene.gt_depth[hull]) / scene.gt_depth[hull]
    # IP-Basic's dilations prefer the nearer of neighbouring returns: on the ground, whose depth
    # changes fast from row to row at this low resolution, that costs ~2%. A wrong pipeline costs tens.
    median, mean = (0.03, 0.05) if name == "classical" else (0.005, 0.02)
    assert np.median(rel) < median and np.mean(rel) < mean


def test_classical_on_a_slanted_plane_has_low_error():
    gt = plane_depth(CAMERA, (0.4, 0.3, 1.0), 8.0)  # 5.7 .. 13.3 m across the image
    sparse = lidar_scan(gt, CAMERA)
    depth = complete_classical(IMAGE, sparse, CAMERA)
    hull = _hull_mask(sparse)
    rel = np.abs(depth[hull] - gt[hull]) / gt[hull]
    assert rel.mean() < 0.01 and np.percentile(rel, 99) < 0.02
    # The default extends each column to the top of the frame, so the output is dense.
    assert np.all(depth > 0)
    assert np.any(complete_classical(IMAGE, sparse, CAMERA, extrapolate=False) == 0)


def test_classical_keeps_the_near_surface_at_an_occlusion():
    sparse = np.zeros((60, 80), np.float32)
    sparse[::3, ::3] = 30.0
    sparse[20:40:3, 30:50:3] = 5.0  # a near object in front of a far wall
    depth = complete_classical(np.zeros((60, 80, 3), np.uint8), sparse, default_camera(80, 60))
    assert depth[30, 39] == pytest.approx(5.0, abs=0.2)
    assert depth[5, 5] == pytest.approx(30.0, abs=0.2)


def test_linear_is_exact_for_depth_linear_in_the_pixel_coordinates():
    rng = np.random.default_rng(0)
    rows, cols = np.divmod(rng.choice(240 * 320, 800, replace=False), 320)
    sparse = np.zeros((240, 320), np.float32)
    sparse[rows, cols] = 5.0 + 0.02 * cols + 0.03 * rows
    depth = complete_linear(IMAGE, sparse, CAMERA)
    grid_rows, grid_cols = np.mgrid[0:240, 0:320]
    hull = _hull_mask(sparse)
    np.testing.assert_allclose(depth[hull], (5.0 + 0.02 * grid_cols + 0.03 * grid_rows)[hull], atol=1e-4)
    assert np.all(depth > 0)  # nearest outside the hull


def test_nearest_takes_the_depth_of_the_nearest_point():
    rng = np.random.default_rng(1)
    rows, cols = np.divmod(rng.choice(240 * 320, 500, replace=False), 320)
    sparse = np.zeros((240, 320), np.float32)
    values = rng.uniform(1, 50, rows.size).astype(np.float32)  # distinct, so a value names its point
    sparse[rows, cols] = values
    depth = complete_nearest(IMAGE, sparse, CAMERA)
    grid = np.stack(np.mgrid[0:240, 0:320], axis=-1).reshape(-1, 2)  # (H*W, 2) row, col
    best, nearest = cKDTree(np.stack([rows, cols], axis=1)).query(grid)
    order = np.argsort(values)
    chosen = order[np.searchsorted(values[order], depth.ravel())]  # (H*W,) point each pixel took
    excess = np.hypot(rows[chosen] - grid[:, 0], cols[chosen] - grid[:, 1]) - best
    # Exact up to ties and OpenCV's sub-pixel distance-mask error.
    assert np.mean(chosen == nearest) > 0.98 and excess.max() < 0.6
    distance, index = nearest_lidar_pixel(sparse > 0)  # what the confidence reads: distances too
    assert np.all(np.abs(distance.ravel() - best) <= 0.02 * best)  # OpenCV's 5x5 mask: within 2 %
    assert np.array_equal(np.flatnonzero(sparse > 0)[index.ravel()], np.ravel_multi_index((rows[chosen], cols[chosen]),
                                                                                          (240, 320)))


def test_lidar_only_is_the_input_itself():
    sparse = lidar_scan(plane_depth(CAMERA, (0.0, 0.0, 1.0), 7.0), CAMERA)
    out = get_baseline("lidar-only").complete(IMAGE, sparse, CAMERA)
    assert np.array_equal(out, sparse) and not np.shares_memory(out, sparse)


def test_row_prior_depends_on_the_row_only_and_is_exact_for_row_linear_depth():
    from mf_training.eval.protocols import fit_affine_to_gt

    prior = get_baseline("row-prior")
    assert not prior.metric
    out = prior.complete(IMAGE, np.zeros((240, 320), np.float32), CAMERA)  # needs no LiDAR at all
    assert out.shape == (240, 320) and np.all(out == out[:, :1]) and np.all(np.diff(out[:, 0]) > 0)
    gt = np.repeat((30.0 - 0.1 * np.arange(240, dtype=np.float32))[:, None], 320, axis=1)  # farther up the image
    scale, shift = fit_affine_to_gt(out, gt, np.ones(gt.shape, bool))
    np.testing.assert_allclose(scale * out + shift, gt, atol=1e-3)


@pytest.mark.parametrize("name", sorted(LIDAR_BASELINES))
def test_baselines_reject_frames_without_points_or_of_the_wrong_shape(name):
    complete = get_baseline(name).complete
    with pytest.raises(InputError, match="no LiDAR points"):
        complete(IMAGE, np.zeros((240, 320), np.float32), CAMERA)
    with pytest.raises(InputError, match="like the image"):
        complete(IMAGE, np.ones((24, 32), np.float32), CAMERA)


def test_unknown_baseline_lists_the_known_ones():
    with pytest.raises(InputError, match="classical"):
        get_baseline("magic")
