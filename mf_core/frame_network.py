"""One frame's model pass as a single tensor network, and its ONNX form, for the one-step modes.

- :class:`ConditionedFrameNetwork` is what ``DepthEstimator.predict(mode="conditioned", steps=1)``
  computes, tensors in, metres out: the fed LiDAR's encoding, one model pass (the one-step i2d
  prediction, t_image = 0, t_depth = 1, from the given noise) at the processing size, the
  refinement head at the refine size (the scale it trained at) and the composition at the input's
  native resolution with the prior of the native LiDAR (:func:`refine_native`).
- :class:`MonocularFrameNetwork` is the one-step monocular pass of modes ``i2d`` and
  ``i2d-aligned``: image in, relative depth (unit mean) at the processing size out; the estimator
  resizes and, for i2d-aligned, aligns it to the LiDAR as on torch.

The estimator runs the conditioned network eagerly; ``mf export-onnx`` (:mod:`mf_training.onnx_export`)
traces either into one ONNX graph for onnxruntime (CPU, CUDA or TensorRT execution providers), at
a fixed size, and records which mode it computes in the file's metadata (:func:`exported_mode`).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mf_core.depth_codec import decode_depth
from mf_core.errors import InputError
from mf_core.frame_codec import MAX_LOG_DEPTH, encode_lidar
from mf_core.lidar_prior import LidarPrior, compose, lidar_prior, strength_map

# The inputs of each network and of its ONNX graph, in order, by the mode it computes.
INPUT_NAMES = {"conditioned": ("image_small", "sparse_small", "noise", "image_refine", "sparse_refine", "image_native",
                               "sparse_native"),
               "i2d": ("image_small", "noise")}
EXPORT_MODES = tuple(INPUT_NAMES)
OUTPUT_NAME = "depth"
MODE_METADATA_KEY = "mf_mode"  # ONNX metadata: the mode the graph computes (absent in older files: conditioned)


def _scaled_prior(image: torch.Tensor, sparse: torch.Tensor, scale: torch.Tensor) -> LidarPrior:
    """The prior of LiDAR ``sparse`` (B, 1, H, W metres, 0 = none) in log depth relative to ``scale`` (B, 1, 1, 1)."""
    mask = sparse > 0
    return lidar_prior(image, torch.where(mask, (sparse / scale).clamp(min=1e-6).log(), 0.0), mask)


def refine_native(model: nn.Module, refine_strength: float, refine_strength_near: float | None,
                  image_refine: torch.Tensor, sparse_refine: torch.Tensor, image_native: torch.Tensor,
                  sparse_native: torch.Tensor, transformer_log_depth: torch.Tensor | None, scale: torch.Tensor,
                  at_refine: LidarPrior | None = None) -> torch.Tensor:
    """Metres (B, 1, H, W) at the native resolution from the transformer's log relative depth (B, 1, h, w)
    at the processing size: the refinement head runs at the refine size (``image_refine`` (B, 3, hr, wr)
    in [-1, 1] and ``sparse_refine`` (B, 1, hr, wr) metres, the frame resized as at the processing
    size), and its terms, upsampled, compose the prior of the native LiDAR (B, 1, H, W metres, 0 = none),
    in the fed LiDAR's ``scale`` (B,), at the strengths of :func:`mf_core.lidar_prior.strength_map`.
    ``transformer_log_depth`` None: a head that does not read it (``refine_reads_transformer`` false), on
    frames with LiDAR (the LiDAR case of the composition does not use it either). ``at_refine``: the prior
    of the refine-size inputs when the caller has it."""
    scale = scale.view(-1, 1, 1, 1)
    same = image_refine.shape == image_native.shape  # a camera at or below the refine size: one prior
    if at_refine is None:
        at_refine = _scaled_prior(image_refine, sparse_refine, scale)
    native = at_refine if same else _scaled_prior(image_native, sparse_native, scale)

    def resized(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), size=like.shape[-2:], mode="bilinear", align_corners=False)

    if transformer_log_depth is None:
        if model.config.refine_reads_transformer:
            raise InputError(f"{model.config.name}: its refinement head reads the transformer's depth; pass it")
        transformer_log_depth = at_refine.fill  # what the head reads in its place (ModalityForcingDiT.refine_terms)
    transformer = resized(transformer_log_depth, image_refine)  # (B, 1, hr, wr)
    terms = model.refine_terms(image_refine, at_refine, transformer)  # (B, N_TERMS, hr, wr)
    strength = strength_map(native, refine_strength, refine_strength_near)
    composed = compose(native, resized(terms, image_native), resized(transformer, image_native),
                       *(w.to(image_native.device) for w in model.refine.selection_weights), strength=strength)
    return scale * composed.clamp(-MAX_LOG_DEPTH, MAX_LOG_DEPTH).exp()


class ConditionedFrameNetwork(nn.Module):
    """image_small (B, 3, h, w) in [-1, 1], sparse_small (B, 1, h, w) metres, noise (B, 1, h, w),
    image_refine (B, 3, hr, wr), sparse_refine (B, 1, hr, wr), image_native (B, 3, H, W),
    sparse_native (B, 1, H, W) -> depth (B, 1, H, W) metres (:func:`refine_native`)."""

    def __init__(self, model: nn.Module, refine_strength: float, refine_strength_near: float | None = None) -> None:
        super().__init__()
        if not (model.config.depth_conditioned and model.config.refine_head):
            raise InputError(f"{model.config.name}: the frame network needs a LiDAR-conditioned model with a "
                             "refinement head (depth_conditioned and refine_head)")
        self.model = model
        self.refine_strength = float(refine_strength)
        self.refine_strength_near = None if refine_strength_near is None else float(refine_strength_near)

    def forward(self, image_small: torch.Tensor, sparse_small: torch.Tensor, noise: torch.Tensor,
                image_refine: torch.Tensor, sparse_refine: torch.Tensor, image_native: torch.Tensor,
                sparse_native: torch.Tensor) -> torch.Tensor:
        lidar = encode_lidar(sparse_small)
        image_refine, sparse_refine = image_refine.float(), sparse_refine.float()
        if not self.model.config.refine_reads_transformer:  # the head alone: the transformer is not run
            return refine_native(self.model, self.refine_strength, self.refine_strength_near, image_refine,
                                 sparse_refine, image_native.float(), sparse_native.float(), None, lidar.scale)
        # The head at the processing size (the refine inputs are then the processing-size frame, as the
        # estimator builds them): one prior serves the transformer's LiDAR input and the head.
        shared = _scaled_prior(image_refine, sparse_refine, lidar.scale.view(-1, 1, 1, 1)) \
            if image_refine.shape == image_small.shape else None
        parameter = next(self.model.parameters())
        batch = image_small.shape[0]
        t_image = torch.zeros(batch, device=parameter.device, dtype=parameter.dtype)
        t_depth = torch.ones(batch, device=parameter.device, dtype=parameter.dtype)
        x_image = self.model.encode_image(image_small.to(parameter.dtype))
        out = self.model(x_image, noise.to(parameter.dtype), t_image, t_depth, sparse_depth=lidar.depth.to(
            parameter.dtype), sparse_mask=lidar.mask.to(parameter.dtype), refine=False, prior=shared)
        return refine_native(self.model, self.refine_strength, self.refine_strength_near, image_refine,
                             sparse_refine, image_native.float(), sparse_native.float(),
                             out.transformer_log_depth.float(), lidar.scale, at_refine=shared)


class MonocularFrameNetwork(nn.Module):
    """image_small (B, 3, h, w) in [-1, 1], noise (B, 1, h, w) -> relative depth (B, 1, h, w), unit mean:
    ``sample(model, "i2d", steps=1)`` decoded, for any model (LiDAR-conditioned ones get no LiDAR)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image_small: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        parameter = next(self.model.parameters())
        batch = image_small.shape[0]
        t_image = torch.zeros(batch, device=parameter.device, dtype=parameter.dtype)
        t_depth = torch.ones(batch, device=parameter.device, dtype=parameter.dtype)
        x_image = self.model.encode_image(image_small.to(parameter.dtype))
        x0 = self.model(x_image, noise.to(parameter.dtype), t_image, t_depth).depth_x0.float()
        # The sampler's one Euler step, t = 1 -> 0 (mf_core.sampling): x + (0 - 1) (x - x0) / 1, the same bits.
        encoded = noise.float() - (noise.float() - x0)
        return decode_depth(encoded)


def network_mode(network: nn.Module) -> str:
    """The mode a frame network computes (a key of INPUT_NAMES)."""
    return "conditioned" if isinstance(network, ConditionedFrameNetwork) else "i2d"


def exported_mode(session) -> str:
    """The mode an onnxruntime session's graph computes (files from before the metadata: conditioned)."""
    mode = session.get_modelmeta().custom_metadata_map.get(MODE_METADATA_KEY, "conditioned")
    if mode not in INPUT_NAMES:
        raise InputError(f"the ONNX model computes mode {mode!r}, which this version does not know; re-export it "
                         "with mf export-onnx")
    return mode


def onnx_session(path: str | Path, device: torch.device):
    """An onnxruntime session for an exported frame network (CUDA provider first on a CUDA device)."""
    try:
        import onnxruntime
    except ImportError as err:
        raise InputError("backend onnxruntime needs the onnxruntime package (pip install onnxruntime, or "
                         "onnxruntime-gpu); or use backend torch") from err
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ONNX model {path} does not exist; write it with mf export-onnx --model M --out {path}")
    available = onnxruntime.get_available_providers()
    wanted = ["CUDAExecutionProvider"] if device.type == "cuda" else []
    providers = [p for p in wanted if p in available] + ["CPUExecutionProvider"]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same CPU thread budget as the torch path
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # onnxruntime raises its own exception types for unreadable graphs
        raise InputError(f"{path} is not an ONNX model onnxruntime can load: {err}") from err
