"""Push-pull and scan-line fills, directional neighbours and their colour differences (mf_core.sparse_fill)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mf_core.completion import complete_linear, complete_scanline
from mf_core.errors import InputError
from mf_core.sparse_fill import directional_neighbours, scanline_fill, smooth_fill
from mf_training.eval.synthetic import default_camera, synthetic_sample


def _maps(seed: int = 0, shape=(2, 1, 37, 53), density: float = 0.05):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=gen) < density
    values = torch.rand(shape, generator=gen) * 4 + 1
    return torch.where(mask, values, 0.0), mask


def test_smooth_fill_is_exact_at_points_and_bounded_between_them():
    values, mask = _maps()
    filled = smooth_fill(values, mask)
    torch.testing.assert_close(filled[mask], values[mask])
    for b in range(2):
        seen = values[b][mask[b]]
        assert filled[b].min() >= seen.min() - 1e-5 and filled[b].max() <= seen.max() + 1e-5  # a convex blend
    empty = smooth_fill(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.bool))
    assert torch.all(empty == 0)
    with pytest.raises(InputError, match="shape"):
        smooth_fill(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4, dtype=torch.bool))


def test_smooth_fill_reproduces_a_plane_and_the_scanline_fill_rivals_delaunay_linear():
    h, w = 96, 128
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    plane = 2.0 + 0.03 * rows + 0.01 * cols  # depth linear in the pixel position
    mask = np.zeros((h, w), bool)
    mask[::6, ::3] = True  # scan-line-like rows of points
    filled = smooth_fill(torch.from_numpy(np.where(mask, plane, 0))[None, None], torch.from_numpy(mask)[None, None])
    inside = np.s_[6:-6, 6:-6]
    assert np.abs(filled[0, 0].numpy() - plane)[inside].max() < 0.05  # the tilt is kept, not flattened
    # On a textured scene with occlusions, the prior's log-depth fill is about as accurate as Delaunay-linear.
    scene = synthetic_sample("scene", default_camera(320, 240), seed=3)
    truth = scene.gt_depth > 0
    errors = {}
    for name, fill in (("scanline", complete_scanline), ("linear", complete_linear)):
        depth = fill(scene.image, scene.sparse_depth, scene.camera)
        errors[name] = float(np.sqrt(np.mean((depth[truth] - scene.gt_depth[truth]) ** 2)))
    assert errors["scanline"] < 1.2 * errors["linear"], errors


def _scan_lines(values: np.ndarray, line_gap: int, point_gap: int, first_row: int) -> tuple[torch.Tensor, ...]:
    mask = np.zeros(values.shape, bool)
    mask[first_row::line_gap, ::point_gap] = True
    sparse = torch.from_numpy(np.where(mask, values, 0.0).astype(np.float32))
    return sparse[None, None], torch.from_numpy(mask)[None, None]


def test_scanline_fill_is_exact_at_points_and_linear_between_lines():
    values, mask = _maps(density=0.08)
    filled = scanline_fill(values, mask)
    torch.testing.assert_close(filled[mask], values[mask])
    for b in range(2):
        seen = values[b][mask[b]]
        assert filled[b].min() >= seen.min() - 1e-5 and filled[b].max() <= seen.max() + 1e-5
    assert torch.all(scanline_fill(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.bool)) == 0)
    # A plane sampled on scan lines: rows without returns between two lines are the line interpolation, exactly.
    rows, cols = np.mgrid[0:60, 0:89].astype(np.float32)  # returns in columns 0, 2, ..., 88
    plane = 1.0 + 0.05 * rows + 0.01 * cols
    lines, line_mask = _scan_lines(plane, 6, 2, 3)
    filled = scanline_fill(lines, line_mask)[0, 0].numpy()
    between = ~line_mask[0, 0].numpy().any(axis=1)  # (H,) rows without any return
    between[:3] = between[-4:] = False  # above the first and below the last line: the push-pull fill
    np.testing.assert_allclose(filled[between], plane[between], atol=1e-5)
    np.testing.assert_allclose(filled[:3], smooth_fill(lines, line_mask)[0, 0, :3].numpy(), atol=1e-6)


def test_scanline_fill_keeps_a_depth_edge_between_lines_where_push_pull_smears_it():
    values = np.where(np.arange(64)[None, :] < 30, 1.0, 3.0) * np.ones((48, 1))  # (48, 64): a vertical edge
    lines, mask = _scan_lines(values, 8, 2, 2)
    rows = ~mask[0, 0].numpy().any(axis=1)
    rows[:2] = rows[-6:] = False
    away = np.abs(np.arange(64) - 29.5) > 2  # columns more than 2 px from the edge
    scan = np.abs(scanline_fill(lines, mask)[0, 0].numpy() - values)[rows][:, away]
    smooth = np.abs(smooth_fill(lines, mask)[0, 0].numpy() - values)[rows][:, away]
    assert scan.max() < 1e-5  # each side keeps its depth up to the edge
    assert smooth.max() > 0.5  # the pyramid's cells mix both sides several pixels away from it


def test_directional_neighbours_find_the_nearest_point_on_each_side():
    values = torch.zeros(1, 1, 5, 7)
    mask = torch.zeros(1, 1, 5, 7, dtype=torch.bool)
    for (r, c), v in (((2, 1), 1.0), ((2, 5), 2.0), ((0, 3), 3.0)):
        values[0, 0, r, c], mask[0, 0, r, c] = v, True
    found, distance, _ = directional_neighbours(values, mask, torch.zeros(1, 3, 5, 7))
    # Pixel (2, 3): left (2, 1) at 2 px, right (2, 5) at 2 px, up (0, 3) at 2 px, nothing below.
    assert found[0, :, 2, 3].tolist()[:3] == [1.0, 2.0, 3.0] and torch.isnan(found[0, 3, 2, 3])
    assert distance[0, :, 2, 3].tolist() == [2.0, 2.0, 2.0, float("inf")]
    assert torch.all(distance[0, :, 2, 1] == 0) and torch.all(found[0, :, 2, 1] == 1.0)  # a point is its own
    assert torch.isnan(found[0, 0, 2, 0]) and found[0, 1, 2, 0] == 1.0  # left of everything: right only


def test_colour_difference_compares_with_the_neighbour_pixel():
    image = torch.zeros(1, 3, 4, 6)
    image[..., 4:] = 1.0  # a bright band on the right
    mask = torch.zeros(1, 1, 4, 6, dtype=torch.bool)
    mask[0, 0, 1, 0] = mask[0, 0, 1, 5] = True
    _, _, diff = directional_neighbours(torch.ones(1, 1, 4, 6), mask, image)
    assert diff[0, 0, 1, 2] == 0 and diff[0, 1, 1, 2] == pytest.approx(3.0)  # same as left, unlike right
    assert diff[0, 2, 1, 2] == 0  # no neighbour above: compared with itself


def test_scanline_fill_bridges_a_hole_in_one_surface_but_not_a_depth_step():
    from mf_core.sparse_fill import AGREEING_GAP_SPACINGS, COLUMN_GAP_SPACINGS, point_spacing

    values = np.repeat(1.0 + 0.002 * np.arange(60.0)[:, None], 48, axis=1)  # a gentle slope (log depth)...
    values[40:] += 0.5  # ... with a depth step, 50 % in log depth
    lines, mask = _scan_lines(values, 8, 1, 0)  # full rows every 8 px: 0, 8, ..., 56
    mask[0, 0, [8, 16, 40]] = False  # holes: rows 0-24 in one surface, rows 32-48 across the step
    spacing = float(point_spacing(mask))
    assert COLUMN_GAP_SPACINGS * spacing < 16 and AGREEING_GAP_SPACINGS * spacing >= 24  # the holes' sizes
    filled = scanline_fill(lines, mask)[0, 0].numpy()
    smooth = smooth_fill(lines, mask)[0, 0].numpy()
    np.testing.assert_allclose(filled[1:24], values[1:24], atol=1e-6)  # the ends agree: linear across the hole
    assert np.abs(smooth[1:24] - values[1:24]).max() > 1e-3  # (which push-pull is not)
    np.testing.assert_allclose(filled[33:48], smooth[33:48], atol=1e-6)  # across the step: push-pull
    # Depth in any unit: the same scene 50x farther is filled 50x farther (the agreement test is relative).
    np.testing.assert_allclose(scanline_fill(50.0 * lines, mask)[0, 0].numpy(), 50.0 * filled, rtol=1e-5)


def test_scanline_fill_log_fills_depth_and_returns_log_depth():
    from mf_core.sparse_fill import scanline_fill_log

    depth, mask = _maps(density=0.08)
    depth[1] = 0.0
    mask[1] = False  # a sample without LiDAR
    log_filled = scanline_fill_log(torch.where(mask, depth.clamp(min=1e-6).log(), 0.0), mask)
    torch.testing.assert_close(log_filled[0].exp(), scanline_fill(depth, mask)[0], rtol=1e-5, atol=0.0)
    assert torch.all(log_filled[1] == 0)
