"""Model checkpoints: ``model.safetensors`` weights + ``config.json`` (model config and metadata).

Loading parses JSON and safetensors only, so a checkpoint can never execute code. Files
are written atomically (temp file + ``os.replace``), so a crash leaves the old file intact.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mf_core.errors import InputError
from mf_core.files import atomic_path, atomic_write
from mf_core.model.config import VAE_PATHS, ModelConfig
from mf_core.model.dit import ModalityForcingDiT

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
SHIPPED_MODEL_NAME = "default"  # what users write (model:=default, --model default) for the shipped model
SHIPPED_MODEL_DIR = Path("models") / "mf-default"
VAE_DIR = "vae"  # a released VAE-tokenizer model's copy of its VAE folder, inside the model folder


def shipped_model_path() -> Path:
    """Folder of the model that ships with the package, wherever the package was installed.

    Looked up in the source checkout (also an editable pip install), then in the ROS share
    folder (colcon) and ``<prefix>/share/mf_ros`` (pip's data_files); InputError if absent.
    """
    candidates = [Path(__file__).resolve().parents[1] / SHIPPED_MODEL_DIR]
    # ament_index exists with ROS installed; it raises OSError when no workspace is sourced.
    with contextlib.suppress(ImportError, LookupError, OSError):
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("mf_ros")) / SHIPPED_MODEL_DIR)
    candidates.append(Path(sys.prefix) / "share" / "mf_ros" / SHIPPED_MODEL_DIR)
    for path in candidates:
        if (path / CONFIG_FILE).is_file():
            return path
    raise InputError(f"the shipped model is not installed (looked in {', '.join(map(str, candidates))}); "
                     "reinstall the package or pass a checkpoint folder")


def resolve_model_path(model: str | Path) -> Path:
    """``model`` as a checkpoint folder: "default" names the shipped model, anything else is a path."""
    return shipped_model_path() if str(model) == SHIPPED_MODEL_NAME else Path(model)


def save_model(
    directory: str | Path,
    model: ModalityForcingDiT,
    metadata: dict | None = None,
    dtype: torch.dtype | None = None,
    carry_vae: bool = False,
) -> Path:
    """Save ``model`` to ``directory`` (created); floating weights cast to ``dtype`` if given.

    ``metadata`` (JSON-able: step, data, losses...) is stored in config.json beside the
    model config and returned by :func:`load_model`. ``carry_vae``: a VAE-tokenizer model's VAE folder is
    copied to ``directory/vae`` and recorded by that relative path, so the folder works wherever it is
    moved (a release); otherwise the config records where the VAE is. Returns the directory.
    """
    directory = Path(directory)
    model_config = model.config
    if carry_vae and model_config.image_tokenizer == "vae":
        shutil.copytree(model_config.vae_path, directory / VAE_DIR, dirs_exist_ok=True)
        model_config = model_config.updated(vae_path=VAE_DIR)
    state = {
        name: (t.to(dtype) if dtype is not None and t.is_floating_point() else t).detach().cpu().contiguous()
        for name, t in model.state_dict().items()
    }
    config = {"model": model_config.to_dict(), "metadata": metadata or {}}
    # Weights first, config last: a config.json always describes complete weights. save_file writes
    # from the tensors' own memory (no second copy of a multi-GB model).
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, tmp, metadata={"format": "pt"})
    atomic_write(directory / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())
    return directory


def read_checkpoint_config(directory: str | Path) -> tuple[ModelConfig, dict]:
    """(model config, metadata) from a checkpoint folder's config.json, without loading weights."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise InputError(f"{path} not found: pass a checkpoint folder written by save_model (mf train)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); the checkpoint is corrupt, re-save it") from exc
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise InputError(f"{path} has no 'model' config object; it was not written by save_model")
    return _vae_paths_in(ModelConfig.from_dict(data["model"]), Path(directory)), dict(data.get("metadata") or {})


def _vae_paths_in(config: ModelConfig, directory: Path) -> ModelConfig:
    """``config`` with a relative VAE folder taken as relative to the checkpoint folder ``directory`` (a released
    model carries its VAE there, :func:`save_model` ``carry_vae``); absolute ones as they are."""
    relative = {key: str(directory / value) for key in VAE_PATHS
                if (value := getattr(config, key)) and not Path(value).is_absolute()}
    return config.updated(**relative) if relative else config


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(f"{path} not found: the checkpoint folder is incomplete")
    try:
        return load_file(path)  # memory-mapped: the file is not read into memory a second time
    except (SafetensorError, ValueError, OSError) as exc:
        raise InputError(f"{path} is not a readable safetensors file ({exc}); the checkpoint is corrupt") from exc


def _check_weights(model: ModalityForcingDiT, state: dict[str, torch.Tensor], source: Path) -> None:
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state.items()}
    problems = [f"missing {n}" for n in sorted(expected.keys() - found.keys())]
    problems += [f"unexpected {n}" for n in sorted(found.keys() - expected.keys())]
    problems += [
        f"{n}: file {found[n]} vs model {expected[n]}"
        for n in sorted(expected.keys() & found.keys())
        if found[n] != expected[n]
    ]
    problems += [f"{n} is {t.dtype} (weights must be float32, float16 or bfloat16)"
                 for n, t in sorted(state.items()) if not t.is_floating_point()]
    problems += [f"{n} holds NaN/inf values (a diverged run or a damaged file)"
                 for n, t in sorted(state.items()) if t.is_floating_point() and not torch.isfinite(t).all()]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
        raise InputError(
            f"weights in {source} do not fit model {model.config.name!r} ({shown}); "
            "the weights and config.json are from different model sizes, or the weights were converted or damaged"
        )


def load_model(
    directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[ModalityForcingDiT, dict]:
    """Load a checkpoint folder: (model in eval mode on ``device``, metadata dict).

    ``dtype`` (default float32) applies to all weights except the depth head, which stays
    float32. Weights that do not fit the config, or corrupt files, raise InputError.
    """
    directory = Path(directory)
    config, metadata = read_checkpoint_config(directory)
    state = _read_weights(directory / WEIGHTS_FILE)
    # Pixel models are built on the meta device (no init cost) and take the loaded tensors;
    # a VAE model needs its frozen VAE really loaded, so it is built for real.
    build_on_meta = config.image_tokenizer == "pixel"
    with torch.device("meta") if build_on_meta else contextlib.nullcontext():
        model = ModalityForcingDiT(config)
    _check_weights(model, state, directory / WEIGHTS_FILE)
    model.load_state_dict(state, strict=True, assign=build_on_meta)
    model.to(device).to_dtype(dtype or torch.float32)
    return model.eval(), metadata
