"""The 7-Scenes reader against the real frames in ../shared/data/sevenscenes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mf_core.errors import InputError
from mf_training.data.sevenscenes import SevenScenes


@pytest.fixture(scope="module")
def root(shared_data):
    return shared_data / "sevenscenes"


def test_frames_shapes_units_and_camera(root):
    ds = SevenScenes(root)
    assert len(ds) == 200 and ds.frame_number(1) == 5
    s = ds[1]
    assert s.name == "frame-000005"
    assert s.image.shape == (480, 640, 3) and s.image.dtype == np.uint8
    assert s.gt_depth.shape == s.sparse_depth.shape == (480, 640)
    assert s.gt_depth.dtype == s.sparse_depth.dtype == np.float32
    assert (s.camera.fx, s.camera.fy, s.camera.cx, s.camera.cy) == (585.0, 585.0, 320.0, 240.0)
    raw = cv2.imread(str(root / "frames" / "frame-000005.depth.png"), cv2.IMREAD_UNCHANGED)
    ok = (raw > 0) & (raw < 65535)
    np.testing.assert_array_equal(s.gt_depth > 0, ok)
    np.testing.assert_allclose(s.gt_depth[ok], raw[ok] / 1000.0, rtol=1e-6)
    valid = s.gt_depth[ok]
    assert valid.min() > 0.79 and valid.max() < 4.0  # Kinect range, metres not millimetres
    assert 0.7 < ok.mean() < 1.0
    pose = ds.pose(1)
    np.testing.assert_allclose(pose[:3, :3].T @ pose[:3, :3], np.eye(3), atol=1e-3)


def test_sparse_points_are_gt_pixels_count_and_seeded(root):
    s = SevenScenes(root, sparse_points=500, seed=3, sparse_pattern="random")[7]
    mask = s.sparse_depth > 0
    assert mask.sum() == 500
    np.testing.assert_array_equal(s.sparse_depth[mask], s.gt_depth[mask])
    again = SevenScenes(root, sparse_points=500, seed=3, sparse_pattern="random")[7]
    np.testing.assert_array_equal(again.sparse_depth, s.sparse_depth)
    other = SevenScenes(root, sparse_points=500, seed=4, sparse_pattern="random")[7]
    assert not np.array_equal(other.sparse_depth > 0, mask)
    assert (SevenScenes(root, sparse_points=50, sparse_pattern="random")[7].sparse_depth > 0).sum() == 50


def test_bad_input(root, tmp_path):
    with pytest.raises(InputError, match="sparse_points"):
        SevenScenes(root, sparse_points=0)
    with pytest.raises(InputError, match="no frames"):
        SevenScenes(tmp_path)
