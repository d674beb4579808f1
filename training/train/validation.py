"""Held-out validation: 1-step image -> depth against ground truth.

Two views of the same model: monocular (scale/shift aligned to the target, the paper's
protocol) and, for LiDAR-conditioned models, metric depth from image + LiDAR scored only
where no LiDAR point was fed (the robot's case).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mf_core.align import MIN_POINTS, fit_scale_shift
from mf_core.depth_codec import decode_depth, encode_depth
from mf_core.sampling import sample

# Sample seed of the validation noise: fixed so runs compare step to step.
VALIDATION_SEED = 1234
# Conditioned validation feeds the model this share of each view's LiDAR and scores the rest.
FED_LIDAR_SHARE = 0.8


@dataclass
class ValidationResult:
    """Mean AbsRel / delta1 over the evaluated views, and per-view panel inputs."""

    abs_rel: float
    delta1: float
    count: int
    views: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)  # image, gt, aligned


def _scores(pred: np.ndarray, truth: np.ndarray, scored: np.ndarray) -> tuple[float, float]:
    """(AbsRel, delta1 < 1.25) of metric ``pred`` against ``truth`` (H, W) on the bool ``scored`` pixels."""
    pred, truth = pred[scored], truth[scored]  # (N,) each
    ratio = np.maximum(pred, 1e-6) / truth
    return float(np.mean(np.abs(pred - truth) / truth)), float(np.mean(np.maximum(ratio, 1 / ratio) < 1.25))


@torch.no_grad()
def evaluate_i2d(model: nn.Module, batch: dict[str, torch.Tensor], steps: int = 1, keep_views: int = 0
                 ) -> ValidationResult:
    """Predict depth from each image with ``steps`` Euler steps and score it after alignment.

    ``batch`` comes from :func:`training.train.data.collate` over evaluation views. The
    relative prediction is fitted (robust scale + shift in depth space) to the view's
    supervision target (LiDAR, or dense GT when training on it) and scored by AbsRel and
    delta1 (< 1.25) against ``metric_gt`` (dense GT when known, else the target).
    Views with fewer than ``mf_core.align.MIN_POINTS`` target pixels are skipped.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    image = model.encode_image(batch["image"].to(device))  # (B, C, h, w)
    generator = torch.Generator().manual_seed(VALIDATION_SEED)
    out = sample(model, "i2d", image=image, steps=steps, generator=generator)
    model.train(was_training)
    relative = decode_depth(out.depth).cpu().numpy()[:, 0]  # (B, H, W) unit-mean depth
    targets = batch["metric_target"].numpy()[:, 0]  # (B, H, W) metres
    truths = batch["metric_gt"].numpy()[:, 0]  # (B, H, W) metres
    pixels = ((batch["image"].numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    abs_rels, deltas, views = [], [], []
    for pred, target, truth, rgb in zip(relative, targets, truths, pixels, strict=True):
        on_target = target > 0
        if on_target.sum() < MIN_POINTS:
            continue
        fit = fit_scale_shift(pred[on_target], target[on_target])
        aligned = fit.apply(pred)  # (H, W) metres
        abs_rel, delta1 = _scores(aligned, truth, truth > 0)
        abs_rels.append(abs_rel)
        deltas.append(delta1)
        if len(views) < keep_views:
            views.append((rgb, truth, aligned))
    if not abs_rels:
        return ValidationResult(float("nan"), float("nan"), 0, views)
    return ValidationResult(float(np.mean(abs_rels)), float(np.mean(deltas)), len(abs_rels), views)


@torch.no_grad()
def evaluate_conditioned(model: nn.Module, batch: dict[str, torch.Tensor], steps: int = 1) -> ValidationResult:
    """Metric depth from image + LiDAR, scored where no LiDAR point was fed (no alignment).

    A fixed (seeded) ``FED_LIDAR_SHARE`` of each view's LiDAR pixels is fed, encoded with its
    own mean as at inference; the prediction is decoded with that scale and scored against
    ``metric_gt`` (dense GT when known, else the LiDAR) on the pixels that were not fed. Views
    with fewer than ``MIN_POINTS`` fed or scored pixels are skipped.
    """
    lidar = batch["metric_lidar"]  # (B, 1, H, W) metres, 0 = none
    truth = batch["metric_gt"]  # (B, 1, H, W)
    generator = torch.Generator().manual_seed(VALIDATION_SEED)
    fed = (lidar > 0) & (torch.rand(lidar.shape, generator=generator) < FED_LIDAR_SHARE)  # (B, 1, H, W)
    scored = (truth > 0) & ~fed
    keep = (fed.flatten(1).sum(1) >= MIN_POINTS) & (scored.flatten(1).sum(1) >= MIN_POINTS)  # (B,)
    if not keep.any():
        return ValidationResult(float("nan"), float("nan"), 0)
    fed, scored, truth = fed[keep], scored[keep], truth[keep]
    sparse, scale = encode_depth(torch.where(fed, lidar[keep], 0.0), fed)  # (K, 1, H, W), (K,)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    image = model.encode_image(batch["image"][keep].to(device))  # (K, C, h, w)
    out = sample(model, "i2d", image=image, steps=steps, generator=torch.Generator().manual_seed(VALIDATION_SEED),
                 sparse_depth=sparse.to(device), sparse_mask=fed.to(device))
    model.train(was_training)
    pred = decode_depth(out.depth.cpu(), scale).numpy()[:, 0]  # (K, H, W) metres
    scores = [_scores(p, t, m) for p, t, m in zip(pred, truth.numpy()[:, 0], scored.numpy()[:, 0], strict=True)]
    abs_rels, deltas = zip(*scores, strict=True)
    return ValidationResult(float(np.mean(abs_rels)), float(np.mean(deltas)), len(scores))
