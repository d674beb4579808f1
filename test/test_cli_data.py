"""`mf export`, `mf inspect` and `mf convert`, run in-process through mf_training.cli.main."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_bag_samples import write_bag

from mf_core.errors import InputError
from mf_training.cli import main
from mf_training.data.bag_samples import BagSamples
from mf_training.data.dgp import read_frames
from mf_training.data.sources import detect_kind, open_samples


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "scene"
    write_bag(path, frames=6, lidar_offsets_ms=[7, -20, 60, 0, 45, -51])
    return path


def test_export_then_folder_reads_like_the_bag(bag, tmp_path, capsys):
    out = tmp_path / "folder"
    assert main(["export", "--bag", str(bag), "--out", str(out), "--slop", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert "4/6 images paired" in printed and "2 no LiDAR sweep within the slop" in printed
    from_bag = list(BagSamples(bag, slop_s=0.05))
    folder = open_samples(out)
    assert folder.kind == "folder" and folder.length == 4
    for a, b in zip(from_bag, folder, strict=True):
        assert (a.name, a.stamp_ns, a.camera) == (b.name, b.stamp_ns, b.camera)
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.sparse_depth > 0, b.sparse_depth > 0)
        np.testing.assert_allclose(b.sparse_depth, a.sparse_depth, atol=0.5 / 256 + 1e-6)
        np.testing.assert_allclose(b.gt_depth, a.gt_depth, atol=0.5 / 256 + 1e-6)


def test_export_that_pairs_nothing_exits_2_and_says_why(tmp_path, capsys):
    write_bag(tmp_path / "far", frames=1, lidar_offsets_ms=[60])  # every sweep outside a 50 ms slop
    assert main(["export", "--bag", str(tmp_path / "far"), "--out", str(tmp_path / "none"), "--slop", "0.05"]) == 2
    captured = capsys.readouterr()
    assert "no sample was written" in captured.err and "1 no LiDAR sweep within the slop" in captured.out


def test_frames_without_a_lidar_point_in_view_are_skipped_and_counted(bag, tmp_path, capsys):
    behind = ["--extrinsic", "0 0 -1000 0 0 0 1"]  # the sweep 1 km behind the camera
    assert main(["export", "--bag", str(bag), "--out", str(tmp_path / "none"), "--slop", "0.05", *behind]) == 2
    captured = capsys.readouterr()
    assert "skipped 4 frame(s) with no LiDAR point in the image" in captured.out
    assert "no sample was written" in captured.err


def test_inspect_reports_counts_rates_and_sync(bag, capsys):
    assert main(["inspect", str(bag), "--json", "--slop", "0.05"]) == 0
    report = json.loads(capsys.readouterr().out)
    topics = {t["topic"]: t for t in report["topics"]}
    assert topics["/camera/image_raw"]["count"] == 6 and topics["/lidar/points"]["count"] == 6
    assert topics["/camera/image_raw"]["rate_hz"] == pytest.approx(10.0)
    assert topics["/tf_static"]["count"] == 1 and topics["/tf_static"]["rate_hz"] is None
    assert report["duration_s"] == pytest.approx(0.5)  # images at 0..500 ms, sweeps within
    assert (report["sync"]["images"], report["sync"]["pairs"]) == (6, 4)
    assert main(["inspect", str(bag), "--slop", "0.06"]) == 0
    table = capsys.readouterr().out
    assert "/camera/depth/ground_truth" in table and "6/6 images paired" in table


def test_export_without_tf_static_exits_2_naming_the_flag(tmp_path, capsys):
    write_bag(tmp_path / "no_tf", frames=2, tf=False, gt=False)
    assert main(["export", "--bag", str(tmp_path / "no_tf"), "--out", str(tmp_path / "o")]) == 2
    assert "--extrinsic" in capsys.readouterr().err
    assert main(["export", "--bag", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2


def test_convert_sevenscenes_bag_and_folder_match_the_reader(shared_data, tmp_path):
    path = shared_data / "sevenscenes"
    assert main(["convert", "--source", "sevenscenes", "--path", str(path), "--out", str(tmp_path / "bag"),
                 "--limit", "3"]) == 0
    assert main(["convert", "--source", "sevenscenes", "--path", str(path), "--out", str(tmp_path / "folder"),
                 "--format", "folder", "--limit", "2"]) == 0
    direct = list(open_samples(path, limit=3))
    from_bag = list(open_samples(tmp_path / "bag"))
    assert len(from_bag) == 3
    for a, b in zip(direct, from_bag, strict=True):
        assert a.stamp_ns == b.stamp_ns and a.camera == b.camera
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.sparse_depth, b.sparse_depth)
        assert np.array_equal(a.gt_depth, b.gt_depth)
    folder = open_samples(tmp_path / "folder")
    assert folder.length == 2
    for a, b in zip(direct, folder, strict=False):
        assert a.name == b.name and np.array_equal(a.image, b.image)
        assert np.array_equal(a.sparse_depth > 0, b.sparse_depth > 0)
        np.testing.assert_allclose(b.gt_depth, a.gt_depth, atol=0.5 / 256 + 1e-6)
    assert main(["convert", "--source", "dgp", "--path", str(path), "--out", str(tmp_path / "x")]) == 2


def test_convert_dgp_scene_bags_match_the_direct_reader(shared_data, tmp_path):
    scene = shared_data / "dgp" / "scene_01"
    assert main(["convert", "--source", "dgp", "--path", str(scene), "--out", str(tmp_path), "--limit", "3"]) == 0
    direct = {f.name: f for f in list(read_frames(scene))[:3]}
    for camera in ("CAMERA_01", "CAMERA_05", "CAMERA_06"):
        source = open_samples(tmp_path / f"scene_01_{camera}")
        assert source.kind == "bag" and source.length == 1
        (sample,) = source
        frame = direct[f"scene_01_sample0_{camera}"]
        assert sample.stamp_ns == frame.camera_stamp_ns and sample.camera == frame.camera
        assert np.array_equal(sample.image, frame.image)
        reference = frame.sparse_depth()
        got, ref = sample.sparse_depth > 0, reference > 0
        # float32 PointCloud2 coordinates and calibration-vs-pose extrinsics (< 1e-6 m in this
        # static scene) move a handful of points across a pixel border (or change which of two
        # points on one pixel is nearer); everything else is the same map.
        assert (got ^ ref).sum() <= 0.005 * ref.sum()
        both = got & ref
        close = np.abs(sample.sparse_depth[both] - reference[both]) <= 1e-3
        assert close.mean() >= 0.999


def test_open_samples_rejects_unknown_paths_and_options(bag, tmp_path, shared_data):
    assert detect_kind(bag) == "bag" and detect_kind(next(bag.glob("*.mcap"))) == "bag"
    assert detect_kind(shared_data / "dgp") == "dgp" and detect_kind(shared_data / "sevenscenes") == "sevenscenes"
    with pytest.raises(InputError, match="does not exist"):
        open_samples(tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match="is not a sample folder"):
        open_samples(tmp_path)
    with pytest.raises(InputError, match="sparse_points"):
        open_samples(bag, sparse_points=10)
    with pytest.raises(InputError, match="limit"):
        open_samples(bag, limit=0)
    assert [s.stamp_ns for s in open_samples(bag, limit=2, slop_s=0.1)] == [s.stamp_ns for s in BagSamples(bag)][:2]
