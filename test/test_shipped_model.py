"""The shipped default model (models/mf-default): loads, is small, and beats the classical baselines on
held-out real frames (a fixed subset of the test split that mf bench quality scores)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from mf_core.checkpoint import read_checkpoint_config
from mf_core.completion import complete_linear, complete_scanline
from mf_core.pipeline import DepthEstimator
from mf_training.bench import quality
from mf_training.cli import main as mf_main
from mf_training.data.sources import open_samples
from mf_training.eval.metrics import depth_metrics, valid_depth_mask

MODEL = Path(__file__).resolve().parents[1] / "models" / "mf-default"
# The subset: the first REAL_FRAMES test frames of these sets. Measured at release (README), the RMSE
# ratio to the best classical baseline (Delaunay-linear on all three): KITTI 0.700, DGP 0.905,
# 7-Scenes 0.945 under the set's protocol (the release before the nearest share: 0.691, 0.914, 1.005; 7-Scenes'
# first three test frames are not typical, the whole split 0.972); between scan lines (segment-holdout) KITTI
# 0.885, DGP 0.968 (before: 0.850, 0.976).
REAL_SETS = ("kitti", "dgp", "sevenscenes")
REAL_FRAMES = 3
MEASURED_RATIO = {"kitti": 0.700, "dgp": 0.905, "sevenscenes": 0.945}
MEASURED_SEGMENT_RATIO = {"kitti": 0.885, "dgp": 0.968}
MARGIN = 0.05  # the scores are deterministic; this only absorbs BLAS / platform round-off


@pytest.fixture(scope="module")
def street_samples(tmp_path_factory) -> list:
    """A fixed street scene the model never trained on (the training seeds are 100 and 101)."""
    bag = tmp_path_factory.mktemp("shipped") / "street"
    assert mf_main(["sim", "--out", str(bag), "--scene", "street", "--frames", "3", "--seed", "7"]) == 0
    return list(open_samples(bag))


def test_shipped_model_is_small_and_describes_itself():
    config, metadata = read_checkpoint_config(MODEL)
    assert (MODEL / "model.safetensors").stat().st_size < 25 * 2**20
    assert config.depth_conditioned and config.refine_head
    assert metadata["recommended_mode"] == "conditioned"
    assert metadata["nearest_share"] == "auto"  # fitted per frame (per stream in the node) on its own LiDAR
    assert isinstance(metadata["processing_size"], int) and metadata["processing_size"] >= config.patch_size
    assert metadata["validation"]["score"] < 1.0  # picked on the real val split, better than its prior there


def test_shipped_model_beats_the_best_classical_baseline_on_held_out_real_frames(shared_data):
    parser = argparse.ArgumentParser()
    quality.add_arguments(parser)
    args = parser.parse_args(["--sets", ",".join(REAL_SETS), "--limit", str(REAL_FRAMES), "--no-mono",
                              "--data-root", str(shared_data)])
    report = quality.run(args)
    for name in REAL_SETS:
        result = report["sets"][name]
        print(f"{name}: ratio {result['rmse_ratio']:.3f} to {result['best_classical']}")
        assert result["rmse_ratio"] < MEASURED_RATIO[name] + MARGIN
        assert result["lidar_residual"] < 1e-4  # the output passes through the fed LiDAR
        assert result["confidence_error_spearman"] < -0.3  # confident where the error is small
        lo, hi = result["rmse_ratio_interval"]
        assert lo <= result["rmse_ratio"] <= hi and 0 <= result["frames_better"] <= REAL_FRAMES
    for name, measured in MEASURED_SEGMENT_RATIO.items():  # between the scan lines too
        segments = report["sets"][name]["segments"]
        print(f"{name} segment-holdout: ratio {segments['rmse_ratio']:.3f} to {segments['best_classical']}")
        assert segments["rmse_ratio"] < min(1.0, measured + MARGIN)  # better than every classical method
    kitti = report["sets"]["kitti"]
    assert kitti["rmse_ratio"] < 1.0 and report["sets"]["dgp"]["rmse_ratio"] < 1.0
    for scored in (kitti, kitti["segments"]):  # and than its own prior: the learned part pays
        methods = scored["methods"]
        assert methods["mf conditioned"]["rmse"] < 0.97 * methods["mf prior (scan-line fill)"]["rmse"]


def test_shipped_model_on_dense_sim_ground_truth_stays_near_its_prior(street_samples):
    """Scored at every pixel the LiDAR did not see (a synthetic street, dense ground truth), the model
    beats Delaunay-linear but not its own prior: the edge selection it learned on real frames costs a
    little on this synthetic street (measured at release: RMSE 5.09 m vs prior 5.00 m, linear 7.66 m
    over these 3 frames; README, limits). This guards that gap from growing."""
    estimator = DepthEstimator.from_checkpoint(MODEL)
    scores: dict[str, list[float]] = {"model": [], "prior": [], "linear": []}
    for sample in street_samples:
        scored = valid_depth_mask(sample.gt_depth) & (sample.sparse_depth == 0)
        result = estimator.predict(sample.image, sample.sparse_depth, mode="conditioned")
        assert result.metric and result.depth.shape == sample.gt_depth.shape
        scores["model"].append(depth_metrics(result.depth, sample.gt_depth, scored)["rmse"])
        for name, fill in (("prior", complete_scanline), ("linear", complete_linear)):
            depth = fill(sample.image, sample.sparse_depth, sample.camera)
            scores[name].append(depth_metrics(depth, sample.gt_depth, scored)["rmse"])
    rmse = {name: float(np.mean(values)) for name, values in scores.items()}
    print(rmse)
    assert rmse["model"] < rmse["linear"] and rmse["model"] < 1.05 * rmse["prior"]
