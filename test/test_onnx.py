"""mf export-onnx and the onnxruntime backend: the same depth as torch, from one exported graph."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from mf_core.errors import InputError
from mf_core.pipeline import DepthEstimator
from mf_training.cli import main as mf_main
from mf_training.eval.synthetic import default_camera, synthetic_sample


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "mf.onnx"
    assert mf_main(["export-onnx", "--model", "default", "--out", str(path), "--size", "160x120"]) == 0
    return path


def test_export_prints_the_difference_to_torch_and_refuses_to_overwrite(exported, capsys):
    assert exported.stat().st_size > 1_000_000 and not list(exported.parent.glob(".*.tmp"))
    assert mf_main(["export-onnx", "--model", "default", "--out", str(exported), "--size", "160x120"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_onnxruntime_gives_the_torch_depth_on_frames_it_was_not_traced_on(exported):
    torch_estimator = DepthEstimator.from_checkpoint("default")
    onnx_estimator = DepthEstimator.from_checkpoint("default", onnx_model=exported)
    for seed in (1, 2):  # the graph was traced on seed 0's frame
        sample = synthetic_sample("check", default_camera(160, 120), seed=seed)
        a = torch_estimator.predict(sample.image, sample.sparse_depth, "conditioned", seed=seed)
        b = onnx_estimator.predict(sample.image, sample.sparse_depth, "conditioned", seed=seed)
        assert np.array_equal(a.depth > 0, b.depth > 0)
        both = a.depth > 0
        assert np.max(np.abs(a.depth[both] - b.depth[both]) / a.depth[both]) < 1e-4
        np.testing.assert_array_equal(a.valid, b.valid)


def test_a_frame_of_another_size_is_a_clear_error(exported):
    estimator = DepthEstimator.from_checkpoint("default", onnx_model=exported)
    sample = synthetic_sample("other", default_camera(320, 240), seed=0)
    with pytest.raises(InputError, match="export it for this camera's size"):
        estimator.predict(sample.image, sample.sparse_depth, "conditioned")
    with pytest.raises(InputError, match="does not exist"):
        DepthEstimator.from_checkpoint("default", onnx_model=exported.parent / "missing.onnx")


def test_densify_with_the_onnx_model_matches_torch(exported, tmp_path):
    from mf_ros import conversions as conv
    from mf_ros.bags import read_messages

    bag = tmp_path / "sim"
    assert mf_main(["sim", "--out", str(bag), "--frames", "3", "--seed", "5", "--width", "160", "--height", "120"]) == 0
    depths = {}
    for backend, extra in (("torch", []), ("onnx", ["--onnx-model", str(exported)])):
        out = tmp_path / backend
        assert mf_main(["densify", "--bag", str(bag), "--out", str(out), *extra]) == 0
        depths[backend] = [conv.image_to_depth(m.msg) for m in read_messages(out, ["/camera/depth/image"])]
    assert len(depths["torch"]) == len(depths["onnx"]) == 3
    for a, b in zip(depths["torch"], depths["onnx"], strict=True):
        assert np.array_equal(np.isfinite(a), np.isfinite(b))
        finite = np.isfinite(a)
        assert np.nanmax(np.abs(a[finite] - b[finite])) < 1e-3  # metres


def test_the_node_and_densify_option_loads_the_onnx_backend(exported):
    from mf_ros.depth_pipeline import load_estimator

    assert load_estimator("default", "cpu", None, str(exported)).onnx_session is not None
    assert load_estimator("default", "cpu", None, "").onnx_session is None  # empty: torch


def test_an_i2d_graph_serves_the_monocular_modes_and_leaves_the_others_on_torch(tmp_path, capsys):
    path = tmp_path / "mono.onnx"
    assert mf_main(["export-onnx", "--model", "default", "--out", str(path), "--size", "160x120",
                    "--mode", "i2d"]) == 0
    assert "mode i2d" in capsys.readouterr().out
    torch_estimator = DepthEstimator.from_checkpoint("default")
    onnx_estimator = DepthEstimator.from_checkpoint("default", onnx_model=path)
    assert onnx_estimator.onnx_mode == "i2d"
    sample = synthetic_sample("mono", default_camera(160, 120), seed=3)
    for mode in ("i2d", "i2d-aligned"):
        a = torch_estimator.predict(sample.image, sample.sparse_depth, mode, seed=3)
        b = onnx_estimator.predict(sample.image, sample.sparse_depth, mode, seed=3)
        assert a.metric == b.metric and (mode == "i2d") != a.metric
        assert np.max(np.abs(a.depth - b.depth) / a.depth) < 1e-4
        assert np.abs(a.depth - b.depth).max() > 0  # onnxruntime did run: not bit-equal to torch
    a = torch_estimator.predict(sample.image, sample.sparse_depth, "conditioned")
    b = onnx_estimator.predict(sample.image, sample.sparse_depth, "conditioned")  # no conditioned graph: torch
    np.testing.assert_array_equal(a.depth, b.depth)


def test_a_graph_without_the_transformer_for_a_head_that_does_not_read_it(tmp_path):
    """refine_reads_transformer false: the exported conditioned graph has no transformer inputs (the noise,
    the processing-size image) and onnxruntime gives the torch depth from the inputs it keeps."""
    import torch

    from mf_core.checkpoint import save_model
    from mf_core.model import build_model

    torch.manual_seed(0)
    model = build_model("MF-XS", depth_conditioned=True, refine_head=True, patch_size=16,
                        refine_reads_transformer=False)
    torch.nn.init.normal_(model.refine.out.weight, std=0.05)
    save_model(tmp_path / "m", model)
    path = tmp_path / "head.onnx"
    assert mf_main(["export-onnx", "--model", str(tmp_path / "m"), "--out", str(path), "--size", "160x120"]) == 0
    estimator = DepthEstimator.from_checkpoint(tmp_path / "m", onnx_model=path)
    inputs = {i.name for i in estimator.onnx_session.get_inputs()}
    assert "sparse_native" in inputs and not inputs & {"noise", "image_small"}
    sample = synthetic_sample("head", default_camera(160, 120), seed=4)
    a = DepthEstimator.from_checkpoint(tmp_path / "m").predict(sample.image, sample.sparse_depth, "conditioned")
    b = estimator.predict(sample.image, sample.sparse_depth, "conditioned")
    assert np.max(np.abs(a.depth - b.depth) / a.depth) < 1e-4
    assert np.abs(a.depth - b.depth).max() > 0  # onnxruntime did run: not bit-equal to torch
