"""LoRA on the lifted blocks: post-train a large lifted model when GPU memory is short.

With ``lora.rank`` > 0, every linear layer of the blocks that came from the image model (the
image and context streams of the joint blocks, the shared single blocks) is frozen and gets a
low-rank update ``W + (alpha / rank) B A`` (peft's LoRA layers, B zero-initialised so a fresh
adapter changes nothing); the depth stream, which has no pretrained counterpart, and everything
else of the depth path stay fully trainable. AdamW then keeps moments only for the adapters and
the depth path.

Checkpoints stay plain models: :func:`merged_state_dict` folds each adapter into its weight, so
``mf release``, ``mf eval`` and inference never see LoRA. The training state keeps the adapters
unmerged, so ``--resume`` continues the same low-rank run.
"""

from __future__ import annotations

import torch
from torch import nn

from mf_core.errors import InputError
from mf_core.model.dit import ModalityForcingDiT, is_depth_parameter
from mf_training.train.config import LoraSettings

ADAPTER = "default"  # peft's adapter name; one adapter per run
_BASE = ".base_layer"  # peft keeps the wrapped layer under this name
_A, _B = f".lora_A.{ADAPTER}.weight", f".lora_B.{ADAPTER}.weight"


def lifted_linear_layers(model: ModalityForcingDiT) -> list[str]:
    """Names of the linear layers in the blocks lifted from the image model (not the depth stream's)."""
    names = [name for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and name.startswith(("joint_blocks.", "single_blocks."))
             and not is_depth_parameter(f"{name}.weight")]
    if not names:
        raise InputError(f"{model.config.name} has no lifted block to put LoRA adapters on")
    return names


def add_lora(model: ModalityForcingDiT, settings: LoraSettings) -> ModalityForcingDiT:
    """Put adapters of ``settings`` on ``model``'s lifted blocks (in place); freeze all else but the depth path.

    Returns the model, whose trainable parameters are then the adapters and the depth path only.
    """
    try:  # peft imports transformers: only runs that use LoRA pay for it
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as err:
        raise InputError("lora.rank > 0 needs the peft package: pip install peft (or this package's [lora] extra), "
                         "or set lora.rank=0") from err

    targets = lifted_linear_layers(model)
    config = LoraConfig(r=settings.rank, lora_alpha=settings.scale * settings.rank, lora_dropout=settings.dropout,
                        target_modules=targets, bias="none")
    inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(".lora_" in name or is_depth_parameter(name))
    return model


def merged_state_dict(weights: dict[str, torch.Tensor], settings: LoraSettings) -> dict[str, torch.Tensor]:
    """A LoRA model's full state dict -> the plain model's: ``W + scale x B A`` under each layer's own name.

    Works on gathered tensors (what FSDP2 and the EMA give), so it needs no module. Without
    adapters in ``weights`` it returns them unchanged.
    """
    merged: dict[str, torch.Tensor] = {}
    for key, value in weights.items():
        if ".lora_" in key:
            continue
        if _BASE not in key:
            merged[key] = value
            continue
        layer, _, leaf = key.rpartition(f"{_BASE}.")
        layer = layer.removesuffix(".")
        if leaf == "weight":
            down, up = weights[layer + _A], weights[layer + _B]  # (r, in), (out, r)
            value = (value.float() + settings.scale * (up.float() @ down.float())).to(value.dtype)
        merged[f"{layer}.{leaf}"] = value
    return merged
