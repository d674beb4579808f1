"""The pixel-level refinement head of LiDAR-conditioned models (``ModelConfig.refine_head``).

A small U-Net at the processing resolution (4 levels, ``channels`` wide at the top, doubling
costs kept low: one convolution at full resolution each way) that reads the image, the LiDAR
prior and the transformer's depth (:func:`mf_core.lidar_prior.head_features`) and predicts the
terms that :func:`mf_core.lidar_prior.compose` turns into depth. Its output convolution starts
at zero, so a fresh model outputs the prior's fill exactly. The two scalars of the
neighbour selection (how much a colour difference and a pixel of distance count against a
neighbour) start at 1 / (2 * 0.25^2) and 1 / 3: a joint-bilateral choice the head then corrects.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from mf_core.lidar_prior import N_FEATURES, N_TERMS


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GELU())


class RefinementHead(nn.Module):
    """(B, N_FEATURES, H, W) -> (B, N_TERMS, H, W); any H, W (levels pad to even sizes)."""

    def __init__(self, channels: int = 16):
        super().__init__()
        widths = (channels, channels * 3 // 2, channels * 2, channels * 3)  # full, 1/2, 1/4, 1/8 resolution
        self.widths = widths
        self.stem = _conv(N_FEATURES, widths[0])
        self.down = nn.ModuleList(nn.Sequential(_conv(a, b), _conv(b, b)) for a, b in itertools.pairwise(widths))
        self.up = nn.ModuleList(_conv(b + a, a) for a, b in itertools.pairwise(widths))
        self.out = nn.Conv2d(widths[0], N_TERMS, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.log_colour_weight = nn.Parameter(torch.tensor(math.log(1 / (2 * 0.25**2))))
        self.log_distance_weight = nn.Parameter(torch.tensor(math.log(1 / 3)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(features)]  # (B, C0, H, W)
        for level in self.down:
            skips.append(level(F.avg_pool2d(skips[-1], 2, ceil_mode=True)))
        x = skips[-1]
        for level, skip in zip(reversed(self.up), reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = level(torch.cat([x, skip], dim=1))
        return self.out(x)  # (B, N_TERMS, H, W)

    @property
    def selection_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(colour weight, distance weight) of :func:`mf_core.lidar_prior.compose`."""
        return self.log_colour_weight.exp(), self.log_distance_weight.exp()
