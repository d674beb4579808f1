"""The training loop, top to bottom: setup, (resume), steps, logs, validation, checkpoints.

Randomness is derived, never carried: the data order and crops from (seed, stream
position), the flow noise of each micro-batch from (seed, step, global micro-batch
index). A resumed run and a run split over any number of ranks therefore see exactly
the same samples and noise as an uninterrupted single-process run of the same global batch.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from tqdm import tqdm

from mf_core.checkpoint import CONFIG_FILE as MODEL_CONFIG_FILE
from mf_core.checkpoint import load_model, read_checkpoint_config, resolve_model_path, save_model
from mf_core.errors import InputError
from mf_core.flow import flow_matching_losses
from mf_core.model import ModalityForcingDiT, ModelConfig, build_model, get_model_config
from mf_core.model.config import VAE_PATHS
from mf_core.model.dit import ModelOutput
from mf_training.lift import LIFT_METADATA_KEY
from mf_training.train.config import MODEL_FROM_INIT, LoraSettings, TrainConfig, save_config
from mf_training.train.data import Shard, collate, load_batch, make_example
from mf_training.train.datasets import TrainingData, load_training_data
from mf_training.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    gradient_sync,
    init_distributed,
    unwrap,
    wrap_model,
)
from mf_training.train.ema import EMA
from mf_training.train.logging import RunLogger, depth_panel
from mf_training.train.lora import add_lora, merged_state_dict
from mf_training.train.optim import build_optimizer
from mf_training.train.state import (
    collect_state,
    latest_checkpoint,
    newest_readable_checkpoint,
    restore_state,
    write_checkpoint,
)
from mf_training.train.validation import evaluate_i2d, validate_frames

CONFIG_FILE = "config.yaml"
BEST_DIR = "best"  # the EMA model of the best validation score so far (conditioned models)
LOSS_KEYS = ("loss", "image_velocity", "depth_x0", "distill", "transformer_depth")


@dataclass
class TrainResult:
    """Where the run ended: its folder, the last step, the last logged losses and validation."""

    run_dir: Path
    is_main: bool  # rank 0 (the one that prints and writes)
    step: int
    losses: dict[str, float]
    validation: dict[str, float]


def noise_seed(seed: int, step: int, micro_index: int) -> int:
    """Seed of one micro-batch's flow noise; a 63-bit mix so nearby steps do not share streams."""
    return (seed * 1_000_003 + step * 4_099 + micro_index * 2_147_483_647 + 0x5EED) % (2**63 - 1)


def model_config_of(config: TrainConfig) -> ModelConfig:
    """The registry entry named by the run config with its overrides (InputError for unknown names);
    ``model.name: init_from`` takes the init_from checkpoint's own config (a lifted FLUX.2, say)."""
    # A VAE folder named relative to the working directory is recorded absolute: the run's checkpoints then
    # load from anywhere (a relative path in a checkpoint means relative to the checkpoint folder).
    overrides = {key: str(Path(value).resolve()) if key in VAE_PATHS and value else value
                 for key, value in config.model.overrides.items()}
    if config.model.name == MODEL_FROM_INIT:
        found, _ = read_checkpoint_config(model_dir_of(config.init_from))
        return found.updated(**overrides)
    return get_model_config(config.model.name, **overrides)


def _check_same_model(found: ModelConfig, wanted: ModelConfig, where: str, exact: bool = True) -> None:
    """InputError unless ``found`` is ``wanted`` (not ``exact``: has its weights, RUN_SETTINGS may differ)."""
    if found != wanted if exact else not found.same_weights(wanted):
        diff = {k: (v, getattr(wanted, k)) for k, v in found.to_dict().items() if getattr(wanted, k) != v}
        raise InputError(
            f"{where} holds model {found.name} but the config asks for {wanted.name} "
            f"(differences as checkpoint vs config: {diff}); set model.name/model.overrides to match "
            "the checkpoint or start from one of the right size"
        )


def model_dir_of(path: str | Path) -> Path:
    """A model folder (config.json + weights) as given ("default": the shipped model), or the EMA model of a
    run's last checkpoint."""
    path = resolve_model_path(path)
    if (path / MODEL_CONFIG_FILE).is_file():
        return path
    if (path / CONFIG_FILE).is_file():
        return latest_checkpoint(path) / "model"
    raise InputError(f"init_from {path} is neither a model folder ({MODEL_CONFIG_FILE}) nor a run folder "
                     f"({CONFIG_FILE} + checkpoints/); pass the pretrain run's --out folder")


def train_only_refine_head(model: ModalityForcingDiT) -> None:
    """Freeze every parameter of ``model`` but its refinement head's (``TrainConfig.trainable``)."""
    if not model.config.refine_head:
        raise InputError(f"trainable=refine_head: model {model.config.name} has no refinement head (refine_head)")
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith("refine."))


def build_models(config: TrainConfig) -> tuple[ModalityForcingDiT, ModalityForcingDiT | None]:
    """The model to train and, with ``distill``, the frozen teacher (the pretrained model as loaded).

    From an image model (a pretrain run, a lifted FLUX.2) the depth stream starts as a copy of the image
    stream; from a model that was post-trained already (checkpoint stage modality-forcing, such as the
    shipped one) everything is kept, so ``init_from=default`` fine-tunes the shipped model on new data.
    """
    wanted = model_config_of(config)
    if config.stage == "pretrain" or not config.init_from:
        return build_model(wanted), None
    model, metadata = load_model(model_dir_of(config.init_from))
    _check_same_model(model.config, wanted, f"init_from {config.init_from}", exact=False)
    model.config = wanted  # the config's run settings (RUN_SETTINGS) apply to the loaded weights
    teacher = None
    if config.distill:
        teacher = copy.deepcopy(model).eval().requires_grad_(False)
        if LIFT_METADATA_KEY in metadata:  # the source image model: its prediction without depth tokens
            teacher = ImageModelTeacher(teacher)
    if metadata.get("stage") != "modality-forcing":  # a pretrained image model: the paper's depth init
        model.init_depth_stream_from_image()
    # else a depth model already (a run or a released model, e.g. "default"): fine-tuned as it is
    return model, teacher


class ImageModelTeacher(nn.Module):
    """A frozen lifted model as the self-distillation teacher: its image velocity with no depth token in
    the sequence (``forward_image``), which is the pretrained FLUX.2 transformer's own prediction."""

    def __init__(self, model: ModalityForcingDiT):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, depth: torch.Tensor, t_image: torch.Tensor, t_depth: torch.Tensor,
                context: torch.Tensor | None = None, **lidar) -> ModelOutput:
        return ModelOutput(image_velocity=self.model.forward_image(image, t_image, context), depth_x0=depth)


def _best_score(run_dir: Path) -> float:
    """The validation score of a run's kept best model (inf when there is none yet)."""
    try:
        _, metadata = read_checkpoint_config(run_dir / BEST_DIR)
    except InputError:
        return float("inf")
    return float(metadata.get("validation", {}).get("score", float("inf")))


def _autocast(config: TrainConfig, info: DistInfo):
    if info.device.type == "cuda" and config.perf.bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _apply_perf_switches(config: TrainConfig, info: DistInfo) -> None:
    if info.device.type == "cuda" and config.perf.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _evaluation_model(model: nn.Module, ema: EMA | None, model_config: ModelConfig, info: DistInfo,
                      lora: LoraSettings) -> ModalityForcingDiT | None:
    """A plain (unwrapped) copy with the EMA weights on rank 0, for validation and export; LoRA adapters
    merged into their layers.

    Gathering the weights is a collective, so every rank calls this; the others get None.
    """
    weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if ema is not None:
        weights |= ema.state_dict()
    if not info.is_main:
        return None
    evaluation = build_model(model_config)
    evaluation.load_state_dict(merged_state_dict(weights, lora) if lora.rank else weights)
    return evaluation.to(info.device).eval()


class Trainer:
    """One run: holds the model, optimiser, data and logger; ``run()`` trains to the configured step."""

    def __init__(self, config: TrainConfig, run_dir: str | Path, resume: bool = False) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.info = init_distributed(config.perf.device)
        _apply_perf_switches(config, self.info)
        self.accumulation = config.accumulation_steps(self.info.world_size)
        self.shard = Shard(self.info.rank, self.info.world_size, config.micro_batch(self.info.world_size),
                           self.accumulation)
        self.model_config = model_config_of(config)
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data: TrainingData = load_training_data(config.data, config.seed, self.info)

        torch.manual_seed(config.seed)  # identical initial weights on every rank
        raw, self.teacher = build_models(config)
        if config.lora.rank:
            add_lora(raw, config.lora)
        if config.trainable == "refine_head":
            train_only_refine_head(raw)
        raw.gradient_checkpointing = config.perf.gradient_checkpointing
        raw.to(self.info.device)
        if self.teacher is not None:
            self.teacher.to(self.info.device)
            if self.info.device.type == "cuda" and config.perf.bf16:  # frozen: bf16 halves its memory
                teacher_model = self.teacher.model if isinstance(self.teacher, ImageModelTeacher) else self.teacher
                teacher_model.to_dtype(torch.bfloat16)
        self.model = wrap_model(raw, self.info, config.perf.fsdp)
        self.ema = EMA(unwrap(self.model), config.optim.ema_decay) if config.optim.ema_decay > 0 else None
        fused = config.perf.fused_adamw and self.info.device.type == "cuda"
        self.optimizer, self.scheduler = build_optimizer(self.model, config.optim, config.steps, fused)
        self.forward_model = self.model
        if config.perf.compile and self.info.device.type == "cuda":
            self.forward_model = torch.compile(self.model)
        if self.forward_model is not raw:
            # flow_matching_losses reads model.config and calls model.encode_image; the DDP and
            # torch.compile wrappers do not forward attributes, so expose the inner model's.
            self.forward_model.config = raw.config
            self.forward_model.encode_image = raw.encode_image

        self.step = 0
        self.best_score = _best_score(self.run_dir) if resume else float("inf")
        self.logger = RunLogger(self.run_dir, self.info.is_main)
        if resume:
            self._resume()
        if self.info.is_main:
            save_config(config, self.run_dir / CONFIG_FILE)  # on resume too: keeps overrides such as steps

    # ------------------------------------------------------------------ state
    def _resume(self) -> None:
        path, state = newest_readable_checkpoint(self.run_dir)
        found = ModelConfig.from_dict(state.meta["model_config"])
        _check_same_model(found, self.model_config, f"checkpoint {path}")
        if state.meta["batch_size"] != self.config.batch_size:
            raise InputError(f"checkpoint {path} was trained with batch_size {state.meta['batch_size']}, "
                             f"config has {self.config.batch_size}: the data position would not match")
        restore_state(state, self.model, self.optimizer, self.scheduler, self.ema)
        self.step = state.step
        self.logger.forget_after(self.step)

    def save_checkpoint(self) -> None:
        """Write the training state and the EMA model (every rank gathers, rank 0 writes)."""
        extra = {
            "model_config": self.model_config.to_dict(),
            "batch_size": self.config.batch_size,
            "samples_seen": self.step * self.config.batch_size,
            "stage": self.config.stage,
        }
        state = collect_state(self.model, self.optimizer, self.scheduler, self.ema, self.step, extra)
        export = _evaluation_model(self.model, self.ema, self.model_config, self.info, self.config.lora)
        if export is not None:
            metadata = {"stage": self.config.stage, "step": self.step}
            write_checkpoint(self.run_dir, state,
                             lambda d: save_model(d, export, metadata), self.config.keep_last)
        barrier(self.info)

    # ------------------------------------------------------------------ steps
    def train_step(self) -> dict[str, float]:
        """One optimiser step over this rank's micro-batches; returns losses averaged over all ranks."""
        config, info = self.config, self.info
        totals = torch.zeros(len(LOSS_KEYS), device=info.device)
        raw = unwrap(self.model)
        for i, positions in enumerate(self.shard.micro_positions(self.step)):
            batch = load_batch(self.data.mixer, positions, config.data, config.seed, config.mix,
                               self.model_config.depth_conditioned)
            batch = {k: v.to(info.device, non_blocking=True) for k, v in batch.items()}
            mix = config.mix
            if config.stage == "pretrain":
                # Image stream only: depth held at pure noise (t_depth = 1) and, with no valid pixel, no depth loss.
                batch["depth_valid"] = torch.zeros_like(batch["depth_valid"])
                mix = replace(mix, image_only=True)
            generator = torch.Generator(info.device).manual_seed(
                noise_seed(config.seed, self.step, self.shard.first_micro + i))
            last = i == self.accumulation - 1
            with gradient_sync(self.model, last), _autocast(config, info):
                losses = flow_matching_losses(self.forward_model, batch, mix, generator,
                                              teacher=self.teacher, config=config.loss)
                (losses["loss"] / self.accumulation).backward()
            totals += torch.stack([losses[k].detach().float() if k in losses else totals.new_zeros(())
                                   for k in LOSS_KEYS])
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), config.optim.grad_clip if config.optim.grad_clip > 0 else float("inf"))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(raw)
        self.step += 1
        means = all_reduce_mean(totals / self.accumulation, info).tolist()
        logged = {"distill": self.teacher is not None, "transformer_depth": bool(config.loss.transformer_weight)}
        out = {k: v for k, v in zip(LOSS_KEYS, means, strict=True) if logged.get(k, True)}
        norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        return out | {"grad_norm": float(norm), "lr": self.scheduler.get_last_lr()[0]}

    def validate(self) -> dict[str, float]:
        """Validation on the held-out samples with the EMA weights: AbsRel / delta1 of 1-step monocular
        i2d, and for conditioned models the frame-by-frame scores of :func:`validate_frames` (its
        ``score`` picks the run's best model, kept in RUN/best); panels to TensorBoard."""
        if not self.data.validation:  # the same on every rank: all skip together
            return {}
        evaluation = _evaluation_model(self.model, self.ema, self.model_config, self.info, self.config.lora)
        if evaluation is None:
            barrier(self.info)
            return {}
        views = collate([make_example(s, self.config.data, None) for s in self.data.validation])
        result = evaluate_i2d(evaluation, views, steps=1, keep_views=self.config.val_panels)
        metrics = {"abs_rel": result.abs_rel, "delta1": result.delta1, "count": float(result.count)}
        if self.model_config.depth_conditioned:
            release = self.config.release
            metrics |= validate_frames(evaluation, self.data.validation, self.data.validation_sources,
                                       self.config.processing_size, self.info.device, release.refine_strength,
                                       release.refine_strength_near, self.config.refine_size,
                                       release.nearest_share)
            if metrics.get("score", float("inf")) < self.best_score:
                self.best_score = metrics["score"]
                save_model(self.run_dir / BEST_DIR, evaluation,
                           {"stage": self.config.stage, "step": self.step, "validation": metrics})
        self.logger.scalars(self.step, metrics, kind="val")
        for i, (rgb, truth, aligned) in enumerate(result.views):
            self.logger.image(self.step, f"val/panel_{i}", depth_panel(rgb, truth, aligned))
        barrier(self.info)
        return metrics

    def run(self, stop_after: int | None = None) -> TrainResult:
        """Train until ``config.steps`` (or ``stop_after`` steps, then checkpoint and return)."""
        config = self.config
        end = config.steps if stop_after is None else min(config.steps, stop_after)
        losses: dict[str, float] = {}
        validation: dict[str, float] = {}
        progress = tqdm(total=config.steps, initial=self.step, disable=not self.info.is_main,
                        desc=f"{config.stage} {config.model.name}", dynamic_ncols=True)
        last_time, last_step = time.perf_counter(), self.step
        while self.step < end:
            losses = self.train_step()
            progress.update(1)
            if self.step % config.log_every == 0 or self.step == end:
                now = time.perf_counter()
                throughput = (self.step - last_step) * config.batch_size / max(now - last_time, 1e-9)
                last_time, last_step = now, self.step
                self.logger.scalars(self.step, losses | {"samples_per_s": throughput})
                progress.set_postfix(loss=f"{losses['loss']:.4f}", depth=f"{losses['depth_x0']:.4f}")
            if config.val_every and self.step % config.val_every == 0 and self.step < config.steps:
                validation = self.validate()
            if self.step % config.ckpt_every == 0 or self.step == end:
                self.save_checkpoint()
        progress.close()
        if self.step == config.steps:
            validation = self.validate()
        self.logger.close()
        return TrainResult(self.run_dir, self.info.is_main, self.step, losses, validation)


def train(config: TrainConfig, run_dir: str | Path, resume: bool = False, stop_after: int | None = None
          ) -> TrainResult:
    """Run (or resume) training in ``run_dir``; see :class:`Trainer`."""
    return Trainer(config, run_dir, resume).run(stop_after)
