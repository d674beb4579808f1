"""Optional frozen VAE image tokenizer: a local diffusers ``AutoencoderKL`` or ``AutoencoderKLFlux2`` folder,
or a TAEF2 folder (:mod:`mf_core.model.taef2`, the tiny distilled FLUX.2 autoencoder).

With ``image_tokenizer="vae"`` the image flow runs in this VAE's latent space (as in the
paper): the model's image input and velocity are latents (B, C, H/f, W/f), while depth
stays in pixel space on the same token grid. diffusers is imported only here, lazily.

Latent normalisation follows the model family the VAE belongs to:

- ``AutoencoderKL`` (SD / FLUX.1): ``(z - shift_factor) * scaling_factor``.
- ``AutoencoderKLFlux2`` (FLUX.2): the FLUX.2 pipelines fold 2x2 latent pixels into channels
  (order channel, row, column) and standardise each of those 4C channels with the VAE's
  batch-norm running statistics. Here that standardisation is applied to the unfolded latent
  map (the statistic of folded channel (c, i, j) on the pixels at row 2y+i, column 2x+j), so a
  model with 2x2 image patches sees exactly the tokens FLUX.2's transformer sees.
- TAEF2: raw FLUX.2 latents, standardised the same way with the statistics of a FLUX.2 VAE folder
  (``statistics``: read from its safetensors, no diffusers needed), or left raw without one. It
  needs no diffusers at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from mf_core.errors import InputError
from mf_core.model.taef2 import FACTOR as TAEF2_FACTOR
from mf_core.model.taef2 import LATENT_CHANNELS as TAEF2_CHANNELS
from mf_core.model.taef2 import is_taef2_folder, load_taef2

VAE_CLASSES = ("AutoencoderKL", "AutoencoderKLFlux2")
FLUX2_FOLD = 2  # AutoencoderKLFlux2's latent patch (its config's patch_size), as FLUX.2 packs latents


def vae_class_name(folder: str | Path) -> str:
    """The diffusers class a VAE folder's config.json names; InputError unless it is one of VAE_CLASSES."""
    folder = Path(folder)
    path = folder / "config.json"
    if not path.is_file():
        raise InputError(
            f"VAE folder {folder} has no config.json; pass a local diffusers AutoencoderKL or AutoencoderKLFlux2 "
            "folder (saved with save_pretrained) as vae_path"
        )
    try:
        name = json.loads(path.read_text()).get("_class_name", "AutoencoderKL")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise InputError(f"{path} is not a JSON object ({exc}); re-save the VAE with save_pretrained") from exc
    if name not in VAE_CLASSES:
        raise InputError(f"{path} describes a {name!r}; the image tokenizer takes one of {', '.join(VAE_CLASSES)}")
    return name


def flux2_latent_statistics(folder: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (4C,) of the 2x2-folded latent channels of the AutoencoderKLFlux2 at ``folder``: its
    batch-norm running statistics, read from the safetensors weights without building the VAE."""
    folder = Path(folder)
    if vae_class_name(folder) != "AutoencoderKLFlux2":
        raise InputError(f"{folder} is not an AutoencoderKLFlux2 folder: FLUX.2 latent statistics come from the "
                         "vae/ folder of a FLUX.2 download")
    eps = float(json.loads((folder / "config.json").read_text()).get("batch_norm_eps", 1e-4))
    keys = {"bn.running_mean": None, "bn.running_var": None}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(path, "pt") as handle:
            names = set(handle.keys())
            for key in keys:
                if key in names:
                    keys[key] = handle.get_tensor(key).float()
    missing = [k for k, v in keys.items() if v is None]
    if missing:
        raise InputError(f"{folder}: no {', '.join(missing)} in its safetensors weights; re-save the FLUX.2 VAE "
                         "with save_pretrained")
    return keys["bn.running_mean"], torch.sqrt(keys["bn.running_var"] + eps)


def load_autoencoder(path: str | Path) -> nn.Module:
    """Load the VAE of a local folder (config.json + safetensors weights only, no pickle)."""
    folder = Path(path)
    name = vae_class_name(folder)
    try:
        import diffusers
    except ImportError as exc:
        raise InputError('image_tokenizer="vae" needs the diffusers package; install it or use "pixel"') from exc
    try:
        return getattr(diffusers, name).from_pretrained(folder, use_safetensors=True, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"could not load the VAE from {folder}: {exc}") from exc


class VaeTokenizer(nn.Module):
    """Frozen VAE: image (B, 3, H, W) in [-1, 1] <-> normalised latents (B, C, H/f, W/f).

    ``statistics``: TAEF2 only, the FLUX.2 VAE folder whose batch-norm statistics standardise its latents.
    """

    def __init__(self, path: str | Path, statistics: str | Path | None = None):
        super().__init__()
        self.taef2 = is_taef2_folder(path)
        if statistics is not None and not self.taef2:
            raise InputError(f"vae_statistics_path is for TAEF2 tokenizers; {path} is a diffusers VAE with its own")
        self.folded: tuple[torch.Tensor, torch.Tensor] | None = None  # mean, std (4C,) of FLUX.2 folded channels
        if self.taef2:
            self.encoder, self.decoder = load_taef2(path)
            self.channels, self.factor, self.flux2 = TAEF2_CHANNELS, TAEF2_FACTOR, statistics is not None
            if statistics is not None:
                self.folded = flux2_latent_statistics(statistics)
                if self.folded[0].numel() != self.channels * FLUX2_FOLD**2:
                    raise InputError(f"{statistics}: statistics of {self.folded[0].numel()} folded channels, TAEF2 "
                                     f"latents fold to {self.channels * FLUX2_FOLD**2}: not a FLUX.2 VAE")
            return
        self.vae = load_autoencoder(path).requires_grad_(False).eval()
        config = self.vae.config
        self.channels = int(config.latent_channels)
        self.factor = 2 ** (len(config.block_out_channels) - 1)  # one 2x downsample per extra level
        self.flux2 = type(self.vae).__name__ == "AutoencoderKLFlux2"
        if self.flux2:
            if tuple(config.patch_size) != (FLUX2_FOLD, FLUX2_FOLD):
                raise InputError(f"{path}: AutoencoderKLFlux2 with patch_size {tuple(config.patch_size)}; "
                                 f"FLUX.2 folds {FLUX2_FOLD}x{FLUX2_FOLD}")
            bn_eps = float(config.batch_norm_eps)
            self.folded = (self.vae.bn.running_mean, torch.sqrt(self.vae.bn.running_var + bn_eps))
        else:
            self.scaling = float(config.scaling_factor)
            self.shift = float(config.shift_factor or 0.0)

    def train(self, mode: bool = True) -> VaeTokenizer:
        """The VAE stays in eval mode: it is frozen."""
        super().train(mode)
        for module in self.children():
            module.eval()
        return self

    def _flux2_statistics(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of the folded channels, unfolded to maps that tile ``like`` (B, C, h, w)."""
        folded = (1, self.channels * FLUX2_FOLD**2, like.shape[2] // FLUX2_FOLD, like.shape[3] // FLUX2_FOLD)
        mean, std = (s.to(like.device).view(1, -1, 1, 1).expand(folded) for s in self.folded)
        return (F.pixel_shuffle(mean, FLUX2_FOLD).to(like.dtype),  # (1, C, h, w)
                F.pixel_shuffle(std, FLUX2_FOLD).to(like.dtype))

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, C, H/f, W/f), the posterior mode, normalised to ~unit variance."""
        if self.taef2:
            latents = self.encoder((image.float() + 1.0) / 2.0)  # TAEF2 reads RGB in [0, 1]
        else:
            latents = self.vae.encode(image.to(self.vae.dtype)).latent_dist.mode()  # (B, C, h, w)
        if self.flux2:
            mean, std = self._flux2_statistics(latents)
            return (latents - mean) / std
        return latents if self.taef2 else (latents - self.shift) * self.scaling

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) normalised latents -> (B, 3, h*f, w*f) image in about [-1, 1]."""
        if self.flux2:
            mean, std = self._flux2_statistics(latents)
            latents = latents * std + mean
        if self.taef2:
            return self.decoder(latents.float()) * 2.0 - 1.0
        latents = latents.to(self.vae.dtype)
        if self.flux2:
            return self.vae.decode(latents).sample
        return self.vae.decode(latents / self.scaling + self.shift).sample
