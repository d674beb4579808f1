"""Every training option in one dataclass tree, with the reason beside each default.

A run is configured by a YAML file (``base:`` names a parent file merged underneath) plus
``key.sub=value`` overrides from the command line; ``load_config`` composes, types and
validates them, and the resolved config is written to ``RUN_DIR/config.yaml`` so
``--resume`` continues with exactly the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mf_core.errors import InputError
from mf_core.files import atomic_write
from mf_core.flow import LossConfig, TrainingMix
from mf_core.lidar_prior import check_refine_strengths
from mf_core.model.config import get_model_config
from mf_core.self_validation import AUTO, parse_nearest_share
from mf_training.sim.config import SCENE_KINDS
from mf_training.train.config_tree import apply_overrides, from_dict, read_yaml_chain, to_dict

STAGES = ("pretrain", "modality-forcing")
TRAINABLE = ("all", "refine_head")
SIM_PREFIX = "sim:"


@dataclass
class SourceConfig:
    """One training data source and its share of the batches."""

    path: str = ""  # sample folder, bag, shared dataset folder, or "sim:indoor" / "sim:street" (generated)
    weight: float = 1.0  # relative share of training samples drawn from this source
    max_samples: int = 0  # cap on samples read (0 = all): keeps memory bounded on big datasets
    val_count: int = 0  # samples held out for validation, taken from the end of the source
    # Real sets of shared/data only (mf_training/data/real_sets.py): "train" reads only the frames of
    # the fixed train split, "val" only those of the val split, as validation samples (never trained on).
    split: str = ""
    # Only for bags from a moving robot (as `mf export --fixed-frame` / `--point-time`): each sweep moved through
    # this frame (odom, map) to its image's stamp with the bag's /tf, each return from its own time.
    fixed_frame: str = ""
    point_time: str = "auto"
    camera_info_file: str = ""  # a bag recorded without camera_info: its calibration YAML (as --camera-info)
    # Only for sim: sources (passed to `mf sim`); generated once into data.cache_dir.
    frames: int = 8
    seed: int = 0
    width: int = 160
    height: int = 128

    def __post_init__(self) -> None:
        if not self.path:
            raise InputError("every data.sources entry needs a path (folder, bag, or sim:indoor|street)")
        if not self.weight > 0:
            raise InputError(f"data source {self.path}: weight must be > 0, got {self.weight}")
        if self.max_samples < 0 or self.val_count < 0:
            raise InputError(f"data source {self.path}: max_samples and val_count must be >= 0")
        if self.split not in ("", "train", "val"):
            raise InputError(f"data source {self.path}: split must be train or val (or empty), got {self.split!r}; "
                             "test frames are for mf bench quality only")
        if self.split == "val" and self.val_count:
            raise InputError(f"data source {self.path}: a split: val source is all validation; drop val_count")
        if self.point_time != "auto" and not self.fixed_frame:
            raise InputError(f"data source {self.path}: point_time needs fixed_frame (the motion to deskew with)")
        if (self.fixed_frame or self.camera_info_file) and (self.is_sim or self.split):
            raise InputError(f"data source {self.path}: fixed_frame and camera_info_file apply to your own bags "
                             "only; drop them")
        if self.is_sim and self.sim_scene not in SCENE_KINDS:
            raise InputError(f"data source {self.path}: the scene after {SIM_PREFIX!r} must be one of "
                             f"{', '.join(SCENE_KINDS)}")

    @property
    def is_sim(self) -> bool:
        return self.path.startswith(SIM_PREFIX)

    @property
    def sim_scene(self) -> str:
        """The scene kind of a ``sim:`` source (``sim:street`` -> ``street``)."""
        return self.path[len(SIM_PREFIX):]


@dataclass
class DataConfig:
    """What to train on and at which resolution."""

    sources: list[SourceConfig] = field(default_factory=list)
    width: int = 256  # training resolution; a multiple of the model's patch size
    height: int = 192
    max_zoom: float = 1.25  # random zoom: [1, max_zoom] over the covering resize, or [1/z, z] with frame_size
    # > 0: examples are windows of the frame scaled to this longer side (the inference processing
    # size), so LiDAR spacing and edges look as they will at inference; 0: the covering resize.
    frame_size: int = 0
    dense_target_prob: float = 1.0  # conditioned, dense GT: share of examples supervised by GT (else held-out LiDAR)
    hflip: bool = True  # random horizontal flips (depth is symmetric under a mirror)
    use_gt_as_supervision: bool = False  # supervise with dense GT instead of LiDAR (sim / RGB-D only)
    cache_dir: str = "~/.cache/mf/sim"  # where sim: sources are generated (reused when present)

    def __post_init__(self) -> None:
        if self.width < 8 or self.height < 8:
            raise InputError(f"data.width/height must be >= 8, got {self.width}x{self.height}")
        if self.max_zoom < 1.0:
            raise InputError(f"data.max_zoom must be >= 1 (1 = no zoom), got {self.max_zoom}")
        if self.frame_size < 0 or not 0 <= self.dense_target_prob <= 1:
            raise InputError(f"data.frame_size must be >= 0 and dense_target_prob in [0, 1], got "
                             f"{self.frame_size} and {self.dense_target_prob}")


MODEL_FROM_INIT = "init_from"  # model.name that trains the init_from checkpoint's own model (e.g. from mf lift)


@dataclass
class ModelSection:
    """Which model to build (a registry name from `mf models`, or ``init_from``: the init_from
    checkpoint's model) and its overrides."""

    name: str = "MF-XS"
    overrides: dict = field(default_factory=dict)  # ModelConfig fields, e.g. {lidar_conditioning: true}


@dataclass
class OptimConfig:
    """AdamW with linear warmup and cosine decay (DiT / nanoGPT defaults, scaled for small runs)."""

    lr: float = 3e-4  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine ends at lr * min_lr_ratio
    warmup_steps: int = 100  # linear ramp from 0 keeps early adaLN updates stable
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0  # DiT trains without weight decay
    grad_clip: float = 1.0  # clip the global grad norm (0 = off)
    ema_decay: float = 0.999  # EMA of weights used for validation and the saved model (0 = off)

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise InputError(f"optim.lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise InputError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.warmup_steps < 0 or self.grad_clip < 0:
            raise InputError("optim.warmup_steps and optim.grad_clip must be >= 0")
        if not 0 <= self.ema_decay < 1:
            raise InputError(f"optim.ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass
class PerfConfig:
    """All performance switches in one place; GPU-only ones are skipped on CPU."""

    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = True  # bf16 autocast on CUDA (fp32 on CPU); master weights stay fp32
    tf32: bool = True  # TF32 matmuls on Ampere+
    fused_adamw: bool = True  # fused AdamW kernel on CUDA
    compile: bool = False  # torch.compile the model (CUDA only; slow first steps)
    gradient_checkpointing: bool = False  # recompute block activations in backward to save memory
    fsdp: bool = False  # shard parameters/gradients/optimizer with FSDP2 instead of DDP (large sizes)

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"perf.device must be auto, cpu or cuda, got {self.device!r}")


@dataclass
class LoraSettings:
    """Low-rank adapters on the lifted blocks (0 = off: every parameter trains)."""

    rank: int = 0  # adapter rank r on the lifted blocks (mf_training/train/lora.py); 16-64 for a 4B model
    alpha: float = 0.0  # the update is scaled by alpha / rank; 0 = rank (scale 1)
    dropout: float = 0.0  # dropout on the adapter input

    def __post_init__(self) -> None:
        if self.rank < 0 or self.alpha < 0 or not 0.0 <= self.dropout < 1.0:
            raise InputError(f"lora.rank and lora.alpha must be >= 0 and lora.dropout in [0, 1), got rank "
                             f"{self.rank}, alpha {self.alpha}, dropout {self.dropout}")

    @property
    def scale(self) -> float:
        """alpha / rank: what multiplies B A."""
        return (self.alpha or self.rank) / self.rank


@dataclass
class ReleaseSettings:
    """How the released model runs inference. Every validation scores the checkpoint this way, so the
    step ``mf release`` picks is the best one as it will run; ``mf release`` writes these into the model
    folder (its flags override them)."""

    # Longer image side the transformer runs at; 0 = data.frame_size, else 5/4 of the crop's longer side.
    processing_size: int = 0
    # refine_head models: share of the learned correction to the LiDAR prior applied between scan lines,
    # and next to a return on the pixel's own row (None = refine_strength everywhere); mf_core.lidar_prior.
    refine_strength: float = 1.0
    refine_strength_near: float | None = None
    # refine_head models: longer image side the refinement head runs at; 0 = data.frame_size (the scale
    # it trains at), else the processing size. Never above the camera's own (mf_core.pipeline).
    refine_size: int = 0
    # LiDAR-conditioned models: share of the nearest-return fill mixed into the output: auto (fitted per
    # frame on scan-line pieces held out of its own sweep), none, or a number in [0, 1]; mf_core.self_validation.
    nearest_share: str | float | None = AUTO

    def __post_init__(self) -> None:
        self.nearest_share = parse_nearest_share(self.nearest_share, "release.nearest_share")
        if self.processing_size < 0:
            raise InputError(f"release.processing_size must be >= 0 (0 = data.frame_size), got {self.processing_size}")
        if self.refine_size < 0:
            raise InputError(f"release.refine_size must be >= 0 (0 = data.frame_size), got {self.refine_size}")
        check_refine_strengths(self.refine_strength, self.refine_strength_near, "release.")


@dataclass
class TrainConfig:
    """One training run: stage, model, data, optimisation, schedule of logs and checkpoints."""

    stage: str = "pretrain"  # pretrain (image stream only) | modality-forcing (depth post-training)
    init_from: str = ""  # modality-forcing: pretrain run dir or model dir ("" = from scratch, tests/ablations)
    distill: bool = False  # self-distil the image output against a frozen copy of init_from (weights in loss)
    # "refine_head": only the refinement head of init_from trains, the transformer is frozen (a head stage
    # on a trained model: its depth is one of the head's inputs); "all": every parameter (or the LoRA set).
    trainable: str = "all"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)
    mix: TrainingMix = field(default_factory=TrainingMix)  # how modes and times are drawn (mf_core.flow)
    loss: LossConfig = field(default_factory=LossConfig)  # loss forms and weights (mf_core.flow)
    lora: LoraSettings = field(default_factory=LoraSettings)  # low-rank adapters instead of full fine-tuning
    release: ReleaseSettings = field(default_factory=ReleaseSettings)  # how validation and the release run it
    steps: int = 1000  # optimiser steps
    batch_size: int = 8  # global batch (all ranks, all accumulation micro-steps)
    micro_batch_size: int = 0  # per forward pass; 0 = batch_size / world size (no accumulation)
    seed: int = 0  # seeds init, data order, crops and noise (derived per step and micro-batch)
    log_every: int = 10  # steps between scalar logs
    val_every: int = 200  # steps between validations (0 = only at the end)
    val_panels: int = 2  # validation samples drawn as image/depth panels in TensorBoard
    ckpt_every: int = 500  # steps between checkpoints (the last step is always saved)
    keep_last: int = 3  # checkpoints kept on disk

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise InputError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if self.steps < 1 or self.batch_size < 1 or self.micro_batch_size < 0:
            raise InputError("steps and batch_size must be >= 1 and micro_batch_size >= 0")
        if self.log_every < 1 or self.val_every < 0 or self.ckpt_every < 1 or self.keep_last < 1:
            raise InputError("log_every, ckpt_every and keep_last must be >= 1; val_every >= 0")
        if self.distill and not (self.stage == "modality-forcing" and self.init_from):
            raise InputError("distill=true needs stage=modality-forcing and init_from (the frozen teacher)")
        if self.trainable not in TRAINABLE:
            raise InputError(f"trainable must be one of {', '.join(TRAINABLE)}, got {self.trainable!r}")
        if self.trainable == "refine_head" and not (self.stage == "modality-forcing" and self.init_from):
            raise InputError("trainable=refine_head trains the head of a trained model: it needs "
                             "stage=modality-forcing and init_from")
        if self.trainable == "refine_head" and self.lora.rank:
            raise InputError("trainable=refine_head freezes everything but the head: drop lora.rank")
        if self.lora.rank and not (self.stage == "modality-forcing" and self.init_from):
            raise InputError("lora.rank > 0 adapts a pretrained model: it needs stage=modality-forcing and init_from")
        if not self.data.sources:
            raise InputError("data.sources is empty: list at least one folder, bag or sim: source")

    @property
    def processing_size(self) -> int:
        """Longer image side the released model runs at (``release.processing_size`` or its fallbacks)."""
        data = self.data
        return self.release.processing_size or data.frame_size or round(max(data.width, data.height) * 5 / 4)

    @property
    def refine_size(self) -> int:
        """Longer image side the released model's refinement head runs at (``release.refine_size`` or its
        fallbacks: the scale its training examples have, else the processing size)."""
        return self.release.refine_size or self.data.frame_size or self.processing_size

    def accumulation_steps(self, world_size: int) -> int:
        """Micro-batches per rank per step; raises InputError when the batch does not split evenly."""
        micro = self.micro_batch_size or self.batch_size // world_size
        if micro < 1 or self.batch_size % (micro * world_size):
            raise InputError(
                f"batch_size {self.batch_size} must be a multiple of micro_batch_size {micro} x "
                f"{world_size} ranks; change batch_size or micro_batch_size"
            )
        return self.batch_size // (micro * world_size)

    def micro_batch(self, world_size: int) -> int:
        """Samples per forward pass on one rank."""
        return self.batch_size // (world_size * self.accumulation_steps(world_size))


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Compose ``path`` (following ``base:``), apply ``key=value`` overrides, type and validate."""
    data = apply_overrides(read_yaml_chain(path), list(overrides or []))
    config = from_dict(TrainConfig, data)
    if config.model.name == MODEL_FROM_INIT:
        if not config.init_from:
            raise InputError(f"model.name: {MODEL_FROM_INIT} needs init_from=MODEL (the checkpoint to train)")
    else:
        get_model_config(config.model.name, **config.model.overrides)  # unknown names/overrides: InputError now
    return config


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (what --resume reads back)."""
    atomic_write(path, yaml.safe_dump(to_dict(config), sort_keys=False).encode())
