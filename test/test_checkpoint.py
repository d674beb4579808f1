"""Checkpoints: safetensors + config.json round trips, dtype, atomic writes, refusal of bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mf_core.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_model, save_model
from mf_core.errors import InputError
from mf_core.files import atomic_write
from mf_core.model import ModelConfig, build_model

TINY = ModelConfig("tiny", patch_size=4, width=64, heads=2, n_joint=1, n_single=1, n_dec=1, context_dim=8)


def trained_like(config: ModelConfig = TINY, seed: int = 0):
    """A model with every trainable weight random (as after training), so outputs are non-zero."""
    model = build_model(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # the frozen VAE comes from its own folder
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.eval()


def predict(model):
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 16, 24, generator=gen) * 2 - 1
    depth = torch.rand(2, 1, 16, 24, generator=gen) * 2 - 1
    context = torch.randn(2, 3, 8, generator=gen)
    with torch.no_grad():
        return model(image, depth, torch.tensor([0.2, 0.9]), torch.tensor([1.0, 0.4]), context=context)


def test_round_trip_gives_equal_outputs_and_metadata(tmp_path):
    model = trained_like()
    path = save_model(tmp_path / "ckpt", model, metadata={"step": 12, "stage": "forcing"})
    assert (path / WEIGHTS_FILE).is_file() and (path / CONFIG_FILE).is_file()
    loaded, metadata = load_model(path)
    assert metadata == {"step": 12, "stage": "forcing"}
    assert loaded.config == model.config and not loaded.training
    a, b = predict(model), predict(loaded)
    assert torch.equal(a.image_velocity, b.image_velocity)
    assert torch.equal(a.depth_x0, b.depth_x0)
    assert not list(path.glob(".*tmp"))  # no temp files left behind


def test_fp16_save_is_smaller_and_close(tmp_path):
    model = trained_like()
    save_model(tmp_path / "fp32", model)
    save_model(tmp_path / "fp16", model, dtype=torch.float16)
    size32 = (tmp_path / "fp32" / WEIGHTS_FILE).stat().st_size
    size16 = (tmp_path / "fp16" / WEIGHTS_FILE).stat().st_size
    assert size16 < 0.6 * size32
    loaded, _ = load_model(tmp_path / "fp16")
    assert loaded.single_blocks[0].proj.weight.dtype == torch.float32
    a, b = predict(model), predict(loaded)
    torch.testing.assert_close(b.depth_x0, a.depth_x0, atol=2e-2, rtol=2e-2)
    assert not torch.equal(a.depth_x0, b.depth_x0)  # it really was rounded to fp16


def test_load_in_bf16_keeps_depth_head_fp32(tmp_path):
    save_model(tmp_path, trained_like())
    loaded, _ = load_model(tmp_path, dtype=torch.bfloat16)
    assert loaded.joint_blocks[0].streams["image"].qkv.weight.dtype == torch.bfloat16
    assert loaded.depth_final.linear.weight.dtype == torch.float32
    assert loaded.decoder_blocks[0].qkv_mlp.weight.dtype == torch.float32


def test_weights_of_another_size_raise_input_error(tmp_path):
    save_model(tmp_path / "small", trained_like())
    save_model(tmp_path / "wide", build_model(TINY.updated(width=96, heads=3)))
    (tmp_path / "small" / WEIGHTS_FILE).write_bytes((tmp_path / "wide" / WEIGHTS_FILE).read_bytes())
    with pytest.raises(InputError, match="different model sizes"):
        load_model(tmp_path / "small")


def test_integer_weights_raise_input_error_naming_the_tensor(tmp_path):
    save_model(tmp_path, trained_like())
    state = load_file(tmp_path / WEIGHTS_FILE)
    name = sorted(state)[0]
    state[name] = state[name].to(torch.int8)
    save_file(state, tmp_path / WEIGHTS_FILE)
    with pytest.raises(InputError, match=f"{name} is torch.int8"):
        load_model(tmp_path)
    state[name] = torch.full(state[name].shape, float("nan"))
    save_file(state, tmp_path / WEIGHTS_FILE)
    with pytest.raises(InputError, match=f"{name} holds NaN/inf values"):
        load_model(tmp_path)


def test_corrupt_or_missing_files_raise_input_error(tmp_path):
    save_model(tmp_path, trained_like())
    weights = (tmp_path / WEIGHTS_FILE).read_bytes()
    (tmp_path / WEIGHTS_FILE).write_bytes(weights[: len(weights) // 2])
    with pytest.raises(InputError, match="corrupt"):
        load_model(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(weights)
    (tmp_path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(InputError, match="JSON"):
        load_model(tmp_path)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"model": {"width": 64, "colour": "red"}}))
    with pytest.raises(InputError, match="colour"):
        load_model(tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "nowhere")


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "state.bin"
    atomic_write(target, b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")  # fails mid-write
    assert target.read_bytes() == b"first"
    assert [p.name for p in target.parent.iterdir()] == ["state.bin"]


def test_vae_model_checkpoint_holds_no_vae_weights(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    diffusers.AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4,
    ).save_pretrained(tmp_path / "vae")
    model = trained_like(TINY.updated(image_tokenizer="vae", vae_path=str(tmp_path / "vae"), context_dim=0))
    save_model(tmp_path / "ckpt", model)
    loaded, _ = load_model(tmp_path / "ckpt")
    latents, depth = torch.randn(1, 4, 8, 12), torch.rand(1, 1, 16, 24)
    t = torch.tensor([0.5])
    with torch.no_grad():
        assert torch.equal(model(latents, depth, t, t).depth_x0, loaded(latents, depth, t, t).depth_x0)
        assert torch.equal(model.decode_image(latents), loaded.decode_image(latents))


def test_default_names_the_shipped_model_without_a_ros_workspace(monkeypatch):
    from mf_core.checkpoint import resolve_model_path, shipped_model_path

    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    path = shipped_model_path()
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert resolve_model_path("default") == path
    assert resolve_model_path("some/folder") == Path("some/folder")
