"""Exponential moving average of model weights, kept in fp32 beside the (possibly sharded) parameters."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor


class EMA:
    """Shadow copy of every trainable parameter, updated after each optimiser step.

    The decay warms up as min(decay, (1 + n) / (10 + n)) over the n updates so far, so
    short runs are not dominated by the random initialisation. Under FSDP2 the shadow
    tensors are DTensors sharded like the parameters; ``state_dict`` gathers them.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {
            name: p.detach().clone().float() for name, p in model.named_parameters() if p.requires_grad
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow weights toward the model's current weights."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach().float(), 1.0 - decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Full (unsharded) fp32 CPU tensors by parameter name; a collective under FSDP2."""
        return {
            name: (t.full_tensor() if isinstance(t, DTensor) else t).cpu() for name, t in self.shadow.items()
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        """Restore from full tensors (as saved by :meth:`state_dict`), re-sharding them under FSDP2."""
        missing = sorted(set(self.shadow) - set(state))
        if missing:
            raise KeyError(f"EMA state lacks {missing[:3]}")
        for name, target in self.shadow.items():
            value = state[name]
            if isinstance(target, DTensor):
                value = distribute_tensor(value.to(target.device), target.device_mesh, target.placements)
            target.copy_(value)
        self.updates = updates
