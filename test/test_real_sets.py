"""The real-data readers (KITTI object, indoor_rgbd, Middlebury), the fixed split, and simulated scan lines."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_training.data.kitti import KittiObject
from mf_training.data.real_sets import REAL_SETS, SPLITS, get_real_set, read_real_split, real_set_of
from mf_training.data.rgbd_frames import IndoorRgbd, Middlebury
from mf_training.data.simulated_lidar import ScanPattern, random_sparse_depth, scanline_sparse_depth
from mf_training.data.sources import detect_kind, open_samples


def test_kitti_projection_reproduces_the_curated_sparse_depth(shared_data):
    root = shared_data / "kitti_object"
    ds = KittiObject(root)
    assert len(ds) == 14
    for index in (0, 10, 13):  # three calibrations, a full scan and both FOV-reduced scans' kinds
        sample = ds[index]
        split, frame = sample.name.removeprefix("kitti_").split("_")
        ref = cv2.imread(str(root / "derived" / split / "sparse_depth_2" / f"{frame}.png"), cv2.IMREAD_UNCHANGED)
        ref = ref.astype(np.float32) / 256.0
        ours = sample.sparse_depth
        # The curation drops points whose u rounds to -0 (column 0); ours keeps u in [-0.5, 0) there.
        inner = np.s_[:, 1:]
        np.testing.assert_array_equal(ours[inner] > 0, ref[inner] > 0)
        both = (ours > 0) & (ref > 0)
        assert np.abs(ours[both] - ref[both]).max() <= 0.5 / 256 + 1e-6
        assert sample.camera.width == sample.image.shape[1] and sample.gt_depth is None


def test_kitti_camera2_offset_is_split_from_p2(shared_data):
    from mf_training.data.kitti import camera2_geometry, read_calib

    calib = read_calib(shared_data / "kitti_object" / "training" / "calib" / "000000.txt")
    camera, T = camera2_geometry(calib, 1224, 370)
    point = np.array([3.0, -1.0, 20.0, 1.0])  # some point in the Velodyne frame
    P2, rect, velo = calib["P2"], np.eye(4), np.eye(4)
    rect[:3, :3], velo[:3, :] = calib["R0_rect"], calib["Tr_velo_to_cam"]
    expected = P2 @ rect @ velo @ point  # KITTI's own projection
    ours = camera.K @ (T @ point)[:3]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_rgbd_frame_readers(shared_data):
    indoor = IndoorRgbd(shared_data / "indoor_rgbd")
    assert len(indoor) == 7  # promptda_example has no ground truth
    nyu = next(s for s in indoor if s.name == "indoor_unidepth_nyu_demo")
    assert nyu.camera.fx == pytest.approx(518.8579, abs=1e-3)
    assert nyu.gt_depth[nyu.gt_depth > 0].min() > 1.6 and nyu.gt_depth.max() <= 10.0  # metres
    mask = nyu.sparse_depth > 0
    np.testing.assert_array_equal(nyu.sparse_depth[mask], nyu.gt_depth[mask])
    moto = Middlebury(shared_data / "middlebury")[0]
    assert moto.name == "middlebury_motorcycle" and moto.image.shape == (500, 741, 3)
    assert moto.camera.fx == pytest.approx(994.978)
    assert 2.1 < moto.gt_depth[moto.gt_depth > 0].min() < moto.gt_depth.max() < 5.1
    for kind, folder in (("kitti", "kitti_object"), ("indoor_rgbd", "indoor_rgbd"), ("middlebury", "middlebury")):
        assert detect_kind(shared_data / folder) == kind
    with pytest.raises(InputError, match="unknown sparse_pattern"):
        IndoorRgbd(shared_data / "indoor_rgbd", sparse_pattern="grid")


def test_the_split_is_fixed_disjoint_and_as_documented(shared_data):
    counts = {}
    for name in REAL_SETS:
        parts = {split: [s.name for s in read_real_split(name, split, shared_data)] for split in SPLITS}
        names = [n for part in parts.values() for n in part]
        assert len(names) == len(set(names)), f"{name}: a frame is in two parts"
        counts[name] = tuple(len(parts[s]) for s in SPLITS)
    assert counts == {"dgp": (6, 3, 18), "kitti": (5, 2, 7), "sevenscenes": (130, 10, 50),
                      "indoor_rgbd": (0, 0, 7), "middlebury": (0, 0, 1)}
    test_dgp = {n for n in (s.name for s in read_real_split("dgp", "test", shared_data))}
    assert all(n.startswith("scene_02") for n in test_dgp)  # the test scene is never seen in training
    assert real_set_of(shared_data / "kitti_object") is get_real_set("kitti")
    assert real_set_of(shared_data) is None
    with pytest.raises(InputError, match="unknown split"):
        list(read_real_split("kitti", "holdout", shared_data))


def _plane_frame(width=320, height=240):
    camera = PinholeCamera(width, height, 260.0, 260.0, (width - 1) / 2, (height - 1) / 2)
    gt = np.full((height, width), 5.0, np.float32)
    gt[:, :20] = 0.0  # an invalid band: no returns there
    return camera, gt


def test_scan_lines_follow_the_beam_geometry():
    camera, gt = _plane_frame()
    pattern = ScanPattern(beams=16, vertical_fov=40.0, azimuth_step=0.5, max_tilt=0.0)
    sparse = scanline_sparse_depth(gt, camera, np.random.default_rng(0), pattern)
    mask = sparse > 0
    np.testing.assert_array_equal(sparse[mask], 5.0)  # values are the ground truth
    assert not mask[:, :20].any()  # invalid ground truth gives no return
    # In the centre column the beams are rows cy - fy tan(elevation), 2.5 degrees apart.
    rows = np.flatnonzero(mask[:, 158:162].any(axis=1))
    elevations = np.degrees(np.arctan((camera.cy - rows) / camera.fy))
    gaps = np.diff(np.sort(elevations))
    np.testing.assert_allclose(gaps, 2.5, atol=0.25)
    # Off-centre, a beam bows away from the principal point (v = cy - fy tan(el) / cos(az)).
    top = rows.min()
    assert np.flatnonzero(mask[:, 296:304].any(axis=1)).min() < top
    again = scanline_sparse_depth(gt, camera, np.random.default_rng(0), pattern)
    np.testing.assert_array_equal(again, sparse)
    other = scanline_sparse_depth(gt, camera, np.random.default_rng(1), pattern)
    assert not np.array_equal(other > 0, mask)


def test_random_pattern_and_bad_patterns():
    camera, gt = _plane_frame()
    sparse = random_sparse_depth(gt, 100, np.random.default_rng(0))
    assert (sparse > 0).sum() == 100
    with pytest.raises(InputError, match="at least 1 beam"):
        ScanPattern(beams=0)
    with pytest.raises(InputError, match="out of range"):
        ScanPattern(vertical_fov=200)
    with pytest.raises(InputError, match="depth is"):
        scanline_sparse_depth(gt[:10], camera, np.random.default_rng(0))


def test_open_samples_reads_every_real_kind(shared_data):
    for folder in ("kitti_object", "indoor_rgbd", "middlebury"):
        sample = next(iter(open_samples(shared_data / folder, limit=1)))
        assert (sample.sparse_depth > 0).sum() > 1000
