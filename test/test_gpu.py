"""CUDA checks (``pytest -m gpu``; scripts/gpu_check.sh runs them): skipped where torch sees no GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mf_core.model import build_model
from mf_core.pipeline import DepthEstimator
from mf_training.eval.synthetic import default_camera, synthetic_sample

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")


@pytest.mark.gpu
@needs_gpu
def test_shipped_model_gives_the_same_depth_on_cuda_as_on_cpu():
    sample = synthetic_sample("gpu", default_camera(320, 240), seed=0)
    cpu = DepthEstimator.from_checkpoint("default", "cpu").predict(sample.image, sample.sparse_depth, "conditioned")
    gpu = DepthEstimator.from_checkpoint("default", "cuda").predict(sample.image, sample.sparse_depth, "conditioned")
    both = np.isfinite(cpu.depth) & np.isfinite(gpu.depth) & (cpu.depth > 0)
    assert both.mean() > 0.5
    relative = np.abs(gpu.depth[both] - cpu.depth[both]) / cpu.depth[both]
    assert np.median(relative) < 1e-3 and np.percentile(relative, 99) < 2e-2, (np.median(relative),)


@pytest.mark.gpu
@needs_gpu
def test_bf16_training_step_is_finite_and_moves_the_weights():
    torch.manual_seed(0)
    model = build_model("MF-S").cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    image, depth = torch.randn(2, 3, 128, 160, device="cuda"), torch.randn(2, 1, 128, 160, device="cuda")
    t = torch.rand(2, device="cuda")
    before = [p.detach().clone() for p in model.parameters()]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(image, depth, t, t)
        loss = out.depth_x0.float().square().mean() + out.image_velocity.float().square().mean()
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


@pytest.mark.gpu
@needs_gpu
def test_compiled_model_matches_eager():
    torch.manual_seed(0)
    model = build_model("MF-XS").cuda().eval()
    image, depth = torch.randn(1, 3, 96, 128, device="cuda"), torch.randn(1, 1, 96, 128, device="cuda")
    t = torch.full((1,), 0.5, device="cuda")
    with torch.no_grad():
        eager = model(image, depth, t, t).depth_x0
        compiled = torch.compile(model)(image, depth, t, t).depth_x0
    torch.testing.assert_close(compiled, eager, rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the script's behaviour without a GPU")
def test_gpu_check_script_stops_cleanly_without_a_gpu(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    done = subprocess.run(["bash", str(script)], env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path),
                                                      "PYTHON": sys.executable}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "torch sees no CUDA GPU" in (tmp_path / "summary.txt").read_text()
