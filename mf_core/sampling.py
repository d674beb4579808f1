"""Euler ODE samplers over per-modality schedules: i2d, d2i and joint, with CFG and LiDAR guidance.

Both modalities follow x_t = (1 - t) x0 + t noise from t = 1 to t = 0 on the shifted time grid
of :func:`mf_core.flow.shift_time`. The image head gives the velocity directly; the depth head
gives x0, turned into a velocity v = (x_t - x0_hat) / max(t, 0.05) (METHOD.md, "Inference").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from mf_core.errors import InputError
from mf_core.flow import shift_time

MODES = ("i2d", "d2i", "joint")
MAX_STEPS = 50
# Default CFG scales per mode (METHOD.md): i2d is unguided, d2i and joint use 4.
DEFAULT_GUIDANCE = {"i2d": 1.0, "d2i": 4.0, "joint": 4.0}
# Floor of t in the depth velocity (x_t - x0) / t, so the last steps stay stable.
MIN_DEPTH_TIME = 0.05


@dataclass(frozen=True)
class SampleOutput:
    """Clean estimates at t = 0: image (B, 3, H, W) in [-1, 1] (in mode i2d the given image), depth (B, 1, H, W)
    encoded.

    For refine_head models also the last step's head terms and transformer depth
    (:class:`mf_core.model.dit.ModelOutput`), whose composition the final depth is.
    """

    image: torch.Tensor
    depth: torch.Tensor
    refine_terms: torch.Tensor | None = None
    transformer_log_depth: torch.Tensor | None = None


def time_grid(steps: int, mu: float = 1.1, sigma: float = 1.0) -> torch.Tensor:
    """Shifted times from 1 to 0 for ``steps`` Euler steps. Returns (steps + 1,) float32."""
    if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise InputError(f"steps must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
    return shift_time(torch.linspace(1.0, 0.0, steps + 1), mu, sigma)


def tilted_time(t: torch.Tensor, k: float = 5.0) -> torch.Tensor:
    """Joint mode's depth time f(t) = a t / (1 + (a - 1) t), a = 2^k; f(0) = 0, f(1) = 1.

    k > 0 keeps depth noisier than the image (image resolves first), k < 0 the reverse.
    """
    a = 2.0**k
    return a * t / (1 + (a - 1) * t)


def _mode_times(mode: str, t: torch.Tensor, joint_k: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(t_img, t_depth) of ``mode`` at sampler time ``t`` (a 0-d tensor)."""
    if mode == "i2d":
        return torch.zeros_like(t), t
    if mode == "d2i":
        return t, torch.zeros_like(t)
    return t, tilted_time(t, joint_k)


def _has_context_stream(model: nn.Module) -> bool:
    return bool(getattr(model.config, "context_dim", 0))


def _check_inputs(model: nn.Module, mode: str, image: torch.Tensor | None, depth: torch.Tensor | None,
                  size: tuple[int, int, int] | None, context: torch.Tensor | None) -> tuple[int, int, int]:
    if mode not in MODES:
        raise InputError(f"unknown sampling mode {mode!r}; use one of {MODES}")
    if mode == "i2d" and image is None:
        raise InputError("mode 'i2d' needs the image to condition on")
    if mode == "d2i" and depth is None:
        raise InputError("mode 'd2i' needs the (encoded) depth to condition on")
    if context is not None and not _has_context_stream(model):
        raise InputError("a context was given but the model has no context stream (config.context_dim = 0)")
    if image is not None and (image.ndim != 4 or image.shape[1] != 3):
        raise InputError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
    if depth is not None and (depth.ndim != 4 or depth.shape[1] != 1):
        raise InputError(f"depth must be (B, 1, H, W), got {tuple(depth.shape)}")
    given = image if image is not None else depth
    if given is not None:
        return given.shape[0], given.shape[2], given.shape[3]
    if size is None:
        raise InputError("mode 'joint' without an image or depth needs size=(batch, height, width)")
    return size


@torch.inference_mode()
def sample(
    model: nn.Module,
    mode: str,
    *,
    image: torch.Tensor | None = None,
    depth: torch.Tensor | None = None,
    size: tuple[int, int, int] | None = None,
    steps: int = MAX_STEPS,
    guidance_scale: float | None = None,
    context: torch.Tensor | None = None,
    joint_k: float = 5.0,
    mu: float = 1.1,
    sigma: float = 1.0,
    generator: torch.Generator | None = None,
    sparse_depth: torch.Tensor | None = None,
    sparse_mask: torch.Tensor | None = None,
    lidar_depth: torch.Tensor | None = None,
    lidar_mask: torch.Tensor | None = None,
) -> SampleOutput:
    """Run the Euler sampler in one of the modes.

    Args:
        model: a Modality Forcing model (``forward(image, depth, t_image, t_depth, context,
            sparse_depth, sparse_mask)`` -> ``image_velocity``, ``depth_x0``).
        mode: "i2d" (image given, t_img = 0), "d2i" (depth given, t_depth = 0) or "joint"
            (depth time = ``tilted_time(t_img, joint_k)``).
        image: (B, 3, H, W) in [-1, 1]; required for i2d.
        depth: (B, 1, H, W) encoded depth; required for d2i.
        size: (B, H, W) for joint mode without either input.
        steps: Euler steps, 1..50. One i2d step at t_depth = 1 returns the model's x0 prediction.
        guidance_scale: CFG scale with a zero context as unconditional; default per mode
            (DEFAULT_GUIDANCE). Applied only when the model has a context stream and a context is given.
        context: (B, L, context_dim) conditioning tokens, or None.
        generator: seeds the starting noise (a CPU generator works for any device).
        sparse_depth, sparse_mask: (B, 1, H, W) input of LiDAR-conditioned models, passed through.
        lidar_depth, lidar_mask: (B, 1, H, W) encoded LiDAR depth and bool mask for LiDAR guidance:
            at every step x0_hat at those pixels is replaced by the measurement before re-noising.

    Returns:
        SampleOutput with the final image and encoded depth (float32).
    """
    batch, height, width = _check_inputs(model, mode, image, depth, size, context)
    if (lidar_depth is None) != (lidar_mask is None):
        raise InputError("LiDAR guidance needs both lidar_depth and lidar_mask (encoded 0 is a valid depth)")
    scale = DEFAULT_GUIDANCE[mode] if guidance_scale is None else float(guidance_scale)
    use_cfg = context is not None and scale != 1.0
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype

    def noise(shape: tuple[int, ...]) -> torch.Tensor:
        drawn = torch.randn((batch, *shape), generator=generator,
                            device=generator.device if generator is not None else "cpu")
        return drawn.to(device)

    grid = time_grid(steps, mu, sigma).to(device)  # (steps + 1,)
    # The image flow runs in the model's image space: pixels, or latents of a frozen VAE.
    if mode == "i2d":
        x_img = model.encode_image(image.to(device, dtype)).float()  # (B, C, h, w)
    else:
        x_img = noise(model.image_shape(height, width))  # (B, C, h, w)
    x_depth = depth.float().to(device) if mode == "d2i" else noise((1, height, width))  # (B, 1, H, W)
    extra = {"sparse_depth": sparse_depth, "sparse_mask": sparse_mask}
    extra = {k: v.to(device, dtype) for k, v in extra.items() if v is not None}
    context = None if context is None else context.to(device, dtype)
    if lidar_depth is not None:
        lidar_depth, lidar_mask = lidar_depth.float().to(device), lidar_mask.bool().to(device)

    last: dict = {}

    def predict(t_img: torch.Tensor, t_depth: torch.Tensor, ctx: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(x_img.to(dtype), x_depth.to(dtype), t_img.to(dtype), t_depth.to(dtype), context=ctx, **extra)
        last["terms"], last["transformer"] = out.refine_terms, out.transformer_log_depth
        return out.image_velocity.float(), out.depth_x0.float()  # (B, 3, H, W), (B, 1, H, W)

    for t, t_next in itertools.pairwise(grid):
        t_img, t_depth = _mode_times(mode, t, joint_k)
        t_img_next, t_depth_next = _mode_times(mode, t_next, joint_k)
        t_img_b, t_depth_b = t_img.expand(batch), t_depth.expand(batch)  # (B,), (B,)

        velocity, x0_hat = predict(t_img_b, t_depth_b, context)
        if use_cfg:
            velocity_u, x0_u = predict(t_img_b, t_depth_b, torch.zeros_like(context))
            velocity = velocity_u + scale * (velocity - velocity_u)
            x0_hat = x0_u + scale * (x0_hat - x0_u)
        if lidar_depth is not None:
            x0_hat = torch.where(lidar_mask, lidar_depth, x0_hat)

        if mode != "i2d":
            x_img = x_img + (t_img_next - t_img) * velocity
        if mode != "d2i":
            depth_velocity = (x_depth - x0_hat) / t_depth.clamp(min=MIN_DEPTH_TIME)
            x_depth = x_depth + (t_depth_next - t_depth) * depth_velocity
    # In i2d the image is the caller's: decoding its latents again would only cost a VAE decoder pass (about as
    # much as the encoder: 0.5 s per 320x240 frame on one core here for TAEF2) to return an approximation of it.
    image_out = image.float().to(device) if mode == "i2d" else model.decode_image(x_img.to(dtype)).float()
    return SampleOutput(image=image_out, depth=x_depth,
                        refine_terms=last["terms"], transformer_log_depth=last["transformer"])
