"""The uncertainty that mf bench quality reports with each ratio (mf_training.bench.quality)."""

from __future__ import annotations

import numpy as np

from mf_training.bench.quality import RESAMPLES, interval, resampled_ratios


def test_resampling_draws_the_same_frames_for_model_and_baseline():
    best = [1.0, 10.0, 100.0, 3.0]  # frames of very different difficulty ...
    ratios = resampled_ratios([0.9 * b for b in best], best, seed=0)
    assert ratios.shape == (RESAMPLES,)
    np.testing.assert_allclose(ratios, 0.9)  # ... a model 10 % better on every frame is 0.9 in every draw


def test_interval_widens_when_the_result_hangs_on_one_frame_and_is_reproducible():
    model, best = [0.5, 1.2, 1.1, 1.2, 1.1, 1.2], [4.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    ratios = resampled_ratios(model, best, seed=3)
    ratio = np.mean(model) / np.mean(best)
    lo, hi = interval(ratios)
    assert lo < ratio < hi and lo < 0.85 and hi > 1.05  # won on one frame only: the draws disagree
    assert interval(resampled_ratios(model, best, seed=3)) == [lo, hi]
    assert interval(resampled_ratios([2.0], [4.0], seed=0)) == [0.5, 0.5]  # one frame


def test_quality_scores_the_val_split_against_a_reference_model(shared_data, tmp_path):
    import argparse
    import json

    from mf_training.bench import quality
    from mf_training.data.real_sets import read_real_split

    parser = argparse.ArgumentParser()
    quality.add_arguments(parser)
    args = parser.parse_args(["--sets", "kitti", "--limit", "1", "--no-mono", "--split", "val", "--reference",
                              "default", "--data-root", str(shared_data), "--out-dir", str(tmp_path)])
    report = quality.run(args)
    kitti = report["sets"]["kitti"]
    assert report["split"] == "val" and kitti["frame_names"] == [read_real_split("kitti", "val", shared_data)[0].name]
    for scored in (kitti, kitti["segments"]):  # the same model as its reference: 1.0 on every draw, no frame won
        assert scored["reference"]["rmse_ratio"] == 1.0 and scored["reference"]["rmse_ratio_interval"] == [1.0, 1.0]
        assert scored["reference"]["frames_better"] == 0
        assert scored["methods"][quality.REFERENCE_LABEL]["rmse"] == scored["methods"]["mf conditioned"]["rmse"]
    assert json.loads((tmp_path / "quality.json").read_text())["reference"] == "default"
    table = (tmp_path / "quality.md").read_text()
    assert "## kitti: 1 val frames" in table and "against the reference default: RMSE ratio **1.000**" in table


def test_line_every_scores_a_sweep_with_fewer_scan_lines(shared_data):
    """--line-every N stands for a LiDAR with 1/N of the beams: about 1/N of a KITTI sweep's returns kept, as
    recorded; a bad N is refused before anything runs."""
    import argparse

    import pytest

    from mf_core.errors import InputError
    from mf_training.bench import quality
    from mf_training.data.real_sets import read_real_split

    sample = read_real_split("kitti", "val", shared_data)[0]
    assert quality._with_lines_every(sample, 1) is sample
    for every in (2, 4):
        thinned = quality._with_lines_every(sample, every).sparse_depth
        kept = thinned > 0
        np.testing.assert_array_equal(thinned[kept], sample.sparse_depth[kept])
        assert abs(kept.sum() / (sample.sparse_depth > 0).sum() - 1 / every) < 0.05
    parser = argparse.ArgumentParser()
    quality.add_arguments(parser)
    with pytest.raises(InputError, match="--line-every must be at least 1"):
        quality.run(parser.parse_args(["--line-every", "0", "--data-root", str(shared_data)]))
