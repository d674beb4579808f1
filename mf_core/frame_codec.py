"""One path from a camera frame to model inputs, and from model output back to metres.

Training (:func:`mf_training.train.data.make_example`), validation and inference
(:class:`mf_core.pipeline.DepthEstimator`) all call these functions, so the three cannot
disagree on how an image or a LiDAR sweep is normalised:

- image: (H, W, 3) uint8 RGB -> (3, H, W) float32 in [-1, 1];
- LiDAR fed to a conditioned model: metres -> model space (:mod:`mf_core.depth_codec`) with
  ``scale`` = the mean depth of **the fed points themselves** (never of ground truth the robot
  does not have); a frame without points gets scale 1 and an empty mask;
- supervision depth: encoded with the same scale as the LiDAR fed beside it (its own mean
  when no LiDAR is fed: monocular samples learn relative depth);
- output: model-space depth -> metres with that scale (:func:`to_metres`), or log relative
  depth ``log(d / scale)`` where the LiDAR prior works (:func:`log_relative_depth`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mf_core.depth_codec import decode_depth, encode_depth

# Log relative depth is clamped to +-this before exponentiating (e^12 = 1.6e5 x the mean depth).
MAX_LOG_DEPTH = 12.0


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 127.5 - 1.0


def depth_tensor(depth: np.ndarray) -> torch.Tensor:
    """(H, W) metres (0 = none) -> (1, 1, H, W) float32."""
    return torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None, None]


@dataclass
class LidarInput:
    """LiDAR as a conditioned model takes it: encoded depth, mask and the scale that encoded it."""

    depth: torch.Tensor  # (B, 1, H, W) model space, 0 where no point
    mask: torch.Tensor  # (B, 1, H, W) bool
    scale: torch.Tensor  # (B,) metres per unit: the mean of the fed depth (1 without points)


def encode_lidar(sparse: torch.Tensor) -> LidarInput:
    """Fed LiDAR depth (B, 1, H, W) metres (0 = none) -> :class:`LidarInput` (scale = its own mean)."""
    mask = torch.isfinite(sparse) & (sparse > 0)  # (B, 1, H, W)
    clean = torch.where(mask, sparse.float(), 0.0)
    count = mask.flatten(1).sum(dim=1)  # (B,)
    scale = torch.where(count > 0, clean.flatten(1).sum(dim=1) / count.clamp(min=1), 1.0)  # (B,)
    encoded, _ = encode_depth(clean, mask, scale=scale)
    return LidarInput(encoded, mask, scale)


def encode_target(depth: torch.Tensor, valid: torch.Tensor, scale: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Supervision depth (B, 1, H, W) metres -> (encoded, scale): with the fed LiDAR's ``scale``, or
    (None) the depth's own mean for monocular samples."""
    return encode_depth(depth.float(), valid, scale=scale)


def to_metres(depth_x0: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Model-space depth (B, 1, H, W) -> metres with the encoding ``scale`` ((B,) or a float)."""
    return decode_depth(depth_x0, scale)


def log_relative_depth(encoded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Encoded LiDAR (B, 1, H, W) -> log(d / scale) at ``mask``, 0 elsewhere (the prior's space)."""
    return torch.where(mask, decode_depth(encoded).clamp(min=1e-6).log(), 0.0)
