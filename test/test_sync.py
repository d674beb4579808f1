"""Camera / camera_info / LiDAR stamp pairing."""

from __future__ import annotations

import numpy as np
import pytest

from mf_core.errors import InputError
from training.data.sync import NO_CAMERA_INFO, NO_LIDAR_IN_SLOP, pair_stamps, slop_to_ns

MS = 1_000_000


def test_pairs_nearest_sweep_and_latest_info():
    images = np.array([100, 133, 166, 200]) * MS
    infos = np.array([100, 166]) * MS
    lidars = np.array([95, 150, 205]) * MS
    result = pair_stamps(images, infos, lidars, slop_ns=50 * MS)
    assert result.image_index.tolist() == [0, 1, 2, 3]
    assert result.info_index.tolist() == [0, 0, 1, 1]
    # 133 is 17 ms from 150 and 38 ms from 95; 166 is 16 ms from 150.
    assert result.lidar_index.tolist() == [0, 1, 1, 2]
    assert result.lidar_offset_ns.tolist() == [-5 * MS, 17 * MS, -16 * MS, 5 * MS]
    assert result.stats.pairs == 4 and result.stats.skipped_total == 0


def test_slop_boundary_is_inclusive_and_drops_are_counted():
    images = np.array([1000, 2000, 3000]) * MS
    lidars = np.array([1050, 2051]) * MS  # exactly 50 ms; 51 ms; 949 ms
    result = pair_stamps(images, [0], lidars, slop_ns=50 * MS)
    assert result.image_index.tolist() == [0]
    assert result.stats.pairs == 1
    assert result.stats.skipped[NO_LIDAR_IN_SLOP] == 2
    assert "1/3 images paired" in result.stats.summary()


def test_images_before_the_first_camera_info_are_skipped():
    images = np.array([10, 20, 30]) * MS
    result = pair_stamps(images, [20 * MS], images, slop_ns=0)
    assert result.image_index.tolist() == [1, 2]
    assert result.stats.skipped == {NO_CAMERA_INFO: 1, NO_LIDAR_IN_SLOP: 0}


def test_unsorted_input_indexes_the_callers_arrays():
    rng = np.random.default_rng(0)
    images = rng.permutation(np.arange(50) * 100 * MS)
    lidars = rng.permutation(np.arange(0, 5000, 90) * MS + 3 * MS)
    result = pair_stamps(images, [0], lidars, slop_ns=45 * MS)
    # Brute force reference on the same data.
    diff = np.abs(lidars[None, :] - images[:, None])  # (N, M)
    ok = diff.min(axis=1) <= 45 * MS
    assert set(result.image_index.tolist()) == set(np.flatnonzero(ok).tolist())
    got = diff[result.image_index, result.lidar_index]
    assert np.array_equal(got, diff[result.image_index].min(axis=1))
    assert np.all(np.diff(images[result.image_index]) > 0)


def test_no_lidar_at_all_skips_everything():
    result = pair_stamps([1, 2], [0], [], slop_ns=MS)
    assert result.stats.pairs == 0 and result.stats.skipped[NO_LIDAR_IN_SLOP] == 2


def test_bad_slop_is_input_error():
    with pytest.raises(InputError, match="--slop"):
        slop_to_ns(-0.1)
    assert slop_to_ns(0.05) == 50 * MS
