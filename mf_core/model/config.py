"""Model configuration and the size registry: one string names a model everywhere.

``MODEL_SIZES`` scales down the released Modality Forcing layout (FLUX.2 [klein] plus a
depth stream: 8 joint + 24 single + 4 depth-decoder blocks, width 4096, 32 heads).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mf_core.errors import InputError

IMAGE_TOKENIZERS = ("pixel", "vae")
# Settings that change how a model runs, not its weights: a trained model loads under either value. The frozen
# VAE's folders are among them: its weights are never in our checkpoints, and a released model carries its own copy.
VAE_PATHS = ("vae_path", "vae_statistics_path")
RUN_SETTINGS = ("refine_reads_transformer", *VAE_PATHS)
ROPE_AXES = 4  # (modality, row, col, context index), as in FLUX.2's 4-axis position ids


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of one :class:`~mf_core.model.dit.ModalityForcingDiT`."""

    name: str = "custom"
    patch_size: int = 8  # pixels per token side; 8 keeps small CPU images (64x80) at 8x10 tokens
    width: int = 256  # hidden size
    heads: int = 4  # 64-dim heads, the usual SDPA-friendly size
    n_joint: int = 2  # multi-stream blocks (own weights per stream, one joint attention)
    n_single: int = 4  # shared single-stream blocks (per-token modulation)
    n_dec: int = 1  # depth-only decoder blocks before the fp32 depth head
    mlp_ratio: float = 3.0  # gated-SiLU MLP hidden = ratio * width, as released
    qk_norm: bool = True  # RMSNorm on queries and keys keeps attention logits bounded in bf16
    time_mixing: bool = True  # zero-gated cross-stream timestep mixing (starts as a no-op)
    context_dim: int = 0  # 0 = no context stream
    stored_context: int = 0  # context tokens kept in the weights, used when a forward gets none (mf lift --context)
    depth_conditioned: bool = False  # extra always-clean input: encoded sparse depth + mask
    refine_head: bool = False  # conditioned only: pixel head composes depth from the LiDAR prior (mf_core.lidar_prior)
    refine_channels: int = 16  # width of the refinement head at full resolution
    # The head reads the transformer's depth (False: the LiDAR fill in its place wherever LiDAR is given, so
    # LiDAR-conditioned inference skips the transformer; measured in docs/MODEL_HISTORY.md). The weights are
    # the same either way: a trained model can be fine-tuned or released with the other setting.
    refine_reads_transformer: bool = True
    image_tokenizer: str = "pixel"  # "pixel" (dependency-free default) | "vae" (frozen, local folder)
    vae_path: str | None = None  # image_tokenizer="vae": a local diffusers AutoencoderKL(Flux2) folder or a TAEF2 one
    # TAEF2 vae_path only: the FLUX.2 VAE folder whose batch-norm statistics standardise its latents as FLUX.2
    # does (what a lifted FLUX.2 transformer expects); None = raw latents
    vae_statistics_path: str | None = None
    rope_theta: float = 10000.0  # RoPE base; grids here are < 100 tokens a side, the classic base suffices
    timestep_dim: int = 256  # sinusoidal features per timestep before the MLP (DiT / FLUX)
    time_bias: bool = False  # time embedders' output bias: a guidance-distilled FLUX.2's guidance, fixed at lift
    norm_eps: float = 1e-6  # LayerNorm / RMSNorm epsilon, as in DiT and FLUX

    def __post_init__(self) -> None:
        self._check_types()
        for key in ("patch_size", "width", "heads", "timestep_dim"):
            if getattr(self, key) < 1:
                raise InputError(f"model {key} must be >= 1, got {getattr(self, key)}")
        for key in ("n_joint", "n_single", "n_dec", "context_dim"):
            if getattr(self, key) < 0:
                raise InputError(f"model {key} must be >= 0, got {getattr(self, key)}")
        if self.n_joint + self.n_single == 0:
            raise InputError("a model needs at least one joint or single block (n_joint + n_single >= 1)")
        if self.width % self.heads:
            raise InputError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.head_dim % (2 * ROPE_AXES):
            raise InputError(
                f"head size width/heads = {self.head_dim} must be a multiple of {2 * ROPE_AXES} "
                f"(RoPE splits it over {ROPE_AXES} axes of rotation pairs); change width or heads"
            )
        if self.mlp_ratio <= 0:
            raise InputError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        if self.image_tokenizer not in IMAGE_TOKENIZERS:
            raise InputError(
                f"unknown image_tokenizer {self.image_tokenizer!r}; use one of {list(IMAGE_TOKENIZERS)}"
            )
        if self.refine_head and not self.depth_conditioned:
            raise InputError("refine_head needs depth_conditioned: true (it composes depth from the LiDAR input)")
        if self.refine_head and self.image_tokenizer != "pixel":
            raise InputError("refine_head reads image pixels: it needs image_tokenizer 'pixel'")
        if self.stored_context < 0:
            raise InputError(f"model stored_context must be >= 0, got {self.stored_context}")
        if self.stored_context and not self.context_dim:
            raise InputError("stored_context needs a context stream (context_dim > 0)")
        if not self.refine_reads_transformer and not self.refine_head:
            raise InputError("refine_reads_transformer: false is a setting of the refinement head: it needs "
                             "refine_head: true")
        if self.refine_channels < 4:
            raise InputError(f"refine_channels must be >= 4, got {self.refine_channels}")
        if self.vae_statistics_path and self.image_tokenizer != "vae":
            raise InputError('vae_statistics_path belongs to image_tokenizer="vae" with a TAEF2 vae_path')
        if self.image_tokenizer == "vae" and not self.vae_path:
            raise InputError('image_tokenizer="vae" needs vae_path: a local diffusers AutoencoderKL folder')

    def _check_types(self) -> None:
        """Each field has the type of its default (ints may stand for floats); InputError naming the field."""
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), type(f.default)
            if f.default is None:  # vae_path, vae_statistics_path: a path or nothing
                ok = value is None or isinstance(value, str)
            elif kind is float:
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                if ok:
                    object.__setattr__(self, f.name, float(value))
            elif kind is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, kind)
            if not ok:
                wanted = "a folder path" if f.default is None else f"{kind.__name__} (e.g. {f.name}: {f.default!r})"
                raise InputError(f"model setting {f.name} must be {wanted}, got {value!r} ({type(value).__name__})")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.width * self.mlp_ratio)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (written beside checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise InputError."""
        _check_keys(data)
        return cls(**data)  # field types are checked in __post_init__

    def same_weights(self, other: ModelConfig) -> bool:
        """Whether ``other`` describes the same weights (it differs at most in ``RUN_SETTINGS``)."""
        return dataclasses.replace(other, **{k: getattr(self, k) for k in RUN_SETTINGS}) == self

    def updated(self, **overrides) -> ModelConfig:
        """A copy with ``overrides`` applied; unknown keys raise InputError listing the valid ones."""
        _check_keys(overrides)
        return dataclasses.replace(self, **overrides)


def _check_keys(keys) -> None:
    if "lidar_prior" in keys:
        raise InputError("this model config has 'lidar_prior' (nearest-point prior): it is from mf before the "
                         "refinement head and cannot be run by this version; retrain it (config/train_default.yaml) "
                         "or use refine_head: true")
    valid = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(keys) - valid)
    if unknown:
        raise InputError(f"unknown model setting(s) {unknown}; valid ones are {sorted(valid)}")


MODEL_SIZES: dict[str, ModelConfig] = {
    # Trains on 2 CPU cores in minutes at 64x80 .. 128x160.
    "MF-XS": ModelConfig("MF-XS", patch_size=8, width=192, heads=3, n_joint=2, n_single=2, n_dec=1),
    # From S up, 16-pixel tokens: the token grid of the paper's 16x-compressing VAE.
    "MF-S": ModelConfig("MF-S", patch_size=16, width=384, heads=6, n_joint=4, n_single=8, n_dec=2),
    "MF-B": ModelConfig("MF-B", patch_size=16, width=768, heads=12, n_joint=3, n_single=8, n_dec=2),
    "MF-L": ModelConfig("MF-L", patch_size=16, width=1024, heads=16, n_joint=6, n_single=12, n_dec=3),
    # The released 8/24/4 layout halved, width 2048: ~1.3B parameters.
    "MF-XL": ModelConfig("MF-XL", patch_size=16, width=2048, heads=16, n_joint=4, n_single=12, n_dec=2),
}


def get_model_config(name: str, **overrides) -> ModelConfig:
    """The registry entry ``name`` with ``overrides`` applied (e.g. ``context_dim=768``).

    Unknown names or override keys raise InputError listing the valid ones.
    """
    if name not in MODEL_SIZES:
        raise InputError(f"unknown model {name!r}; choose one of {list(MODEL_SIZES)}")
    return MODEL_SIZES[name].updated(**overrides)
