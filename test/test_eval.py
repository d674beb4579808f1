"""``mf eval`` end to end on generated sample folders, and the harness's guarantees."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest

from mf_core.camera import PinholeCamera
from mf_training import cli
from mf_training.commands import eval as eval_command
from mf_training.data.sample_folder import write_sample_folder
from mf_training.eval.edge_alignment import EDGE_KEYS
from mf_training.eval.harness import EvalMethod, baseline_method, evaluate
from mf_training.eval.metrics import FRAME_KEYS, METRIC_NAMES
from mf_training.eval.protocols import make_protocol
from mf_training.eval.synthetic import default_camera, synthetic_sample

CAMERA = default_camera(160, 120)
NAMES = ["f0", "f1", "f2"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three analytic frames (planes and boxes, exact dense ground truth) written as a sample folder."""
    path = tmp_path_factory.mktemp("frames")
    write_sample_folder(path, [synthetic_sample(name, CAMERA, seed=i) for i, name in enumerate(NAMES)])
    return path


@pytest.fixture(scope="module")
def folder_without_gt(tmp_path_factory):
    path = tmp_path_factory.mktemp("no_gt")
    samples = [synthetic_sample(name, CAMERA, seed=i) for i, name in enumerate(NAMES[:2])]
    for sample in samples:
        sample.gt_depth = None
    write_sample_folder(path, samples)
    return path


def _eval(*flags: str) -> int:
    return cli.main(["eval", *flags])


def test_mf_eval_baseline_classical_writes_json_markdown_and_panels(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert _eval("--data", str(folder), "--baseline", "classical", "--protocol", "metric", "--out", str(out)) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert set(report) == {"frames", "mean", "protocol", "mode", "model"}
    assert (report["protocol"], report["mode"], report["model"]) == ("metric", None, "baseline:classical")
    assert [f["name"] for f in report["frames"]] == NAMES
    for frame in report["frames"]:
        assert set(frame) == {"name", *FRAME_KEYS, *EDGE_KEYS, "runtime_s"}  # dense ground truth: depth edges too
        assert 0 < frame["abs_rel"] < 0.2 and frame["delta1"] > 0.8 and frame["coverage"] == 1.0
        assert frame["runtime_s"] > 0
    for key in METRIC_NAMES:
        assert report["mean"][key] == pytest.approx(np.mean([f[key] for f in report["frames"]]))
    table = (out / "metrics.md").read_text()
    assert "| frame | AbsRel %" in table and all(f"| {name} |" in table for name in NAMES)
    assert "edge acc px" in table and "| - |" not in table
    assert "**mean of 3**" in table
    for name in NAMES:
        panel = cv2.imread(str(out / "panels" / f"{name}.png"))
        assert panel is not None and panel.shape[1] == 5 * CAMERA.width  # image|LiDAR|prediction|GT|error
    printed = capsys.readouterr().out
    assert "**mean of 3**" in printed and "metrics.json" in printed


def test_affine_protocol_and_region_run_through_the_cli(folder, tmp_path):
    out = tmp_path / "affine"
    assert _eval("--data", str(folder), "--baseline", "linear", "--protocol", "affine", "--region", "kitti",
                 "--limit", "2", "--out", str(out)) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert len(report["frames"]) == 2 and report["protocol"] == "affine"
    assert report["mean"]["abs_rel"] < 0.2


def test_lidar_holdout_works_without_ground_truth_and_scores_held_out_points(folder_without_gt, tmp_path):
    out = tmp_path / "holdout"
    assert _eval("--data", str(folder_without_gt), "--baseline", "nearest", "--protocol", "lidar-holdout",
                 "--holdout-fraction", "0.3", "--out", str(out)) == 0
    report = json.loads((out / "metrics.json").read_text())
    sample = synthetic_sample("f0", CAMERA, seed=0)
    held = round(0.3 * int((sample.sparse_depth > 0).sum()))
    assert report["frames"][0]["n_valid"] == held  # exactly the held-out points are scored
    assert report["frames"][0]["abs_rel"] < 0.05
    assert (out / "panels" / "f1.png").exists()


def test_holdout_method_only_ever_sees_the_fed_points(folder, tmp_path):
    from mf_training.data.sample_folder import SampleFolder

    seen: list[np.ndarray] = []
    nearest = baseline_method("nearest")

    def recording(image, sparse, camera):
        seen.append(sparse.copy())
        return nearest.predict(image, sparse, camera)

    protocol = make_protocol("lidar-holdout", seed=5)
    method = EvalMethod("recording", None, True, recording)
    evaluate(SampleFolder(folder), method, protocol, tmp_path / "rec", progress=False)
    for fed, sample in zip(seen, SampleFolder(folder), strict=True):
        split = protocol.split(sample)  # the split is deterministic: the one the run scored on
        assert not np.any(fed[split.target > 0])  # no scored point was fed
        assert np.array_equal(fed, split.fed_sparse)
        assert (fed > 0).sum() < (sample.sparse_depth > 0).sum()


def test_segment_holdout_scores_pieces_of_scan_lines_with_no_fed_neighbour_on_the_line():
    from mf_training.data.sample import Sample
    from mf_training.eval.protocols import make_protocol

    sparse = np.zeros((120, 600), np.float32)
    sparse[::8, ::2] = 10.0  # a scan line every 8th row, a return every 2nd pixel
    camera = PinholeCamera(600, 120, 300.0, 300.0, 299.5, 59.5)
    sample = Sample("lines", np.zeros((120, 600, 3), np.uint8), sparse, camera, 0)
    for name, fed_beside in (("lidar-holdout", 0.7), ("segment-holdout", 0.2)):
        split = make_protocol(name, seed=1).split(sample)
        held = split.target[::8, ::2] > 0  # (lines, returns)
        assert 0.1 < held.mean() < 0.3 and not ((split.fed_sparse > 0) & (split.target > 0)).any()
        # how often a scored point's next return on its own line is fed
        share = (held[:, :-1] & ~held[:, 1:]).sum() / held[:, :-1].sum()
        assert share > fed_beside if name == "lidar-holdout" else share < fed_beside, (name, share)
    again = make_protocol("segment-holdout", seed=1).split(sample)
    np.testing.assert_array_equal(again.target, split.target)  # seeded by the frame name


def test_no_ground_truth_with_affine_fails_with_exit_2_and_names_lidar_holdout(folder_without_gt, tmp_path, capsys):
    assert _eval("--data", str(folder_without_gt), "--baseline", "classical", "--protocol", "affine",
                 "--out", str(tmp_path / "x")) == 2
    assert "lidar-holdout" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--baseline", "classical", "--mode", "guided"], "--model only"),
    (["--baseline", "classical", "--steps", "4"], "--model only"),
    (["--baseline", "classical", "--holdout-fraction", "0.5"], "lidar-holdout or segment-holdout only"),
    (["--baseline", "lidar-only", "--protocol", "lidar-holdout"], "nothing to score"),
    (["--baseline", "classical", "--protocol", "lidar-holdout", "--holdout-fraction", "1.5"], "between 0 and 1"),
    (["--baseline", "classical", "--limit", "0"], "positive"),
    (["--model", "no/such/checkpoint", "--processing-size", "big"], "WxH"),
])
def test_bad_flags_exit_2_with_a_message(folder, tmp_path, capsys, flags, message):
    args = ["--data", str(folder), "--out", str(tmp_path / "bad"), *flags]
    if "--protocol" not in flags:
        args += ["--protocol", "metric"]
    assert _eval(*args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flags", [
    ["--baseline", "magic", "--protocol", "metric"],
    ["--baseline", "classical", "--protocol", "guess"],
    ["--baseline", "classical", "--model", "ckpt", "--protocol", "metric"],
    ["--protocol", "metric"],
])
def test_argparse_rejects_unknown_choices_with_exit_2(folder, tmp_path, flags):
    with pytest.raises(SystemExit) as exc:
        _eval("--data", str(folder), "--out", str(tmp_path / "bad"), *flags)
    assert exc.value.code == 2


def test_missing_data_path_exits_2(tmp_path, capsys):
    assert _eval("--data", str(tmp_path / "nothing"), "--baseline", "nearest", "--protocol", "metric",
                 "--out", str(tmp_path / "o")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_processing_size_parsing():
    assert eval_command.parse_processing_size("512x384") == (384, 512)  # width first
    assert eval_command.parse_processing_size("512") == 512


def test_cli_mode_choices_match_the_pipeline():
    from mf_core.modes import MODES

    assert eval_command.MODES == MODES


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained MF-XS checkpoint: enough to run every path of ``mf eval --model``."""
    from mf_core.checkpoint import save_model
    from mf_core.model import build_model

    return save_model(tmp_path_factory.mktemp("ckpt"), build_model("MF-XS"))


def test_mf_eval_model_runs_at_the_processing_size_and_records_the_mode(folder, checkpoint, tmp_path):
    out = tmp_path / "model"
    assert _eval("--data", str(folder), "--model", str(checkpoint), "--mode", "i2d-aligned", "--protocol",
                 "lidar-holdout", "--processing-size", "80x64", "--limit", "1", "--device", "cpu",
                 "--out", str(out)) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert (report["mode"], report["model"]) == ("i2d-aligned", str(checkpoint))
    assert report["frames"][0]["coverage"] > 0.9 and np.isfinite(report["frames"][0]["rmse"])
    assert (out / "panels" / "f0.png").exists()


def test_relative_i2d_is_only_scored_by_the_affine_protocol(folder, checkpoint, tmp_path, capsys):
    assert _eval("--data", str(folder), "--model", str(checkpoint), "--mode", "i2d", "--protocol", "metric",
                 "--out", str(tmp_path / "rel")) == 2
    assert "--protocol affine" in capsys.readouterr().err


def test_bench_eval_times_every_baseline_against_an_image_copy():
    from mf_core.completion import BASELINES
    from mf_training.bench import eval as bench_eval

    parser = argparse.ArgumentParser()
    bench_eval.add_arguments(parser)
    threads = cv2.getNumThreads()
    try:
        report = bench_eval.run(parser.parse_args(["--size", "160x120", "--repeats", "1"]))
    finally:
        cv2.setNumThreads(threads)  # the benchmark pins OpenCV to one thread
    assert [row["method"] for row in report["methods"]] == [f"baseline:{n}" for n, b in BASELINES.items() if b.metric]
    for row in report["methods"]:
        assert row["median_ms"] > 0 and row["ratio_to_copy"] > 0 and 0 < row["coverage"] <= 1
    assert report["frame"]["size"] == "160x120" and report["frame"]["lidar_pixels"] > 1000
