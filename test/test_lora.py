"""LoRA on the lifted blocks (lora.rank): what trains, that a fresh adapter changes nothing, that the merged
plain model computes what the adapted one does, and a post-training run with adapters end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")

from helpers import random_model

from mf_core.checkpoint import load_model, save_model
from mf_core.errors import InputError
from mf_core.model import ModalityForcingDiT
from mf_core.model.dit import is_depth_parameter
from mf_training.cli import main as mf_main
from mf_training.train.config import LoraSettings, load_config
from mf_training.train.lora import add_lora, lifted_linear_layers, merged_state_dict

REPO = Path(__file__).resolve().parents[1]


def run(model: ModalityForcingDiT) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(1, 3, 32, 48, generator=generator)
    depth = torch.randn(1, 1, 32, 48, generator=generator)
    with torch.no_grad():
        out = model(image, depth, torch.tensor([0.3]), torch.tensor([0.7]))
    return out.image_velocity, out.depth_x0


def test_lora_trains_adapters_and_the_depth_path_only_and_starts_as_the_model():
    model = random_model()
    before = run(model)
    targets = lifted_linear_layers(model)
    assert "joint_blocks.0.streams.image.qkv" in targets and "single_blocks.1.proj" in targets
    assert not any(".streams.depth." in name or name.startswith("decoder_blocks") for name in targets)
    add_lora(model, LoraSettings(rank=4))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    adapters = {n for n in trainable if ".lora_" in n}
    assert len(adapters) == 2 * len(targets)  # A and B per layer
    assert trainable - adapters == {n for n, _ in model.named_parameters() if is_depth_parameter(n)}
    assert not model.image_embed.proj.weight.requires_grad
    for fresh, original in zip(run(model), before, strict=True):  # B = 0: the adapted model is the model
        assert torch.equal(fresh, original)


@pytest.mark.parametrize("alpha", [0.0, 12.0])
def test_merged_plain_model_computes_what_the_adapted_model_does(alpha):
    settings = LoraSettings(rank=4, alpha=alpha)
    adapted = add_lora(random_model(), settings)
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if ".lora_" in name:
                p.normal_(0.0, 0.2)  # a trained adapter: B no longer 0
    expected = run(adapted)
    plain = random_model(seed=5)
    plain.load_state_dict(merged_state_dict(adapted.state_dict(), settings))  # strict: every key, no extra
    merged = run(plain)
    for got, want in zip(merged, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(run(random_model())[0], expected[0], atol=1e-3)  # the adapters do change the output


def test_lora_needs_a_pretrained_model_and_valid_settings(tmp_path):
    with pytest.raises(InputError, match="init_from"):
        load_config(REPO / "config" / "train_tiny.yaml", ["lora.rank=4"])
    with pytest.raises(InputError, match=r"lora\.dropout"):
        load_config(REPO / "config" / "train_tiny.yaml", ["lora.dropout=1.5"])


def test_post_training_with_lora_runs_resumes_and_saves_a_plain_model(tmp_path):
    """mf train with lora.rank from a pretrained model: 2 steps, resume to 3, the checkpoint loads as a plain
    model whose lifted weights moved only by a low-rank update."""
    pretrained = tmp_path / "pretrained"
    save_model(pretrained, random_model(), {"stage": "pretrain"})
    overrides = ["stage=modality-forcing", f"init_from={pretrained}", "lora.rank=2", "steps=2", "batch_size=2",
                 f"data.cache_dir={tmp_path / 'cache'}", "ckpt_every=1", "val_every=0",
                 "data.sources=[{path: 'sim:indoor', frames: 2, seed: 0, width: 80, height: 64}]"]
    run_dir = tmp_path / "run"
    assert mf_main(["train", "--config", str(REPO / "config" / "train_tiny.yaml"), "--out", str(run_dir),
                    *overrides]) == 0
    assert mf_main(["train", "--resume", str(run_dir), "steps=3"]) == 0
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(m["step"] for m in metrics) == 3
    trained, _ = load_model(sorted((run_dir / "checkpoints").iterdir())[-1] / "model")  # plain keys only
    start, _ = load_model(pretrained)
    delta = (trained.single_blocks[0].proj.weight - start.single_blocks[0].proj.weight).detach()
    assert delta.abs().max() > 0  # the adapter trained
    assert torch.linalg.matrix_rank(delta.double(), atol=1e-7) <= 2  # ... and only as a rank-2 update
    assert torch.equal(trained.image_embed.proj.weight, start.image_embed.proj.weight)  # frozen
