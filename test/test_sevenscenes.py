"""The 7-Scenes reader against the real frames in ../shared/data/sevenscenes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_training.data.sevenscenes import (
    COLOUR_FROM_DEPTH_M,
    COLOUR_INTRINSICS,
    SevenScenes,
    read_depth_mm,
    register_depth,
)
from mf_training.eval.edge_alignment import edge_distance


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
    assert (s.camera.fx, s.camera.fy, s.camera.cx, s.camera.cy) == (527.0, 527.0, 321.7, 238.4)  # colour camera
    raw = cv2.imread(str(root / "frames" / "frame-000005.depth.png"), cv2.IMREAD_UNCHANGED)
    ok = (raw > 0) & (raw < 65535)
    valid = s.gt_depth[s.gt_depth > 0]
    # registered by a sideways shift: every depth is one of the file's (millimetres -> metres), moved, not changed
    assert np.isin(np.round(valid * 1000).astype(np.uint16), raw[ok]).all()
    assert valid.min() > 0.79 and valid.max() < 4.0  # Kinect range, metres not millimetres
    assert 0.6 < valid.size / ok.size < ok.mean()  # the colour camera sees beyond the depth camera's sides
    assert not (s.gt_depth[:, :20] > 0).any() and not (s.gt_depth[:, -20:] > 0).any()
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


def _alignment(frames, camera, baseline):
    """Mean edge distance over ``frames`` ((image, raw depth, depth camera) each) of the depth registered with
    ``camera`` and ``baseline`` (the raw depth when ``camera`` is None)."""
    distances = [edge_distance(image, raw if camera is None else register_depth(raw, depth_camera, camera, baseline))[0]
                 for image, raw, depth_camera in frames]
    return float(np.mean(distances))


def _frames(root, numbers):
    """(image, raw depth, depth camera) of the 7-Scenes frames ``numbers``, read once."""
    depth_camera = PinholeCamera.from_dict(SevenScenes(root).depth_intrinsics, width=640, height=480)
    return [(cv2.cvtColor(cv2.imread(str(root / "frames" / f"frame-{n:06d}.color.jpg")), cv2.COLOR_BGR2RGB),
             read_depth_mm(root / "frames" / f"frame-{n:06d}.depth.png"), depth_camera) for n in numbers]


def test_depth_is_registered_to_the_colour_image(root):
    """The registration brings the depth edges at least 25 % closer to the image's on frames it was not fitted on
    (val), and each of its parameters moved alone makes the alignment on frames it was fitted on worse."""
    colour = PinholeCamera.from_dict(COLOUR_INTRINSICS, width=640, height=480)
    val = _frames(root, range(675, 725, 5))
    registered, raw = _alignment(val, colour, COLOUR_FROM_DEPTH_M), _alignment(val, None, None)
    assert registered < 0.75 * raw, (registered, raw)
    train = _frames(root, range(0, 650, 40))
    best = _alignment(train, colour, COLOUR_FROM_DEPTH_M)
    tx = COLOUR_FROM_DEPTH_M[0]

    def camera(**change):
        return PinholeCamera.from_dict({**COLOUR_INTRINSICS, **change}, width=640, height=480)

    for name, moved, baseline in (("f - 12", camera(fx=515.0, fy=515.0), COLOUR_FROM_DEPTH_M),
                                  ("f + 12", camera(fx=539.0, fy=539.0), COLOUR_FROM_DEPTH_M),
                                  ("cx - 4", camera(cx=317.7), COLOUR_FROM_DEPTH_M),
                                  ("cy + 4", camera(cy=242.4), COLOUR_FROM_DEPTH_M),
                                  ("baseline 1.5 cm shorter", colour, (tx + 0.015, 0.0, 0.0)),
                                  ("baseline 1.5 cm longer", colour, (tx - 0.015, 0.0, 0.0))):
        assert _alignment(train, moved, baseline) > best, name
