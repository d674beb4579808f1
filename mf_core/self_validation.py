"""Self-validation on a frame's own LiDAR: hold scan-line pieces out of the sweep, score a fill on them.

Two uses share the held-out pieces defined here:

- the benchmark's ``segment-holdout`` protocol (:mod:`mf_training.eval.protocols`) and training's
  segment targets (:mod:`mf_training.train.data`) hold out whole pieces of scan lines, so that the
  scored points have no fed neighbour on their own line, like the pixels between the lines;
- at inference, :func:`fit_nearest_share` decides per frame how much of the nearest-return fill to
  mix into a LiDAR-conditioned model's output (:class:`mf_core.pipeline.DepthEstimator`, checkpoint
  metadata ``nearest_share``). Which of the scan-line fill and the nearest return predicts the
  pixels between the lines better depends on the sensor: on the val split the fit gives 0-0.06 on
  KITTI's HDL-64, 0-0.24 on DGP and 0-0.43 (mostly 0.2-0.4) on scan lines sampled from 7-Scenes'
  Kinect depth (docs/MODEL_HISTORY.md). The frame's own sweep says which, so no single number has to
  fit every sensor.

The mixing applies away from the returns on a pixel's own row: its weight at a pixel is ``w b``, with
``b = 1 - row_proximity`` (:func:`mf_core.lidar_prior.row_proximity`: 0 on and next to a return on
the pixel's row, where the model's refinement head is reliable and takes its full strength; 1 far
from one: between the lines, and above the sweep's top line and below its bottom one, where most of
its effect lies, docs/MODEL_HISTORY.md). The output is ``d + w b (n - d)``, ``d`` the model's depth and
``n`` the nearest return; at the fed pixels ``b = 0``, so the output stays on the LiDAR there.

The fit of ``w``: hold out :data:`NEAREST_SHARE_FRACTION` of the sweep as segment tiles (a fixed
draw), fill the rest with the scan-line fill ``f`` (the model's prior: between the lines the model
stays close to it) and the nearest return ``n``, and take the least-squares share
``w = sum b (n - f)(t - f) / sum (b (n - f))^2`` over the held-out returns ``t``
(``b`` from the rest of the sweep), clipped to [0, 1].
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from mf_core.errors import InputError
from mf_core.lidar_prior import row_proximity
from mf_core.lidar_support import lidar_points
from mf_core.sparse_fill import row_distance

SEGMENT_TILE_WIDTH = 0.04  # segment tile width as a fraction of the image width (50 px of KITTI's 1242)
SEGMENT_TILE_ASPECT = 12  # tile width / height: a tile covers a piece of one or two scan lines
# Checkpoint metadata key: "auto" (fitted per frame, :func:`fit_nearest_share`), a share in [0, 1], or
# absent (0: the model's output as it is, as older models ran).
NEAREST_SHARE_KEY = "nearest_share"
AUTO = "auto"
# One draw holding out 30 % of the sweep: two pooled draws of 20 % fitted the share more steadily (one 20 % draw's
# share varied by up to 0.4 between seeds on 7-Scenes frames) and scored 0.5 % better on the val split, but cost
# twice the fit's ~55 ms per 640x480 frame on one core (docs/MODEL_HISTORY.md).
NEAREST_SHARE_FRACTION = 0.3
STREAM_FIT_EVERY = 3  # NearestShareStream: frames per fit ...
STREAM_DECAY = 0.9  # ... weight of the earlier fits' terms, per fit ...
STREAM_HYSTERESIS = 0.05  # ... and how far its fit moves before the share in use follows
MIN_HELD_OUT = 20  # returns the draw must hold out to count: fewer say nothing about the sensor


def held_out_tiles(shape: tuple[int, int], tile: tuple[int, int], fraction: float,
                   rng: np.random.Generator) -> np.ndarray:
    """(H, W) bool: a random ``fraction`` of the (rows, cols) ``tile`` cells of a randomly offset grid."""
    th, tw = tile
    dy, dx = int(rng.integers(0, th)), int(rng.integers(0, tw))
    grid = rng.random(((shape[0] + dy) // th + 1, (shape[1] + dx) // tw + 1)) < fraction  # (tiles_y, tiles_x)
    cells = np.repeat(np.repeat(grid, th, axis=0), tw, axis=1)  # pixels of the offset grid
    return cells[dy:dy + shape[0], dx:dx + shape[1]]


def segment_tiles(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W) bool: held-out scan-line pieces, tiles SEGMENT_TILE_WIDTH of the image wide (at least 8 px)."""
    width = max(8, round(SEGMENT_TILE_WIDTH * shape[1]))
    return held_out_tiles(shape, (max(2, round(width / SEGMENT_TILE_ASPECT)), width), fraction, rng)


def parse_nearest_share(value: object, name: str) -> float | str | None:
    """``value`` as a nearest share: None (or "none": no mixing), "auto", or a float in [0, 1] (numbers given
    as text, as configs and flags give them, included); InputError naming ``name`` (where it was set) else."""
    if value is None or value == AUTO:
        return value
    given = value
    if isinstance(value, str):
        if value.strip().lower() == "none":
            return None
        with contextlib.suppress(ValueError):  # not a number: the error below names the value
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must be {AUTO!r} (fitted per frame on its own LiDAR), none, or a share in [0, 1] "
                         f"of the nearest-return fill mixed into the output, got {given!r}")
    return float(value)


def share_terms(image: np.ndarray, sparse_depth: np.ndarray) -> tuple[float, float]:
    """The least-squares sums (numerator, denominator) of one frame's nearest share (module docstring).

    ``image`` (H, W, 3) only fixes the shape the fills check; ``sparse_depth`` (H, W) metres, 0 or NaN = no
    return. (0, 0) when the sweep is too small to hold anything out.
    """
    from mf_core.completion import complete_nearest, complete_scanline

    valid = lidar_points(sparse_depth)  # (H, W)
    held = segment_tiles(valid.shape, NEAREST_SHARE_FRACTION, np.random.default_rng(0)) & valid  # (H, W) fixed draw
    fed = valid & ~held
    if held.sum() < MIN_HELD_OUT or not fed.any():
        return 0.0, 0.0
    sweep = np.where(fed, sparse_depth, 0.0).astype(np.float32)  # (H, W)
    fill = complete_scanline(image, sweep, None)[held].astype(np.float64)  # (N,)
    change = away_from_row_returns(fed)[held] * (complete_nearest(image, sweep, None)[held] - fill)  # (N,)
    return float(np.dot(change, sparse_depth[held] - fill)), float(np.dot(change, change))


def _share(numerator: float, denominator: float) -> float:
    return float(np.clip(numerator / denominator, 0.0, 1.0)) if denominator > 0 else 0.0


def fit_nearest_share(image: np.ndarray, sparse_depth: np.ndarray) -> float:
    """The share of the nearest-return fill that best predicts segments held out of this frame's sweep
    (:func:`share_terms`); 0.0 when the sweep is too small to hold anything out (the model's output as it is)."""
    return _share(*share_terms(image, sparse_depth))


class NearestShareStream:
    """The nearest share of a stream of frames from one sensor (the depth node, ``mf densify``).

    One frame's fit varies with its sweep: on a static scene fed noisy sweeps (``mf bench stability``)
    it moved between 0.18 and 0.52 from sweep to sweep, and even a drift of 0.005 per frame shows as
    flicker where the nearest return and the model's depth lie metres apart (beyond the sweep's first and
    last lines). A stream fits every ``every``-th frame (the fit costs about 55 ms per 640x480 frame on
    one core; a sensor's share changes slowly), sums the fits' least-squares terms with weights decaying by
    ``decay`` per fit, and keeps the share it uses until that fit has moved more than ``hysteresis`` from
    it: on a static scene the share settles within a few fits and then stays fixed; on a changing one it
    follows in steps (the defaults: about 10 fits over 30 frames, 3 s at 10 Hz).
    """

    def __init__(self, decay: float = STREAM_DECAY, hysteresis: float = STREAM_HYSTERESIS,
                 every: int = STREAM_FIT_EVERY) -> None:
        if not 0.0 <= decay < 1.0 or not 0.0 <= hysteresis < 1.0 or every < 1:
            raise InputError(f"the nearest share's decay and hysteresis must be in [0, 1) and it must fit at least "
                             f"every frame, got decay {decay}, hysteresis {hysteresis}, every {every}")
        self.decay, self.hysteresis, self.every = decay, hysteresis, every
        self.numerator = self.denominator = 0.0
        self.frames = self.fits = 0
        self.share: float | None = None  # the share in use; None before the first frame

    def update(self, image: np.ndarray, sparse_depth: np.ndarray) -> float:
        """The share to use for this frame (fitted again, with this frame's terms added, every ``every`` frames)."""
        self.frames += 1
        if self.share is not None and (self.frames - 1) % self.every:
            return self.share
        numerator, denominator = share_terms(image, sparse_depth)
        self.fits += 1
        self.numerator = self.decay * self.numerator + numerator
        self.denominator = self.decay * self.denominator + denominator
        fitted = _share(self.numerator, self.denominator)
        if self.share is None or abs(fitted - self.share) > self.hysteresis:
            self.share = fitted
        return self.share


def away_from_row_returns(valid: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 1 - row_proximity of the returns ``valid`` (H, W) bool; 0 on a return."""
    mask = torch.from_numpy(valid)[None, None]  # (1, 1, H, W)
    return 1.0 - row_proximity(row_distance(mask), mask)[0, 0].numpy()


def mix_nearest(image: np.ndarray, sparse_depth: np.ndarray, depth: np.ndarray, share: float) -> np.ndarray:
    """(H, W) float32: ``depth`` moved ``share`` x :func:`away_from_row_returns` of the way to the nearest
    return of ``sparse_depth`` (H, W) metres (0 or NaN = none)."""
    from mf_core.completion import complete_nearest

    if share == 0.0:
        return depth
    weight = share * away_from_row_returns(lidar_points(sparse_depth))  # (H, W)
    return (depth + weight * (complete_nearest(image, sparse_depth, None) - depth)).astype(np.float32)
