"""AdamW and the warmup + cosine learning-rate schedule."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from mf_training.train.config import OptimConfig


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Multiplier of the peak lr at ``step``: linear warmup from 0, then cosine down to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, config: OptimConfig, total_steps: int, fused: bool
                    ) -> tuple[torch.optim.Optimizer, LambdaLR]:
    """AdamW over the trainable parameters and its LambdaLR schedule; ``fused`` only on CUDA.

    Norm gains, biases and embeddings-of-one-dimension (ndim < 2) get no weight decay,
    as in nanoGPT.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=config.lr, betas=config.betas, fused=fused or None
    )
    schedule = partial(lr_factor, warmup_steps=config.warmup_steps, total_steps=total_steps,
                       min_ratio=config.min_lr_ratio)
    return optimizer, LambdaLR(optimizer, schedule)
