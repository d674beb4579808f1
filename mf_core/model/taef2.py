"""TAEF2: the tiny distilled autoencoder of the FLUX.2 latent space, as a frozen image tokenizer.

Written from the architecture that ``shared/weights/taef2/SOURCE.md`` describes (no upstream code):
3x3 convolutions of 64 channels, three stride-2 stages (8x downsampling), residual blocks of
three convolutions, the last encoder stage and the first decoder stage with a 1x1 bottleneck
"pool" (64 -> 256 -> 64, GroupNorm) added to the block input. The encoder maps RGB in [0, 1] to
raw FLUX.2 latents (B, 32, H/8, W/8), the decoder maps them back. Module indices match the key
names of the published weights, so ``load_state_dict`` takes the files as they are.

A folder holds ``taef2_encoder.safetensors`` and ``taef2_decoder.safetensors`` (read as
safetensors only; no pickle, no code from the folder).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from mf_core.errors import InputError

ENCODER_FILE = "taef2_encoder.safetensors"
DECODER_FILE = "taef2_decoder.safetensors"
LATENT_CHANNELS = 32
FACTOR = 8  # three stride-2 stages
_WIDTH = 64
_POOL_WIDTH = 256
_POOL_GROUPS = 4
_LATENT_LIMIT = 3.0  # the decoder first soft-clamps latents to (-3, 3): tanh(x / 3) * 3


def _conv(c_in: int, c_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)


class _Block(nn.Module):
    """x' = x (+ pool(x)); relu(conv(relu(conv(relu(conv(x'))))) + x')."""

    def __init__(self, pooled: bool) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(_WIDTH, _WIDTH), nn.ReLU(), _conv(_WIDTH, _WIDTH), nn.ReLU(),
                                  _conv(_WIDTH, _WIDTH))
        self.pool = nn.Sequential(nn.Conv2d(_WIDTH, _POOL_WIDTH, 1, bias=False),
                                  nn.GroupNorm(_POOL_GROUPS, _POOL_WIDTH), nn.ReLU(),
                                  nn.Conv2d(_POOL_WIDTH, _WIDTH, 1, bias=False)) if pooled else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return torch.relu(self.conv(x) + x)


class _SoftClamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / _LATENT_LIMIT) * _LATENT_LIMIT


def taef2_encoder() -> nn.Sequential:
    """(B, 3, H, W) RGB in [0, 1], H and W multiples of 8 -> raw FLUX.2 latents (B, 32, H/8, W/8)."""
    layers: list[nn.Module] = [_conv(3, _WIDTH), _Block(False)]
    for pooled in (False, False, True):
        layers += [_conv(_WIDTH, _WIDTH, stride=2, bias=False), *(_Block(pooled) for _ in range(3))]
    return nn.Sequential(*layers, _conv(_WIDTH, LATENT_CHANNELS))


def taef2_decoder() -> nn.Sequential:
    """Raw FLUX.2 latents (B, 32, h, w) -> (B, 3, 8h, 8w) RGB, about [0, 1] (clamp for display)."""
    layers: list[nn.Module] = [_SoftClamp(), _conv(LATENT_CHANNELS, _WIDTH), nn.ReLU()]
    for pooled, blocks in ((True, 3), (False, 3), (False, 3)):
        layers += [*(_Block(pooled) for _ in range(blocks)), nn.Upsample(scale_factor=2, mode="nearest"),
                   _conv(_WIDTH, _WIDTH, bias=False)]
    return nn.Sequential(*layers, _Block(False), _conv(_WIDTH, 3))


def is_taef2_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds the TAEF2 weight files (rather than a diffusers VAE)."""
    return (Path(folder) / ENCODER_FILE).is_file()


def load_taef2(folder: str | Path) -> tuple[nn.Sequential, nn.Sequential]:
    """The TAEF2 encoder and decoder of ``folder`` in float32, eval mode, frozen."""
    folder = Path(folder)
    parts = []
    for build, name in ((taef2_encoder, ENCODER_FILE), (taef2_decoder, DECODER_FILE)):
        path = folder / name
        if not path.is_file():
            raise InputError(f"TAEF2 folder {folder} lacks {name}; it needs {ENCODER_FILE} and {DECODER_FILE}")
        module = build()
        try:
            weights = {k: v.float() for k, v in load_file(path).items()}
            module.load_state_dict(weights)
        except (RuntimeError, OSError) as exc:  # wrong keys / shapes, or not a safetensors file
            raise InputError(f"{path} is not a TAEF2 {name.split('_')[1].split('.')[0]}: {exc}") from exc
        parts.append(module.requires_grad_(False).eval())
    return parts[0], parts[1]
