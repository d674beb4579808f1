"""Depth edges against image edges and against the ground truth's (mf_training/eval/edge_alignment.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mf_core.errors import InputError
from mf_training.eval.edge_alignment import (
    EDGE_CAP_PX,
    depth_edge_errors,
    edge_distance,
    mean_edge_errors,
    occluding_edges,
)

H, W = 60, 80


def _step(column: int, near: float = 1.0, far: float = 3.0) -> np.ndarray:
    """(H, W) metres: a near surface left of ``column``, a far one from it on."""
    depth = np.full((H, W), far, np.float32)
    depth[:, :column] = near
    return depth


def test_occluding_edges_are_the_near_side_of_a_step():
    edges = occluding_edges(_step(40))
    assert edges[5:-5, 39].all() and edges.sum() == edges[:, 39].sum()  # one column, the near one
    assert not occluding_edges(np.full((H, W), 2.0, np.float32)).any()
    smooth = np.tile(np.linspace(1.0, 3.0, W, dtype=np.float32), (H, 1))  # 1.4 % per pixel: no edge
    assert not occluding_edges(smooth).any()


def test_edge_errors_measure_how_far_a_predicted_edge_is_from_the_truth():
    truth = _step(40)
    perfect = depth_edge_errors(truth, truth)
    assert perfect == {"edge_accuracy_px": 0.0, "edge_completeness_px": 0.0}
    shifted = depth_edge_errors(_step(43), truth)
    assert shifted["edge_accuracy_px"] == pytest.approx(3.0) and shifted["edge_completeness_px"] == pytest.approx(3.0)
    # Interpolated across 30 pixels, the step is no edge at all: every true edge is missed.
    ramp = truth.copy()
    ramp[:, 25:55] = np.linspace(1.0, 3.0, 32, dtype=np.float32)[1:-1]
    smeared = depth_edge_errors(ramp, truth)
    assert math.isnan(smeared["edge_accuracy_px"]) and smeared["edge_completeness_px"] == EDGE_CAP_PX
    # A spurious edge on a flat part costs accuracy, not completeness.
    spurious = truth.copy()
    spurious[:, 10:] = np.where(np.arange(10, W) < 40, 1.2, 3.0)
    errors = depth_edge_errors(spurious, truth)
    assert errors["edge_completeness_px"] == 0.0 and errors["edge_accuracy_px"] == EDGE_CAP_PX / 2  # half missed


def test_a_sensor_hole_beside_the_edge_does_not_hide_it():
    """Ground truth with the background next to the foreground missing (a depth camera's shadow): the edge is
    still found where the foreground ends, so a prediction with the edge there scores 0."""
    truth = _step(40)
    truth[:, 40:44] = 0.0
    assert depth_edge_errors(_step(40), truth) == {"edge_accuracy_px": 0.0, "edge_completeness_px": 0.0}
    assert depth_edge_errors(_step(44), truth)["edge_accuracy_px"] == pytest.approx(4.0)


def test_scored_region_and_means():
    truth = _step(40)
    outside = np.ones((H, W), bool)
    outside[:, 30:50] = False  # the edge is not scored
    assert all(math.isnan(v) for v in depth_edge_errors(_step(40), truth, outside).values())
    frames = [{"edge_accuracy_px": 1.0, "edge_completeness_px": 2.0},
              {"edge_accuracy_px": float("nan"), "edge_completeness_px": 4.0}, {"rmse": 1.0}]
    assert mean_edge_errors(frames) == {"edge_accuracy_px": 1.0, "edge_completeness_px": 3.0}
    assert mean_edge_errors([{"rmse": 1.0}]) == {}


def test_edge_distance_to_the_image():
    image = np.zeros((H, W, 3), np.uint8)
    image[:, :40] = 200  # an image edge between columns 39 and 40
    distance, count = edge_distance(image, _step(40))
    assert count > 0 and distance <= 1.0
    far, _ = edge_distance(image, _step(50))
    assert far > 3.0  # depth edge 10 px off the image's: capped at 4
    assert edge_distance(image, np.full((H, W), 2.0, np.float32)) == (pytest.approx(math.nan, nan_ok=True), 0)
    with pytest.raises(InputError, match="same size"):
        edge_distance(image, np.ones((10, 10), np.float32))
