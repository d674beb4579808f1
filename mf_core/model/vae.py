"""Optional frozen VAE image tokenizer: a local diffusers ``AutoencoderKL`` folder.

With ``image_tokenizer="vae"`` the image flow runs in this VAE's latent space (as in the
paper): the model's image input and velocity are latents (B, C, H/f, W/f), while depth
stays in pixel space on the same token grid. diffusers is imported only here, lazily.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mf_core.errors import InputError


def load_autoencoder(path: str | Path) -> nn.Module:
    """Load an AutoencoderKL from a local folder (config.json + safetensors weights only, no pickle)."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise InputError(
            f"VAE folder {folder} has no config.json; pass a local diffusers AutoencoderKL folder "
            "(saved with save_pretrained) as vae_path"
        )
    try:
        from diffusers import AutoencoderKL
    except ImportError as exc:
        raise InputError('image_tokenizer="vae" needs the diffusers package; install it or use "pixel"') from exc
    try:
        return AutoencoderKL.from_pretrained(folder, use_safetensors=True, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"could not load the VAE from {folder}: {exc}") from exc


class VaeTokenizer(nn.Module):
    """Frozen AutoencoderKL: image (B, 3, H, W) in [-1, 1] <-> normalised latents (B, C, H/f, W/f)."""

    def __init__(self, path: str | Path):
        super().__init__()
        self.vae = load_autoencoder(path).requires_grad_(False).eval()
        config = self.vae.config
        self.channels: int = int(config.latent_channels)
        self.factor: int = 2 ** (len(config.block_out_channels) - 1)  # one 2x downsample per extra level
        self.scaling = float(config.scaling_factor)
        self.shift = float(config.shift_factor or 0.0)

    def train(self, mode: bool = True) -> VaeTokenizer:
        """The VAE stays in eval mode: it is frozen."""
        super().train(mode)
        self.vae.eval()
        return self

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, C, H/f, W/f), the posterior mode, shifted and scaled to ~unit variance."""
        latents = self.vae.encode(image.to(self.vae.dtype)).latent_dist.mode()  # (B, C, h, w)
        return (latents - self.shift) * self.scaling

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) normalised latents -> (B, 3, h*f, w*f) image in about [-1, 1]."""
        return self.vae.decode(latents.to(self.vae.dtype) / self.scaling + self.shift).sample
