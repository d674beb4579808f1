"""DepthEstimator: image (+ LiDAR) in, depth (+ confidence) out. The one inference entry point.

Nodes, offline tools and evaluation all call :meth:`DepthEstimator.predict`; it owns the
pre-processing (resize to the processing resolution, :mod:`mf_core.frame_codec` for the model
inputs), the sampler call per mode, the metric alignment to LiDAR (aligned modes only) and the
way back to the caller's resolution: for refine_head models the refinement head at its own refine
size and the LiDAR prior of the full-resolution sweep composed with its upsampled terms, so depth
edges are placed at the input resolution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mf_core.align import MIN_POINTS, Alignment, align_to_lidar
from mf_core.checkpoint import load_model, resolve_model_path
from mf_core.completion import complete_scanline, nearest_lidar_pixel
from mf_core.depth_codec import decode_depth, encode_depth
from mf_core.errors import InputError
from mf_core.frame_codec import depth_tensor, encode_lidar, image_tensor, to_metres
from mf_core.frame_network import INPUT_NAMES, ConditionedFrameNetwork, exported_mode, onnx_session, refine_native
from mf_core.lidar_prior import REFINE_SIZE_KEY, REFINE_STRENGTH_KEY, REFINE_STRENGTH_NEAR_KEY, check_refine_strengths
from mf_core.lidar_support import lidar_points, lidar_support
from mf_core.modes import LIDAR_MODES, MODES
from mf_core.resize import processing_shape, resize_dense_depth, resize_image, resize_sparse_depth
from mf_core.sampling import SampleOutput, sample, time_grid
from mf_core.self_validation import (
    AUTO,
    NEAREST_SHARE_KEY,
    NearestShareStream,
    fit_nearest_share,
    mix_nearest,
    parse_nearest_share,
)

# Confidence = edge term x (LiDAR agreement x LiDAR proximity when LiDAR is given):
# - edge: exp(-|grad log depth| / EDGE_SCALE); a 5% depth change per pixel marks a depth
#   discontinuity, where predictions and resampling mix foreground and background.
# - agreement: exp(-r / RESIDUAL_SCALE), r the relative residual |aligned - lidar| / lidar of
#   the nearest LiDAR point: where the prediction disagrees with the sensor nearby, trust it less.
# - proximity: exp(-distance / (PROXIMITY_FRACTION * image diagonal)) to the nearest LiDAR
#   point: far from every measurement (sky, above the top beam) the metric scale is extrapolated.
# - disagreement: exp(-|nearest - depth| / depth / DISAGREEMENT_SCALE), nearest the depth of the LiDAR point
#   nearest the pixel: where the estimate lies far from the closest measurement, it chose between surfaces
#   (a depth edge between scan lines) or extrapolated, and is wrong more often. On the val split it moved the
#   Spearman correlation of confidence with |error| from -0.53 to -0.70 (KITTI), -0.71 to -0.83 (DGP) and
#   -0.49 to -0.62 (7-Scenes) (docs/MODEL_HISTORY.md; scales of 0.01 and 0.03 within 0.01 of it).
# - departure: exp(-|fill - depth| / depth / DISAGREEMENT_SCALE), fill the scan-line fill of the LiDAR (the
#   refining models' prior, :func:`mf_core.completion.complete_scanline`): where the estimate moved far from plain
#   interpolation of the sweep, it is less often right (val: a further -0.01 to -0.06 on every set and protocol).
EDGE_SCALE = 0.05
RESIDUAL_SCALE = 0.05
PROXIMITY_FRACTION = 0.05
DISAGREEMENT_SCALE = 0.02


@dataclass(frozen=True)
class DepthResult:
    """One frame's estimate at the caller's resolution.

    Attributes:
        depth: (H, W) float32; metres when ``metric``, else relative depth with unit mean.
            0 where an alignment gives no positive depth.
        confidence: (H, W) float32 in [0, 1] (see the module constants for how it is made), or
            None when not asked for (``predict(with_confidence=False)``).
        metric: True in the LiDAR modes (metres), False for "i2d" (relative depth).
        scale, shift: the alignment of "i2d-aligned" / "guided"; for "conditioned" the LiDAR
            scale the model output was decoded with (metres per unit), shift 0; 1, 0 for "i2d".
        timings: milliseconds per stage: preprocess, model, align, postprocess, total.
        alignment: the full fit (inliers, residual statistics) of the aligned modes, else None.
        lidar_residual: LiDAR modes: median |depth - LiDAR| / LiDAR over the LiDAR pixels before
            ``keep_lidar`` (how far the estimate strays from the measurements), else None.
        valid: (H, W) bool, LiDAR modes: where the LiDAR supports the estimate (see
            :func:`lidar_support`); outputs that follow REP 118 publish NaN elsewhere. None for "i2d".
        nearest_share: the share of the nearest-return fill mixed into a "conditioned" output (fitted
            for this frame when the estimator's ``nearest_share`` is "auto"), else None.
    """

    depth: np.ndarray
    confidence: np.ndarray | None
    metric: bool
    scale: float
    shift: float
    timings: dict[str, float] = field(default_factory=dict)
    alignment: Alignment | None = None
    lidar_residual: float | None = None
    valid: np.ndarray | None = None
    nearest_share: float | None = None


def _confidence(depth: np.ndarray, sparse_depth: np.ndarray | None, image: np.ndarray) -> np.ndarray:
    """(H, W) confidence in [0, 1] of ``depth`` (see the module constants) for ``image`` (H, W, 3) and its LiDAR
    ``sparse_depth`` (H, W) metres (None: monocular); 0 where depth is 0. Computed in float32."""
    valid = depth > 0
    log_depth = np.log(np.where(valid, depth, 1.0)).astype(np.float32)
    grad_rows, grad_cols = np.gradient(log_depth)
    confidence = np.exp(-np.hypot(grad_rows, grad_cols) / np.float32(EDGE_SCALE))  # (H, W)
    if sparse_depth is not None:
        points = lidar_points(sparse_depth)
        lidar = sparse_depth[points].astype(np.float32)  # (N,) in np.flatnonzero order, as the labels
        residual = np.abs(depth[points] - lidar) / lidar  # (N,)
        distance, nearest = nearest_lidar_pixel(points)  # (H, W) pixels to, and index of, the nearest LiDAR pixel
        diagonal = float(np.hypot(*depth.shape))
        # One exponential for the agreement, proximity, disagreement and departure terms (module constants).
        fill = complete_scanline(image, sparse_depth, None)  # (H, W) metres: the refining models' prior
        scale = np.where(valid, depth, 1.0).astype(np.float32) * np.float32(DISAGREEMENT_SCALE)
        exponent = residual[nearest] / np.float32(RESIDUAL_SCALE) + distance / np.float32(PROXIMITY_FRACTION * diagonal)
        exponent += (np.abs(lidar[nearest] - depth) + np.abs(fill - depth)) / scale
        confidence *= np.exp(-exponent)
    return np.where(valid, confidence, 0.0).astype(np.float32)


def _native_lidar(sparse_depth: np.ndarray) -> torch.Tensor:
    """(1, 1, H, W) metres: the caller's LiDAR with every non-point (0, NaN, negative) at 0."""
    return depth_tensor(np.where(lidar_points(sparse_depth), sparse_depth, 0.0))


def _check_refine_size(value: object, name: str) -> None:
    """Raise InputError unless ``value`` (called ``name`` in the message) is None or a positive int."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise InputError(f"{name} must be a positive integer (the longer image side in pixels), got {value!r}")


class DepthEstimator:
    """Dense depth from an RGB image and optional sparse LiDAR depth, with one trained model.

    Args:
        model: a Modality Forcing model (``mf_core.model``); put in eval mode on ``device``.
        device: torch device for inference.
        processing_size: resolution the model runs at: None (the input size), an int (the
            longer side) or (height, width); always rounded to multiples of the patch size.
        refine_strength: refine_head models with LiDAR: the share of the learned correction to the
            prior that is applied (:func:`mf_core.lidar_prior.compose`) between scan lines;
            checkpoints record theirs.
        refine_strength_near: the share next to a LiDAR return on the pixel's own row, rising from
            ``refine_strength`` (:func:`mf_core.lidar_prior.strength_map`); None = ``refine_strength``
            everywhere.
        onnx_model: a file written by ``mf export-onnx`` for this model: the mode it was exported for
            (``--mode``: "conditioned", or "i2d", which also serves "i2d-aligned") with one step then
            runs on onnxruntime (CPU; CUDA where its provider is installed); other modes and step
            counts stay on torch.
        refine_size: refine_head models: the longer image side the refinement head runs at (never
            above the input's); None = the processing size. Checkpoints record theirs.
        nearest_share: mode "conditioned": the share of the nearest-return fill mixed into the output,
            "auto" (fitted per frame on scan-line pieces held out of its own LiDAR,
            :func:`mf_core.self_validation.fit_nearest_share`), a number in [0, 1], or None (none).
            Checkpoints record theirs.
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu",
                 processing_size: int | tuple[int, int] | None = None, refine_strength: float = 1.0,
                 onnx_model: str | Path | None = None, refine_strength_near: float | None = None,
                 refine_size: int | None = None, nearest_share: float | str | None = None) -> None:
        check_refine_strengths(refine_strength, refine_strength_near)
        _check_refine_size(refine_size, "refine_size")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.processing_size = processing_size
        self.refine_strength = float(refine_strength)
        self.refine_strength_near = None if refine_strength_near is None else float(refine_strength_near)
        self.refine_size = refine_size
        self.nearest_share = parse_nearest_share(nearest_share, "nearest_share")
        self.onnx_session = None if onnx_model is None else onnx_session(onnx_model, self.device)
        self.onnx_mode = None if self.onnx_session is None else exported_mode(self.onnx_session)
        self._network: ConditionedFrameNetwork | None = None  # built on first use

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None,
                        processing_size: int | tuple[int, int] | None = None,
                        onnx_model: str | Path | None = None) -> DepthEstimator:
        """Load a checkpoint folder ("default": the shipped model; ``dtype`` default float32) and wrap it.

        Without ``processing_size`` the checkpoint's own ``processing_size`` metadata (the
        resolution it was trained for) is used when it has one; its refine strengths, refine size and nearest
        share always.
        """
        model, metadata = load_model(resolve_model_path(path), device, dtype)
        if processing_size is None and metadata.get("processing_size"):
            size = metadata["processing_size"]
            processing_size = size if isinstance(size, int) else tuple(size)
        strengths = {}
        for key, default in ((REFINE_STRENGTH_KEY, 1.0), (REFINE_STRENGTH_NEAR_KEY, None)):
            value = metadata.get(key, default)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InputError(f"checkpoint {path}: metadata {key} must be a number, got {value!r}")
            strengths[key] = value
        refine_size = metadata.get(REFINE_SIZE_KEY)
        _check_refine_size(refine_size, f"checkpoint {path}: metadata {REFINE_SIZE_KEY}")
        nearest_share = parse_nearest_share(metadata.get(NEAREST_SHARE_KEY),
                                            f"checkpoint {path}: metadata {NEAREST_SHARE_KEY}")
        return cls(model, device, processing_size, float(strengths[REFINE_STRENGTH_KEY]), onnx_model,
                   strengths[REFINE_STRENGTH_NEAR_KEY], refine_size, nearest_share)

    def _check_inputs(self, image: np.ndarray, sparse_depth: np.ndarray | None, mode: str, steps: int) -> None:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise InputError(f"image must be an (H, W, 3) uint8 RGB array, got {got}")
        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; use one of {MODES}")
        time_grid(steps)  # validates steps
        if mode == "conditioned" and not self.model.config.depth_conditioned:
            raise InputError("mode 'conditioned' needs a LiDAR-conditioned checkpoint (depth_conditioned=True); "
                             "use 'guided' or 'i2d-aligned' with this one")
        if sparse_depth is None:
            if mode in LIDAR_MODES:
                raise InputError(f"mode {mode!r} needs sparse_depth (LiDAR depth in metres); use 'i2d' without it")
            return
        if not isinstance(sparse_depth, np.ndarray) or sparse_depth.shape != image.shape[:2]:
            got = sparse_depth.shape if isinstance(sparse_depth, np.ndarray) else type(sparse_depth).__name__
            raise InputError(f"sparse_depth must be an (H, W) array matching the image {image.shape[:2]}, got {got}")
        count = int(lidar_points(sparse_depth).sum())
        if mode in LIDAR_MODES and count < MIN_POINTS:
            raise InputError(f"too few LiDAR points in the image: {count}, need at least {MIN_POINTS} "
                             "(check the extrinsic and time sync, or use mode 'i2d')")

    def _relative_lidar(self, first: np.ndarray, sparse: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """LiDAR moved into a relative prediction's frame, encoded, at its inlier pixels only.

        first, sparse: (h, w). Returns encoded depth and mask, each (1, 1, h, w).
        """
        fit = align_to_lidar(first, sparse)
        rows, cols = np.nonzero(lidar_points(sparse))
        rows, cols = rows[fit.inliers], cols[fit.inliers]
        relative = np.zeros(sparse.shape, dtype=np.float32)
        relative[rows, cols] = fit.to_relative(sparse[rows, cols])
        relative_t = torch.from_numpy(relative)[None, None]  # (1, 1, h, w)
        mask = relative_t > 0  # a fit can map a point to no positive relative depth
        encoded, _ = encode_depth(relative_t, mask, scale=torch.ones(1))
        return encoded, mask

    def _refine_inputs(self, image: np.ndarray, sparse_depth: np.ndarray, image_small: torch.Tensor,
                       sparse_small: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The frame at the refine size: image (1, 3, hr, wr) in [-1, 1] and LiDAR (1, 1, hr, wr) metres,
        resized as the processing-size inputs are (the native frame when the refine size is not below it)."""
        height, width = image.shape[:2]
        if self.refine_size is None:
            return image_small, depth_tensor(sparse_small)
        hr, wr = processing_shape(height, width, 1, min(self.refine_size, max(height, width)))
        if (hr, wr) == (height, width):
            return image_tensor(image)[None], _native_lidar(sparse_depth)
        return image_tensor(resize_image(image, wr, hr))[None], depth_tensor(resize_sparse_depth(sparse_depth, wr, hr))

    def _native_composition(self, image: np.ndarray, sparse_depth: np.ndarray, image_small: torch.Tensor,
                            sparse_small: np.ndarray, out: SampleOutput, scale: torch.Tensor) -> np.ndarray:
        """A refine_head model's depth (H, W) metres at the input resolution (:func:`refine_native`)."""
        native = _native_lidar(sparse_depth)  # (1, 1, H, W) metres
        with torch.no_grad():
            metres = refine_native(self.model, self.refine_strength, self.refine_strength_near,
                                   *self._refine_inputs(image, sparse_depth, image_small, sparse_small),
                                   image_tensor(image)[None], native, out.transformer_log_depth.cpu(), scale.cpu())
        return metres[0, 0].numpy()

    def frame_inputs(self, image: np.ndarray, sparse_depth: np.ndarray | None, seed: int = 0,
                     mode: str = "conditioned") -> tuple[torch.Tensor, ...]:
        """The inputs (``INPUT_NAMES[mode]``) of the frame network of ``mode`` for one frame, as ``predict``
        builds them."""
        height, width = image.shape[:2]
        ph, pw = processing_shape(height, width, self.model.config.patch_size, self.processing_size)
        sparse_small = None if sparse_depth is None else resize_sparse_depth(sparse_depth, pw, ph)
        return self._network_inputs(mode, image, sparse_depth, image_tensor(resize_image(image, pw, ph))[None],
                                    sparse_small, seed)

    def _network_inputs(self, mode: str, image: np.ndarray, sparse_depth: np.ndarray | None,
                        image_small: torch.Tensor, sparse_small: np.ndarray | None, seed: int
                        ) -> tuple[torch.Tensor, ...]:
        shape = (1, 1, *image_small.shape[-2:])
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))  # drawn as sample() draws it
        if mode == "i2d":
            return image_small, noise
        native = _native_lidar(sparse_depth)  # (1, 1, H, W) metres
        return (image_small, depth_tensor(sparse_small), noise,
                *self._refine_inputs(image, sparse_depth, image_small, sparse_small), image_tensor(image)[None], native)

    def _frame_network(self, mode: str, steps: int) -> str | None:
        """The one-step frame network (mf_core.frame_network) that computes this call, or None (the sampler):
        "conditioned" for refine_head models (onnxruntime when its graph is loaded, else torch), "i2d" for
        the monocular modes when an i2d graph is loaded."""
        if steps != 1:
            return None
        if mode == "conditioned" and self.model.config.refine_head:
            return "conditioned"
        if mode in ("i2d", "i2d-aligned") and self.onnx_mode == "i2d":
            return "i2d"
        return None

    def _run_frame_network(self, mode: str, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
        """The frame network of ``mode`` on onnxruntime when its exported graph is loaded, else eagerly on
        torch (conditioned). (H, W) metres (conditioned) or (h, w) relative depth (i2d)."""
        if self.onnx_mode != mode:
            if self._network is None:
                self._network = ConditionedFrameNetwork(self.model, self.refine_strength, self.refine_strength_near)
            with torch.inference_mode():
                return self._network(*(x.to(self.device) for x in inputs))[0, 0].cpu().numpy()
        # The graph's inputs: INPUT_NAMES[mode] less those its network does not read (a head that does not
        # read the transformer leaves the transformer's inputs out of the graph).
        expected = {i.name: tuple(i.shape) for i in self.onnx_session.get_inputs()}
        feeds = {name: tensor for name, tensor in zip(INPUT_NAMES[mode], inputs, strict=True) if name in expected}
        for name, tensor in feeds.items():
            if tuple(tensor.shape) != expected[name]:
                raise InputError(f"the ONNX model was exported for {name} of shape {expected[name]}, this frame "
                                 f"gives {tuple(tensor.shape)}; export it for this camera's size (mf export-onnx "
                                 "--size WxH) or run without onnx_model")
        feeds = {name: tensor.numpy() for name, tensor in feeds.items()}
        return self.onnx_session.run(None, feeds)[0][0, 0]

    def predict(self, image: np.ndarray, sparse_depth: np.ndarray | None = None, mode: str = "i2d-aligned",
                steps: int = 1, seed: int = 0, with_confidence: bool = True, keep_lidar: bool = False,
                share_stream: NearestShareStream | None = None) -> DepthResult:
        """Estimate depth for one frame.

        Args:
            image: (H, W, 3) uint8 RGB.
            sparse_depth: (H, W) float32 LiDAR depth in metres, 0 (or NaN) = no point; mode "i2d"
                does not use it.
            mode: "i2d" (relative, unit mean), "i2d-aligned" (metric by robust alignment to LiDAR),
                "guided" (LiDAR-guided sampling, then alignment) or "conditioned" (LiDAR-conditioned
                checkpoint: metres directly, in the scale of the LiDAR it was given).
            steps: sampler steps, 1..50; 1 is one deterministic forward pass.
            seed: seeds the sampler noise.
            with_confidence: compute the confidence map (about 50 ms at 640x480 and 440 ms at
                1936x1216 on one core of the development machine);
                callers that do not use it (a node not publishing it) pass False.
            keep_lidar: LiDAR modes: write the measured depth back at the LiDAR pixels (the model's
                own value there differs by ``DepthResult.lidar_residual``).
            share_stream: with ``nearest_share`` "auto": the frames so far of this sensor's stream, whose
                fit this frame joins (a steady share, no flicker from it); None fits this frame alone.

        Returns:
            DepthResult at the caller's (H, W).
        """
        start = time.perf_counter()
        self._check_inputs(image, sparse_depth, mode, steps)
        height, width = image.shape[:2]
        ph, pw = processing_shape(height, width, self.model.config.patch_size, self.processing_size)
        image_t = image_tensor(resize_image(image, pw, ph))[None]  # (1, 3, ph, pw) in [-1, 1]
        sparse = None if sparse_depth is None else resize_sparse_depth(sparse_depth, pw, ph)  # (ph, pw)
        timings = {"preprocess": time.perf_counter() - start}

        start = time.perf_counter()
        options: dict = {}
        scale: torch.Tensor | float = 1.0
        if mode == "guided":
            first = sample(self.model, "i2d", image=image_t, steps=1,
                           generator=torch.Generator().manual_seed(seed)).depth
            options["lidar_depth"], options["lidar_mask"] = self._relative_lidar(
                decode_depth(first)[0, 0].cpu().numpy(), sparse)
        elif mode == "conditioned":
            lidar = encode_lidar(depth_tensor(sparse))
            options["sparse_depth"], options["sparse_mask"], scale = lidar.depth, lidar.mask, lidar.scale
        network = self._frame_network(mode, steps)
        out = relative = None
        if network == "i2d":
            relative = self._run_frame_network(network, self._network_inputs(network, image, sparse_depth, image_t,
                                                                             sparse, seed))  # (ph, pw)
        elif network is None:
            out = sample(self.model, "i2d", image=image_t, steps=steps,
                         generator=torch.Generator().manual_seed(seed), **options)
            if not (mode == "conditioned" and out.refine_terms is not None):
                relative = to_metres(out.depth, scale)[0, 0].cpu().numpy()  # (ph, pw)
        # else one network does the model pass and the native composition
        timings["model"] = time.perf_counter() - start

        start = time.perf_counter()
        alignment = None
        if network == "conditioned":
            depth = self._run_frame_network(network, self._network_inputs(network, image, sparse_depth, image_t,
                                                                          sparse, seed))
        elif relative is None:  # a refine_head model's terms, composed at the input size (also when equal)
            depth = self._native_composition(image, sparse_depth, image_t, sparse, out, scale)  # (H, W) metres
        else:
            depth = resize_dense_depth(relative, width, height)  # (H, W)
            if mode in ("i2d-aligned", "guided"):
                alignment = align_to_lidar(depth, sparse_depth)
                depth = alignment.apply(depth)
        share = None
        if mode == "conditioned" and self.nearest_share is not None:
            if self.nearest_share != AUTO:
                share = float(self.nearest_share)
            else:
                share = fit_nearest_share(image, sparse_depth) if share_stream is None \
                    else share_stream.update(image, sparse_depth)
            depth = mix_nearest(image, sparse_depth, depth, share)
        residual = valid = None
        if mode in LIDAR_MODES:
            valid = lidar_support(depth, sparse_depth)
            points = lidar_points(sparse_depth)
            residual = float(np.median(np.abs(depth[points] - sparse_depth[points]) / sparse_depth[points]))
            if keep_lidar:
                depth = np.where(points, sparse_depth, depth).astype(np.float32)
        timings["align"] = time.perf_counter() - start

        start = time.perf_counter()
        confidence = _confidence(depth, sparse_depth if mode in LIDAR_MODES else None, image) if with_confidence \
            else None
        timings["postprocess"] = time.perf_counter() - start
        timings = {k: 1000.0 * v for k, v in timings.items()}
        timings["total"] = sum(timings.values())
        return DepthResult(
            depth=depth.astype(np.float32, copy=False),
            confidence=confidence,
            metric=mode in LIDAR_MODES,
            scale=alignment.scale if alignment else float(scale),
            shift=alignment.shift if alignment else 0.0,
            timings=timings,
            alignment=alignment,
            lidar_residual=residual,
            valid=valid,
            nearest_share=share,
        )
