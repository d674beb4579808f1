"""The evaluation loop: every method (model mode or baseline) goes through :func:`evaluate`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mf_core.camera import PinholeCamera
from mf_core.completion import get_baseline
from mf_core.errors import InputError
from mf_training.data.sample import Sample
from mf_training.eval.edge_alignment import depth_edge_errors, mean_edge_errors
from mf_training.eval.metrics import depth_metrics, mean_metrics
from mf_training.eval.protocols import HOLDOUT_PROTOCOLS, EvalProtocol
from mf_training.eval.report import frame_panel, summary, write_report
from mf_training.viz import save_png

PredictFn = Callable[[np.ndarray, np.ndarray, PinholeCamera], np.ndarray]


@dataclass(frozen=True)
class EvalMethod:
    """A depth method under evaluation: ``predict(image, fed_sparse, camera) -> (H, W) depth``."""

    name: str  # written as "model" in metrics.json
    mode: str | None  # the model mode; None for a baseline
    metric: bool  # False when the output is relative depth (only the affine protocol can score it)
    predict: PredictFn
    dense: bool = True  # False when it gives depth only at the LiDAR points it is fed


def baseline_method(name: str) -> EvalMethod:
    """The registered baseline ``name`` as an EvalMethod (metres, or relative depth for monocular ones)."""
    baseline = get_baseline(name)
    return EvalMethod(f"baseline:{baseline.name}", None, baseline.metric, baseline.complete, baseline.dense)


def model_method(checkpoint: str | Path, mode: str, steps: int = 1, seed: int = 0,
                 processing_size: int | tuple[int, int] | None = None, device: str = "cpu",
                 onnx_model: str | Path | None = None) -> EvalMethod:
    """A trained checkpoint run by ``DepthEstimator`` in ``mode`` (conditioned on onnxruntime with
    ``onnx_model``); mode "i2d" never sees the LiDAR."""
    # Imported here: torch and the model load only when a checkpoint is evaluated.
    from mf_core.modes import MODES
    from mf_core.pipeline import DepthEstimator

    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    estimator = DepthEstimator.from_checkpoint(checkpoint, device, processing_size=processing_size,
                                               onnx_model=onnx_model)
    return estimator_method(estimator, str(checkpoint), mode, steps, seed)


def estimator_method(estimator, name: str, mode: str, steps: int = 1, seed: int = 0,
                     on_result: Callable | None = None) -> EvalMethod:
    """A loaded ``DepthEstimator`` in ``mode`` as an EvalMethod. Confidence is off (it is not scored)
    unless ``on_result`` is given: it then gets every frame's full ``DepthResult``, confidence included."""

    def predict(image: np.ndarray, sparse_depth: np.ndarray, camera: PinholeCamera) -> np.ndarray:
        lidar = None if mode == "i2d" else sparse_depth
        result = estimator.predict(image, lidar, mode=mode, steps=steps, seed=seed,
                                   with_confidence=on_result is not None)
        if on_result is not None:
            on_result(result)
        return result.depth

    return EvalMethod(name, mode, mode != "i2d", predict)


def describe(method: EvalMethod, protocol: EvalProtocol) -> str:
    """One line naming the method, mode, protocol and region (the metrics.md title)."""
    mode = f", mode {method.mode}" if method.mode else ""
    return f"mf eval: {method.name}{mode}, protocol {protocol.name}, region {protocol.region.name}"


def evaluate(samples: Iterable[Sample], method: EvalMethod, protocol: EvalProtocol, out_dir: str | Path | None,
             total: int | None = None, progress: bool = True, panels: bool = True) -> dict:
    """Score ``method`` on ``samples`` under ``protocol``; write metrics.json, metrics.md, panels/NAME.png.

    Only the protocol's ``fed_sparse`` (a fresh copy, held-out points removed) reaches the
    method. ``total`` (the frame count, when known) only sizes the progress bar. With
    ``out_dir`` None nothing is written; ``panels`` False skips the PNGs. Returns the
    metrics.json content:
    ``{"frames": [{"name", <metrics>, "runtime_s"}], "mean": {...}, "protocol", "mode", "model"}``.
    """
    if not method.metric and protocol.name != "affine":
        raise InputError(f"mode {method.mode!r} gives relative depth (unit mean), which only --protocol affine "
                         "can score; use --protocol affine, or a metric mode such as i2d-aligned")
    if not method.dense and protocol.name in HOLDOUT_PROTOCOLS:
        raise InputError(f"{method.name} gives depth only at the LiDAR points it is fed, and lidar-holdout "
                         "scores only the points it did not feed: nothing to score; use --protocol metric")
    out_dir = None if out_dir is None else Path(out_dir)
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} exists and is not a folder; choose another --out")
    frames: list[dict] = []
    for sample in tqdm(samples, total=total, desc="eval", unit="frame", disable=not progress):
        split = protocol.split(sample)
        start = time.perf_counter()
        raw = method.predict(sample.image, split.fed_sparse, sample.camera)
        runtime = time.perf_counter() - start
        if raw.shape != split.target.shape:
            raise InputError(f"{method.name} returned depth of shape {raw.shape} for frame {sample.name!r}, "
                             f"expected {split.target.shape}")
        pred = protocol.finalize(raw, split)  # (H, W) metres as scored
        metrics = depth_metrics(pred, split.target, split.score_mask)
        if not split.target_is_sparse:  # where depth edges are: only dense ground truth has them
            metrics |= depth_edge_errors(pred, split.target, split.score_mask)
        frames.append({"name": sample.name, **metrics, "runtime_s": runtime})
        if out_dir is not None and panels:
            save_png(out_dir / "panels" / f"{sample.name}.png", frame_panel(sample.image, split, pred))
    mean = {**mean_metrics(frames), **mean_edge_errors(frames),
            "runtime_s": float(np.mean([f["runtime_s"] for f in frames]))}
    report = {"frames": frames, "mean": mean, "protocol": protocol.name, "mode": method.mode, "model": method.name}
    if out_dir is not None:
        write_report(out_dir, report, describe(method, protocol))
    return report


def print_summary(report: dict, out_dir: str | Path) -> None:
    """Print the summary table and where the files went."""
    print(summary(report))
    print(f"wrote {Path(out_dir) / 'metrics.json'}, metrics.md and {len(report['frames'])} panels under "
          f"{Path(out_dir) / 'panels'}")
