"""Training-state checkpoints: weights, optimiser, scheduler, EMA, step, RNG and data position.

Layout of one checkpoint (``RUN_DIR/checkpoints/step_00001000/``):
    model/                      EMA weights for inference (mf_core.checkpoint.save_model)
    training_state.safetensors  raw weights ``model/*``, EMA ``ema/*``, AdamW moments ``optim/*``, RNG ``rng/*``
    training_state.json         step, data position, optimiser param groups, scheduler, model config

Tensors go to safetensors and everything else to JSON, so loading never runs code from
the file (no pickle). A checkpoint is written into a temporary folder and renamed into
place, so a crash leaves either the complete old set or the complete new one.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from mf_core.errors import InputError
from mf_core.files import atomic_write, remove_tree, temp_dir_beside
from mf_training.train.ema import EMA

CHECKPOINTS = "checkpoints"
STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
_PREFIX = "step_"
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


@dataclass
class TrainingState:
    """Everything needed to continue a run, as plain tensors (full, unsharded, CPU) and JSON."""

    tensors: dict[str, torch.Tensor]
    meta: dict

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    def section(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under ``prefix/`` with the prefix removed."""
        cut = len(prefix) + 1
        return {k[cut:]: v for k, v in self.tensors.items() if k.startswith(prefix + "/")}


def collect_state(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, ema: EMA | None,
                  step: int, extra: dict) -> TrainingState:
    """Gather the full training state (a collective: every rank must call it; rank 0 gets the data)."""
    tensors = {f"model/{k}": v for k, v in get_model_state_dict(model, options=_FULL).items()}
    optim = get_optimizer_state_dict(model, optimizer, options=_FULL)
    per_param: dict[str, dict] = {}
    for name, slots in optim.get("state", {}).items():
        for slot, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{name}/{slot}"] = value
            else:
                per_param.setdefault(name, {})[slot] = value
    if ema is not None:
        tensors |= {f"ema/{k}": v for k, v in ema.state_dict().items()}
    tensors["rng/torch_cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng/torch_cuda"] = torch.cuda.get_rng_state()
    meta = {
        "step": step,
        "optimizer_param_groups": [_jsonable(g) for g in optim.get("param_groups", [])],
        "optimizer_scalars": per_param,
        "scheduler": _jsonable(scheduler.state_dict()),
        "ema_updates": ema.updates if ema is not None else 0,
        **extra,
    }
    return TrainingState({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, meta)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


def restore_state(state: TrainingState, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                  ema: EMA | None) -> None:
    """Load a collected/loaded state into a freshly built model, optimiser, scheduler and EMA (all ranks)."""
    set_model_state_dict(model, state.section("model"), options=StateDictOptions(full_state_dict=True))
    slots: dict[str, dict] = {}
    for key, value in state.section("optim").items():
        name, _, slot = key.rpartition("/")
        slots.setdefault(name, {})[slot] = value
    for name, scalars in state.meta["optimizer_scalars"].items():
        slots.setdefault(name, {}).update(scalars)
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in state.meta["optimizer_param_groups"]]
    set_optimizer_state_dict(model, optimizer, {"state": slots, "param_groups": groups},
                             options=StateDictOptions(full_state_dict=True))
    scheduler.load_state_dict(state.meta["scheduler"])
    if ema is not None:
        ema_tensors = state.section("ema")
        if ema_tensors:
            ema.load_state_dict(ema_tensors, int(state.meta["ema_updates"]))
    torch.set_rng_state(state.tensors["rng/torch_cpu"])
    if "rng/torch_cuda" in state.tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(state.tensors["rng/torch_cuda"])


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX):]))


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The newest checkpoint of ``run_dir``; InputError when there is none."""
    found = checkpoint_dirs(run_dir)
    if not found:
        raise InputError(f"{run_dir} has no checkpoints under {CHECKPOINTS}/: nothing to resume; "
                         "start a new run with --config instead")
    return found[-1]


def write_checkpoint(run_dir: str | Path, state: TrainingState, export_model: Callable[[Path], None],
                     keep_last: int) -> Path:
    """Write ``state`` (rank 0 only) as ``checkpoints/step_N`` atomically, then keep the newest ``keep_last``."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{state.step:08d}"
    tmp = temp_dir_beside(final)
    try:
        atomic_write(tmp / STATE_TENSORS, save(state.tensors))
        atomic_write(tmp / STATE_JSON, json.dumps(state.meta, indent=1).encode())
        export_model(tmp / "model")
        if final.exists():
            remove_tree(final, inside=root)
        os.replace(tmp, final)
    except BaseException:
        if tmp.exists():
            remove_tree(tmp, inside=root)
        raise
    for old in checkpoint_dirs(run_dir)[:-keep_last]:
        remove_tree(old, inside=root)
    return final


def read_checkpoint(path: str | Path) -> TrainingState:
    """Load a checkpoint folder written by :func:`write_checkpoint` (safetensors + JSON only).

    Every part is checked before anything is restored, so a damaged checkpoint is an InputError
    that says what is wrong, never a traceback or a silently partial resume (fresh AdamW moments
    would make "exact resume" a lie).
    """
    path = Path(path)
    tensors_file, meta_file = path / STATE_TENSORS, path / STATE_JSON
    if not (tensors_file.is_file() and meta_file.is_file()):
        raise InputError(f"{path} is not a training checkpoint (needs {STATE_TENSORS} and {STATE_JSON})")
    try:
        tensors = load_file(str(tensors_file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{tensors_file} is not a readable safetensors file ({exc})") from exc
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, OSError) as exc:
        raise InputError(f"{meta_file} is not valid JSON ({exc})") from exc
    state = TrainingState(tensors, meta)
    _check_checkpoint(state, path)
    return state


ADAMW_SLOTS = ("step", "exp_avg", "exp_avg_sq")  # per-parameter state of torch.optim.AdamW (no amsgrad)
_META_TYPES = {"step": int, "batch_size": int, "scheduler": dict, "optimizer_param_groups": list,
               "optimizer_scalars": dict, "model_config": dict, "ema_updates": int}


def _check_checkpoint(state: TrainingState, path: Path) -> None:
    meta = state.meta
    if not isinstance(meta, dict):
        raise InputError(f"{path / STATE_JSON} must hold a JSON object")
    for key, kind in _META_TYPES.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise InputError(f"{path / STATE_JSON}: {key!r} is missing or not a {kind.__name__} "
                             f"(got {meta.get(key)!r:.60})")
    if meta["step"] < 0:
        raise InputError(f"{path / STATE_JSON}: step must be >= 0, got {meta['step']}")
    for section in ("model", "rng"):
        if not state.section(section):
            raise InputError(f"{path / STATE_TENSORS} has no {section}/* tensors")
    # AdamW keeps the same slots for every parameter it has stepped.
    slots: dict[str, set[str]] = {}
    for key in state.section("optim"):
        name, _, slot = key.rpartition("/")
        slots.setdefault(slot, set()).add(name)
    for name, scalars in meta["optimizer_scalars"].items():
        for slot in scalars:
            slots.setdefault(slot, set()).add(name)
    params = set().union(*slots.values()) if slots else set()
    incomplete = sorted(slot for slot in {*slots, *ADAMW_SLOTS} if slots.get(slot, set()) != params)
    if (meta["step"] > 0 and not params) or incomplete:
        raise InputError(f"{path / STATE_TENSORS}: the optimizer state is incomplete "
                         f"({'slots ' + ', '.join(incomplete) if incomplete else 'no optim/* moments'} missing for "
                         "some parameters); an exact resume is impossible from this checkpoint")


def newest_readable_checkpoint(run_dir: str | Path) -> tuple[Path, TrainingState]:
    """The newest checkpoint of ``run_dir`` that reads completely, with its state.

    A damaged newer one (a crash while copying, a full disk) is reported on stderr and skipped;
    InputError when none is readable, naming each and why.
    """
    latest_checkpoint(run_dir)  # InputError when the run has no checkpoint at all
    problems = []
    for path in reversed(checkpoint_dirs(run_dir)):
        try:
            state = read_checkpoint(path)
        except InputError as exc:
            problems.append(str(exc))
            continue
        for problem in problems:
            print(f"warning: skipping a damaged checkpoint: {problem}; resuming from {path}", file=sys.stderr)
        return path, state
    raise InputError(f"no readable checkpoint in {Path(run_dir) / CHECKPOINTS}: " + "; ".join(problems))
