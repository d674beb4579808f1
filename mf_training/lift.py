"""Lift a pretrained FLUX.2 transformer into an mf checkpoint (``mf lift``): the paper's starting point.

Reads a diffusers ``Flux2Transformer2DModel`` folder (``config.json`` and safetensors weights,
one file or shards with an index) and writes a checkpoint folder that every ``--model`` /
``init_from=`` takes. The image and context streams are copied 1:1 (the name mapping is in
:class:`mf_core.model.dit.ModalityForcingDiT`'s docstring and in :func:`weight_plan`), the depth
stream is initialised from the image stream, the depth decoder and head are fresh. The matching
FLUX.2 VAE (``AutoencoderKLFlux2`` folder) becomes the frozen image tokenizer; with 2x2 image
patches on its latents the model sees exactly the tokens FLUX.2 sees
(:mod:`mf_core.model.vae`). A TAEF2 folder (the tiny distilled FLUX.2 autoencoder,
:mod:`mf_core.model.taef2`) can stand in for it, much cheaper per frame, with the latent
statistics of the FLUX.2 VAE folder (``--vae-statistics``, or the transformer's sibling ``vae/``); its
latents approximate the VAE's, so that model's image output approximates FLUX.2's. With depth tokens excluded
(:meth:`~mf_core.model.dit.ModalityForcingDiT.forward_image`) its image output is the source
transformer's.

Exact where FLUX.2's maths has a counterpart here; the differences are handled at lift:

- FLUX.2 predicts velocity noise - x0 at flow time t (t = 1 noise) and embeds 1000 t with
  flipped (cos, sin) sinusoids: the same as here.
- A guidance-distilled checkpoint (``guidance_embeds``) adds the embedding of its guidance scale to
  the time vector; here that embedding, at ``guidance`` (fixed when lifting), is the time
  embedder's output bias (``time_bias``). Depth estimation runs one guidance value.
- Text: FLUX.2 attends to text-encoder embeddings. A file of precomputed embeddings (``context``)
  is stored in the weights and used whenever no context is passed (no text encoder at depth
  inference); without it the model runs with the empty context (no context tokens).
- ``norm_out`` (AdaLayerNormContinuous) orders its modulation (scale, shift); here it is
  (shift, scale): the halves are swapped.
- RoPE: FLUX.2 splits each head over 4 position axes (t, h, w, l); this model needs the axes equal
  (head_dim / 4 each), as every released FLUX.2 has. Others are refused, naming the setting.

Weights are streamed: the model is built once in the target dtype and each tensor is read from its
shard (memory-mapped) when it is copied in, so lifting needs about the checkpoint's size in memory,
not twice it. Only safetensors and JSON are read; nothing from the folder is executed.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from mf_core.errors import InputError
from mf_core.model.config import ROPE_AXES, ModelConfig
from mf_core.model.dit import ModalityForcingDiT
from mf_core.model.embeddings import timestep_features
from mf_core.model.taef2 import FACTOR as TAEF2_FACTOR
from mf_core.model.taef2 import LATENT_CHANNELS as TAEF2_CHANNELS
from mf_core.model.taef2 import is_taef2_folder
from mf_core.model.vae import FLUX2_FOLD, flux2_latent_statistics, vae_class_name

TRANSFORMER_CLASS = "Flux2Transformer2DModel"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
INDEX_NAME = WEIGHTS_NAME + ".index.json"
LIFT_METADATA_KEY = "lifted_from"  # checkpoint metadata: what was lifted (the teacher of self-distillation)
DEFAULT_GUIDANCE = 4.0  # FLUX.2's default guidance scale, for guidance-distilled checkpoints
CONTEXT_KEY = "context"  # the tensor name in a --context safetensors file
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# (name, required type) of the source config entries read here; others are ignored.
_SOURCE_FIELDS = {
    "in_channels": int, "num_layers": int, "num_single_layers": int, "attention_head_dim": int,
    "num_attention_heads": int, "joint_attention_dim": int, "timestep_guidance_channels": int,
    "mlp_ratio": float, "axes_dims_rope": list, "rope_theta": float, "eps": float, "guidance_embeds": bool,
    "patch_size": int,
}
_SOURCE_DEFAULTS = {  # diffusers' own defaults for entries a config.json may leave out
    "patch_size": 1, "timestep_guidance_channels": 256, "mlp_ratio": 3.0, "axes_dims_rope": [32, 32, 32, 32],
    "rope_theta": 2000, "eps": 1e-6, "guidance_embeds": True, "num_layers": 8, "num_single_layers": 48,
    "attention_head_dim": 128, "num_attention_heads": 48, "joint_attention_dim": 15360, "in_channels": 128,
}


@dataclass(frozen=True)
class SourceShape:
    """The entries of a Flux2Transformer2DModel config.json that decide the lifted model."""

    in_channels: int
    num_layers: int
    num_single_layers: int
    attention_head_dim: int
    num_attention_heads: int
    joint_attention_dim: int
    timestep_guidance_channels: int
    mlp_ratio: float
    axes_dims_rope: list
    rope_theta: float
    eps: float
    guidance_embeds: bool
    patch_size: int

    @property
    def width(self) -> int:
        return self.attention_head_dim * self.num_attention_heads


def read_source_config(folder: Path) -> SourceShape:
    """The transformer folder's config.json, checked; InputError naming what does not fit."""
    path = folder / "config.json"
    if not path.is_file():
        raise InputError(f"{folder} has no config.json: pass a diffusers {TRANSFORMER_CLASS} folder "
                         "(the transformer/ folder of a FLUX.2 download)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("_class_name") != TRANSFORMER_CLASS:
        found = data.get("_class_name") if isinstance(data, dict) else type(data).__name__
        raise InputError(f"{path} describes {found!r}, not a {TRANSFORMER_CLASS}; mf lift reads FLUX.2 transformers")
    values = {}
    for name, kind in _SOURCE_FIELDS.items():
        value = data.get(name, _SOURCE_DEFAULTS[name])
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise InputError(f"{path}: {name} must be {kind.__name__}, got {value!r}")
        values[name] = value
    if data.get("out_channels") not in (None, values["in_channels"]):
        raise InputError(f"{path}: out_channels {data['out_channels']} differs from in_channels "
                         f"{values['in_channels']}; only image-to-image-space transformers can be lifted")
    shape = SourceShape(**values)
    if shape.patch_size != 1:
        raise InputError(f"{path}: patch_size {shape.patch_size}; FLUX.2 transformers use 1 (latents are packed 2x2)")
    quarter = shape.attention_head_dim // ROPE_AXES
    if [int(a) for a in shape.axes_dims_rope] != [quarter] * ROPE_AXES:
        raise InputError(f"{path}: axes_dims_rope {shape.axes_dims_rope}; this model splits each head equally "
                         f"over {ROPE_AXES} position axes ({[quarter] * ROPE_AXES} for head size "
                         f"{shape.attention_head_dim})")
    return shape


def taef2_statistics_folder(transformer: Path, statistics: Path | None) -> Path:
    """The FLUX.2 VAE folder whose latent statistics a TAEF2 tokenizer uses: ``statistics``, else the
    transformer folder's sibling ``vae/`` (the layout of a FLUX.2 download)."""
    if statistics is not None:
        return statistics
    sibling = transformer.parent / "vae"
    if (sibling / "config.json").is_file():
        return sibling
    raise InputError("a TAEF2 --vae gives raw FLUX.2 latents, which the transformer expects standardised with the "
                     "FLUX.2 VAE's batch-norm statistics: pass --vae-statistics DIR (the vae/ folder of the FLUX.2 "
                     f"download; none found beside {transformer})")


def lifted_config(shape: SourceShape, vae_path: Path, depth_conditioned: bool, stored_context: int,
                  statistics: Path | None = None) -> ModelConfig:
    """The mf model config of a lifted transformer whose image tokenizer is the VAE at ``vae_path``: an
    AutoencoderKLFlux2 folder, or a TAEF2 folder with the FLUX.2 VAE folder ``statistics``."""
    if is_taef2_folder(vae_path):
        if statistics is None:
            raise InputError("a TAEF2 --vae needs --vae-statistics (the FLUX.2 VAE folder)")
        flux2_latent_statistics(statistics)  # InputError now if the folder does not have them
        channels, factor = TAEF2_CHANNELS, TAEF2_FACTOR
    elif vae_class_name(vae_path) != "AutoencoderKLFlux2":
        raise InputError(f"--vae {vae_path} is not an AutoencoderKLFlux2 folder; FLUX.2 transformers work on "
                         "that VAE's latents (the vae/ folder of the same FLUX.2 download, or a TAEF2 folder)")
    elif statistics is not None:
        raise InputError("--vae-statistics is for a TAEF2 --vae; an AutoencoderKLFlux2 brings its own")
    else:
        vae_config = json.loads((vae_path / "config.json").read_text())
        channels = int(vae_config.get("latent_channels", 32))
        factor = 2 ** (len(vae_config.get("block_out_channels", [0] * 4)) - 1)
    if shape.in_channels != channels * FLUX2_FOLD**2:
        raise InputError(f"the transformer takes in_channels {shape.in_channels} but the VAE's {channels} latent "
                         f"channels packed {FLUX2_FOLD}x{FLUX2_FOLD} give {channels * FLUX2_FOLD**2}: "
                         "the VAE is not from the same model")
    return ModelConfig(
        name=f"FLUX.2-lift-{shape.num_layers}x{shape.num_single_layers}-w{shape.width}",
        patch_size=factor * FLUX2_FOLD, width=shape.width, heads=shape.num_attention_heads,
        n_joint=shape.num_layers, n_single=shape.num_single_layers, n_dec=2, mlp_ratio=shape.mlp_ratio,
        qk_norm=True, time_mixing=True, context_dim=shape.joint_attention_dim, stored_context=stored_context,
        depth_conditioned=depth_conditioned, image_tokenizer="vae", vae_path=str(vae_path.resolve()),
        vae_statistics_path=None if statistics is None else str(statistics.resolve()),
        rope_theta=shape.rope_theta, timestep_dim=shape.timestep_guidance_channels,
        time_bias=shape.guidance_embeds, norm_eps=shape.eps,
    )


Combine = Callable[[list[torch.Tensor]], torch.Tensor]


def _one(tensors: list[torch.Tensor]) -> torch.Tensor:
    return tensors[0]


def _rows(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(tensors, dim=0)  # q, k, v projections stacked as one fused (3D, D) weight


def _swap_halves(tensors: list[torch.Tensor]) -> torch.Tensor:
    scale, shift = tensors[0].chunk(2, dim=0)  # AdaLayerNormContinuous: (scale, shift); here (shift, scale)
    return torch.cat([shift, scale], dim=0)


def weight_plan(shape: SourceShape) -> dict[str, tuple[list[str], Combine]]:
    """Every lifted parameter: its name here -> (the source keys it is made of, how they combine)."""
    plan: dict[str, tuple[list[str], Combine]] = {
        "image_embed.proj.weight": (["x_embedder.weight"], _one),
        "context_embed.weight": (["context_embedder.weight"], _one),
        "time_embed_image.linear_1.weight": (["time_guidance_embed.timestep_embedder.linear_1.weight"], _one),
        "time_embed_image.linear_2.weight": (["time_guidance_embed.timestep_embedder.linear_2.weight"], _one),
        "joint_modulation.image.linear.weight": (["double_stream_modulation_img.linear.weight"], _one),
        "joint_modulation.context.linear.weight": (["double_stream_modulation_txt.linear.weight"], _one),
        "single_modulation.linear.weight": (["single_stream_modulation.linear.weight"], _one),
        "image_final.modulation.weight": (["norm_out.linear.weight"], _swap_halves),
        "image_final.linear.weight": (["proj_out.weight"], _one),
    }
    streams = {  # here -> (FLUX.2 q, k, v, q-norm, k-norm, out, MLP) of that stream
        "image": ("to_q", "to_k", "to_v", "norm_q", "norm_k", "to_out.0", "ff"),
        "context": ("add_q_proj", "add_k_proj", "add_v_proj", "norm_added_q", "norm_added_k", "to_add_out",
                    "ff_context"),
    }
    for i in range(shape.num_layers):
        for stream, (q, k, v, norm_q, norm_k, out, ff) in streams.items():
            here, there = f"joint_blocks.{i}.streams.{stream}", f"transformer_blocks.{i}"
            plan[f"{here}.qkv.weight"] = ([f"{there}.attn.{n}.weight" for n in (q, k, v)], _rows)
            plan[f"{here}.heads.norm_q.weight"] = ([f"{there}.attn.{norm_q}.weight"], _one)
            plan[f"{here}.heads.norm_k.weight"] = ([f"{there}.attn.{norm_k}.weight"], _one)
            plan[f"{here}.proj.weight"] = ([f"{there}.attn.{out}.weight"], _one)
            plan[f"{here}.mlp.linear_in.weight"] = ([f"{there}.{ff}.linear_in.weight"], _one)
            plan[f"{here}.mlp.linear_out.weight"] = ([f"{there}.{ff}.linear_out.weight"], _one)
    for i in range(shape.num_single_layers):
        here, there = f"single_blocks.{i}", f"single_transformer_blocks.{i}.attn"
        plan[f"{here}.qkv_mlp.weight"] = ([f"{there}.to_qkv_mlp_proj.weight"], _one)
        plan[f"{here}.proj.weight"] = ([f"{there}.to_out.weight"], _one)
        plan[f"{here}.heads.norm_q.weight"] = ([f"{there}.norm_q.weight"], _one)
        plan[f"{here}.heads.norm_k.weight"] = ([f"{there}.norm_k.weight"], _one)
    return plan


GUIDANCE_KEYS = [f"time_guidance_embed.guidance_embedder.linear_{i}.weight" for i in (1, 2)]


def weight_files(folder: Path) -> dict[str, Path]:
    """Source tensor name -> the safetensors file holding it (one file, or the shards of an index)."""
    index = folder / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"{index} is not a safetensors index (a JSON object with 'weight_map'): {exc}") from exc
        files = {}
        for key, name in weight_map.items():
            path = folder / str(name)
            if Path(str(name)).name != str(name) or not path.is_file():
                raise InputError(f"{index} names shard {name!r} for {key}, which is not a file in {folder}")
            files[key] = path
        return files
    single = folder / WEIGHTS_NAME
    if not single.is_file():
        found = sorted(p.name for p in folder.iterdir())[:8]
        raise InputError(f"{folder} has neither {WEIGHTS_NAME} nor {INDEX_NAME} (found {found}); only safetensors "
                         "weights are read (re-save .bin weights with save_pretrained(safe_serialization=True))")
    with _open(single) as handle:
        return dict.fromkeys(handle.keys(), single)


@contextlib.contextmanager
def _open(path: Path) -> Iterator:
    try:
        with safe_open(path, framework="pt") as handle:
            yield handle
    except (SafetensorError, OSError) as exc:
        raise InputError(f"{path} is not a readable safetensors file ({exc})") from exc


class _SourceReader:
    """Reads source tensors one at a time from their (memory-mapped) files."""

    def __init__(self, files: dict[str, Path], stack: contextlib.ExitStack):
        self.files = files
        self._stack = stack
        self._handles: dict[Path, object] = {}

    def get(self, key: str) -> torch.Tensor:
        path = self.files[key]
        if path not in self._handles:
            self._handles[path] = self._stack.enter_context(_open(path))
        return self._handles[path].get_tensor(key)


def read_context(path: Path, context_dim: int) -> torch.Tensor:
    """(L, context_dim) embeddings from a safetensors file holding ``context`` (L, D) or (1, L, D)."""
    with _open(path) as handle:
        if CONTEXT_KEY not in handle.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
            raise InputError(f"{path} holds {sorted(handle.keys())[:5]}, not a tensor named {CONTEXT_KEY!r} "
                             "(the text embeddings, shape (L, D) or (1, L, D))")
        context = handle.get_tensor(CONTEXT_KEY)
    if context.ndim == 3 and context.shape[0] == 1:
        context = context[0]
    if context.ndim != 2 or context.shape[1] != context_dim or not context.is_floating_point():
        raise InputError(f"{path}: {CONTEXT_KEY} has shape {tuple(context.shape)} ({context.dtype}); the transformer "
                         f"needs float (L, {context_dim}) (its joint_attention_dim)")
    if not torch.isfinite(context).all():
        raise InputError(f"{path}: {CONTEXT_KEY} holds NaN or inf values")
    return context.float()


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def lift(transformer: str | Path, vae: str | Path, depth_conditioned: bool = True, context: str | Path | None = None,
         guidance: float = DEFAULT_GUIDANCE, dtype: str = "bfloat16", vae_statistics: str | Path | None = None
         ) -> tuple[ModalityForcingDiT, dict]:
    """The lifted model (eval mode; depth head float32, the rest ``dtype``) and its checkpoint metadata.

    ``vae`` is the AutoencoderKLFlux2 folder, or a TAEF2 folder (then ``vae_statistics``, the FLUX.2 VAE
    folder, or the transformer's sibling ``vae/`` gives the latent statistics).
    """
    transformer, vae = Path(transformer), Path(vae)
    statistics = None if vae_statistics is None else Path(vae_statistics)
    if is_taef2_folder(vae):
        statistics = taef2_statistics_folder(transformer, statistics)
    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if not math.isfinite(guidance) or guidance < 0:
        raise InputError(f"--guidance must be a finite scale >= 0, got {guidance}")
    shape = read_source_config(transformer)
    files = weight_files(transformer)
    plan = weight_plan(shape)
    wanted = {key for keys, _ in plan.values() for key in keys}
    wanted |= set(GUIDANCE_KEYS) if shape.guidance_embeds else set()
    missing, unknown = sorted(wanted - files.keys()), sorted(files.keys() - wanted)
    if missing or unknown:
        parts = ([f"missing {', '.join(missing[:4])}"] if missing else []) + (
            [f"unknown {', '.join(unknown[:4])}"] if unknown else [])
        raise InputError(f"{transformer} does not fit its config.json as a {TRANSFORMER_CLASS}: {'; '.join(parts)} "
                         f"({len(missing)} missing, {len(unknown)} unknown in all)")
    stored = None if context is None else read_context(Path(context), shape.joint_attention_dim)
    config = lifted_config(shape, vae, depth_conditioned, 0 if stored is None else stored.shape[0], statistics)
    with _default_dtype(DTYPES[dtype]):  # built once, in the target dtype: no float32 copy of a large model
        model = ModalityForcingDiT(config)
    model.to_dtype(DTYPES[dtype])
    state = model.state_dict()
    with torch.no_grad(), contextlib.ExitStack() as stack:
        reader = _SourceReader(files, stack)
        for name, (keys, combine) in plan.items():
            tensors = [reader.get(key) for key in keys]
            value = combine(tensors)
            if tuple(value.shape) != tuple(state[name].shape):
                shapes = ", ".join(f"{k} {tuple(t.shape)}" for k, t in zip(keys, tensors, strict=True))
                raise InputError(f"{transformer}: {shapes} does not fit {name} {tuple(state[name].shape)} of the "
                                 "model its config.json describes; the weights and config.json disagree")
            state[name].copy_(value)
        if shape.guidance_embeds:
            model.time_embed_image.linear_2.bias.copy_(_guidance_embedding(reader, guidance, shape))
        if stored is not None:
            model.stored_context.copy_(stored)
        model.init_depth_stream_from_image()
    metadata = {LIFT_METADATA_KEY: {"transformer": str(transformer.resolve()), "vae": str(vae.resolve()),
                                    "vae_statistics": None if statistics is None else str(statistics.resolve()),
                                    "guidance": guidance if shape.guidance_embeds else None,
                                    "context": None if context is None else str(Path(context).resolve()),
                                    "dtype": dtype}}
    return model.eval(), metadata


def _guidance_embedding(reader: _SourceReader, guidance: float, shape: SourceShape) -> torch.Tensor:
    """(D,) FLUX.2's embedding of the guidance scale: what it adds to the time vector at that scale."""
    linear_1, linear_2 = (reader.get(key).float() for key in GUIDANCE_KEYS)
    features = timestep_features(torch.tensor([guidance]), shape.timestep_guidance_channels)  # (1, F)
    hidden = torch.nn.functional.silu(features @ linear_1.T)  # (1, D)
    return (hidden @ linear_2.T)[0]  # (D,)


def write_lifted(out: Path, model: ModalityForcingDiT, metadata: dict, dtype: str) -> Path:
    """Save the lifted model to ``out`` (which must not exist) through a temp folder beside it."""
    from mf_core.checkpoint import save_model
    from mf_core.files import remove_tree, temp_dir_beside

    work = temp_dir_beside(out)
    try:
        save_model(work, model, metadata, dtype=None if dtype == "float32" else DTYPES[dtype])
        work.rename(out)
    except BaseException:
        if work.exists():
            remove_tree(work, work.parent)
        raise
    return out

