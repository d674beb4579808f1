"""Depth <-> model space: unit mean over valid pixels, contraction to [0, 2), shift to [-1, 1).

Encoding (METHOD.md, "Depth parameterisation"):
    d_n = d / s                       s = mean of d over valid pixels (per sample)
    c   = d_n            if d_n <= 1
          2 - 1 / d_n    if d_n > 1   (range [0, 2): far depth is compressed)
    e   = c - 1                       (range [-1, 1)); invalid pixels are 0

Absolute scale is lost in model space: decoding with ``scale=1`` gives relative (unit-mean)
depth; decoding with the encoder's scale gives back metres.
"""

from __future__ import annotations

import torch

from mf_core.errors import InputError

# Decoding clamps contracted values just below 2 so that 1 / (2 - c) stays finite:
# 2 - 1e-3 decodes to 1000x the mean depth, far beyond any real scene's range.
_MAX_CONTRACTED = 2.0 - 1e-3


def valid_depth_mask(depth: torch.Tensor) -> torch.Tensor:
    """Pixels holding a measurement: finite and > 0 (0 means "no value"). (B,1,H,W) -> bool."""
    return torch.isfinite(depth) & (depth > 0)


def _check_shape(name: str, tensor: torch.Tensor) -> None:
    if tensor.ndim != 4 or tensor.shape[1] != 1:
        raise InputError(f"{name} must have shape (B, 1, H, W), got {tuple(tensor.shape)}")


def encode_depth(
    depth: torch.Tensor, valid: torch.Tensor | None = None, scale: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Metric depth -> model space.

    Args:
        depth: (B, 1, H, W) depth in metres (any positive unit).
        valid: (B, 1, H, W) bool; default ``valid_depth_mask(depth)``. Every valid pixel
            must hold a finite positive depth.
        scale: (B,) normaliser to use instead of the per-sample mean of valid depth (for
            example to put LiDAR into an existing prediction's relative frame).

    Returns:
        encoded (B, 1, H, W) float32 in [-1, 1), 0 at invalid pixels, and scale (B,) float32.
    """
    _check_shape("depth", depth)
    depth = depth.float()
    if valid is None:
        valid = valid_depth_mask(depth)
    elif valid.shape != depth.shape:
        raise InputError(f"valid mask shape {tuple(valid.shape)} must match depth shape {tuple(depth.shape)}")
    valid = valid.bool()
    if not bool(valid_depth_mask(depth)[valid].all()):
        raise InputError("depth has non-finite or non-positive values at valid pixels: mark them invalid")
    if scale is None:
        counts = valid.sum(dim=(1, 2, 3))  # (B,)
        empty = (counts == 0).nonzero().flatten().tolist()
        if empty:
            raise InputError(f"sample(s) {empty} have no valid depth pixel: drop them or supply depth")
        scale = torch.where(valid, depth, 0.0).sum(dim=(1, 2, 3)) / counts  # (B,)
    else:
        scale = scale.float().reshape(-1)
        if scale.shape[0] != depth.shape[0] or not bool(((scale > 0) & torch.isfinite(scale)).all()):
            raise InputError(f"scale must be {depth.shape[0]} finite positive values, got {scale.tolist()}")
    normalised = depth / scale.view(-1, 1, 1, 1)  # (B, 1, H, W)
    # The clamp keeps 1/d finite on invalid pixels; torch.where discards them anyway.
    contracted = torch.where(normalised <= 1, normalised, 2 - 1 / normalised.clamp(min=1))  # (B, 1, H, W)
    encoded = torch.where(valid, contracted - 1, 0.0)  # (B, 1, H, W)
    return encoded, scale


def decode_depth(encoded: torch.Tensor, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Model space -> depth: the inverse of :func:`encode_depth`.

    Args:
        encoded: (B, 1, H, W) model-space depth; values outside [-1, 1) (raw network
            outputs) are clamped to the codec's range first.
        scale: (B,) per-sample scale from the encoder, or a float; 1 gives unit-mean depth.

    Returns:
        (B, 1, H, W) float32 depth, >= 0.
    """
    _check_shape("encoded depth", encoded)
    contracted = (encoded.float() + 1).clamp(0.0, _MAX_CONTRACTED)  # (B, 1, H, W)
    relative = torch.where(contracted <= 1, contracted, 1 / (2 - contracted))  # (B, 1, H, W)
    if isinstance(scale, torch.Tensor):
        scale = scale.float().to(relative.device).view(-1, 1, 1, 1)
    return relative * scale
