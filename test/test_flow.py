"""Per-modality flow matching: time density, training mix, noising and losses (with the real MF-XS)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import random_model

from mf_core.errors import InputError
from mf_core.flow import (
    D2I,
    I2D,
    JOINT,
    LossConfig,
    TrainingMix,
    flow_matching_losses,
    noise_sample,
    sample_times,
    sample_training_times,
    shift_time,
)


def _batch(b: int = 4, h: int = 16, w: int = 24, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    valid = torch.rand((b, 1, h, w), generator=generator) > 0.6
    depth = torch.where(valid, torch.rand((b, 1, h, w), generator=generator) * 1.8 - 1, 0.0)
    image = torch.rand((b, 3, h, w), generator=generator) * 2 - 1
    return {"image": image, "depth": depth, "depth_valid": valid}


def _capture_outputs(model: torch.nn.Module) -> dict:
    """Forward hook that keeps the model's inputs and output, with gradients on the depth x0."""
    seen: dict = {}

    def hook(module, args, kwargs, output):
        output.depth_x0.retain_grad()
        seen.update(args=args, kwargs=kwargs, output=output)

    model.register_forward_hook(hook, with_kwargs=True)
    return seen


def test_shift_time_formula_and_exact_endpoints():
    t = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    shifted = shift_time(t, mu=1.1, sigma=1.0)
    assert shifted[0] == 0 and shifted[-1] == 1
    for value, expected in zip(shifted[1:-1].tolist(), [0.1, 0.5, 0.9], strict=True):
        assert value == pytest.approx(math.exp(1.1) / (math.exp(1.1) + (1 / expected - 1)), rel=1e-6)
    assert shift_time(torch.tensor([0.3]), mu=0.0).item() == pytest.approx(0.3)


def test_shifted_density_is_biased_toward_noise():
    generator = torch.Generator().manual_seed(0)
    times = sample_times(200_000, TrainingMix(), generator)
    # E[t'] for uniform t, by numerical integration of the same map.
    grid = (torch.arange(100_000, dtype=torch.float64) + 0.5) / 100_000
    expected = shift_time(grid, 1.1).mean().item()
    assert times.mean().item() == pytest.approx(expected, abs=0.003)
    assert times.mean() > 0.6
    assert sample_times(100_000, TrainingMix(mu=0.0), generator).mean().item() == pytest.approx(0.5, abs=0.005)
    logit_normal = sample_times(100_000, TrainingMix(density="logit_normal"), generator)
    assert logit_normal.mean() > 0.6 and logit_normal.min() >= 0 and logit_normal.max() <= 1


def test_training_mix_frequencies_and_clean_times():
    generator = torch.Generator().manual_seed(1)
    mode, t_img, t_depth = sample_training_times(40_000, TrainingMix(), generator)
    assert (mode == I2D).float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert (mode == D2I).float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert torch.all(t_img[mode == I2D] == 0) and torch.all(t_depth[mode == D2I] == 0)
    joint = mode == JOINT
    assert torch.all(t_img[joint] > 0) and torch.all(t_depth[joint] > 0)
    correlation = torch.corrcoef(torch.stack([t_img[joint], t_depth[joint]]))[0, 1]
    assert abs(correlation.item()) < 0.03  # independent by default
    _, t_img, t_depth = sample_training_times(1000, TrainingMix(joint_times="tied", p_i2d=0, p_d2i=0), generator)
    assert torch.equal(t_img, t_depth)


def test_invalid_mix_is_an_input_error():
    with pytest.raises(InputError, match="sum <= 1"):
        TrainingMix(p_i2d=0.7, p_d2i=0.5)
    with pytest.raises(InputError, match="joint_times"):
        TrainingMix(joint_times="sometimes")
    with pytest.raises(InputError, match="depth_loss"):
        LossConfig(depth_loss="l3")


def test_invalid_depth_pixels_get_pure_noise():
    batch = _batch()
    noise = torch.randn(batch["depth"].shape)
    t = torch.tensor([0.0, 0.3, 0.7, 1.0])
    x_t = noise_sample(batch["depth"], noise, t, batch["depth_valid"])
    valid = batch["depth_valid"]
    assert torch.equal(x_t[~valid], noise[~valid])
    expected = (1 - t.view(-1, 1, 1, 1)) * batch["depth"] + t.view(-1, 1, 1, 1) * noise
    torch.testing.assert_close(x_t[valid], expected[valid])


def test_depth_loss_value_and_zero_gradient_at_invalid_pixels():
    model = random_model()
    seen = _capture_outputs(model)
    batch = _batch()
    mix = TrainingMix(p_i2d=1.0, p_d2i=0.0)  # depth noised for every sample
    losses = flow_matching_losses(model, batch, mix, torch.Generator().manual_seed(0))
    losses["loss"].backward()

    valid, x0 = batch["depth_valid"], seen["output"].depth_x0
    grad = x0.grad
    assert torch.all(grad[~valid] == 0)
    assert torch.count_nonzero(grad[valid]) == valid.sum()
    per_sample = [(x0[i] - batch["depth"][i]).abs()[valid[i]].mean() for i in range(4)]
    assert losses["depth_x0"].item() == pytest.approx(torch.stack(per_sample).mean().item(), rel=1e-5)
    assert losses["image_velocity"].item() == 0.0  # image held clean in every sample
    assert losses["frac_i2d"].item() == 1.0


def test_each_loss_is_excluded_when_its_modality_is_clean():
    batch = _batch()
    model = random_model()
    losses = flow_matching_losses(model, batch, TrainingMix(p_i2d=0.0, p_d2i=1.0), torch.Generator().manual_seed(0))
    assert losses["depth_x0"].item() == 0.0 and losses["image_velocity"].item() > 0
    losses["loss"].backward()
    # With depth clean everywhere, the depth-only decoder and head receive no gradient.
    head = [p.grad for n, p in model.named_parameters() if n.startswith("depth_final")]
    assert head and all(g is None or torch.all(g == 0) for g in head)


def test_l2_and_huber_losses_and_self_distillation():
    batch = _batch()
    model, teacher = random_model(0), random_model(1)
    mix = TrainingMix(p_i2d=0.0, p_d2i=0.0)
    l1 = flow_matching_losses(model, batch, mix, torch.Generator().manual_seed(0))
    l2 = flow_matching_losses(model, batch, mix, torch.Generator().manual_seed(0), config=LossConfig(depth_loss="l2"))
    huber = flow_matching_losses(model, batch, mix, torch.Generator().manual_seed(0),
                                 config=LossConfig(depth_loss="huber"))
    assert l1["image_velocity"] == l2["image_velocity"]
    assert len({l1["depth_x0"].item(), l2["depth_x0"].item(), huber["depth_x0"].item()}) == 3
    distilled = flow_matching_losses(model, batch, mix, torch.Generator().manual_seed(0), teacher=teacher)
    assert distilled["distill"].item() > 0
    assert distilled["loss"].item() == pytest.approx(l1["loss"].item() + distilled["distill"].item(), rel=1e-5)
    own = flow_matching_losses(model, batch, mix, torch.Generator().manual_seed(0), teacher=model)
    assert own["distill"].item() == 0.0


def test_conditioned_loss_feeds_the_batch_lidar_and_scores_only_targets():
    model = random_model(depth_conditioned=True)
    seen = _capture_outputs(model)
    batch = _batch()
    fed = batch["depth_valid"] & (torch.rand(batch["depth"].shape, generator=torch.Generator().manual_seed(3)) < 0.5)
    batch["sparse_depth"], batch["sparse_mask"] = torch.where(fed, batch["depth"], 0.0), fed
    batch["depth_valid"] = batch["depth_valid"] & ~fed  # make_example never targets a fed point
    mix = TrainingMix(p_i2d=1.0, p_d2i=0.0)
    flow_matching_losses(model, batch, mix, torch.Generator().manual_seed(0))["loss"].backward()
    assert torch.equal(seen["kwargs"]["sparse_mask"], fed)
    torch.testing.assert_close(seen["kwargs"]["sparse_depth"], batch["sparse_depth"])
    grad = seen["output"].depth_x0.grad
    assert torch.all(grad[fed] == 0) and torch.any(grad[batch["depth_valid"]] != 0)


def test_relative_l2_is_the_squared_error_of_decoded_depth():
    from mf_core.depth_codec import decode_depth

    model = random_model()
    seen = _capture_outputs(model)
    batch = _batch()
    mix = TrainingMix(p_i2d=1.0, p_d2i=0.0)
    losses = flow_matching_losses(model, batch, mix, torch.Generator().manual_seed(0),
                                  config=LossConfig(depth_loss="relative_l2"))
    pred = decode_depth(seen["output"].depth_x0.detach())
    error = (pred - decode_depth(batch["depth"])).square()
    valid = batch["depth_valid"]
    per_sample = torch.stack([error[i][valid[i]].mean() for i in range(error.shape[0])])
    assert losses["depth_x0"].item() == pytest.approx(per_sample.mean().item(), rel=1e-5)


def test_bad_batch_is_an_input_error():
    batch = _batch()
    del batch["depth_valid"]
    with pytest.raises(InputError, match="depth_valid"):
        flow_matching_losses(random_model(), batch, TrainingMix(), torch.Generator())


def test_per_prior_divides_each_samples_loss_by_its_lidar_priors_loss():
    """A refine_head model's per-sample loss over its prior's (ModelOutput.prior_x0); a sample without
    LiDAR keeps its plain loss. Fails if the division, the per-sample pairing or the no-LiDAR case breaks."""
    from mf_core.depth_codec import decode_depth

    model = random_model(depth_conditioned=True, refine_head=True, patch_size=8)
    seen = _capture_outputs(model)
    batch = _batch(b=3, h=32, w=48)
    fed = batch["depth_valid"] & (torch.rand(batch["depth"].shape, generator=torch.Generator().manual_seed(3)) < 0.5)
    fed[2] = False  # the last sample has no LiDAR
    batch["sparse_depth"], batch["sparse_mask"] = torch.where(fed, batch["depth"], 0.0), fed
    batch["depth_valid"] = batch["depth_valid"] & ~fed
    mix = TrainingMix(p_i2d=1.0, p_d2i=0.0, sparse_drop_prob=0.0)
    config = LossConfig(depth_loss="relative_l2", per_prior=True)
    losses = flow_matching_losses(model, batch, mix, torch.Generator().manual_seed(0), config=config)
    out, target, valid = seen["output"], decode_depth(batch["depth"]), batch["depth_valid"]
    assert torch.isnan(out.prior_x0[2]).all() and torch.isfinite(out.prior_x0[:2]).all()

    def mse(x0: torch.Tensor, i: int) -> torch.Tensor:
        return (decode_depth(x0[i:i + 1])[0] - target[i])[valid[i]].square().mean()

    expected = [mse(out.depth_x0.detach(), i) / mse(out.prior_x0, i) for i in range(2)]
    expected.append(mse(out.depth_x0.detach(), 2))
    assert losses["depth_x0"].item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)
    plain = flow_matching_losses(model, batch, mix, torch.Generator().manual_seed(0),
                                 config=LossConfig(depth_loss="relative_l2"))
    assert plain["depth_x0"].item() != pytest.approx(losses["depth_x0"].item(), rel=1e-2)
    with pytest.raises(InputError, match="needs a refine_head model"):
        flow_matching_losses(random_model(), _batch(), mix, torch.Generator().manual_seed(0), config=config)


def test_transformer_weight_scores_the_transformers_own_depth_where_lidar_is_fed():
    """The term is the depth loss of exp(transformer_log_depth) over the samples fed LiDAR only, added to the
    total with its weight. Fails if it scores the composed depth, counts the sample without LiDAR, or is not
    added."""
    from mf_core.depth_codec import decode_depth

    model = random_model(depth_conditioned=True, refine_head=True, patch_size=8)
    seen = _capture_outputs(model)
    batch = _batch(b=3, h=32, w=48)
    fed = batch["depth_valid"] & (torch.rand(batch["depth"].shape, generator=torch.Generator().manual_seed(3)) < 0.5)
    fed[2] = False  # the last sample has no LiDAR: its composed depth already is the transformer's
    batch["sparse_depth"], batch["sparse_mask"] = torch.where(fed, batch["depth"], 0.0), fed
    batch["depth_valid"] = batch["depth_valid"] & ~fed
    mix = TrainingMix(p_i2d=1.0, p_d2i=0.0, sparse_drop_prob=0.0)
    config = LossConfig(depth_loss="relative_l2", transformer_weight=0.5)
    losses = flow_matching_losses(model, batch, mix, torch.Generator().manual_seed(0), config=config)
    out, target, valid = seen["output"], decode_depth(batch["depth"]), batch["depth_valid"]
    own = out.transformer_log_depth.detach().exp()
    expected = torch.stack([(own[i] - target[i])[valid[i]].square().mean() for i in range(2)]).mean()
    assert losses["transformer_depth"].item() == pytest.approx(expected.item(), rel=1e-5)
    total = losses["image_velocity"] + losses["depth_x0"] + 0.5 * losses["transformer_depth"]
    assert losses["loss"].item() == pytest.approx(total.item(), rel=1e-5)
    with pytest.raises(InputError, match="refine_head"):
        flow_matching_losses(random_model(), _batch(), mix, torch.Generator().manual_seed(0), config=config)
    with pytest.raises(InputError, match="transformer_weight"):
        LossConfig(transformer_weight=-1.0)
