"""mf bench consistency: depth change between consecutive frames of a moving real camera (7-Scenes)."""

from __future__ import annotations

import argparse

import numpy as np

from mf_core.camera import PinholeCamera
from mf_core.transforms import from_ros_quaternion, invert
from mf_training.bench import consistency


def test_a_depth_map_moved_with_the_camera_lands_where_the_next_view_sees_it():
    """A wall 4 m ahead, the camera 0.5 m closer in the next frame: moved, the first view's depth is the
    second's 3.5 m; moved the wrong way round (the inverse motion), it is 4.5 m."""
    camera = PinholeCamera(40, 30, 30.0, 30.0, 19.5, 14.5)
    wall = np.full((30, 40), 4.0, np.float32)
    T_next_from_this = from_ros_quaternion((0, 0, 0, 1), (0.0, 0.0, -0.5))  # the camera moved 0.5 m forward
    moved = consistency.moved_depth(wall, camera, T_next_from_this)
    assert np.allclose(moved[moved > 0], 3.5) and (moved > 0).mean() > 0.7
    back = consistency.moved_depth(wall, camera, invert(T_next_from_this))
    assert np.allclose(back[back > 0], 4.5) and (back > 0).mean() > 0.5
    seen = {"mask": np.ones((30, 40), bool), "gt": np.full((30, 40), 3.5, np.float32)}
    mean, median = consistency.pair_change(wall, np.full((30, 40), 3.5, np.float32), camera, T_next_from_this, seen)
    assert mean == median == 0.0


def test_the_shipped_model_on_the_first_test_frames(shared_data):
    """The ground truth agrees with itself across frames to well under 1 % (the poses are read the right way
    round: inverted motions give 1.4 %), every method changes more than the ground truth, and the model is
    reported against the most consistent classical fill."""
    args = argparse.Namespace(model="default", data_root=str(shared_data), limit=3, visible=0.03, device="cpu")
    report = consistency.run(args)
    rows = report["methods"]
    floor = rows["ground truth"]["change_mean"]
    assert report["sequence"]["pairs"] == 2 and floor < 0.008
    assert report["sequence"]["seen_pixels_per_pair"] > 0.4 * 640 * 480
    assert all(row["change_mean"] > floor for name, row in rows.items() if name != "ground truth")
    model = "model:conditioned (node: share of the stream)"
    best = report["most_consistent_classical"]
    assert report["model_ratio_to_most_consistent"]["change_mean"] == \
        round(rows[model]["change_mean"] / rows[best]["change_mean"], 3)


def test_an_absent_sequence_is_reported_as_skipped(tmp_path):
    args = argparse.Namespace(model="default", data_root=str(tmp_path), limit=0, visible=0.03, device="cpu")
    assert "7-Scenes not found" in consistency.run(args)["skipped"]
