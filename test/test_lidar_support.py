"""Where a LiDAR-conditioned estimate is valid (mf_core/lidar_support.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mf_core.lidar_support import SUPPORT_SPACINGS, lidar_support, scanned_without_returns
from mf_core.sparse_fill import point_spacing


def _street_with_sky_gap() -> np.ndarray:
    """(120, 160) metres: 14 scan lines (rows 30-108, a return every 2nd pixel) on two buildings, left and right,
    that the top 6 lines hit, and sky between them (columns 60-100) where only the lower lines hit the street."""
    sparse = np.zeros((120, 160), np.float32)
    for row in range(30, 110, 6):
        sparse[row, ::2] = 10.0 + 0.1 * row
        if row < 66:
            sparse[row, 60:101] = 0.0  # the beams swept over the gap and nothing came back
    return sparse


def test_sky_the_beams_swept_over_is_invalid_but_surfaces_and_the_rows_above_the_sweep_are_not():
    sparse = _street_with_sky_gap()
    depth = np.full(sparse.shape, 12.0, np.float32)
    spacing = float(point_spacing(torch.from_numpy(sparse > 0)[None, None]))
    assert SUPPORT_SPACINGS * spacing > 31  # the sky pixels below lie within reach of the plain distance rule
    valid = lidar_support(depth, sparse)
    assert not valid[36:52, 75:86].any()  # sky between the buildings, 14-30 px above the street's top return
    assert valid[sparse > 0].all()  # every return
    assert valid[66:110, 60:101].all()  # the street below the gap, between its scan lines
    assert valid[20:30, :40].all() and valid[20:30, 120:].all()  # just above the top beam: no evidence of sky there


def test_nothing_is_removed_from_an_evenly_covered_sweep_or_an_empty_one():
    sparse = np.zeros((90, 120), np.float32)
    sparse[10:80:5, 4:116:3] = 5.0
    assert not scanned_without_returns(sparse > 0).any()
    # Scan lines that curve in the image (16 px lower in the middle than at the ends): the rows between a line's
    # ends and its middle are not empty sky. (The sweep's convex hull, or an unlimited reach, takes them for it.)
    curved = np.zeros((130, 160), bool)
    columns = np.arange(0, 160, 2)
    for top in range(10, 94, 6):
        curved[np.round(top + 16 * (1 - ((columns - 80) / 80) ** 2)).astype(int), columns] = True
    assert not scanned_without_returns(curved).any()
    assert not scanned_without_returns(np.zeros((40, 50), bool)).any()
    assert not lidar_support(np.ones((40, 50), np.float32), np.zeros((40, 50), np.float32)).any()


def test_no_band_is_cut_out_of_the_ground_under_bottom_lines_that_bow_up():
    """The bottom scan lines of a vehicle's LiDAR bow up towards the image's middle (the road ahead), and there
    the lowest lines may return little (dark asphalt): under the middle, the returns on both sides lie lower only
    because the lines curve. The scanned-but-empty rule alone cuts a NaN band out of the road there, above road
    that the sweep still supports (the synthetic street showed one); each column must stay valid down to the
    distance rule's reach, then end."""
    sparse = np.zeros((160, 200), np.float32)
    columns = np.arange(0, 200, 2)
    for bottom in range(40, 124, 6):  # the line's row at the image's edges; 24 px higher in the middle
        rows = np.round(bottom - 24 * (1 - ((columns - 100) / 100) ** 2)).astype(int)
        returned = (np.abs(columns - 100) > 40) | (columns % 8 == 0) if bottom > 100 else np.ones(columns.size, bool)
        sparse[rows[returned], columns[returned]] = 5.0
    valid = lidar_support(np.full(sparse.shape, 5.0, np.float32), sparse)
    assert scanned_without_returns(sparse > 0)[80:, 100].any()  # what the rule alone removes in the middle
    for column in columns:
        below = valid[int(np.flatnonzero(sparse[:, column])[-1]):, column]  # from the column's lowest return down
        ends = int(np.argmin(below)) if not below.all() else below.size
        assert below[:ends].all() and not below[ends:].any(), column  # valid, then NaN: no band
    assert valid[95:107, 100].all()  # the rows the rule alone removed


@pytest.mark.parametrize("name", ["kitti", "dgp"])
def test_held_out_returns_of_real_sweeps_stay_valid(name, shared_data):
    """Every held-out LiDAR return is a real surface: the pixels removed as scanned-but-empty must almost never
    hold one (measured 0-0.03 % over the train and val frames), while they do remove part of the image."""
    from mf_training.data.real_sets import read_real_split
    from mf_training.eval.protocols import make_protocol

    frames = read_real_split(name, "train", shared_data)[:2]
    protocol = make_protocol("lidar-holdout")
    held = removed = scored = 0
    for sample in frames:
        split = protocol.split(sample)
        empty = scanned_without_returns(split.fed_sparse > 0)
        held += int((empty & split.score_mask).sum())
        scored += int(split.score_mask.sum())
        removed += int(empty.sum())
    assert held <= 0.005 * scored
    assert removed > 0.001 * sum(s.sparse_depth.size for s in frames)
