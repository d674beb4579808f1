"""The Modality Forcing diffusion transformer: image, depth and optional context streams.

Each modality has its own flow time. The image head predicts velocity (noise - x0); the
depth head (own decoder blocks, run in fp32) predicts clean encoded depth x0. LiDAR-conditioned
models take the sparse LiDAR depth as an always-clean extra input. With ``refine_head`` they
also build the LiDAR prior (:mod:`mf_core.lidar_prior`: scan-line fill and directional neighbours),
give its fill to the transformer as a third LiDAR channel, and a pixel-level head
(:mod:`mf_core.model.refine`) composes the final depth from prior, image and the transformer's
own depth: a fresh model outputs exactly the fill; training teaches the head where the
image says a depth edge lies between LiDAR points, and on which side each pixel belongs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from mf_core.depth_codec import decode_depth, encode_depth
from mf_core.errors import InputError
from mf_core.frame_codec import MAX_LOG_DEPTH, log_relative_depth
from mf_core.lidar_prior import LidarPrior, compose, head_features, lidar_prior
from mf_core.model.blocks import FinalLayer, JointBlock, ModParams, Modulation, SingleBlock
from mf_core.model.config import ModelConfig, get_model_config
from mf_core.model.embeddings import (
    CrossTimeMixing,
    PatchEmbed,
    TimestepEmbedder,
    rope_rotations,
    token_positions,
    unpatchify,
)
from mf_core.model.refine import RefinementHead
from mf_core.model.vae import VaeTokenizer

# Modules that belong to the depth stream (everything else is image/context/shared).
DEPTH_MODULES = (
    "depth_embed.",
    "sparse_embed.",
    "time_embed_depth.",
    "time_mix_depth.",
    "joint_modulation.depth.",
    "decoder_modulation.",
    "decoder_blocks.",
    "depth_final.",
    "refine.",
)
DEPTH_HEAD_MODULES = ("decoder_modulation", "decoder_blocks", "depth_final", "refine")  # kept in float32


@dataclass
class ModelOutput:
    """What one forward pass predicts."""

    image_velocity: torch.Tensor  # (B, C, H, W) like the image input: predicted noise - x0
    depth_x0: torch.Tensor  # (B, 1, H, W) float32: predicted clean encoded depth
    # refine_head models: the head's terms (B, N_TERMS, H, W) and the transformer's own log relative
    # depth (B, 1, H, W), from which mf_core.lidar_prior.compose rebuilds depth at another resolution.
    refine_terms: torch.Tensor | None = None
    transformer_log_depth: torch.Tensor | None = None
    # ... and the LiDAR prior's fill encoded like depth_x0 (B, 1, H, W), NaN in samples without LiDAR: what
    # the model output is without its head's correction (the reference of LossConfig.per_prior).
    prior_x0: torch.Tensor | None = None


def is_depth_parameter(name: str) -> bool:
    """Whether parameter ``name`` belongs to the depth stream (no counterpart in an image model)."""
    return name.startswith(DEPTH_MODULES) or ".streams.depth." in name


class ModalityForcingDiT(nn.Module):
    """Joint image/depth flow-matching transformer with a per-modality noise level.

    Sequence order is [context, image, depth]; image and depth tokens lie on the same
    p x p pixel grid and differ on RoPE's modality axis. Blocks: ``n_joint`` multi-stream
    blocks, ``n_single`` shared blocks with per-token modulation (image/context tokens
    from the image vector, depth tokens from the depth vector), ``n_dec`` depth-only
    decoder blocks and the depth final layer in fp32, then the image final layer.
    Modulation is shared by all blocks of a kind, as in FLUX.2; adaLN-Zero init means a
    fresh model outputs exactly zeros.

    Parameter names map onto a FLUX.2-style (diffusers ``Flux2Transformer2DModel``)
    checkpoint as follows, so its image/text weights can be lifted 1:1 and the depth
    stream then initialised with :meth:`init_depth_stream_from_image`:

    ==========================================  ==============================================
    here                                        FLUX.2 (diffusers)
    ==========================================  ==============================================
    image_embed.proj                            x_embedder
    context_embed                               context_embedder
    time_embed_image.linear_1 / linear_2        time_guidance_embed.timestep_embedder.linear_1/2
    joint_modulation.image / .context           double_stream_modulation_img / _txt
    joint_blocks.i.streams.image.qkv            transformer_blocks.i.attn.to_q|to_k|to_v (cat rows)
    joint_blocks.i.streams.image.heads.norm_q/k transformer_blocks.i.attn.norm_q / norm_k
    joint_blocks.i.streams.image.proj           transformer_blocks.i.attn.to_out.0
    joint_blocks.i.streams.image.mlp            transformer_blocks.i.ff.linear_in / linear_out
    joint_blocks.i.streams.context.*            the same with add_{q,k,v}_proj, norm_added_*,
                                                to_add_out, ff_context
    single_modulation                           single_stream_modulation
    single_blocks.i.qkv_mlp / proj / heads.*    single_transformer_blocks.i.attn.to_qkv_mlp_proj /
                                                to_out / norm_q, norm_k
    image_final.modulation / linear             norm_out.linear (chunks swapped) / proj_out
    ==========================================  ==============================================

    The depth stream (``depth_*``, ``*.streams.depth``, ``decoder_*``) has no counterpart.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False  # recompute block activations in backward (training only)
        p, d = config.patch_size, config.width
        image_channels, self.image_patch = 3, p
        if config.image_tokenizer == "vae":
            self.vae = VaeTokenizer(config.vae_path, config.vae_statistics_path)
            if p % self.vae.factor:
                raise InputError(
                    f"patch_size {p} must be a multiple of the VAE's downsampling factor {self.vae.factor}"
                )
            image_channels, self.image_patch = self.vae.channels, p // self.vae.factor
            # The frozen VAE comes from vae_path, never from our checkpoints.
            self.register_state_dict_post_hook(_drop_vae_keys)
            self.register_load_state_dict_post_hook(_ignore_missing_vae_keys)
        self.image_channels = image_channels

        self.image_embed = PatchEmbed(image_channels, self.image_patch, d)
        self.depth_embed = PatchEmbed(1, p, d)
        if config.depth_conditioned:
            # (encoded sparse depth, mask[, encoded fill]), zero-init: starts ignored
            self.sparse_embed = PatchEmbed(3 if config.refine_head else 2, p, d)
        if config.refine_head:
            self.refine = RefinementHead(config.refine_channels)
        if config.context_dim:
            self.context_embed = nn.Linear(config.context_dim, d, bias=False)
        if config.stored_context:  # (L, context_dim) used when a forward gets no context; saved with the weights
            self.register_buffer("stored_context", torch.zeros(config.stored_context, config.context_dim))
        self.time_embed_image = TimestepEmbedder(d, config.timestep_dim, bias=config.time_bias)
        self.time_embed_depth = TimestepEmbedder(d, config.timestep_dim, bias=config.time_bias)
        if config.time_mixing:
            self.time_mix_image = CrossTimeMixing(d)  # image vector += gate * MLP(depth time embedding)
            self.time_mix_depth = CrossTimeMixing(d)

        self.streams = (("context",) if config.context_dim else ()) + ("image", "depth")
        if config.n_joint:
            self.joint_modulation = nn.ModuleDict({s: Modulation(d, n_sets=2) for s in self.streams})
        self.joint_blocks = nn.ModuleList(JointBlock(config, self.streams) for _ in range(config.n_joint))
        if config.n_single:
            self.single_modulation = Modulation(d, n_sets=1)
        self.single_blocks = nn.ModuleList(SingleBlock(config) for _ in range(config.n_single))
        if config.n_dec:
            self.decoder_modulation = Modulation(d, n_sets=1)
        self.decoder_blocks = nn.ModuleList(SingleBlock(config) for _ in range(config.n_dec))
        self.depth_final = FinalLayer(config, p * p)
        self.image_final = FinalLayer(config, image_channels * self.image_patch**2)
        self.initialize_weights()

    # ------------------------------------------------------------------ weights
    def _own_modules(self) -> Iterator[tuple[str, nn.Module]]:
        return ((n, m) for n, m in self.named_modules() if not n.startswith("vae"))

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """Xavier linears, N(0, 0.02) timestep MLPs, and adaLN-Zero: every modulation and final layer zero."""
        for name, module in self._own_modules():
            if isinstance(module, nn.Linear) and not name.startswith("refine"):
                nn.init.xavier_uniform_(module.weight)
        for embedder in (self.time_embed_image, self.time_embed_depth):
            for linear in (embedder.linear_1, embedder.linear_2):
                nn.init.normal_(linear.weight, std=0.02)
            if embedder.linear_2.bias is not None:
                nn.init.zeros_(embedder.linear_2.bias)
        for _, module in self._own_modules():
            if isinstance(module, Modulation):
                nn.init.zeros_(module.linear.weight)
            if isinstance(module, FinalLayer):
                nn.init.zeros_(module.modulation.weight)
                nn.init.zeros_(module.linear.weight)
        if self.config.depth_conditioned:
            nn.init.zeros_(self.sparse_embed.proj.weight)

    @torch.no_grad()
    def init_depth_stream_from_image(self) -> None:
        """Copy the image stream's weights into the depth stream (the paper's post-training recipe).

        Copies the timestep embedder, time mixing, joint modulation and every joint block's
        per-stream layers. The pixel depth tokenizer becomes the image tokenizer applied to a
        grey image (d, d, d): its weight is the image weight summed over RGB. The decoder
        blocks and depth final layer have no image counterpart and keep their init.
        """
        pairs = [(self.time_embed_depth, self.time_embed_image)]
        if self.config.time_mixing:
            pairs.append((self.time_mix_depth, self.time_mix_image))
        if self.config.n_joint:
            pairs.append((self.joint_modulation["depth"], self.joint_modulation["image"]))
        pairs += [(block.streams["depth"], block.streams["image"]) for block in self.joint_blocks]
        for target, source in pairs:
            target.load_state_dict(source.state_dict())
        if self.config.image_tokenizer == "pixel":
            rgb = self.image_embed.proj.weight.unflatten(1, (3, -1))  # (D, 3, p*p)
            self.depth_embed.proj.weight.copy_(rgb.sum(dim=1))  # (D, p*p)

    def depth_parameters(self) -> Iterator[nn.Parameter]:
        """Trainable parameters of the depth stream (tokenizers, embedder, per-stream layers, decoder, head)."""
        return (p for n, p in self.named_parameters() if p.requires_grad and is_depth_parameter(n))

    def image_parameters(self) -> Iterator[nn.Parameter]:
        """Trainable parameters of everything else: image and context streams and the shared blocks."""
        return (p for n, p in self.named_parameters() if p.requires_grad and not is_depth_parameter(n))

    def to_dtype(self, dtype: torch.dtype) -> ModalityForcingDiT:
        """Cast to ``dtype`` but keep the depth head (decoder blocks + final layer) in float32."""
        self.to(dtype)
        for name in DEPTH_HEAD_MODULES:
            if hasattr(self, name):
                getattr(self, name).float()
        return self

    # ------------------------------------------------------------------ image space
    def image_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(C, h, w) of the image the flow runs on for an H x W picture: pixels, or VAE latents."""
        if self.config.image_tokenizer == "vae":
            return self.vae.channels, height // self.vae.factor, width // self.vae.factor
        return 3, height, width

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> the flow's image space (identity for pixel tokens, VAE latents otherwise)."""
        return self.vae.encode(image) if self.config.image_tokenizer == "vae" else image

    def decode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`encode_image`: flow image space -> (B, 3, H, W) pixels."""
        return self.vae.decode(image) if self.config.image_tokenizer == "vae" else image

    # ------------------------------------------------------------------ forward
    def check_inputs(
        self,
        image: torch.Tensor,
        depth: torch.Tensor,
        t_image: torch.Tensor,
        t_depth: torch.Tensor,
        context: torch.Tensor | None,
        sparse_depth: torch.Tensor | None,
        sparse_mask: torch.Tensor | None,
    ) -> None:
        """Raise InputError naming the first input whose shape does not fit this model."""
        p = self.config.patch_size
        if depth.ndim != 4 or depth.shape[1] != 1:
            raise InputError(f"depth must be (B, 1, H, W), got {tuple(depth.shape)}")
        b, _, h, w = depth.shape
        if h == 0 or w == 0 or h % p or w % p:
            raise InputError(
                f"depth size {h}x{w} must be positive multiples of the patch size {p}; resize or crop the input"
            )
        expected = (b, *self.image_shape(h, w))
        if tuple(image.shape) != expected:
            raise InputError(f"image must be {expected} to match depth {tuple(depth.shape)}, got {tuple(image.shape)}")
        for name, t in (("t_image", t_image), ("t_depth", t_depth)):
            if tuple(t.shape) not in ((b,), ()):
                raise InputError(f"{name} must be (B,) = ({b},) flow times in [0, 1], got {tuple(t.shape)}")
        self._check_context(context, b)
        if (sparse_depth is None) != (sparse_mask is None):
            raise InputError("pass sparse_depth and sparse_mask together (or neither)")
        if sparse_depth is not None:
            if not self.config.depth_conditioned:
                raise InputError("this model is not depth_conditioned; pass sparse_depth=sparse_mask=None")
            for name, x in (("sparse_depth", sparse_depth), ("sparse_mask", sparse_mask)):
                if tuple(x.shape) != tuple(depth.shape):
                    raise InputError(f"{name} must be {tuple(depth.shape)} like depth, got {tuple(x.shape)}")

    def _check_context(self, context: torch.Tensor | None, batch: int) -> None:
        if context is None:
            return
        if not self.config.context_dim:
            raise InputError("this model has no context stream (context_dim=0); pass context=None")
        if context.ndim != 3 or context.shape[0] != batch or context.shape[2] != self.config.context_dim:
            raise InputError(
                f"context must be (B, L, {self.config.context_dim}) with B={batch}, got {tuple(context.shape)}"
            )

    def forward(
        self,
        image: torch.Tensor,
        depth: torch.Tensor,
        t_image: torch.Tensor,
        t_depth: torch.Tensor,
        context: torch.Tensor | None = None,
        sparse_depth: torch.Tensor | None = None,
        sparse_mask: torch.Tensor | None = None,
        refine: bool = True,
        prior: LidarPrior | None = None,
    ) -> ModelOutput:
        """Predict image velocity and clean depth from noisy inputs at per-modality times.

        image: (B, 3, H, W) noisy x_t in [-1, 1] (VAE latents (B, C, H/f, W/f) for a VAE tokenizer);
        depth: (B, 1, H, W) noisy encoded depth in [-1, 1]; t_image, t_depth: (B,) in [0, 1],
        1 = pure noise; context: (B, L, context_dim) or None (= empty context);
        sparse_depth, sparse_mask: (B, 1, H, W) always-clean LiDAR input of depth_conditioned
        models, None = no LiDAR. H and W: any multiples of patch_size. refine: refine_head models run
        their head (False: depth_x0 is the transformer's own, for a caller that runs the head at another
        resolution with :meth:`refine_terms`; transformer_log_depth is set either way). prior: refine_head
        models, the LiDAR prior of exactly these image and LiDAR inputs when the caller has it (the frame
        network computes one for the transformer and the head at the same size); None: computed here.
        """
        self.check_inputs(image, depth, t_image, t_depth, context, sparse_depth, sparse_mask)
        b, _, h, w = depth.shape
        grid_h, grid_w = h // self.config.patch_size, w // self.config.patch_size
        n = grid_h * grid_w

        # 1. Tokens per stream, in sequence order.
        tokens = self._context_tokens(context, b)  # {} or {"context": (B, L, D)}
        tokens["image"] = self.image_embed(image)  # (B, N, D)
        tokens["depth"] = self.depth_embed(depth)  # (B, N, D)
        if sparse_mask is not None:
            sparse_mask = sparse_mask.bool()  # samplers may pass it cast to the model's dtype
        if not self.config.refine_head:
            prior = None
        else:
            if sparse_depth is None:  # no LiDAR: an empty prior; the head refines the transformer's depth
                sparse_mask = torch.zeros_like(depth, dtype=torch.bool)
                sparse_depth = torch.zeros_like(depth)
            if prior is None:
                prior = lidar_prior(image, log_relative_depth(sparse_depth, sparse_mask), sparse_mask)
        prior_x0 = None
        if prior is not None:  # the fill encoded like depth_x0: an input, and ModelOutput.prior_x0 (NaN without LiDAR)
            fill, _ = encode_depth(prior.fill.exp(), scale=torch.ones(b, device=depth.device))  # (B, 1, H, W)
            prior_x0 = torch.where(prior.has_lidar, fill, torch.nan)
        if sparse_depth is not None:
            lidar = [sparse_depth, sparse_mask.to(sparse_depth.dtype)]
            if prior is not None:
                lidar.append(torch.where(prior.has_lidar, fill, 0.0).to(sparse_depth.dtype))
            tokens["depth"] = tokens["depth"] + self.sparse_embed(torch.cat(lidar, dim=1))  # (B, N, D)

        # 2. Conditioning vectors and rotary positions.
        vec = self._time_vectors(t_image.expand(b), t_depth.expand(b))  # name -> (B, D)
        n_context = tokens["context"].shape[1] if "context" in tokens else 0
        positions = token_positions(grid_h, grid_w, n_context, depth.device)  # (S, 4)
        rope = rope_rotations(positions, self.config.head_dim, self.config.rope_theta)  # (S, hd/2, 2) cos, sin

        # 3. Joint multi-stream blocks.
        if self.joint_blocks:
            mods = {s: self.joint_modulation[s](vec[_vector_of(s)]) for s in tokens}
            for block in self.joint_blocks:
                tokens = self._run(block, tokens, mods, rope)
        x = torch.cat(list(tokens.values()), dim=1)  # (B, S, D)

        # 4. Shared single-stream blocks with per-token modulation.
        if self.single_blocks:
            mod = self._per_token_modulation(vec, n_context + n, n)  # (B, S, D) x 3
            for block in self.single_blocks:
                x = self._run(block, x, mod, rope)

        # 5. Depth decoder + head in fp32, then the image head.
        depth_x0 = self._depth_head(x[:, -n:], vec["depth"], rope[-n:], grid_h, grid_w)  # (B, 1, H, W) fp32
        image_out = self.image_final(x[:, -2 * n : -n], vec["image"])  # (B, N, C*q*q)
        image_velocity = unpatchify(image_out, self.image_patch, grid_h, grid_w)  # (B, C, H', W')
        if prior is None:
            return ModelOutput(image_velocity=image_velocity, depth_x0=depth_x0)
        if not refine:
            return ModelOutput(image_velocity=image_velocity, depth_x0=depth_x0,
                               transformer_log_depth=self._transformer_log_depth(depth_x0), prior_x0=prior_x0)
        return self._refine(image, prior, prior_x0, depth_x0, image_velocity)

    def forward_image(self, image: torch.Tensor, t_image: torch.Tensor, context: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """The image model alone: image velocity (like ``image``) from the [context, image] sequence.

        No depth token is in the sequence and the depth stream is not run: for a model lifted from
        FLUX.2 this is the source transformer's prediction (:mod:`mf_training.lift`), the frozen
        teacher of self-distillation. image: (B, C, h, w) in the flow's image space, h and w
        multiples of the image patch; t_image (B,) or (); context (B, L, context_dim) or None.
        """
        q = self.image_patch
        if image.ndim != 4 or image.shape[1] != self.image_channels or image.shape[2] % q or image.shape[3] % q \
                or not image.shape[2] or not image.shape[3]:
            raise InputError(f"image must be (B, {self.image_channels}, h, w) with h and w positive multiples of "
                             f"{q}, got {tuple(image.shape)}")
        b, grid_h, grid_w = image.shape[0], image.shape[2] // q, image.shape[3] // q
        if tuple(t_image.shape) not in ((b,), ()):
            raise InputError(f"t_image must be (B,) = ({b},) flow times in [0, 1], got {tuple(t_image.shape)}")
        self._check_context(context, b)
        tokens = self._context_tokens(context, b)
        tokens["image"] = self.image_embed(image)  # (B, N, D)
        vec = self.time_embed_image(t_image.expand(b))  # (B, D); no depth time, so no time mixing
        n_context = tokens["context"].shape[1] if "context" in tokens else 0
        positions = token_positions(grid_h, grid_w, n_context, image.device, with_depth=False)  # (L + N, 4)
        rope = rope_rotations(positions, self.config.head_dim, self.config.rope_theta)
        if self.joint_blocks:
            mods = {s: self.joint_modulation[s](vec) for s in tokens}
            for block in self.joint_blocks:
                tokens = self._run(block, tokens, mods, rope)
        x = torch.cat(list(tokens.values()), dim=1)  # (B, L + N, D)
        if self.single_blocks:
            (mod,) = self.single_modulation(vec)
            for block in self.single_blocks:
                x = self._run(block, x, mod, rope)
        out = self.image_final(x[:, n_context:], vec)  # (B, N, C*q*q)
        return unpatchify(out, q, grid_h, grid_w)  # (B, C, h, w)

    def _context_tokens(self, context: torch.Tensor | None, batch: int) -> dict[str, torch.Tensor]:
        """{"context": (B, L, D)} from ``context``, or from the stored context when none is given; else {}."""
        if context is None and self.config.stored_context:
            context = self.stored_context.to(self.context_embed.weight.dtype).expand(batch, -1, -1)
        if context is None or not context.shape[1]:
            return {}
        return {"context": self.context_embed(context)}  # (B, L, D)

    def _transformer_log_depth(self, depth_x0: torch.Tensor) -> torch.Tensor:
        """The transformer's log relative depth (B, 1, H, W) from its depth_x0, averaged per token and
        upsampled bilinearly: its low-frequency content without the block edges of per-patch pixel predictions."""
        with _no_autocast(depth_x0.device.type):
            per_token = F.avg_pool2d(decode_depth(depth_x0.float()).clamp(min=1e-6).log(), self.config.patch_size)
            return F.interpolate(per_token, size=depth_x0.shape[-2:], mode="bilinear", align_corners=False)

    def refine_terms(self, image: torch.Tensor, prior: LidarPrior, transformer: torch.Tensor) -> torch.Tensor:
        """The refinement head's terms (B, N_TERMS, H, W) for ``image`` (B, 3, H, W) in [-1, 1], its LiDAR
        ``prior`` and the transformer's log relative depth (B, 1, H, W), all at one resolution (any:
        the head is convolutional), in float32 with autocast off. A head that does not read the transformer
        (``refine_reads_transformer`` false) gets the fill in its place where LiDAR is given."""
        if not self.config.refine_reads_transformer:
            transformer = torch.where(prior.has_lidar, prior.fill, transformer)  # (B, 1, H, W)
        with _no_autocast(image.device.type):
            return self.refine(head_features(image.float(), prior, transformer.float()))

    def _refine(self, image: torch.Tensor, prior: LidarPrior, prior_x0: torch.Tensor, depth_x0: torch.Tensor,
                image_velocity: torch.Tensor) -> ModelOutput:
        """Compose the depth from the LiDAR prior with the refinement head (float32, autocast off)."""
        transformer = self._transformer_log_depth(depth_x0)  # (B, 1, H, W)
        terms = self.refine_terms(image, prior, transformer)  # (B, N_TERMS, H, W)
        with _no_autocast(image.device.type):
            log_depth = compose(prior, terms, transformer, *self.refine.selection_weights)
            composed, _ = encode_depth(log_depth.clamp(-MAX_LOG_DEPTH, MAX_LOG_DEPTH).exp(),
                                       scale=torch.ones(image.shape[0], device=image.device))
        return ModelOutput(image_velocity=image_velocity, depth_x0=composed, refine_terms=terms,
                           transformer_log_depth=transformer, prior_x0=prior_x0)

    def _time_vectors(self, t_image: torch.Tensor, t_depth: torch.Tensor) -> dict[str, torch.Tensor]:
        image, depth = self.time_embed_image(t_image), self.time_embed_depth(t_depth)  # (B, D)
        if self.config.time_mixing:
            image, depth = self.time_mix_image(image, depth), self.time_mix_depth(depth, image)
        return {"image": image, "depth": depth}

    def _per_token_modulation(self, vec: dict[str, torch.Tensor], n_image: int, n_depth: int) -> ModParams:
        """Context and image tokens take the image vector's modulation, depth tokens the depth vector's."""
        (image_mod,) = self.single_modulation(vec["image"])
        (depth_mod,) = self.single_modulation(vec["depth"])
        return tuple(
            torch.cat([a.expand(-1, n_image, -1), d.expand(-1, n_depth, -1)], dim=1)  # (B, S, D)
            for a, d in zip(image_mod, depth_mod, strict=True)
        )

    def _depth_head(
        self, x: torch.Tensor, vec: torch.Tensor, rope: torch.Tensor, grid_h: int, grid_w: int
    ) -> torch.Tensor:
        """Depth decoder blocks and final layer in float32 with autocast off: (B, N, D) -> (B, 1, H, W)."""
        if self.depth_final.linear.weight.dtype != torch.float32:
            raise InputError("the depth head must stay float32: cast the model with model.to_dtype(), not .to()")
        with _no_autocast(x.device.type):
            x, vec = x.float(), vec.float()  # (B, N, D), (B, D)
            if self.decoder_blocks:
                (mod,) = self.decoder_modulation(vec)
                for block in self.decoder_blocks:
                    x = self._run(block, x, mod, rope)
            return unpatchify(self.depth_final(x, vec), self.config.patch_size, grid_h, grid_w)  # (B, 1, H, W)

    def _run(self, block: nn.Module, *args):
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)


def _no_autocast(device_type: str):
    """A context with autocast off (a no-op where the device has none, e.g. meta for FLOP counting)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _vector_of(stream: str) -> str:
    """Context tokens are modulated by the image vector (as text is in FLUX)."""
    return "depth" if stream == "depth" else "image"


def _drop_vae_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "vae.")]:
        del state_dict[key]


def _ignore_missing_vae_keys(module: nn.Module, incompatible_keys) -> None:
    incompatible_keys.missing_keys[:] = [k for k in incompatible_keys.missing_keys if ".vae." not in f".{k}"]


def count_parameters(config: ModelConfig | str) -> int:
    """Parameter count of a model size, built on the meta device so even MF-XL allocates nothing."""
    if isinstance(config, str):
        config = get_model_config(config)
    with torch.device("meta"):
        model = ModalityForcingDiT(config)
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("vae."))


def build_model(config: ModelConfig | str, **overrides) -> ModalityForcingDiT:
    """A freshly initialised model from a registry name ("MF-S") or a config, with overrides."""
    if isinstance(config, str):
        config = get_model_config(config, **overrides)
    elif overrides:
        config = config.updated(**overrides)
    return ModalityForcingDiT(config)
