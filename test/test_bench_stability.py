"""mf bench stability: flicker of depth over noisy sweeps of a static scene."""

from __future__ import annotations

import argparse

import numpy as np

from mf_training.bench import stability


def test_identical_frames_do_not_flicker_and_noise_does():
    depth = np.full((20, 30), 10.0, np.float32)
    still = stability.flicker([depth, depth, depth])
    assert still["std_median_m"] == 0 and still["frame_change_mean"] == 0 and still["pixels"] == 600
    rng = np.random.default_rng(1)
    noisy = stability.flicker([depth + rng.normal(0, 0.1, depth.shape) for _ in range(50)])
    assert 0.08 < noisy["std_median_m"] < 0.12


def test_sweeps_carry_the_asked_noise_and_dropout():
    sparse = np.zeros((100, 100), np.float32)
    sparse[::2, ::2] = 20.0
    sweeps = list(stability._sweeps(sparse, 4, noise=0.05, dropout=0.2))
    for sweep in sweeps:
        kept = sweep > 0
        assert not (kept & (sparse == 0)).any()  # no return appears where there was none
        assert abs(kept.sum() / (sparse > 0).sum() - 0.8) < 0.05
        assert abs(np.std(sweep[kept] - 20.0) - 0.05) < 0.01
    assert not np.array_equal(sweeps[0], sweeps[1])  # a fresh sweep each time


def test_shipped_model_runs_against_the_classical_fills():
    args = argparse.Namespace(model="default", data=None, size="160x120", repeats=3, noise=0.02, dropout=0.05,
                              device="cpu")
    report = stability.run(args)
    node = "model:conditioned (node: share of the stream)"  # the shipped model fits its nearest share
    assert set(report["methods"]) == {"baseline:nearest", "baseline:linear", "baseline:classical",
                                      "model:conditioned", node}
    nearest = report["methods"]["baseline:nearest"]["std_median_m"]
    assert 0.005 < nearest < 0.03  # about the 2 cm of range noise, as nearest copies it
    best = report["methods"][report["steadiest_classical"]]
    assert report["model_ratio_to_steadiest"]["std_p95_m"] == round(report["methods"][node]["std_p95_m"]
                                                                    / best["std_p95_m"], 3)  # the node's row
    assert all(v > 0 for v in report["model_ratio_to_steadiest"].values())
