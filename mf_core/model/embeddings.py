"""Token embedders: pixel patches, timesteps (one per modality, optionally mixed) and RoPE positions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mf_core.model.config import ROPE_AXES

# Modality index on the first RoPE axis: what tells the image and depth streams apart.
IMAGE_MODALITY = 0
DEPTH_MODALITY = 1


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C*p*p) tokens in row-major grid order, features ordered (c, i, j)."""
    return F.pixel_unshuffle(x, patch_size).flatten(2).transpose(1, 2)  # (B, N, C*p*p)


def unpatchify(tokens: torch.Tensor, patch_size: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, N, C*p*p) -> (B, C, grid_h*p, grid_w*p)."""
    x = tokens.transpose(1, 2).unflatten(2, (grid_h, grid_w))  # (B, C*p*p, gh, gw)
    return F.pixel_shuffle(x, patch_size)  # (B, C, H, W)


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches of a C-channel map -> width-dim tokens, one linear map.

    A linear on unfolded patches (FLUX ``x_embedder``) rather than a strided conv, so the
    weight is (width, C*p*p) and a pretrained image tokenizer maps onto it 1:1.
    """

    def __init__(self, channels: int, patch_size: int, width: int):
        super().__init__()
        self.channels = channels
        self.patch_size = patch_size
        self.proj = nn.Linear(channels * patch_size * patch_size, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, H/p * W/p, width)."""
        return self.proj(patchify(x, self.patch_size))  # (B, N, D)


def timestep_features(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of flow times t in [0, 1] (scaled by 1000 as in FLUX): (B,) -> (B, dim) fp32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float()[:, None] * freqs[None]  # (B, dim/2)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # (B, dim)


class TimestepEmbedder(nn.Module):
    """t (B,) in [0, 1] -> sinusoidal(timestep_dim) -> SiLU MLP -> (B, width).

    ``bias`` adds one to the output layer (zero-initialised): where a lifted guidance-distilled
    FLUX.2 adds its embedding of a fixed guidance scale (:mod:`mf_training.lift`).
    """

    def __init__(self, width: int, timestep_dim: int, bias: bool = False):
        super().__init__()
        self.timestep_dim = timestep_dim
        self.linear_1 = nn.Linear(timestep_dim, width, bias=False)
        self.linear_2 = nn.Linear(width, width, bias=bias)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        features = timestep_features(t, self.timestep_dim).to(self.linear_1.weight.dtype)  # (B, F)
        return self.linear_2(F.silu(self.linear_1(features)))  # (B, D)


class CrossTimeMixing(nn.Module):
    """Cross-stream timestep mixing: own + gate * MLP(other), with a scalar gate starting at 0.

    At initialisation it is an exact no-op, so enabling it never disturbs a pretrained model.
    """

    def __init__(self, width: int):
        super().__init__()
        self.linear_1 = nn.Linear(width, width, bias=False)
        self.linear_2 = nn.Linear(width, width, bias=False)
        self.gate = nn.Parameter(torch.zeros(1))  # (1,) not 0-d: FSDP2's fully_shard rejects 0-d parameters

    def forward(self, own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """own, other (B, width) -> (B, width)."""
        return own + self.gate * self.linear_2(F.silu(self.linear_1(other)))  # (B, D)


def token_positions(grid_h: int, grid_w: int, n_context: int, device: torch.device,
                    with_depth: bool = True) -> torch.Tensor:
    """Position ids of the joint sequence [context, image, depth]: (L + 2N, 4) float.

    Axes are (modality, row, col, context index): context tokens are (0, 0, 0, l), image
    tokens (0, r, c, 0) and depth tokens (1, r, c, 0), so image and depth token i share a
    pixel footprint and differ only on the modality axis. These are FLUX.2's (t, h, w, l) ids
    of text and image tokens. ``with_depth`` False: [context, image] only, (L + N, 4).
    """
    # Built by stacking columns, not by assigning into slices: tracing (ONNX export) cannot place an
    # assignment into the empty context block of a model without context.
    rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w).float()  # (N,)
    cols = torch.arange(grid_w, device=device).repeat(grid_h).float()  # (N,)
    zeros = torch.zeros_like(rows)
    image = torch.stack([zeros + IMAGE_MODALITY, rows, cols, zeros], dim=1)  # (N, 4)
    depth = torch.stack([zeros + DEPTH_MODALITY, rows, cols, zeros], dim=1)  # (N, 4)
    streams = [image, depth] if with_depth else [image]
    if n_context == 0:
        return torch.cat(streams)  # (2N, 4)
    index = torch.arange(n_context, device=device).float()  # (L,)
    context = torch.stack([torch.zeros_like(index)] * 3 + [index], dim=1)  # (L, 4)
    return torch.cat([context, *streams])  # (L + 2N, 4)


def rope_rotations(positions: torch.Tensor, head_dim: int, theta: float) -> torch.Tensor:
    """Rotations for (S, 4) position ids; head_dim is split equally over the 4 axes.

    Returns (S, head_dim / 2, 2) float32: cos and sin of one angle per pair of features (real
    numbers, not complex ones, so the model also exports to ONNX, which has no complex type).
    """
    axis_dim = head_dim // ROPE_AXES
    inv_freq = theta ** (-torch.arange(0, axis_dim, 2, device=positions.device) / axis_dim)  # (axis_dim/2,)
    angles = torch.cat(
        [positions[:, a, None].float() * inv_freq[None] for a in range(ROPE_AXES)], dim=-1
    )  # (S, head_dim/2)
    return torch.stack([angles.cos(), angles.sin()], dim=-1)  # (S, head_dim/2, 2)


def apply_rope(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive feature pairs of x (B, heads, S, head_dim) by ``rotations`` (S, head_dim/2, 2).

    Hand-written (torch has no rotary op): (a, b) -> (a cos - b sin, a sin + b cos) in fp32, cast
    back to x's dtype.
    """
    pairs = x.float().unflatten(-1, (-1, 2))  # (B, h, S, hd/2, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    cos, sin = rotations[..., 0], rotations[..., 1]  # (S, hd/2)
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2).to(x.dtype)  # (B, h, S, hd)
