"""The Modality Forcing DiT: shapes, adaLN-Zero, input checks, variants, fp32 depth head, registry."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mf_core.errors import InputError
from mf_core.model import MODEL_SIZES, ModelConfig, build_model, get_model_config
from mf_core.model.embeddings import apply_rope, patchify, rope_rotations, token_positions, unpatchify

TINY = ModelConfig("tiny", patch_size=4, width=64, heads=2, n_joint=1, n_single=1, n_dec=1)


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every weight (zero-initialised ones too) a small random value so outputs are non-trivial."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


def inputs(b: int = 2, h: int = 16, w: int = 24, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 3, h, w, generator=gen) * 2 - 1
    depth = torch.rand(b, 1, h, w, generator=gen) * 2 - 1
    return image, depth


@pytest.mark.parametrize("size", [(16, 16), (16, 24), (24, 8)])
@pytest.mark.parametrize("times", [(0.0, 1.0), (1.0, 0.0), (0.3, 0.7)], ids=["i2d", "d2i", "joint"])
def test_output_shapes_and_dtypes(size, times):
    model = randomize(build_model(TINY))
    image, depth = inputs(2, *size)
    t_image, t_depth = (torch.full((2,), t) for t in times)
    out = model(image, depth, t_image, t_depth)
    assert out.image_velocity.shape == (2, 3, *size)
    assert out.depth_x0.shape == (2, 1, *size)
    assert out.depth_x0.dtype == torch.float32
    assert out.image_velocity.abs().sum() > 0 and out.depth_x0.abs().sum() > 0


def test_fresh_model_outputs_exact_zeros():
    model = build_model(TINY)
    out = model(*inputs(), torch.rand(2), torch.rand(2))
    assert torch.equal(out.image_velocity, torch.zeros_like(out.image_velocity))
    assert torch.equal(out.depth_x0, torch.zeros_like(out.depth_x0))


def test_times_change_the_outputs():
    model = randomize(build_model(TINY))
    image, depth = inputs()
    a = model(image, depth, torch.zeros(2), torch.ones(2))
    b = model(image, depth, torch.zeros(2), torch.full((2,), 0.5))
    assert not torch.allclose(a.depth_x0, b.depth_x0)


@pytest.mark.parametrize(
    "change",
    [
        {"depth": torch.zeros(1, 1, 18, 24)},  # not a multiple of the patch size
        {"depth": torch.zeros(1, 2, 16, 24)},  # two depth channels
        {"image": torch.zeros(1, 3, 16, 20)},  # image and depth sizes differ
        {"t_image": torch.zeros(3)},  # wrong batch of times
        {"context": torch.zeros(1, 4, 8)},  # model has no context stream
        {"sparse_depth": torch.zeros(1, 1, 16, 24), "sparse_mask": torch.zeros(1, 1, 16, 24)},
    ],
)
def test_bad_inputs_raise_input_error(change):
    model = build_model(TINY)
    args = {"image": torch.zeros(1, 3, 16, 24), "depth": torch.zeros(1, 1, 16, 24)}
    args |= {"t_image": torch.zeros(1), "t_depth": torch.zeros(1)} | change
    with pytest.raises(InputError):
        model(**args)


def test_context_stream_is_used_and_optional():
    model = randomize(build_model(TINY, context_dim=8))
    image, depth = inputs()
    t = torch.rand(2)
    context = torch.randn(2, 5, 8)
    with_context = model(image, depth, t, t, context=context)
    without = model(image, depth, t, t)
    empty = model(image, depth, t, t, context=torch.zeros(2, 0, 8))
    assert not torch.allclose(with_context.depth_x0, without.depth_x0)
    torch.testing.assert_close(empty.depth_x0, without.depth_x0)
    with pytest.raises(InputError):
        model(image, depth, t, t, context=torch.randn(2, 5, 7))


def test_depth_conditioned_model_reads_lidar_input():
    fresh = build_model(TINY, depth_conditioned=True)
    assert fresh.sparse_embed.proj.weight.abs().sum() == 0  # zero-init: starts as the unconditioned model
    model = randomize(fresh)
    image, depth = inputs()
    t = torch.rand(2)
    mask = (torch.rand(2, 1, 16, 24) > 0.9).float()
    sparse = torch.rand(2, 1, 16, 24) * mask
    with_lidar = model(image, depth, t, t, sparse_depth=sparse, sparse_mask=mask)
    without = model(image, depth, t, t)
    assert not torch.allclose(with_lidar.depth_x0, without.depth_x0)
    with pytest.raises(InputError):
        model(image, depth, t, t, sparse_depth=sparse)  # mask missing


def test_gradient_checkpointing_gives_the_same_gradients():
    model = randomize(build_model(TINY, context_dim=8)).train()
    image, depth = inputs()
    context = torch.randn(2, 3, 8)
    t = torch.rand(2)

    def grads(checkpointing: bool) -> list[torch.Tensor]:
        model.zero_grad()
        model.gradient_checkpointing = checkpointing
        out = model(image, depth, t, t, context=context)
        (out.image_velocity.square().mean() + out.depth_x0.abs().mean()).backward()
        return [p.grad.clone() for p in model.parameters()]

    plain, checkpointed = grads(False), grads(True)
    assert any(g.abs().sum() > 0 for g in plain)
    for a, b in zip(plain, checkpointed, strict=True):
        torch.testing.assert_close(a, b)


def test_depth_head_stays_float32_under_bf16():
    model = randomize(build_model(TINY))
    image, depth = inputs()
    t = torch.rand(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(image, depth, t, t)
    assert out.image_velocity.dtype == torch.bfloat16
    assert out.depth_x0.dtype == torch.float32
    model.to_dtype(torch.bfloat16)
    assert model.depth_final.linear.weight.dtype == torch.float32
    assert model.single_blocks[0].proj.weight.dtype == torch.bfloat16
    out = model(image.bfloat16(), depth.bfloat16(), t, t)
    assert out.depth_x0.dtype == torch.float32
    model.to(torch.bfloat16)  # casting the head too is refused with advice
    with pytest.raises(InputError, match="to_dtype"):
        model(image.bfloat16(), depth.bfloat16(), t, t)


def test_init_depth_stream_from_image_copies_weights():
    model = randomize(build_model(TINY))
    block = model.joint_blocks[0].streams
    assert not torch.equal(block["depth"].qkv.weight, block["image"].qkv.weight)
    model.init_depth_stream_from_image()
    for name, value in block["image"].state_dict().items():
        assert torch.equal(block["depth"].state_dict()[name], value), name
    assert torch.equal(model.time_embed_depth.linear_1.weight, model.time_embed_image.linear_1.weight)
    assert torch.equal(model.joint_modulation["depth"].linear.weight, model.joint_modulation["image"].linear.weight)
    # The depth tokenizer now sees depth as the image tokenizer sees a grey image.
    _, depth = inputs()
    torch.testing.assert_close(model.depth_embed(depth), model.image_embed(depth.expand(-1, 3, -1, -1)))


def test_image_and_depth_parameters_partition_the_model():
    model = build_model(TINY, context_dim=8, depth_conditioned=True)
    depth = {id(p) for p in model.depth_parameters()}
    image = {id(p) for p in model.image_parameters()}
    assert not depth & image
    assert depth | image == {id(p) for p in model.parameters()}
    assert id(model.decoder_blocks[0].proj.weight) in depth
    assert id(model.joint_blocks[0].streams["depth"].qkv.weight) in depth
    assert id(model.joint_blocks[0].streams["context"].qkv.weight) in image


def test_patchify_round_trip_and_rope_properties():
    x = torch.randn(2, 3, 8, 12)
    tokens = patchify(x, 4)
    assert tokens.shape == (2, 6, 48)
    assert torch.equal(unpatchify(tokens, 4, 2, 3), x)
    positions = token_positions(2, 3, n_context=2, device=torch.device("cpu"))
    assert positions.shape == (2 + 12, 4)
    # image and depth token i share (row, col) and differ on the modality axis only
    assert torch.equal(positions[2:8, 1:], positions[8:, 1:])
    assert torch.equal(positions[8:, 0] - positions[2:8, 0], torch.ones(6))
    rope = rope_rotations(positions, 32, 10000.0)
    q = torch.randn(1, 2, 14, 32)
    rotated = apply_rope(q, rope)
    torch.testing.assert_close(rotated.norm(dim=-1), q.norm(dim=-1))  # rotations keep norms
    assert not torch.allclose(rotated[:, :, 8:], q[:, :, 8:])


def test_registry_names_sizes_and_errors():
    assert list(MODEL_SIZES) == ["MF-XS", "MF-S", "MF-B", "MF-L", "MF-XL"]
    counts = {}
    for name in MODEL_SIZES:
        with torch.device("meta"):
            counts[name] = sum(p.numel() for p in build_model(name).parameters())
    assert 30e6 <= counts["MF-S"] <= 50e6
    assert 100e6 <= counts["MF-B"] <= 150e6
    assert 350e6 <= counts["MF-L"] <= 450e6
    assert counts["MF-XL"] >= 1e9
    assert get_model_config("MF-S", context_dim=16).context_dim == 16
    with pytest.raises(InputError, match="MF-XS"):
        get_model_config("MF-XXL")
    with pytest.raises(InputError, match="width"):
        get_model_config("MF-S", widht=3)
    with pytest.raises(InputError, match="divisible"):
        dataclasses.replace(TINY, heads=3)
    with pytest.raises(InputError, match="vae_path"):
        dataclasses.replace(TINY, image_tokenizer="vae")


def test_vae_image_tokenizer(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    vae.save_pretrained(tmp_path / "vae")
    model = randomize(build_model(TINY, image_tokenizer="vae", vae_path=str(tmp_path / "vae")))
    assert model.image_shape(16, 24) == (4, 8, 12)
    pixels, depth = inputs()
    latents = model.encode_image(pixels)
    assert latents.shape == (2, 4, 8, 12)
    assert model.decode_image(latents).shape == (2, 3, 16, 24)
    out = model(latents, depth, torch.rand(2), torch.rand(2))
    assert out.image_velocity.shape == (2, 4, 8, 12) and out.depth_x0.shape == (2, 1, 16, 24)
    assert not any(k.startswith("vae.") for k in model.state_dict())
    assert all(not p.requires_grad for p in model.vae.parameters())
    with pytest.raises(InputError):
        model(pixels, depth, torch.rand(2), torch.rand(2))  # pixels where latents are expected
    with pytest.raises(InputError, match=r"config\.json"):
        build_model(TINY, image_tokenizer="vae", vae_path=str(tmp_path / "missing"))


def test_mf_models_prints_the_registry(capsys):
    from mf_training.cli import main

    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["name", "width", "heads"]
    assert [line.split()[0] for line in lines[1:]] == list(MODEL_SIZES)
    xl = lines[-1].split()
    assert xl[1] == "2048" and xl[-1].endswith("B")


def test_refining_model_starts_as_the_scanline_fill_of_its_lidar_input():
    from mf_core.depth_codec import decode_depth
    from mf_core.frame_codec import log_relative_depth
    from mf_core.sparse_fill import scanline_fill_log

    with pytest.raises(InputError, match="depth_conditioned"):
        build_model(TINY, refine_head=True)
    with pytest.raises(InputError, match="before the refinement head"):
        build_model(TINY, depth_conditioned=True, lidar_prior=True)  # a pre-refinement checkpoint setting
    fresh = build_model(TINY, depth_conditioned=True, refine_head=True)
    image, depth = inputs()
    t = torch.rand(2)
    mask = torch.rand(2, 1, 16, 24) > 0.9
    mask[1] = False  # a sample whose LiDAR input was dropped: no prior, the transformer's own depth
    sparse = torch.where(mask, torch.rand(2, 1, 16, 24) * 1.5 - 0.9, 0.0)  # encoded LiDAR
    out = fresh(image, depth, t, t, sparse_depth=sparse, sparse_mask=mask)
    prior = scanline_fill_log(log_relative_depth(sparse, mask), mask).exp()  # relative depth
    torch.testing.assert_close(decode_depth(out.depth_x0[:1]), prior[:1], rtol=1e-5, atol=1e-6)
    assert torch.all(out.depth_x0[1] == 0)  # fresh transformer: zero x0, unchanged by the zero head
    assert out.refine_terms.shape == (2, 6, 16, 24) and torch.all(out.refine_terms == 0)
    trained = randomize(fresh)
    out = trained(image, depth, t, t, sparse_depth=sparse, sparse_mask=mask)
    assert not torch.allclose(decode_depth(out.depth_x0[:1]), prior[:1])  # a trained head corrects it


def test_rope_rotates_each_feature_pair_by_its_angle():
    """The real (cos, sin) rotation: pair (1, 0) at angle a becomes (cos a, sin a), (0, 1) becomes (-sin a, cos a)."""
    positions = torch.tensor([[0.0, 3.0, 0.0, 0.0]])  # row 3: the row axis' pairs turn by 3 x their frequency
    rope = rope_rotations(positions, 16, 10000.0)  # (1, 8, 2)
    angle = torch.atan2(rope[0, :, 1], rope[0, :, 0])  # (8,)
    x = torch.zeros(1, 1, 1, 16)
    x[..., 0::2] = 1.0
    y = torch.zeros(1, 1, 1, 16)
    y[..., 1::2] = 1.0
    torch.testing.assert_close(apply_rope(x, rope)[0, 0, 0, 0::2], angle.cos())
    torch.testing.assert_close(apply_rope(x, rope)[0, 0, 0, 1::2], angle.sin())
    torch.testing.assert_close(apply_rope(y, rope)[0, 0, 0, 0::2], -angle.sin())
    assert angle[2:4].abs().max() > 0 and angle[:2].abs().max() == 0  # only the row axis (pairs 2-3) turns


def test_scan_by_doubling_equals_torch_cummax_and_cummin():
    from mf_core.sparse_fill import scan_by_doubling

    x = torch.randint(-5, 100, (2, 1, 7, 37))
    for dim in (2, 3):
        assert torch.equal(scan_by_doubling(x, dim, largest=True), x.cummax(dim=dim).values)
        assert torch.equal(scan_by_doubling(x, dim, largest=False), x.cummin(dim=dim).values)
