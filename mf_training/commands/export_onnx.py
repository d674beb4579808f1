"""``mf export-onnx --model M --out FILE [--size WxH] [--mode conditioned|i2d]``: the per-frame network as one
ONNX graph.

The graph is, for ``--mode conditioned`` (the default for LiDAR-conditioned refine-head models),
:class:`mf_core.frame_network.ConditionedFrameNetwork` (LiDAR encoding, the model pass at the
checkpoint's processing size, the prior and composition at the native size), and for ``--mode
i2d`` the monocular :class:`~mf_core.frame_network.MonocularFrameNetwork` (image in, relative depth
at the processing size out; serves modes i2d and i2d-aligned), with one step, at a fixed input
size (the camera's). It is checked against
torch on a frame of that size right after export: the largest difference is printed, and above
``--tolerance`` (relative) the file is removed and the command fails. Use it with
``DepthEstimator(onnx_model=FILE)``, ``mf densify --onnx-model FILE`` or the depth node's
``onnx_model`` parameter.
"""

from __future__ import annotations

import argparse

from mf_core.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="checkpoint folder ('default' = the shipped model)")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--size", default="640x480", help="camera image size WxH the graph is for (default 640x480)")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="largest relative depth difference to torch accepted (default 1e-3)")
    from mf_core.frame_network import EXPORT_MODES

    parser.add_argument("--mode", choices=EXPORT_MODES, default=None,
                        help="the one-step mode the graph computes (default: conditioned for LiDAR-conditioned "
                             "refine-head models, else i2d; i2d also serves i2d-aligned)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import torch

    from mf_core.files import remove_tree, temp_dir_beside
    from mf_core.frame_network import ConditionedFrameNetwork, MonocularFrameNetwork
    from mf_core.pipeline import DepthEstimator
    from mf_core.resize import processing_shape
    from mf_training.bench.eval import parse_size
    from mf_training.eval.synthetic import default_camera, synthetic_sample
    from mf_training.onnx_export import export_onnx

    out = Path(args.out)
    if out.suffix != ".onnx":
        raise InputError(f"--out {out} must end in .onnx")
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} exists; pass --overwrite to replace it")
    width, height = parse_size(args.size)
    estimator = DepthEstimator.from_checkpoint(args.model, "cpu")
    config = estimator.model.config
    mode = args.mode or ("conditioned" if config.depth_conditioned and config.refine_head else "i2d")
    if mode == "conditioned":
        network = ConditionedFrameNetwork(estimator.model, estimator.refine_strength,  # InputError if it cannot
                                          estimator.refine_strength_near)
    else:
        network = MonocularFrameNetwork(estimator.model)
    ph, pw = processing_shape(height, width, config.patch_size, estimator.processing_size)
    sample = synthetic_sample("export", default_camera(width, height), seed=0)  # a frame to trace and check on
    lidar = sample.sparse_depth if mode == "conditioned" else None
    work = temp_dir_beside(out)
    try:
        staged = work / out.name
        export_onnx(network, estimator.frame_inputs(sample.image, lidar, mode=mode), staged)
        onnx_estimator = DepthEstimator.from_checkpoint(args.model, "cpu", onnx_model=staged)
        with torch.inference_mode():
            reference = estimator.predict(sample.image, lidar, mode, with_confidence=False)
            exported = onnx_estimator.predict(sample.image, lidar, mode, with_confidence=False)
        both = (reference.depth > 0) & (exported.depth > 0)
        relative = np.abs(exported.depth[both] - reference.depth[both]) / reference.depth[both]
        worst = float(relative.max()) if relative.size else 0.0
        absolute = float(np.abs(exported.depth - reference.depth).max())
        unit = "m" if mode == "conditioned" else "(unit-mean relative depth)"
        print(f"export-onnx: mode {mode}, {width}x{height} (model at {pw}x{ph}); onnxruntime vs torch on a test "
              f"frame: max relative difference {worst:.2e}, max absolute {absolute:.2e} {unit}")
        if worst > args.tolerance:
            raise InputError(f"the exported graph differs from torch by {worst:.2e} (> --tolerance "
                             f"{args.tolerance}); nothing written")
        staged.replace(out)
    finally:
        remove_tree(work, inside=out.parent)
    print(f"wrote {out}")
    return 0
