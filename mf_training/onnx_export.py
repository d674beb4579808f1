"""Tracing a frame network (:mod:`mf_core.frame_network`) into one ONNX file: what ``mf export-onnx`` writes.

Offline only (it needs the onnx package); inference reads the file with onnxruntime through
:func:`mf_core.frame_network.onnx_session`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

from mf_core.frame_network import (
    INPUT_NAMES,
    MODE_METADATA_KEY,
    OUTPUT_NAME,
    ConditionedFrameNetwork,
    MonocularFrameNetwork,
    network_mode,
)

ONNX_OPSET = 17


def _rms_norm_symbolic(g, x, shape, weight, eps):
    """aten::rms_norm in ONNX opsets before 23, which have no RMSNormalization: x / sqrt(mean(x^2) + eps) * w."""
    from torch.onnx import symbolic_helper

    epsilon = symbolic_helper._maybe_get_const(eps, "f")
    mean_square = g.op("ReduceMean", g.op("Mul", x, x), axes_i=[-1], keepdims_i=1)
    offset = g.op("Constant", value_t=torch.tensor(1e-6 if epsilon is None else float(epsilon)))
    return g.op("Mul", g.op("Div", x, g.op("Sqrt", g.op("Add", mean_square, offset))), weight)


def export_onnx(network: ConditionedFrameNetwork | MonocularFrameNetwork, example: tuple[torch.Tensor, ...],
                path: str | Path) -> None:
    """Trace ``network`` on ``example`` (its INPUT_NAMES, float32 CPU tensors) into an ONNX file at ``path``.

    The graph has the example's fixed sizes and names its mode in the metadata. torch's
    TorchScript-based exporter is used: the newer torch.export path refuses the input checks of the
    depth encoding (data-dependent branches) that tracing records as the constants they are for
    valid inputs.
    """
    from torch.onnx import register_custom_op_symbolic

    register_custom_op_symbolic("aten::rms_norm", _rms_norm_symbolic, ONNX_OPSET)
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing turns the input checks into constants for the example, and says so for each: expected.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(network.eval(), example, str(path), input_names=list(INPUT_NAMES[network_mode(network)]),
                          output_names=[OUTPUT_NAME], opset_version=ONNX_OPSET, dynamo=False)
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, {MODE_METADATA_KEY: network_mode(network)})
    onnx.save(graph, str(path))
