"""Nearest-point fill of sparse maps on any torch device: the LiDAR prior of conditioned models.

The jump flooding algorithm (Rong and Tan, 2006) finds, for every pixel, a nearby valid pixel in
``log2(max(H, W)) + 1`` passes of 8 shifted comparisons: batched tensor ops, no per-point
loops, so it runs inside the model's forward on CPU or GPU. Written here because neither torch
nor the libraries this package uses offer a batched nearest-seed fill on tensors (scipy's
distance transform is CPU-only, one image at a time, and would force a device round trip).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mf_core.errors import InputError

_NO_SEED = -1.0e6  # coordinate of "no seed yet": farther than any real pixel, finite so distances stay finite


def _jump_steps(height: int, width: int) -> list[int]:
    """Halving jump lengths from the largest power of two below the image size down to 1, plus one
    extra pass of 1 (the "JFA+1" variant, which mends most of the algorithm's rare misses)."""
    step = 1 << ((max(height, width) - 1).bit_length() - 1) if max(height, width) > 1 else 1
    steps = []
    while step >= 1:
        steps.append(step)
        step //= 2
    return [*steps, 1]


def nearest_fill(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill every pixel with the value of (approximately) the nearest valid pixel.

    Args:
        values: (B, 1, H, W) float map; only pixels where ``mask`` is True are read.
        mask: (B, 1, H, W) bool, True at valid pixels.

    Returns:
        filled: (B, 1, H, W) like ``values``: equal to it at valid pixels, the nearest valid
            pixel's value elsewhere (Euclidean distance; ties and the algorithm's rare misses
            may pick a neighbour a pixel farther), 0 everywhere in a sample without valid pixels.
        has_seed: (B,) bool, False for samples without any valid pixel.
    """
    if values.ndim != 4 or values.shape[1] != 1 or tuple(mask.shape) != tuple(values.shape):
        raise InputError(f"nearest_fill needs values and mask of shape (B, 1, H, W), got "
                         f"{tuple(values.shape)} and {tuple(mask.shape)}")
    b, _, h, w = values.shape
    mask = mask.bool()
    rows = torch.arange(h, device=values.device, dtype=torch.float32).view(1, 1, h, 1).expand(b, 1, h, w)
    cols = torch.arange(w, device=values.device, dtype=torch.float32).view(1, 1, 1, w).expand(b, 1, h, w)
    seed_row = torch.where(mask, rows, _NO_SEED)  # (B, 1, H, W) coordinates of the best seed so far
    seed_col = torch.where(mask, cols, _NO_SEED)
    best = torch.where(mask, 0.0, float("inf"))  # (B, 1, H, W) squared distance to it

    for step in _jump_steps(h, w):
        padded_row = F.pad(seed_row, (step, step, step, step), value=_NO_SEED)  # (B, 1, H+2s, W+2s)
        padded_col = F.pad(seed_col, (step, step, step, step), value=_NO_SEED)
        for dy in (-step, 0, step):
            for dx in (-step, 0, step):
                if dy == 0 and dx == 0:
                    continue
                window = (..., slice(step + dy, step + dy + h), slice(step + dx, step + dx + w))
                cand_row, cand_col = padded_row[window], padded_col[window]  # (B, 1, H, W)
                distance = (cand_row - rows).square() + (cand_col - cols).square()
                closer = distance < best
                seed_row = torch.where(closer, cand_row, seed_row)
                seed_col = torch.where(closer, cand_col, seed_col)
                best = torch.where(closer, distance, best)

    found = seed_row >= 0  # (B, 1, H, W): False only in samples without seeds
    index = (seed_row.clamp(min=0) * w + seed_col.clamp(min=0)).long().view(b, -1)  # (B, H*W)
    filled = values.reshape(b, -1).gather(1, index).view(b, 1, h, w)
    filled = torch.where(found, filled, torch.zeros((), dtype=values.dtype, device=values.device))
    return filled, found.flatten(1).any(dim=1)
