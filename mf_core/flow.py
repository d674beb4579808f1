"""Per-modality flow matching: time density, training mix, noising and the training losses.

Each modality (image, depth) has its own time t in [0, 1]; t = 0 is clean data, t = 1 pure
noise, and x_t = (1 - t) * x0 + t * noise (METHOD.md, "Flow matching, per modality").
The image head predicts the velocity noise - x0; the depth head predicts clean depth x0 in
model space (see :mod:`mf_core.depth_codec`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mf_core.depth_codec import decode_depth, encode_depth
from mf_core.errors import InputError

# Training modes drawn per sample.
JOINT, I2D, D2I = 0, 1, 2


def shift_time(t: torch.Tensor, mu: float = 1.1, sigma: float = 1.0) -> torch.Tensor:
    """Shifted time t' = e^mu / (e^mu + (1/t - 1)^sigma), biased toward noise for mu > 0.

    Written as e^mu t^sigma / (e^mu t^sigma + (1 - t)^sigma), which is the same function
    but exact at t = 0 and t = 1 (no division by zero). Any shape; values in [0, 1].
    """
    t = t.clamp(0.0, 1.0)
    tilted = torch.exp(torch.tensor(mu, dtype=t.dtype, device=t.device)) * t.pow(sigma)
    return tilted / (tilted + (1 - t).pow(sigma))


@dataclass(frozen=True)
class TrainingMix:
    """How each training sample's two times are drawn, and how LiDAR input is split.

    Attributes:
        p_i2d: probability that the image is held clean (t_img = 0): image -> depth.
        p_d2i: probability that the depth is held clean (t_depth = 0): depth -> image.
            The rest (1 - p_i2d - p_d2i) noise both modalities.
        joint_times: "independent" (default: the paper does not say, independence covers
            every pair of times the samplers visit) or "tied" (t_depth = t_img).
        density: "uniform" (u ~ U(0, 1)) or "logit_normal" (u = sigmoid(N(0, 1))), then shifted.
        mu, sigma: the time shift (METHOD.md: mu = 1.1, sigma = 1).
        sparse_input_fraction: LiDAR-conditioned models only: the fraction of each sweep's
            points given as input; the others stay as depth targets (the split is made with the
            training view, in :func:`mf_training.train.data.split_lidar`).
        segment_holdout_prob: probability that a sample's held-out points are whole scan-line
            segments (tiles of SEGMENT_TILE pixels) instead of single random points. Single points
            always have a fed neighbour on their own scan line one point away, which teaches copying
            along rows: streaks between the lines, where no point is ever scored. Segments make the
            targets look like the pixels between lines that inference must fill.
        line_drop_prob: probability that a sample's sweep is first thinned to every 2nd or 3rd scan
            line (a LiDAR with half or a third of the beams: :func:`mf_training.train.data.thin_scan_lines`);
            the dropped lines become targets, so the model is supervised across wider gaps than its
            own sensor's.
        sparse_drop_prob: probability of giving no LiDAR input at all to a sample, so the
            conditioned model still works monocular.
        context_drop_prob: probability of zeroing a sample's context, which teaches the
            unconditional prediction that classifier-free guidance needs (sampler: zero context).
        image_only: image pretraining: depth is held at pure noise (t_depth = 1) for every
            sample and only the image is learned; p_i2d and p_d2i are then ignored.
    """

    p_i2d: float = 0.2
    p_d2i: float = 0.2
    joint_times: str = "independent"
    density: str = "uniform"
    mu: float = 1.1
    sigma: float = 1.0
    sparse_input_fraction: float = 0.5
    segment_holdout_prob: float = 0.0
    line_drop_prob: float = 0.0
    sparse_drop_prob: float = 0.2
    context_drop_prob: float = 0.1
    image_only: bool = False

    def __post_init__(self) -> None:
        if min(self.p_i2d, self.p_d2i) < 0 or self.p_i2d + self.p_d2i > 1:
            raise InputError(f"p_i2d={self.p_i2d}, p_d2i={self.p_d2i}: need both >= 0 with a sum <= 1")
        if self.joint_times not in ("independent", "tied"):
            raise InputError(f"joint_times must be 'independent' or 'tied', got {self.joint_times!r}")
        if self.density not in ("uniform", "logit_normal"):
            raise InputError(f"density must be 'uniform' or 'logit_normal', got {self.density!r}")
        if self.sigma <= 0:
            raise InputError(f"time shift sigma must be positive, got {self.sigma}")
        for name in ("sparse_input_fraction", "segment_holdout_prob", "line_drop_prob", "sparse_drop_prob",
                     "context_drop_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"{name} must be in [0, 1], got {getattr(self, name)}")


DEPTH_LOSSES = ("l1", "l2", "huber", "relative_l2")
# per_prior: the smallest prior loss a sample's loss is divided by (relative_l2: a 0.1 % RMS error), so that a
# sample the prior already gets right does not blow up.
PRIOR_LOSS_FLOOR = 1e-6


@dataclass(frozen=True)
class LossConfig:
    """Weights and forms of the loss terms.

    Attributes:
        depth_loss: "l1" (default; METHOD.md), "l2" or "huber", on x0 in model space; or
            "relative_l2": squared error of depth in units of the fed LiDAR's mean (decoded x0), the
            loss whose mean is the RMSE the benchmarks report: it weighs the rare large errors at
            depth edges, which an L1 in model space all but ignores.
        huber_delta: the Huber transition, in model-space units (range 2).
        image_weight, depth_weight: multipliers of the two flow-matching terms.
        distill_hi, distill_lo: self-distillation weight lambda_hi * t_depth + lambda_lo * (1 - t_depth);
            only used when a teacher is given. The paper gives no values; these are our start.
        per_prior: refine_head models: each sample's depth loss divided by its LiDAR prior's loss on the
            same targets (``ModelOutput.prior_x0``, not differentiated), so a sample counts by how much the
            model improves on its prior, as the benchmark's ratios do, not by its depth range. Without it
            the few outdoor frames with large relative errors dominate the indoor ones. Samples without
            LiDAR keep their plain loss.
        transformer_weight: refine_head models: weight of the same depth loss on the transformer's own depth
            (``ModelOutput.transformer_log_depth``) in samples fed LiDAR. There the composed depth is the
            prior plus the head's choice among LiDAR neighbours and the transformer's depth is only an input
            of the head, so without this term it is trained only where no LiDAR is fed. 0 = off.
    """

    depth_loss: str = "l1"
    huber_delta: float = 0.05
    image_weight: float = 1.0
    depth_weight: float = 1.0
    distill_hi: float = 1.0
    distill_lo: float = 0.1
    per_prior: bool = False
    transformer_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.depth_loss not in DEPTH_LOSSES:
            raise InputError(f"depth_loss must be one of {', '.join(DEPTH_LOSSES)}, got {self.depth_loss!r}")
        if self.huber_delta <= 0:
            raise InputError(f"huber_delta must be positive, got {self.huber_delta}")
        if self.transformer_weight < 0:
            raise InputError(f"transformer_weight must be >= 0 (0 = off), got {self.transformer_weight}")


def sample_times(n: int, mix: TrainingMix, generator: torch.Generator, device: torch.device | str = "cpu"
                 ) -> torch.Tensor:
    """n times from the shifted density of ``mix``. Returns (n,) float32 in [0, 1]."""
    if mix.density == "uniform":
        u = torch.rand(n, generator=generator, device=device)  # (n,)
    else:
        u = torch.sigmoid(torch.randn(n, generator=generator, device=device))  # (n,)
    return shift_time(u, mix.mu, mix.sigma)


def sample_training_times(n: int, mix: TrainingMix, generator: torch.Generator, device: torch.device | str = "cpu"
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw each sample's mode (JOINT, I2D, D2I) and its two times.

    Returns mode (n,) int64, t_img (n,) and t_depth (n,) float32; the clean modality's time is 0.
    """
    u = torch.rand(n, generator=generator, device=device)  # (n,)
    mode = torch.full((n,), JOINT, dtype=torch.int64, device=device)
    if mix.image_only:
        return mode, sample_times(n, mix, generator, device), torch.ones(n, device=device)
    mode[u < mix.p_i2d] = I2D
    mode[(u >= mix.p_i2d) & (u < mix.p_i2d + mix.p_d2i)] = D2I
    t_img = sample_times(n, mix, generator, device)  # (n,)
    t_depth = t_img.clone() if mix.joint_times == "tied" else sample_times(n, mix, generator, device)
    t_img = torch.where(mode == I2D, 0.0, t_img)
    t_depth = torch.where(mode == D2I, 0.0, t_depth)
    return mode, t_img, t_depth


def noise_sample(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, valid: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """x_t = (1 - t) x0 + t noise per sample; pixels where ``valid`` is False get pure noise.

    x0, noise: (B, C, H, W); t: (B,); valid: optional (B, 1, H, W) bool. Returns (B, C, H, W).
    """
    t4 = t.view(-1, 1, 1, 1).to(x0.dtype)
    x_t = (1 - t4) * x0 + t4 * noise  # (B, C, H, W)
    if valid is None:
        return x_t
    return torch.where(valid, x_t, noise)


def drop_context(context: torch.Tensor | None, mix: TrainingMix, generator: torch.Generator
                 ) -> torch.Tensor | None:
    """Zero each sample's (B, L, D) context with probability ``mix.context_drop_prob``; None stays None."""
    if context is None:
        return None
    keep = torch.rand(context.shape[0], generator=generator, device=context.device) >= mix.context_drop_prob
    return torch.where(keep.view(-1, 1, 1), context, 0.0)


def _masked_mean_per_sample(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, C, H, W) ``values`` over ``mask`` per sample -> (B,); 0 for an empty mask.

    torch.where (not multiplication) keeps the masked-out entries out of the graph, so they
    get exactly zero gradient even where ``values`` is inf or NaN.
    """
    mask = mask.expand_as(values)
    total = torch.where(mask, values, 0.0).sum(dim=(1, 2, 3))  # (B,)
    return total / mask.sum(dim=(1, 2, 3)).clamp(min=1)


def _weighted_mean(per_sample: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of (B,) ``per_sample`` with (B,) weights; 0 (still in the graph) when all weights are 0."""
    return (per_sample * weight).sum() / weight.sum().clamp(min=1e-8)


def _depth_error(pred: torch.Tensor, target: torch.Tensor, config: LossConfig) -> torch.Tensor:
    if config.depth_loss == "l1":
        return (pred - target).abs()
    if config.depth_loss == "l2":
        return (pred - target).square()
    if config.depth_loss == "relative_l2":
        return (decode_depth(pred) - decode_depth(target)).square()
    return F.huber_loss(pred, target, reduction="none", delta=config.huber_delta)


def _check_batch(batch: dict[str, torch.Tensor]) -> None:
    missing = [k for k in ("image", "depth", "depth_valid") if k not in batch]
    if missing:
        raise InputError(f"training batch is missing {missing}: need image, depth (encoded), depth_valid")
    b, _, h, w = batch["image"].shape
    if batch["image"].shape[1] != 3:
        raise InputError(f"batch image must be (B, 3, H, W), got {tuple(batch['image'].shape)}")
    for key in ("depth", "depth_valid", "sparse_depth", "sparse_mask"):
        if key in batch and tuple(batch[key].shape) != (b, 1, h, w):
            raise InputError(f"batch {key} must be {(b, 1, h, w)} like the image, got {tuple(batch[key].shape)}")


def flow_matching_losses(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    mix: TrainingMix,
    generator: torch.Generator,
    teacher: nn.Module | None = None,
    config: LossConfig | None = None,
) -> dict[str, torch.Tensor]:
    """One training step's losses for a Modality Forcing model.

    Args:
        model: called as ``model(image, depth, t_image, t_depth, context=, sparse_depth=, sparse_mask=)``
            returning ``image_velocity`` (B,3,H,W) and ``depth_x0`` (B,1,H,W).
        batch: ``image`` (B,3,H,W) pixels in [-1, 1] (a VAE model encodes them here);
            ``depth`` (B,1,H,W) encoded (mf_core.frame_codec);
            ``depth_valid`` (B,1,H,W) bool; optional ``context`` (B,L,D); for LiDAR-conditioned
            models ``sparse_depth``/``sparse_mask`` (B,1,H,W): the fed LiDAR, encoded with the scale
            the target is (:func:`mf_training.train.data.make_example`); without them, no LiDAR is fed.
        mix: how modes and times are drawn.
        generator: seeds modes, times, noise and the LiDAR split.
        teacher: optional frozen model for the self-distillation term on the image velocity.
        config: loss forms and weights.

    Returns:
        dict of scalars: ``loss`` (the total to backpropagate), ``image_velocity``, ``depth_x0``,
        ``distill`` (when a teacher is given); detached logs ``frac_i2d``, ``frac_d2i``,
        ``frac_joint``, ``t_img_mean``, ``t_depth_mean``, ``depth_valid_frac``.
    """
    config = config or LossConfig()
    _check_batch(batch)
    with torch.no_grad():  # identity for pixel tokens; a frozen VAE otherwise
        image = model.encode_image(batch["image"])  # (B, C, h, w)
    depth = batch["depth"].float()  # (B, 1, H, W)
    valid = batch["depth_valid"].bool()  # (B, 1, H, W)
    device = image.device
    b = image.shape[0]

    mode, t_img, t_depth = sample_training_times(b, mix, generator, device)  # (B,) each
    image_noise = torch.randn(image.shape, generator=generator, device=device, dtype=image.dtype)
    depth_noise = torch.randn(depth.shape, generator=generator, device=device)
    image_t = noise_sample(image, image_noise, t_img)  # (B, 3, H, W)
    depth_t = noise_sample(depth, depth_noise, t_depth, valid)  # (B, 1, H, W)

    inputs = {"context": drop_context(batch.get("context"), mix, generator)}
    target_mask = valid
    if getattr(model.config, "depth_conditioned", False) and "sparse_mask" in batch:
        # The fed LiDAR, split from the sweep with the view (its points are never targets).
        inputs["sparse_depth"] = batch["sparse_depth"].float()
        inputs["sparse_mask"] = batch["sparse_mask"].bool()

    out = model(image_t, depth_t, t_img, t_depth, **inputs)

    image_noised = (mode != I2D).float()  # (B,)
    depth_noised = (mode != D2I).float()  # (B,)
    image_target = image_noise - image  # (B, 3, H, W)
    image_mse = (out.image_velocity.float() - image_target.float()).square().mean(dim=(1, 2, 3))  # (B,)
    depth_err = _depth_error(out.depth_x0.float(), depth, config)  # (B, 1, H, W)
    depth_per_sample = _masked_mean_per_sample(depth_err, target_mask)  # (B,)
    if config.per_prior:
        if out.prior_x0 is None:
            raise InputError("loss.per_prior divides by the LiDAR prior's loss: it needs a refine_head model")
        prior_x0 = out.prior_x0.float().detach()  # (B, 1, H, W), NaN in samples without LiDAR
        has_prior = torch.isfinite(prior_x0).flatten(1).all(dim=1)  # (B,)
        prior_err = _depth_error(torch.nan_to_num(prior_x0), depth, config)
        prior_per_sample = _masked_mean_per_sample(prior_err, target_mask).clamp(min=PRIOR_LOSS_FLOOR)  # (B,)
        depth_per_sample = torch.where(has_prior, depth_per_sample / prior_per_sample, depth_per_sample)
    has_target = (target_mask.sum(dim=(1, 2, 3)) > 0).float()  # (B,)

    losses = {
        "image_velocity": _weighted_mean(image_mse, image_noised),
        "depth_x0": _weighted_mean(depth_per_sample, depth_noised * has_target),
    }
    total = config.image_weight * losses["image_velocity"] + config.depth_weight * losses["depth_x0"]
    if config.transformer_weight:
        if out.transformer_log_depth is None or out.prior_x0 is None:
            raise InputError("loss.transformer_weight trains the transformer's own depth under the refinement "
                             "head: it needs a refine_head model")
        fed_lidar = torch.isfinite(out.prior_x0).flatten(1).all(dim=1).float()  # (B,)
        own, _ = encode_depth(out.transformer_log_depth.float().exp(), scale=torch.ones(b, device=device))
        own_per_sample = _masked_mean_per_sample(_depth_error(own, depth, config), target_mask)  # (B,)
        losses["transformer_depth"] = _weighted_mean(own_per_sample, depth_noised * has_target * fed_lidar)
        total = total + config.transformer_weight * losses["transformer_depth"]
    if teacher is not None:
        with torch.no_grad():
            teacher_velocity = teacher(image_t, depth_t, t_img, t_depth, **inputs).image_velocity.float()
        distill_mse = (out.image_velocity.float() - teacher_velocity).square().mean(dim=(1, 2, 3))  # (B,)
        weight = config.distill_hi * t_depth + config.distill_lo * (1 - t_depth)  # (B,)
        losses["distill"] = (weight * distill_mse).mean()
        total = total + losses["distill"]
    losses["loss"] = total
    logs = {
        "frac_i2d": (mode == I2D).float().mean(),
        "frac_d2i": (mode == D2I).float().mean(),
        "frac_joint": (mode == JOINT).float().mean(),
        "t_img_mean": t_img.mean(),
        "t_depth_mean": t_depth.mean(),
        "depth_valid_frac": valid.float().mean(),
    }
    return losses | {k: v.detach() for k, v in logs.items()}
