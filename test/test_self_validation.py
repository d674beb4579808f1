"""Self-validation on a frame's own LiDAR: the nearest share fitted on held-out scan-line pieces, and how a
LiDAR-conditioned estimator mixes the nearest return in between the lines."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import random_model

from mf_core.checkpoint import save_model
from mf_core.completion import complete_nearest
from mf_core.errors import InputError
from mf_core.lidar_prior import NEAR_REACH_SPACINGS
from mf_core.pipeline import DepthEstimator
from mf_core.self_validation import (
    NearestShareStream,
    away_from_row_returns,
    fit_nearest_share,
    mix_nearest,
    parse_nearest_share,
)

HEIGHT, WIDTH = 96, 200
LINE_GAP = 8  # rows between scan lines


def _scan_lines(depth: np.ndarray, step: int = 2) -> np.ndarray:
    """(H, W) float32: ``depth`` on every LINE_GAP-th row, every ``step``-th column; 0 elsewhere."""
    sparse = np.zeros(depth.shape, np.float32)
    sparse[2::LINE_GAP, ::step] = depth[2::LINE_GAP, ::step]
    return sparse


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def test_the_share_follows_what_predicts_the_held_out_pieces():
    """A plane: between the lines the scan-line fill is (nearly: push-pull takes part next to the returns)
    exact and the nearest return is not, so the share is small. Every scan line on its own surface (a
    slatted fence in front of a wall): the pieces held out of a line are predicted by that line's own ends,
    not by the lines above and below, so the share goes to 1."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    plane = 5.0 + 0.05 * rows + 0.03 * cols
    assert fit_nearest_share(_image(), _scan_lines(plane)) < 0.15
    slats = np.where((rows // LINE_GAP) % 2 == 0, 4.0, 9.0).astype(np.float32)
    assert fit_nearest_share(_image(), _scan_lines(slats)) == 1.0
    # Too few returns to hold anything out: no mixing rather than a guess.
    one_line = np.zeros((HEIGHT, WIDTH), np.float32)
    one_line[40, 10:14] = 6.0
    assert fit_nearest_share(_image(), one_line) == 0.0


def test_the_mixing_weight_is_one_minus_the_row_proximity_of_the_returns():
    valid = np.zeros((HEIGHT, WIDTH), bool)
    valid[2::LINE_GAP, ::4] = True
    weight = away_from_row_returns(valid)
    assert weight.shape == (HEIGHT, WIDTH) and weight.dtype == np.float32
    assert np.all(weight[valid] == 0.0)  # on a return: none of the nearest return is mixed in
    assert np.all(weight[5] == 1.0)  # a row without returns: all of the share
    rows, cols = np.nonzero(valid)
    spacing = math.sqrt((np.ptp(rows) + 1) * (np.ptp(cols) + 1) / valid.sum())  # mf_core.sparse_fill.point_spacing
    assert weight[2, 1] == pytest.approx(1.0 - math.exp(-1.0 / (NEAR_REACH_SPACINGS * spacing)), rel=1e-5)
    assert weight[2, 2] == pytest.approx(1.0 - math.exp(-2.0 / (NEAR_REACH_SPACINGS * spacing)), rel=1e-5)


def test_the_estimator_mixes_the_nearest_return_in_between_the_lines(tmp_path):
    """nearest_share: the conditioned output moves share x away_from_row_returns of the way to the nearest return
    (by hand here), stays on the LiDAR at the fed pixels; "auto" uses the share fitted on the frame's own
    sweep and reports it; checkpoints carry it; bad values are input errors that say what to use."""
    model = random_model(std=0.02, depth_conditioned=True, refine_head=True)
    image = _image()
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    sparse = _scan_lines(np.where((rows // LINE_GAP) % 2 == 0, 4.0, 9.0).astype(np.float32) + 0.01 * cols)

    def predict(share):
        return DepthEstimator(model, processing_size=96, nearest_share=share).predict(image, sparse, "conditioned")

    plain, half, auto = predict(None), predict(0.5), predict("auto")
    assert plain.nearest_share is None and half.nearest_share == 0.5
    assert auto.nearest_share == pytest.approx(fit_nearest_share(image, sparse)) and auto.nearest_share > 0.5
    nearest = complete_nearest(image, sparse, None)
    weight = away_from_row_returns(sparse > 0)
    np.testing.assert_allclose(half.depth, plain.depth + 0.5 * weight * (nearest - plain.depth), rtol=1e-5)
    np.testing.assert_allclose(auto.depth, mix_nearest(image, sparse, plain.depth, auto.nearest_share), rtol=1e-6)
    fed = sparse > 0
    np.testing.assert_array_equal(half.depth[fed], plain.depth[fed])  # at the returns: the model's own value
    assert np.abs(half.depth - plain.depth)[5].mean() > 0.1  # between the lines it moved
    np.testing.assert_array_equal(predict(0.0).depth, plain.depth)

    save_model(tmp_path / "m", model, {"nearest_share": "auto"})
    assert DepthEstimator.from_checkpoint(tmp_path / "m").nearest_share == "auto"
    save_model(tmp_path / "old", model, {})
    assert DepthEstimator.from_checkpoint(tmp_path / "old").nearest_share is None  # older models: as they ran
    for bad in (1.5, -0.1, "most", True):
        save_model(tmp_path / "bad", model, {"nearest_share": bad})
        with pytest.raises(InputError, match="nearest_share must be 'auto'"):
            DepthEstimator.from_checkpoint(tmp_path / "bad")
    with pytest.raises(InputError, match="nearest_share must be 'auto'"):
        DepthEstimator(model, nearest_share="sometimes")


def test_parse_nearest_share_reads_configs_and_flags():
    assert parse_nearest_share("auto", "x") == "auto"
    assert parse_nearest_share(None, "x") is None and parse_nearest_share("None", "x") is None
    assert parse_nearest_share("0.25", "x") == 0.25 and parse_nearest_share(1, "x") == 1.0
    with pytest.raises(InputError, match=r"--nearest-share must be 'auto'.*got '2'"):
        parse_nearest_share("2", "--nearest-share")


def test_a_stream_settles_on_one_share_and_follows_a_new_scene():
    """NearestShareStream: its first frame gets that frame's own fit; on a static scene fed noisy sweeps the
    share stops changing after a few frames (no flicker from it); when the scene changes it follows."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    scene = 6.0 + np.where((rows // LINE_GAP) % 2 == 0, 0.3, 0.0) + 0.02 * cols  # slats 30 cm before a wall
    rng = np.random.default_rng(0)
    sweeps = [_scan_lines((scene + rng.normal(0, 0.05, scene.shape)).astype(np.float32)) for _ in range(12)]
    for sweep in sweeps:
        sweep[rng.random(sweep.shape) < 0.1] = 0.0  # returns missing at random, as a real LiDAR drops them
    fits = [fit_nearest_share(_image(), sweep) for sweep in sweeps]
    assert max(fits) - min(fits) > 0.2  # frame by frame the fit moves ...
    stream = NearestShareStream(every=1)
    shares = [stream.update(_image(), sweep) for sweep in sweeps]
    assert shares[0] == pytest.approx(fits[0])
    assert len(set(shares[6:])) == 1 and 0.5 < shares[-1] < 1.0  # ... the stream's share does not, once settled
    plane = _scan_lines(5.0 + 0.05 * rows + 0.03 * cols)
    after = [stream.update(_image(), plane) for _ in range(10)]
    assert after[-1] < shares[-1] - 0.3  # a new scene where the scan-line fill is right: the share drops
    # Fitting every 3rd frame: the frames between reuse the share, and the fits are the every=1 stream's.
    sparse_stream = NearestShareStream(every=3)
    every_third = [sparse_stream.update(_image(), sweep) for sweep in sweeps]
    assert (sparse_stream.frames, sparse_stream.fits) == (12, 4)
    assert every_third[1] == every_third[2] == every_third[0] == pytest.approx(fits[0])
    replay = NearestShareStream(every=1)
    assert [replay.update(_image(), sweep) for sweep in sweeps[::3]][-1] == every_third[-1]
    with pytest.raises(InputError, match="decay and hysteresis must be in"):
        NearestShareStream(decay=1.0)
    with pytest.raises(InputError, match="every 0"):
        NearestShareStream(every=0)


def test_predict_joins_the_stream_it_is_given():
    model = random_model(std=0.02, depth_conditioned=True, refine_head=True)
    estimator = DepthEstimator(model, processing_size=96, nearest_share="auto")
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    sparse = _scan_lines(np.where((rows // LINE_GAP) % 2 == 0, 4.0, 9.0).astype(np.float32) + 0.01 * cols)
    stream = NearestShareStream()
    stream.numerator, stream.denominator, stream.share = 0.0, 1e9, 0.0  # a long history that wants no mixing
    result = estimator.predict(_image(), sparse, "conditioned", share_stream=stream)
    alone = estimator.predict(_image(), sparse, "conditioned")
    assert result.nearest_share == stream.share < 0.05 < alone.nearest_share  # the stream's share, not the frame's
    assert DepthEstimator(model, processing_size=96, nearest_share=0.3).predict(
        _image(), sparse, "conditioned", share_stream=stream).nearest_share == 0.3  # a fixed share stays fixed
