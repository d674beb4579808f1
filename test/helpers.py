"""Small builders shared by several test files (imported as ``from helpers import ...``)."""

from __future__ import annotations

import torch

from mf_core.model import build_model


def random_model(seed: int = 0, std: float = 0.05, **overrides) -> torch.nn.Module:
    """MF-XS with N(0, std) weights everywhere (its adaLN-Zero init would make every output 0)."""
    torch.manual_seed(seed)
    model = build_model("MF-XS", **overrides)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, std)
    return model.eval()
