"""The LiDAR prior of refining models and how their output is composed from it.

Everything here works in **log relative depth**, ``log(d / s)`` with ``s`` the mean of the LiDAR
depth fed to the model (:mod:`mf_core.frame_codec`), on (B, C, H, W) tensors, at any resolution:
the model composes its output with it at the processing resolution, and
:class:`mf_core.pipeline.DepthEstimator` composes again at the camera's native resolution with
the same function, from the model's upsampled terms and a prior computed from the native LiDAR.

The prior of one frame (:func:`lidar_prior`):

- ``fill``: the scan-line fill of the LiDAR (:func:`mf_core.sparse_fill.scanline_fill`: linear between
  neighbouring scan lines, push-pull fill along them and where no line is near),
- ``neighbours``: the nearest LiDAR pixel to the left, right, above and below each pixel, with
  its distance and how different it looks from the pixel: the candidates between which a depth
  edge lies, and the evidence for choosing one.

The output (:func:`compose`), from the refinement head's terms (gate ``g``, four selection
logits ``l``, free correction ``c``) and the transformer's own log depth ``t``:

    w        = softmax_k(l_k - colour_difference_k * exp(alpha) - distance_k * exp(beta))
    log d/s  = fill + g * sum_k w_k (neighbour_k - fill)         (LiDAR given)
             = t + c                                             (no LiDAR: monocular)

A fresh model has g = c = 0, so it outputs exactly the fill; the gate learns where a depth
edge is and the selection which side of it each pixel belongs to, from the image (the transformer's
depth is one of the head's inputs). With LiDAR the output stays between the prior and the LiDAR
values around each pixel: measured on the val split, a free per-pixel correction learned scan-line
streaks and guesses above the top beam (7-Scenes RMSE +8 %), and mixing in the transformer's depth
cost 7-Scenes 9 % and KITTI 3 %, while the gated selection alone kept the gains (KITTI -17 % RMSE
against the prior after 250 steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mf_core.errors import InputError
from mf_core.sparse_fill import directional_neighbours, point_spacing, scanline_fill_log

N_NEIGHBOURS = 4
N_TERMS = 2 + N_NEIGHBOURS  # gate, selection logits (4), correction (monocular samples only)
MAX_DELTA = 3.0  # |log depth ratio| a neighbour may pull a pixel by (e^3 = 20x): clamps outliers
N_FEATURES = 3 + 1 + N_NEIGHBOURS * 3 + 3  # image, base, per neighbour (delta, distance, colour), mask, lidar, t
_MISSING = -1.0e4  # selection logit of a direction without a neighbour
# Checkpoint metadata key: the share of the learned part a released model applies at inference. The
# head's per-pixel choice is over-confident between scan lines (measured with segment-holdout on the
# val split, docs/MODEL_HISTORY.md), so shrinking it towards the prior is the better estimate there.
REFINE_STRENGTH_KEY = "refine_strength"
# ... and next to a LiDAR return on the pixel's own row, where the head's choice is reliable (held-out
# returns between fed ones on their scan line): the strength rises from refine_strength to this share
# as exp(-d / (NEAR_REACH_SPACINGS x the LiDAR's point spacing)), d the pixels to the nearest return to
# the left or right. Absent: refine_strength everywhere. Chosen on the val split (docs/MODEL_HISTORY.md).
REFINE_STRENGTH_NEAR_KEY = "refine_strength_near"
NEAR_REACH_SPACINGS = 3.0
# ... and the longer image side its refinement head runs at (the scale it trained at: the head reads
# edges and neighbours in pixels, so at half that scale it loses most of what it learned between scan
# lines, docs/MODEL_HISTORY.md). Absent: the processing size (the transformer's), as older models ran.
REFINE_SIZE_KEY = "refine_size"


@dataclass
class LidarPrior:
    """The prior of a batch of frames; every map (B, C, H, W) at one resolution."""

    fill: torch.Tensor  # (B, 1, H, W) log relative depth; 0 in a sample without LiDAR
    neighbours: torch.Tensor  # (B, 4, H, W) log relative depth of the directional neighbours, NaN = none
    distance: torch.Tensor  # (B, 4, H, W) pixels to them, inf = none
    colour_difference: torch.Tensor  # (B, 4, H, W) squared RGB difference (image in [-1, 1]) to them
    mask: torch.Tensor  # (B, 1, H, W) bool: LiDAR pixels
    log_depth: torch.Tensor  # (B, 1, H, W) log relative LiDAR depth at the mask, 0 elsewhere

    @property
    def has_lidar(self) -> torch.Tensor:
        """(B, 1, 1, 1) bool: the sample has at least one LiDAR pixel."""
        return self.mask.flatten(1).any(dim=1).view(-1, 1, 1, 1)


def lidar_prior(image: torch.Tensor, log_depth: torch.Tensor, mask: torch.Tensor) -> LidarPrior:
    """The prior of ``log_depth`` (B, 1, H, W), valid where ``mask``, for ``image`` (B, 3, H, W) in [-1, 1]."""
    log_depth = torch.where(mask, log_depth.float(), 0.0)
    neighbours, distance, colour_difference = directional_neighbours(log_depth, mask, image)
    return LidarPrior(
        fill=scanline_fill_log(log_depth, mask),
        neighbours=neighbours,
        distance=distance,
        colour_difference=colour_difference,
        mask=mask,
        log_depth=log_depth,
    )


def check_refine_strengths(refine_strength: float | None, refine_strength_near: float | None,
                           prefix: str = "") -> None:
    """Raise InputError unless each given strength is a share in [0, 1]; ``prefix`` names where it was set
    (a config section, a flag's dashes)."""
    for name, value in (("refine_strength", refine_strength), ("refine_strength_near", refine_strength_near)):
        if value is not None and not 0.0 <= value <= 1.0:
            shown = prefix + (name.replace("_", "-") if prefix == "--" else name)
            raise InputError(f"{shown} must be in [0, 1] (the share of the learned correction applied), got {value}")


def strength_map(prior: LidarPrior, between_lines: float, near_lidar: float | None) -> torch.Tensor | float:
    """The share of the learned part applied at each pixel (see REFINE_STRENGTH_NEAR_KEY): ``between_lines``
    far from a return on the pixel's row, ``near_lidar`` next to one; a float when they are one value."""
    if near_lidar is None or near_lidar == between_lines:
        return between_lines
    row_distance = torch.minimum(prior.distance[:, 0:1], prior.distance[:, 1:2])  # (B, 1, H, W), inf = none
    return between_lines + (near_lidar - between_lines) * row_proximity(row_distance, prior.mask)


def row_proximity(row_distance: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) in [0, 1]: exp(-d / (NEAR_REACH_SPACINGS x the point spacing of ``mask``)), d = ``row_distance``
    (B, 1, H, W) pixels to the nearest LiDAR return on the pixel's row: 1 on a return, 0 on a row without one."""
    reach = NEAR_REACH_SPACINGS * point_spacing(mask)  # (B, 1, 1, 1)
    return torch.exp(-row_distance / reach)


def _base(prior: LidarPrior, transformer: torch.Tensor) -> torch.Tensor:
    return torch.where(prior.has_lidar, prior.fill, transformer)  # (B, 1, H, W)


def _deltas(prior: LidarPrior, base: torch.Tensor) -> torch.Tensor:
    """(B, 4, H, W) neighbour minus base, clamped; 0 where a direction has no neighbour."""
    return torch.nan_to_num(prior.neighbours - base, nan=0.0).clamp(-MAX_DELTA, MAX_DELTA)


def head_features(image: torch.Tensor, prior: LidarPrior, transformer: torch.Tensor) -> torch.Tensor:
    """The refinement head's input (B, N_FEATURES, H, W): image, base, per-neighbour delta / log
    distance / log colour difference, LiDAR mask and depth, and the transformer's log depth."""
    base = _base(prior, transformer)
    present = torch.isfinite(prior.distance)
    distance = torch.log1p(torch.where(present, prior.distance, 1.0e4)) / 4.0  # ~[0, 2.3]
    colour = torch.where(present, torch.log1p(20.0 * prior.colour_difference), 5.0)  # ~[0, 4.4]
    return torch.cat([image.float(), base, _deltas(prior, base), distance, colour, prior.mask.float(),
                      prior.log_depth, transformer.float()], dim=1)


def compose(prior: LidarPrior, terms: torch.Tensor, transformer: torch.Tensor, colour_weight: torch.Tensor,
            distance_weight: torch.Tensor, strength: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Log relative depth (B, 1, H, W) from the head's ``terms`` (B, N_TERMS, H, W) (see the module docstring).

    ``colour_weight`` and ``distance_weight`` are exp(alpha) and exp(beta) (scalars); ``transformer`` is
    the transformer's own log relative depth (B, 1, H, W). ``strength`` in [0, 1] (a float, or per pixel
    (B, 1, H, W) from :func:`strength_map`) scales the LiDAR case's learned part (1 in training; a
    released model may record less, see REFINE_STRENGTH_KEY).
    """
    gate, logits, correction = terms[:, :1], terms[:, 1:5], terms[:, 5:6]
    base = _base(prior, transformer)
    present = torch.isfinite(prior.distance)
    cost = prior.colour_difference * colour_weight + torch.where(present, prior.distance, 0.0) * distance_weight
    logits = logits - cost
    logits = torch.where(present, logits, _MISSING)
    selection = (torch.softmax(logits, dim=1) * _deltas(prior, base)).sum(dim=1, keepdim=True)  # (B, 1, H, W)
    return base + torch.where(prior.has_lidar, strength * gate * selection, correction)
