"""The shipped default model (models/mf-default) loads and beats nearest-neighbour completion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mf_core.checkpoint import read_checkpoint_config
from mf_core.completion import complete_nearest
from mf_core.pipeline import DepthEstimator
from training.cli import main as mf_main
from training.data.sources import open_samples
from training.eval.metrics import depth_metrics, valid_depth_mask

MODEL = Path(__file__).resolve().parents[1] / "models" / "mf-default"


@pytest.fixture(scope="module")
def street_samples(tmp_path_factory) -> list:
    """A fixed street scene the model never trained on (the training seeds are 100 and 101)."""
    bag = tmp_path_factory.mktemp("shipped") / "street"
    assert mf_main(["sim", "--out", str(bag), "--scene", "street", "--frames", "3", "--seed", "7"]) == 0
    return list(open_samples(bag))


def test_shipped_model_is_small_and_describes_itself():
    config, metadata = read_checkpoint_config(MODEL)
    assert (MODEL / "model.safetensors").stat().st_size < 25 * 2**20
    assert metadata["recommended_mode"] in ("conditioned", "guided", "i2d-aligned")
    assert isinstance(metadata["processing_size"], int) and metadata["processing_size"] >= config.patch_size


def test_shipped_model_beats_nearest_on_a_fixed_sim_bag(street_samples):
    _, metadata = read_checkpoint_config(MODEL)
    estimator = DepthEstimator.from_checkpoint(MODEL)
    model_rmse, nearest_rmse = [], []
    for sample in street_samples:
        scored = valid_depth_mask(sample.gt_depth) & (sample.sparse_depth == 0)  # pixels the LiDAR did not see
        result = estimator.predict(sample.image, sample.sparse_depth, mode=metadata["recommended_mode"])
        assert result.metric and result.depth.shape == sample.gt_depth.shape
        model_rmse.append(depth_metrics(result.depth, sample.gt_depth, scored)["rmse"])
        nearest = complete_nearest(sample.image, sample.sparse_depth, sample.camera)
        nearest_rmse.append(depth_metrics(nearest, sample.gt_depth, scored)["rmse"])
    print(f"RMSE (m) model {np.mean(model_rmse):.3f} vs nearest {np.mean(nearest_rmse):.3f}")
    assert np.mean(model_rmse) < np.mean(nearest_rmse)
