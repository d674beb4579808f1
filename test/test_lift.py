"""mf lift: a FLUX.2 transformer (diffusers) lifted 1:1, exact on its image output, then trained and evaluated.

Everything is built here from tiny randomly initialised diffusers models: nothing is downloaded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from helpers import flux2_statistics_folder, random_taef2  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from mf_core.checkpoint import load_model, read_checkpoint_config  # noqa: E402
from mf_core.errors import InputError  # noqa: E402
from mf_core.model.embeddings import patchify, token_positions, unpatchify  # noqa: E402
from mf_core.model.taef2 import LATENT_CHANNELS as TAEF2_CHANNELS  # noqa: E402
from mf_core.model.vae import VaeTokenizer  # noqa: E402
from mf_training.cli import main as mf_main  # noqa: E402
from mf_training.lift import LIFT_METADATA_KEY, lift  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LATENT_CHANNELS = 4
TINY_FLUX2 = dict(in_channels=4 * LATENT_CHANNELS, num_layers=2, num_single_layers=2, attention_head_dim=16,
                  num_attention_heads=2, joint_attention_dim=24, axes_dims_rope=(4, 4, 4, 4))


def flux2_transformer(folder: Path, guidance_embeds: bool, shard: bool = False, seed: int = 0, **shape):
    """A tiny random Flux2Transformer2DModel (weights N(0, 0.3): every layer matters) saved to ``folder``."""
    torch.manual_seed(seed)
    model = diffusers.Flux2Transformer2DModel(**(TINY_FLUX2 | shape), guidance_embeds=guidance_embeds)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    model.save_pretrained(folder, max_shard_size="20KB" if shard else "10GB")
    return model.eval()


def flux2_vae(folder: Path, seed: int = 0):
    """A tiny AutoencoderKLFlux2 (2x downsampling, 4 latent channels) with non-trivial batch-norm statistics."""
    torch.manual_seed(seed)
    vae = diffusers.AutoencoderKLFlux2(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                                       up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=LATENT_CHANNELS,
                                       norm_num_groups=4)
    with torch.no_grad():
        vae.bn.running_mean.normal_(0.0, 0.5)
        vae.bn.running_var.uniform_(0.5, 2.0)
    vae.save_pretrained(folder)
    return vae.eval()


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("flux2") / "vae"
    flux2_vae(folder)
    return folder


def diffusers_velocity(transformer, latents: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                       guidance: float | None) -> torch.Tensor:
    """The diffusers transformer on a latent map (B, C, h, w), packed 2x2 and with FLUX.2's position ids."""
    grid_h, grid_w, n_text = latents.shape[2] // 2, latents.shape[3] // 2, context.shape[1]
    ids = token_positions(grid_h, grid_w, n_text, latents.device, with_depth=False)  # (L + N, 4)
    with torch.no_grad():
        out = transformer(hidden_states=patchify(latents, 2), encoder_hidden_states=context, timestep=t,
                          img_ids=ids[n_text:], txt_ids=ids[:n_text],
                          guidance=None if guidance is None else torch.full_like(t, guidance)).sample
    return unpatchify(out, 2, grid_h, grid_w)  # (B, C, h, w)


@pytest.mark.parametrize("guidance_embeds,shard", [(False, False), (True, True)], ids=["klein-like", "guided-sharded"])
def test_lifted_image_output_equals_the_diffusers_transformer(tmp_path, vae_dir, guidance_embeds, shard):
    source = flux2_transformer(tmp_path / "transformer", guidance_embeds, shard=shard)
    if shard:
        assert (tmp_path / "transformer" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    model, metadata = lift(tmp_path / "transformer", vae_dir, guidance=3.5, dtype="float32")
    assert metadata[LIFT_METADATA_KEY]["guidance"] == (3.5 if guidance_embeds else None)
    torch.manual_seed(1)
    latents, t, context = torch.randn(2, LATENT_CHANNELS, 8, 12), torch.tensor([0.3, 0.8]), torch.randn(2, 5, 24)
    reference = diffusers_velocity(source, latents, t, context, 3.5 if guidance_embeds else None)
    with torch.no_grad():
        ours = model.forward_image(latents, t, context)
    assert reference.abs().max() > 1.0  # a real output, not a zero-initialised one
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-4)
    # The depth stream starts as the image stream; the model runs jointly with depth tokens too.
    streams = model.joint_blocks[0].streams
    assert torch.equal(streams["depth"].qkv.weight, streams["image"].qkv.weight)
    with torch.no_grad():
        joint = model(latents, torch.rand(2, 1, 16, 24), t, t, context=context,
                      sparse_depth=torch.zeros(2, 1, 16, 24), sparse_mask=torch.zeros(2, 1, 16, 24, dtype=torch.bool))
    assert joint.image_velocity.shape == latents.shape and torch.isfinite(joint.depth_x0).all()


def test_stored_context_stands_in_for_the_text_embeddings(tmp_path, vae_dir):
    source = flux2_transformer(tmp_path / "transformer", guidance_embeds=False)
    context = torch.randn(1, 7, 24)
    save_file({"context": context}, tmp_path / "prompt.safetensors")
    model, _ = lift(tmp_path / "transformer", vae_dir, context=tmp_path / "prompt.safetensors", dtype="float32")
    latents, t = torch.randn(1, LATENT_CHANNELS, 8, 8), torch.tensor([0.6])
    with torch.no_grad():
        ours = model.forward_image(latents, t)  # no context passed: the stored one is used
    torch.testing.assert_close(ours, diffusers_velocity(source, latents, t, context, None), rtol=1e-5, atol=1e-4)
    save_file({"embeds": context}, tmp_path / "wrong_name.safetensors")
    with pytest.raises(InputError, match="'context'"):
        lift(tmp_path / "transformer", vae_dir, context=tmp_path / "wrong_name.safetensors")
    save_file({"context": torch.randn(7, 25)}, tmp_path / "wrong_width.safetensors")
    with pytest.raises(InputError, match=r"\(L, 24\)"):
        lift(tmp_path / "transformer", vae_dir, context=tmp_path / "wrong_width.safetensors")


def test_lift_with_taef2_as_the_tokenizer(tmp_path, capsys):
    """A TAEF2 folder as --vae: the FLUX.2 latent statistics from --vae-statistics or the sibling vae/; the
    lifted model's tokens are TAEF2's latents standardised, its image output the transformer's on them."""
    download = tmp_path / "flux2"
    source = flux2_transformer(download / "transformer", guidance_embeds=False, in_channels=4 * TAEF2_CHANNELS)
    taef2 = random_taef2(tmp_path / "taef2")
    out = tmp_path / "lifted"
    args = ["lift", "--transformer", str(download / "transformer"), "--vae", str(taef2), "--out", str(out)]
    assert mf_main(args) == 2  # no statistics given and no vae/ beside the transformer
    assert "--vae-statistics" in capsys.readouterr().err and not out.exists()
    mean, std = flux2_statistics_folder(download / "vae")  # the download's own vae/ folder: found by default
    assert mf_main([*args, "--dtype", "float32"]) == 0
    model, metadata = load_model(out)
    assert model.config.vae_statistics_path == str((download / "vae").resolve())
    assert metadata[LIFT_METADATA_KEY]["vae_statistics"] == str((download / "vae").resolve())
    image = torch.rand(1, 3, 64, 96) * 2 - 1
    tokens = model.encode_image(image)  # (1, 32, 8, 12)
    raw = VaeTokenizer(taef2).encode(image)
    folded = (raw.view(1, 32, 4, 2, 6, 2).permute(0, 1, 3, 5, 2, 4).reshape(1, 128, 4, 6) - mean.view(1, -1, 1, 1))
    torch.testing.assert_close(patchify(tokens, 2), (folded / std.view(1, -1, 1, 1)).flatten(2).transpose(1, 2))
    t, context = torch.tensor([0.4]), torch.randn(1, 3, 24)
    with torch.no_grad():
        ours = model.forward_image(tokens, t, context)
    torch.testing.assert_close(ours, diffusers_velocity(source, tokens, t, context, None), rtol=1e-5, atol=1e-4)


def test_flux2_vae_tokenizer_gives_the_pipelines_latents(vae_dir):
    tokenizer = VaeTokenizer(vae_dir)
    image = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        raw = tokenizer.vae.encode(image).latent_dist.mode()
    # What the FLUX.2 pipelines feed their transformer: 2x2 latent pixels folded into channels (c, i, j),
    # standardised by the VAE's batch-norm statistics (diffusers' Flux2 pipelines; their module needs
    # transformers for the text encoder, so the fold is written out here).
    b, c, h, w = raw.shape
    packed = raw.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)
    std = torch.sqrt(tokenizer.vae.bn.running_var.view(1, -1, 1, 1) + tokenizer.vae.config.batch_norm_eps)
    expected = (packed - tokenizer.vae.bn.running_mean.view(1, -1, 1, 1)) / std
    ours = tokenizer.encode(image)  # (1, C, 16, 24)
    torch.testing.assert_close(patchify(ours, 2), expected.flatten(2).transpose(1, 2), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(tokenizer.decode(ours), tokenizer.vae.decode(raw).sample, rtol=1e-4, atol=1e-4)


def _rewrite_weights(folder: Path, change) -> None:
    path = folder / "diffusion_pytorch_model.safetensors"
    state = load_file(path)
    change(state)
    save_file(state, path)


@pytest.mark.parametrize("damage,message", [
    ("class", "FluxTransformer2DModel"),
    ("missing", "missing transformer_blocks.1.attn.to_k.weight"),
    ("unknown", "unknown transformer_blocks.0.attn.to_q.bias"),
    ("shape", "context_embedder.weight"),
    ("rope", "axes_dims_rope"),
    ("pickle", "only safetensors"),
    ("vae", "in_channels"),
])
def test_a_folder_that_does_not_fit_exits_2_naming_it(tmp_path, vae_dir, damage, message, capsys):
    folder = tmp_path / "transformer"
    flux2_transformer(folder, guidance_embeds=False)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    vae = vae_dir
    if damage == "class":
        config["_class_name"] = "FluxTransformer2DModel"
    elif damage == "missing":
        _rewrite_weights(folder, lambda s: s.pop("transformer_blocks.1.attn.to_k.weight"))
    elif damage == "unknown":
        _rewrite_weights(folder, lambda s: s.__setitem__("transformer_blocks.0.attn.to_q.bias", torch.zeros(32)))
    elif damage == "shape":
        config["joint_attention_dim"] = 32  # the weights are for 24
    elif damage == "rope":
        config["axes_dims_rope"] = [4, 6, 6]
    elif damage == "pickle":
        (folder / "diffusion_pytorch_model.safetensors").rename(folder / "diffusion_pytorch_model.bin")
    elif damage == "vae":
        vae = tmp_path / "vae8"
        flux2_vae(vae)
        cfg = json.loads((vae / "config.json").read_text())
        cfg["latent_channels"] = 8
        (vae / "config.json").write_text(json.dumps(cfg))
    config_path.write_text(json.dumps(config))
    out = tmp_path / "lifted"
    code = mf_main(["lift", "--transformer", str(folder), "--vae", str(vae), "--out", str(out)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".lifted")]


def test_lift_then_train_with_distillation_then_eval(tmp_path, vae_dir):
    """mf lift -> mf train init_from= (2 steps, the frozen lifted image model as teacher) -> mf eval, on CPU."""
    from mf_training.train.config import load_config
    from mf_training.train.loop import ImageModelTeacher, build_models, model_config_of

    flux2_transformer(tmp_path / "transformer", guidance_embeds=True)
    lifted = tmp_path / "lifted"
    assert mf_main(["lift", "--transformer", str(tmp_path / "transformer"), "--vae", str(vae_dir),
                    "--out", str(lifted)]) == 0
    model, _ = load_model(lifted)
    assert model.config.image_tokenizer == "vae" and model.config.depth_conditioned
    assert model.joint_blocks[0].streams["image"].qkv.weight.dtype == torch.float32  # bf16 file, fp32 at load
    overrides = [f"init_from={lifted}", "model.name=init_from", "distill=true", "steps=2", "batch_size=2",
                 f"data.cache_dir={tmp_path / 'cache'}", "ckpt_every=2", "val_every=2",  # validation of a VAE model
                 "data.sources=[{path: 'sim:indoor', frames: 4, seed: 0, width: 80, height: 64, val_count: 2}]"]
    klein = load_config(REPO / "config" / "mf_flux2_klein.yaml", [f"init_from={lifted}"])  # the GPU recipe
    assert model_config_of(klein) == model.config and klein.distill and klein.perf.fsdp
    assert klein.perf.gradient_checkpointing
    config = load_config(REPO / "config" / "train_tiny.yaml", overrides)
    _, teacher = build_models(config)
    assert isinstance(teacher, ImageModelTeacher)
    run = tmp_path / "run"
    assert mf_main(["train", "--config", str(REPO / "config" / "train_tiny.yaml"), "--out", str(run),
                    *overrides]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(m["distill"])) for m in metrics if "distill" in m)
    _, best = read_checkpoint_config(run / "best")  # frame validation ran and kept its best step
    assert math.isfinite(best["validation"]["score"])
    bags = sorted((tmp_path / "cache").rglob("metadata.yaml"))
    assert bags, "the training run generated no sim bag"
    trained = sorted((run / "checkpoints").iterdir())[-1] / "model"
    out = tmp_path / "eval"
    assert mf_main(["eval", "--data", str(bags[0].parent), "--model", str(trained), "--mode", "conditioned",
                    "--protocol", "metric", "--out", str(out), "--limit", "2"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert len(report["frames"]) == 2 and report["mean"]["rmse"] > 0
