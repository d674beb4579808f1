"""The DGP reader against the real TRI scenes in ../shared/data/dgp."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mf_core.errors import InputError
from mf_core.transforms import compose, invert
from mf_training.data.dgp import read_frames, read_scene, scene_files


@pytest.fixture(scope="module")
def frames(shared_data):
    return list(read_frames(shared_data / "dgp"))


def test_dataset_lists_every_scene_once(shared_data):
    scenes = scene_files(shared_data / "dgp")
    assert [p.parent.name for p in scenes] == ["scene_01", "scene_02"]


def test_frames_cover_every_camera_and_sample(frames, shared_data):
    names = {f.name for f in frames}
    references = sorted((shared_data / "dgp").glob("scene_*/derived/*_sparse_depth.png"))
    # scene_01: 3 samples x 3 cameras, scene_02: 3 x 6 (SOURCE.md's "33 pairs" is a miscount).
    assert len(frames) == len(names) == len(references) == 27
    f = frames[0]
    assert (f.scene, f.sample_index, f.camera_name, f.lidar_name) == ("scene_01", 0, "CAMERA_01", "LIDAR")
    assert f.camera.fx == pytest.approx(2167.6926048451924)
    assert (f.camera.width, f.camera.height) == (1936, 1216)
    assert f.lidar_points.shape == (40733, 3) and f.lidar_intensity.shape == (40733,)
    assert f.camera_frame_id == "camera_01_optical_frame" and f.lidar_frame_id == "lidar"
    # 100 ns ticks: LiDAR sweeps 10 Hz apart, camera 21 ms after its sweep, in 2019.
    assert f.lidar_stamp_ns == 15569195938203752 * 100
    assert frames[3].lidar_stamp_ns - f.lidar_stamp_ns == pytest.approx(0.1e9, rel=0.01)
    assert f.camera_stamp_ns - f.lidar_stamp_ns == 21147800


def test_extrinsics_pose_based_agree_with_calibration_when_static(frames):
    # scene_01: the vehicle does not move, so both ways to get camera<-LiDAR agree.
    f = frames[0]
    from_calib = compose(invert(f.T_vehicle_from_camera), f.T_vehicle_from_lidar)
    np.testing.assert_allclose(f.T_cam_from_lidar, from_calib, atol=1e-5)


def test_projection_reproduces_reference_depth_maps(frames, shared_data):
    for f in frames:
        derived = shared_data / "dgp" / f.scene / "derived"
        ref_path = derived / f"sample{f.sample_index}_{f.camera_name}_sparse_depth.png"
        ref = cv2.imread(str(ref_path), cv2.IMREAD_UNCHANGED).astype(np.float32) / 256.0  # (H, W) metres
        depth = f.sparse_depth()
        assert depth.shape == ref.shape and depth.dtype == np.float32
        valid = depth > 0
        assert np.array_equal(valid, ref > 0), f.name
        assert 0.002 < valid.mean() < 0.006, f.name
        assert np.abs(depth[valid] - ref[valid]).max() < 0.01, f.name


def test_to_sample(frames):
    s = frames[4].to_sample()
    assert s.name == "scene_01_sample1_CAMERA_05"
    assert s.image.shape == (1216, 1936, 3) and s.image.dtype == np.uint8
    assert s.gt_depth is None and s.stamp_ns == frames[4].camera_stamp_ns
    assert s.valid_mask.sum() > 5000
    assert s.sparse_depth[s.valid_mask].min() > 2.0 and s.sparse_depth.max() < 240.0


def test_broken_scene_json_is_input_error(tmp_path):
    bad = tmp_path / "scene_x.json"
    bad.write_text(json.dumps({"data": [], "samples": [{"datum_keys": ["nope"]}]}))
    with pytest.raises(InputError, match="not in 'data'"):
        list(read_scene(bad))
    with pytest.raises(InputError, match="no scene_dataset"):
        scene_files(tmp_path / "..")
