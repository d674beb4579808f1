"""Transformer blocks: joint multi-stream, shared single-stream (also the depth decoder), final layer.

Every block is pre-norm with adaLN modulation (shift, scale, gate) computed *outside* the
block, once per forward, by a :class:`Modulation` shared by all blocks of one kind (the
FLUX.2 layout). A modulation is a tuple of three tensors that broadcast against the
tokens: (B, 1, D) for one vector per stream, (B, S, D) for per-token modulation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mf_core.model.config import ModelConfig
from mf_core.model.embeddings import apply_rope

ModParams = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # shift, scale, gate: (B, 1 or S, D) each


class Modulation(nn.Module):
    """adaLN: SiLU(vec) -> linear -> ``n_sets`` (shift, scale, gate) triples. Zero-initialised by the model."""

    def __init__(self, width: int, n_sets: int):
        super().__init__()
        self.n_sets = n_sets
        self.linear = nn.Linear(width, 3 * n_sets * width, bias=False)

    def forward(self, vec: torch.Tensor) -> list[ModParams]:
        """vec (B, D) -> n_sets triples of (B, 1, D)."""
        chunks = self.linear(F.silu(vec))[:, None].chunk(3 * self.n_sets, dim=-1)  # 3n x (B, 1, D)
        return [tuple(chunks[3 * i : 3 * i + 3]) for i in range(self.n_sets)]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def swiglu(x: torch.Tensor) -> torch.Tensor:
    """Gated SiLU on the two halves of the last axis: (..., 2H) -> (..., H)."""
    value, gate = x.chunk(2, dim=-1)
    return F.silu(value) * gate


def _layer_norm(config: ModelConfig) -> nn.LayerNorm:
    # No affine parameters: adaLN supplies scale and shift.
    return nn.LayerNorm(config.width, elementwise_affine=False, eps=config.norm_eps)


def _qk_norm(config: ModelConfig) -> nn.Module:
    return nn.RMSNorm(config.head_dim, eps=config.norm_eps) if config.qk_norm else nn.Identity()


class GatedMLP(nn.Module):
    """width -> 2 x hidden -> SwiGLU -> width, no biases."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.linear_in = nn.Linear(config.width, 2 * config.mlp_hidden, bias=False)
        self.linear_out = nn.Linear(config.mlp_hidden, config.width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_out(swiglu(self.linear_in(x)))  # (B, S, D)


class QKVHeads(nn.Module):
    """Fused (B, S, 3D) projections -> q, k, v (B, heads, S, head_dim), with QK RMSNorm on q and k."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.heads = config.heads
        self.norm_q = _qk_norm(config)
        self.norm_k = _qk_norm(config)

    def forward(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = qkv.unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)  # 3 x (B, h, S, hd)
        return self.norm_q(q), self.norm_k(k), v


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
    """RoPE (rotations (S, hd/2, 2)) then torch SDPA (flash kernels where available): (B, h, S, hd) -> (B, S, h*hd)."""
    out = F.scaled_dot_product_attention(apply_rope(q, rope), apply_rope(k, rope), v)  # (B, h, S, hd)
    return out.transpose(1, 2).flatten(2)  # (B, S, D)


class StreamLayers(nn.Module):
    """One stream's own weights inside a joint block: QKV, QK-norms, output projection, MLP."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm1 = _layer_norm(config)
        self.qkv = nn.Linear(config.width, 3 * config.width, bias=False)
        self.heads = QKVHeads(config)
        self.proj = nn.Linear(config.width, config.width, bias=False)
        self.norm2 = _layer_norm(config)
        self.mlp = GatedMLP(config)

    def project(self, x: torch.Tensor, mod: ModParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, S, D) -> q, k, v (B, h, S, hd) of the modulated, normalised tokens."""
        shift, scale, _ = mod
        return self.heads(self.qkv(modulate(self.norm1(x), shift, scale)))

    def finish(self, x: torch.Tensor, attended: torch.Tensor, attn_mod: ModParams, mlp_mod: ModParams):
        """Gated residual updates from this stream's slice of the joint attention and its MLP: (B, S, D)."""
        x = x + attn_mod[2] * self.proj(attended)  # (B, S, D)
        shift, scale, gate = mlp_mod
        return x + gate * self.mlp(modulate(self.norm2(x), shift, scale))  # (B, S, D)


class JointBlock(nn.Module):
    """Multi-stream block (SD3 MM-DiT / FLUX double-stream): per-stream weights, one joint attention.

    ``streams`` names the streams this block can carry; a forward may omit some (no context).
    """

    def __init__(self, config: ModelConfig, streams: tuple[str, ...]):
        super().__init__()
        self.streams = nn.ModuleDict({name: StreamLayers(config) for name in streams})

    def forward(
        self,
        xs: dict[str, torch.Tensor],
        mods: dict[str, list[ModParams]],
        rope: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """xs: name -> (B, S_name, D) in sequence order; mods: name -> [attn, mlp] triples; rope (S, hd/2)."""
        names = list(xs)
        qkvs = [self.streams[n].project(xs[n], mods[n][0]) for n in names]
        q, k, v = (torch.cat(parts, dim=2) for parts in zip(*qkvs, strict=True))  # (B, h, S, hd)
        attended = attention(q, k, v, rope).split([xs[n].shape[1] for n in names], dim=1)
        return {
            n: self.streams[n].finish(xs[n], a, *mods[n]) for n, a in zip(names, attended, strict=True)
        }


class SingleBlock(nn.Module):
    """Single-stream block (FLUX single-stream): one set of weights, attention and MLP in parallel.

    The input projection is fused (QKV and MLP-in in one matmul, ``qkv_mlp``), and so is
    the output (``proj`` over [attention, MLP hidden]). Modulation may be per token.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.split = [3 * config.width, 2 * config.mlp_hidden]
        self.norm = _layer_norm(config)
        self.qkv_mlp = nn.Linear(config.width, sum(self.split), bias=False)
        self.heads = QKVHeads(config)
        self.proj = nn.Linear(config.width + config.mlp_hidden, config.width, bias=False)

    def forward(self, x: torch.Tensor, mod: ModParams, rope: torch.Tensor) -> torch.Tensor:
        """x (B, S, D); mod triples broadcasting to (B, S, D); rope rotations (S, hd/2, 2) -> (B, S, D)."""
        shift, scale, gate = mod
        qkv, hidden = self.qkv_mlp(modulate(self.norm(x), shift, scale)).split(self.split, dim=-1)
        attended = attention(*self.heads(qkv), rope)  # (B, S, D)
        return x + gate * self.proj(torch.cat([attended, swiglu(hidden)], dim=-1))  # (B, S, D)


class FinalLayer(nn.Module):
    """adaLN (shift, scale) + linear to patch outputs; both zero-initialised by the model."""

    def __init__(self, config: ModelConfig, out_features: int):
        super().__init__()
        self.norm = _layer_norm(config)
        self.modulation = nn.Linear(config.width, 2 * config.width, bias=False)
        self.linear = nn.Linear(config.width, out_features, bias=False)

    def forward(self, x: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        """x (B, S, D), vec (B, D) -> (B, S, out_features)."""
        shift, scale = self.modulation(F.silu(vec))[:, None].chunk(2, dim=-1)  # (B, 1, D) each
        return self.linear(modulate(self.norm(x), shift, scale))
