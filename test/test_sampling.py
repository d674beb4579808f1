"""Euler samplers: time grids, modes, the one-step i2d estimate, CFG and LiDAR guidance (real MF-XS)."""

from __future__ import annotations

import pytest
import torch
from helpers import random_model

from mf_core.errors import InputError
from mf_core.sampling import sample, tilted_time, time_grid


def _record_calls(model: torch.nn.Module) -> list[dict]:
    """Forward hook that records the times and context of every model call."""
    calls: list[dict] = []

    def hook(module, args, kwargs):
        calls.append({"t_image": args[2].clone(), "t_depth": args[3].clone(), "context": kwargs.get("context")})

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return calls


IMAGE = torch.rand((2, 3, 16, 24), generator=torch.Generator().manual_seed(9)) * 2 - 1


def test_time_grid_and_step_validation():
    grid = time_grid(10)
    assert grid[0] == 1 and grid[-1] == 0 and grid.shape == (11,)
    assert torch.all(grid[1:] < grid[:-1])
    assert grid[5] > 0.5  # shifted toward noise
    for steps in (0, 51, 2.5):
        with pytest.raises(InputError, match="steps must be an integer from 1 to 50"):
            time_grid(steps)


def test_tilted_time_endpoints_and_direction():
    t = torch.tensor([0.0, 0.5, 1.0])
    assert tilted_time(t, 5).tolist() == pytest.approx([0.0, 32 * 0.5 / (1 + 31 * 0.5), 1.0])
    assert tilted_time(t, -5)[1] < 0.05
    torch.testing.assert_close(tilted_time(t, 0), t)


def test_one_step_i2d_is_the_model_x0_prediction():
    model = random_model()
    out = sample(model, "i2d", image=IMAGE, steps=1, generator=torch.Generator().manual_seed(3))
    noise = torch.randn((2, 1, 16, 24), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        x0 = model(IMAGE, noise, torch.zeros(2), torch.ones(2)).depth_x0
    torch.testing.assert_close(out.depth, x0, rtol=0, atol=1e-6)
    assert torch.equal(out.image, IMAGE)
    again = sample(model, "i2d", image=IMAGE, steps=1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again.depth, out.depth)


def test_i2d_holds_the_image_clean_and_walks_the_depth_grid():
    model = random_model()
    calls = _record_calls(model)
    sample(model, "i2d", image=IMAGE, steps=4, generator=torch.Generator().manual_seed(0))
    grid = time_grid(4)
    assert len(calls) == 4
    assert all(torch.all(c["t_image"] == 0) for c in calls)
    torch.testing.assert_close(torch.stack([c["t_depth"][0] for c in calls]), grid[:-1])


def test_joint_schedule_follows_the_tilted_time():
    model = random_model()
    calls = _record_calls(model)
    out = sample(model, "joint", size=(2, 16, 24), steps=5, joint_k=5, generator=torch.Generator().manual_seed(0))
    assert out.image.shape == (2, 3, 16, 24) and out.depth.shape == (2, 1, 16, 24)
    t_img = torch.stack([c["t_image"][0] for c in calls])
    t_depth = torch.stack([c["t_depth"][0] for c in calls])
    assert t_img[0] == 1 and t_depth[0] == 1
    torch.testing.assert_close(t_depth, tilted_time(t_img, 5))
    assert torch.all(t_depth[1:] > t_img[1:])  # image resolves first


def test_d2i_keeps_the_given_depth():
    model = random_model()
    calls = _record_calls(model)
    depth = torch.rand((2, 1, 16, 24)) * 2 - 1
    out = sample(model, "d2i", depth=depth, steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.depth, depth) and out.image.shape == (2, 3, 16, 24)
    assert all(torch.all(c["t_depth"] == 0) for c in calls)


def test_lidar_guidance_reproduces_lidar_at_lidar_pixels():
    model = random_model()
    generator = torch.Generator().manual_seed(4)
    mask = torch.rand((2, 1, 16, 24), generator=generator) < 0.1
    lidar = torch.rand((2, 1, 16, 24), generator=generator) * 1.8 - 1
    for steps in (1, 6):
        out = sample(model, "i2d", image=IMAGE, steps=steps, lidar_depth=lidar, lidar_mask=mask,
                     generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out.depth[mask], lidar[mask], rtol=0, atol=1e-5)
    unguided = sample(model, "i2d", image=IMAGE, steps=6, generator=torch.Generator().manual_seed(0))
    assert (unguided.depth[mask] - lidar[mask]).abs().max() > 0.1
    with pytest.raises(InputError, match="both lidar_depth and lidar_mask"):
        sample(model, "i2d", image=IMAGE, steps=1, lidar_depth=lidar)


def test_cfg_uses_a_zero_context_as_unconditional():
    model = random_model(context_dim=16)
    calls = _record_calls(model)
    context = torch.randn(2, 5, 16)
    guided = sample(model, "d2i", depth=torch.zeros(2, 1, 16, 24), steps=2, context=context,
                    generator=torch.Generator().manual_seed(0))
    assert len(calls) == 4  # conditional + unconditional per step
    assert torch.equal(calls[0]["context"], context) and torch.all(calls[1]["context"] == 0)
    plain = sample(model, "d2i", depth=torch.zeros(2, 1, 16, 24), steps=2, context=context, guidance_scale=1.0,
                   generator=torch.Generator().manual_seed(0))
    assert len(calls) == 6 and not torch.allclose(guided.image, plain.image)


def test_bad_sampler_inputs():
    model = random_model()
    with pytest.raises(InputError, match="no context stream"):
        sample(model, "i2d", image=IMAGE, steps=1, context=torch.zeros(2, 1, 8))
    with pytest.raises(InputError, match="needs the image"):
        sample(model, "i2d", steps=1)
    with pytest.raises(InputError, match="unknown sampling mode"):
        sample(model, "d2d", image=IMAGE, steps=1)


def test_i2d_with_a_vae_tokenizer_returns_the_given_image_without_decoding(tmp_path):
    from helpers import random_taef2

    from mf_core.model import ModelConfig, build_model

    config = ModelConfig("tiny-taef2", patch_size=8, width=32, heads=2, n_joint=1, n_single=1, n_dec=1,
                         image_tokenizer="vae", vae_path=str(random_taef2(tmp_path / "taef2")))
    model = build_model(config).eval()
    decoded = []
    decode = model.decode_image  # count the decoder passes
    model.decode_image = lambda latents: decoded.append(latents.shape) or decode(latents)
    out = sample(model, "i2d", image=IMAGE, steps=2, generator=torch.Generator().manual_seed(0))
    assert decoded == [] and torch.equal(out.image, IMAGE)
    assert out.depth.shape == (2, 1, 16, 24)
    joint = sample(model, "joint", size=(2, 16, 24), steps=1, generator=torch.Generator().manual_seed(0))
    assert decoded == [(2, 32, 2, 3)] and joint.image.shape == (2, 3, 16, 24)
