"""Scoring protocols: what a method is given, what it is scored against, and how it is aligned.

- ``affine``: plain least-squares scale and shift of the prediction against the ground
  truth in depth space, then the metrics (the Marigold protocol behind the published
  AbsRel / delta1 tables; relative-depth models need it). Needs dense ground truth.
- ``metric``: the prediction is scored as it is, in metres. Needs dense ground truth.
- ``lidar-holdout``: each frame's LiDAR points are split with a seeded RNG; the method is
  fed the kept part only and scored ONLY on the held-out rest. Works without any dense
  ground truth, which makes it the protocol for robot logs. Each held-out point keeps fed
  points beside it on its own scan line, so it rewards copying along the line.
- ``segment-holdout``: the same, but whole pieces of scan lines are held out (the LiDAR points
  inside random tiles 4 % of the image wide, :func:`mf_core.self_validation.segment_tiles`): the
  scored points have no fed neighbour on their own line nearby, like the pixels between scan lines
  that a dense output fills.

Each protocol can restrict scoring to an evaluation region (``kitti``: Garg crop, 80 m
cap; ``nyu``: Eigen crop, 10 m cap).
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from mf_core.errors import InputError
from mf_core.self_validation import segment_tiles
from mf_training.data.sample import Sample
from mf_training.eval.metrics import valid_depth_mask

DEFAULT_HOLDOUT_FRACTION = 0.2
# Smallest depth an aligned prediction is clipped to, so a negative value after the fit
# is scored as a (very wrong) near depth instead of silently dropping out.
MIN_PREDICTED_DEPTH = 1e-3


@dataclass(frozen=True)
class EvalRegion:
    """Where a frame is scored: a crop (fractions of the image size) and ground-truth depth caps in metres."""

    name: str
    crop: tuple[float, float, float, float] | None = None  # top, bottom, left, right as fractions of H / W
    min_depth: float | None = None
    max_depth: float | None = None

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """(H, W) bool: True inside the crop (everywhere when there is none)."""
        h, w = shape
        mask = np.zeros((h, w), bool)
        if self.crop is None:
            mask[:] = True
            return mask
        top, bottom, left, right = self.crop
        mask[int(top * h): int(bottom * h), int(left * w): int(right * w)] = True
        return mask

    def clip(self, depth: np.ndarray) -> np.ndarray:
        """Clip the valid pixels of a prediction into ``[min_depth, max_depth]`` (missing pixels stay 0)."""
        if self.min_depth is None and self.max_depth is None:
            return depth
        valid = valid_depth_mask(depth)  # (H, W)
        return np.where(valid, np.clip(depth, self.min_depth, self.max_depth), 0.0).astype(np.float32)


REGIONS: dict[str, EvalRegion] = {
    "none": EvalRegion("none"),
    # Garg et al. crop for KITTI Eigen-split evaluation, depths capped at 80 m.
    "kitti": EvalRegion("kitti", (0.40810811, 0.99189189, 0.03594771, 0.96405229), 1e-3, 80.0),
    # Eigen et al. crop for NYUv2 (rows 45:471, cols 41:601 of 480x640), depths capped at 10 m.
    "nyu": EvalRegion("nyu", (45 / 480, 471 / 480, 41 / 640, 601 / 640), 1e-3, 10.0),
}


@dataclass(frozen=True)
class FrameSplit:
    """One frame prepared for scoring."""

    fed_sparse: np.ndarray  # (H, W) float32 metres: the only LiDAR the method may see (a fresh copy)
    target: np.ndarray  # (H, W) float32 metres scored against, 0 = not scored
    score_mask: np.ndarray  # (H, W) bool: crop and depth caps
    target_is_sparse: bool  # True when ``target`` is held-out LiDAR points rather than dense ground truth


def fit_affine_to_gt(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(scale, shift)`` minimising ``sum((scale * pred + shift - gt)**2)`` over ``mask``.

    Plain (non-robust) least squares in depth space, float64, as in the Marigold protocol. A
    constant prediction (an untrained model) gets scale 0 and the mean depth as shift: the
    best constant, scored as such rather than aborting the run.
    """
    p = pred[mask].astype(np.float64)  # (N,)
    g = gt[mask].astype(np.float64)  # (N,)
    if p.size < 2:
        raise InputError(f"cannot fit scale and shift on {p.size} pixel(s); the frame needs at least 2 pixels "
                         "with both a prediction and valid ground truth")
    if np.ptp(p) == 0:
        return 0.0, float(g.mean())
    design = np.stack([p, np.ones_like(p)], axis=1)  # (N, 2)
    (scale, shift), *_ = np.linalg.lstsq(design, g, rcond=None)
    return float(scale), float(shift)


class EvalProtocol(ABC):
    """Splits a sample into what a method sees and what it is scored on, and aligns its output."""

    name: str = ""

    def __init__(self, region: EvalRegion):
        self.region = region

    @abstractmethod
    def split(self, sample: Sample) -> FrameSplit:
        """The method input and the scoring target for one sample."""

    def finalize(self, pred: np.ndarray, split: FrameSplit) -> np.ndarray:
        """The prediction as scored: by default clipped to the region's depth caps."""
        return self.region.clip(pred)

    def _score_mask(self, target: np.ndarray) -> np.ndarray:
        caps = valid_depth_mask(target, self.region.min_depth, self.region.max_depth)  # (H, W)
        return caps & self.region.mask(target.shape)


class _DenseGroundTruthProtocol(EvalProtocol):
    """Base of the protocols that score against a sample's dense ground truth."""

    def split(self, sample: Sample) -> FrameSplit:
        if sample.gt_depth is None:
            raise InputError(
                f"frame {sample.name!r} has no dense ground truth, which protocol {self.name!r} needs; "
                "use --protocol lidar-holdout, the only protocol that works without ground truth "
                "(it scores on held-out LiDAR points), or add NAME_gt.png files"
            )
        target = sample.gt_depth.astype(np.float32)
        return FrameSplit(sample.sparse_depth.astype(np.float32, copy=True), target,
                          self._score_mask(target), target_is_sparse=False)


class MetricProtocol(_DenseGroundTruthProtocol):
    """No alignment: the prediction must already be in metres."""

    name = "metric"


class AffineProtocol(_DenseGroundTruthProtocol):
    """Least-squares scale and shift against the ground truth on the scored pixels, then clipped to the caps."""

    name = "affine"

    def finalize(self, pred: np.ndarray, split: FrameSplit) -> np.ndarray:
        pred_valid = valid_depth_mask(pred)  # (H, W)
        fit_mask = split.score_mask & pred_valid
        scale, shift = fit_affine_to_gt(pred, split.target, fit_mask)
        aligned = np.maximum(scale * pred.astype(np.float64) + shift, MIN_PREDICTED_DEPTH)  # (H, W)
        return self.region.clip(np.where(pred_valid, aligned, 0.0).astype(np.float32))


class LidarHoldoutProtocol(EvalProtocol):
    """Feed a random part of each frame's LiDAR points to the method, score on the held-out rest only."""

    name = "lidar-holdout"

    def __init__(self, region: EvalRegion, holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION, seed: int = 0):
        super().__init__(region)
        if not 0.0 < holdout_fraction < 1.0:
            raise InputError(f"--holdout-fraction must be strictly between 0 and 1, got {holdout_fraction}")
        self.holdout_fraction = holdout_fraction
        self.seed = seed

    def split(self, sample: Sample) -> FrameSplit:
        sparse = sample.sparse_depth
        points = np.flatnonzero(valid_depth_mask(sparse))  # (N,) flat pixel indices
        n_held = round(self.holdout_fraction * points.size)
        if n_held == 0 or n_held == points.size:
            raise InputError(f"frame {sample.name!r} has {points.size} LiDAR points: too few to hold out "
                             f"{self.holdout_fraction:.0%} and still feed some; drop the frame or change "
                             "--holdout-fraction")
        # The split depends on the seed and the frame name only, not on the frame order.
        rng = np.random.default_rng([self.seed, zlib.crc32(sample.name.encode())])
        held = self._held_out(sparse.shape, points, n_held, rng)  # (n_held,) flat pixel indices
        if held.size == 0 or held.size == points.size:
            raise InputError(f"frame {sample.name!r}: its {points.size} LiDAR points cannot be split into fed and "
                             f"held-out parts by protocol {self.name}; drop the frame")
        fed = sparse.astype(np.float32, copy=True)  # a copy: the sample's own array never reaches the method
        fed.flat[held] = 0.0
        target = np.zeros(sparse.shape, np.float32)
        target.flat[held] = sparse.flat[held]
        # Structural guarantee: no scored point is fed, no fed point is scored.
        if np.any((fed > 0) & (target > 0)):
            raise RuntimeError("lidar-holdout split leaked held-out points into the method input")
        return FrameSplit(fed, target, self._score_mask(target), target_is_sparse=True)

    def _held_out(self, shape: tuple[int, int], points: np.ndarray, n_held: int,
                  rng: np.random.Generator) -> np.ndarray:
        """Which of ``points`` (flat pixel indices) are held out: ``n_held`` of them at random."""
        return points[rng.permutation(points.size)[:n_held]]


class SegmentHoldoutProtocol(LidarHoldoutProtocol):
    """lidar-holdout with whole scan-line segments held out: the LiDAR points inside random tiles."""

    name = "segment-holdout"

    def _held_out(self, shape: tuple[int, int], points: np.ndarray, n_held: int,
                  rng: np.random.Generator) -> np.ndarray:
        return points[segment_tiles(shape, self.holdout_fraction, rng).flat[points]]


PROTOCOLS: tuple[str, ...] = ("affine", "metric", "lidar-holdout", "segment-holdout")
HOLDOUT_PROTOCOLS = ("lidar-holdout", "segment-holdout")


def make_protocol(name: str, region: str = "none", holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
                  seed: int = 0) -> EvalProtocol:
    """The protocol called ``name`` scoring inside the evaluation region called ``region``."""
    if region not in REGIONS:
        raise InputError(f"unknown evaluation region {region!r}; use one of {sorted(REGIONS)}")
    chosen = REGIONS[region]
    if name == "affine":
        return AffineProtocol(chosen)
    if name == "metric":
        return MetricProtocol(chosen)
    if name == "lidar-holdout":
        return LidarHoldoutProtocol(chosen, holdout_fraction, seed)
    if name == "segment-holdout":
        return SegmentHoldoutProtocol(chosen, holdout_fraction, seed)
    raise InputError(f"unknown protocol {name!r}; use one of {', '.join(PROTOCOLS)}")
