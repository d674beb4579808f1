"""The uncertainty that mf bench quality reports with each ratio (mf_training.bench.quality)."""

from __future__ import annotations

import numpy as np

from mf_training.bench.quality import RESAMPLES, interval, resampled_ratios


def test_resampling_draws_the_same_frames_for_model_and_baseline():
    best = [1.0, 10.0, 100.0, 3.0]  # frames of very different difficulty ...
    ratios = resampled_ratios({"model": [0.9 * b for b in best], "best_classical": best}, seed=0)
    assert ratios.shape == (RESAMPLES,)
    np.testing.assert_allclose(ratios, 0.9)  # ... a model 10 % better on every frame is 0.9 in every draw


def test_interval_widens_when_the_result_hangs_on_one_frame_and_is_reproducible():
    frames = {"model": [0.5, 1.2, 1.1, 1.2, 1.1, 1.2], "best_classical": [4.0, 1.0, 1.0, 1.0, 1.0, 1.0]}
    ratios = resampled_ratios(frames, seed=3)
    ratio = np.mean(frames["model"]) / np.mean(frames["best_classical"])
    lo, hi = interval(ratios)
    assert lo < ratio < hi and lo < 0.85 and hi > 1.05  # won on one frame only: the draws disagree
    assert interval(resampled_ratios(frames, seed=3)) == [lo, hi]
    assert interval(resampled_ratios({"model": [2.0], "best_classical": [4.0]}, seed=0)) == [0.5, 0.5]  # one frame
