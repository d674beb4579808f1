"""Held-out validation during training.

- :func:`evaluate_i2d`: 1-step image -> depth against ground truth on batched views, scale/shift
  aligned (the paper's protocol); the only check for models without LiDAR input.
- :func:`validate_frames`: LiDAR-conditioned models, scored the way ``mf bench quality`` scores
  them and through the same :class:`mf_core.pipeline.DepthEstimator` a robot runs: each held-out
  frame at its own resolution, under its set's protocol (lidar-holdout on LiDAR-only frames: 80 %
  fed, the rest scored; metric against dense ground truth otherwise), against the LiDAR prior a
  fresh model would output (the scan-line fill). ``score`` is the geometric mean over sources of
  RMSE(model) / RMSE(prior): below 1 the learned part helps; ``mf release`` ships the best one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mf_core.align import MIN_POINTS, fit_scale_shift
from mf_core.depth_codec import decode_depth
from mf_core.sampling import sample
from mf_training.data.real_sets import real_set_of
from mf_training.data.sample import Sample
from mf_training.eval.harness import baseline_method, estimator_method, evaluate
from mf_training.eval.metrics import geometric_mean
from mf_training.eval.protocols import make_protocol

# Sample seed of the validation noise: fixed so runs compare step to step.
VALIDATION_SEED = 1234


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

    ``batch`` comes from :func:`mf_training.train.data.collate` over evaluation views. The
    relative prediction is fitted (robust scale + shift in depth space) to the view's
    supervision target (LiDAR, or dense GT when training on it) and scored by AbsRel and
    delta1 (< 1.25) against ``metric_gt`` (dense GT when known, else the target).
    Views with fewer than ``mf_core.align.MIN_POINTS`` target pixels are skipped.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    image = batch["image"].to(device)  # (B, 3, H, W) pixels: the sampler encodes them (VAE models) itself
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


def _protocol_name(samples: Sequence[Sample], path: str) -> str:
    real_set = real_set_of(path)
    if real_set is not None:
        return real_set.protocol
    return "metric" if all(s.gt_depth is not None for s in samples) else "lidar-holdout"


@torch.no_grad()
def validate_frames(model: nn.Module, samples: Sequence[Sample], source_paths: Sequence[str],
                    processing_size: int | None, device: str | torch.device = "cpu", refine_strength: float = 1.0,
                    refine_strength_near: float | None = None, refine_size: int | None = None,
                    nearest_share: float | str | None = None) -> dict[str, float]:
    """Score a LiDAR-conditioned ``model`` on held-out frames grouped by source (see the module docstring),
    run as :class:`mf_core.pipeline.DepthEstimator` with these settings (training passes the run's
    ``release`` section: the model is chosen as it will be released).

    Returns ``{"<source>/rmse", "<source>/rmse_prior", "<source>/ratio", "score"}``; sources whose
    frames give nothing to score are left out.
    """
    from mf_core.pipeline import DepthEstimator

    was_training = model.training
    estimator = DepthEstimator(model, device, processing_size, refine_strength,
                               refine_strength_near=refine_strength_near, refine_size=refine_size,
                               nearest_share=nearest_share)
    method = estimator_method(estimator, "validation", "conditioned")
    prior = baseline_method("scanline")
    out: dict[str, float] = {}
    ratios = []
    for path in dict.fromkeys(source_paths):
        group = [s for s, p in zip(samples, source_paths, strict=True) if p == path]
        protocol = make_protocol(_protocol_name(group, path))
        real_set = real_set_of(path)
        name = real_set.name if real_set else path
        model_rmse = evaluate(group, method, protocol, None, progress=False)["mean"]["rmse"]
        prior_rmse = evaluate(group, prior, protocol, None, progress=False)["mean"]["rmse"]
        out |= {f"{name}/rmse": model_rmse, f"{name}/rmse_prior": prior_rmse, f"{name}/ratio": model_rmse / prior_rmse}
        ratios.append(model_rmse / prior_rmse)
    model.train(was_training)
    if ratios:
        out["score"] = geometric_mean(ratios)
    return out
