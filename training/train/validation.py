"""Held-out validation: 1-step image -> depth, scale/shift aligned, AbsRel against ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mf_core.align import MIN_POINTS, fit_scale_shift
from mf_core.depth_codec import decode_depth
from mf_core.sampling import sample

# Sample seed of the validation noise: fixed so runs compare step to step.
VALIDATION_SEED = 1234


@dataclass
class ValidationResult:
    """Mean AbsRel / delta1 over the evaluated views, and per-view panel inputs."""

    abs_rel: float
    delta1: float
    count: int
    views: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)  # image, gt, aligned


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
        valid = truth > 0
        ratio = np.maximum(aligned[valid], 1e-6) / truth[valid]
        abs_rels.append(float(np.mean(np.abs(aligned[valid] - truth[valid]) / truth[valid])))
        deltas.append(float(np.mean(np.maximum(ratio, 1 / ratio) < 1.25)))
        if len(views) < keep_views:
            views.append((rgb, truth, aligned))
    if not abs_rels:
        return ValidationResult(float("nan"), float("nan"), 0, views)
    return ValidationResult(float(np.mean(abs_rels)), float(np.mean(deltas)), len(abs_rels), views)
