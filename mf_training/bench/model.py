"""``mf bench model``: DiT throughput (forward, forward+backward) and i2d latency, vs diffusers SD3.

The baseline is diffusers' ``SD3Transformer2DModel`` (all joint MM-DiT blocks) with our
width, heads and total block count, fed the same number of tokens: N image tokens plus N
context tokens where ours has N image plus N depth tokens. diffusers is imported inside
the benchmark only. On CUDA both run under bf16 autocast and MFU is reported against the
device's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mf_core.errors import InputError
from mf_core.model import build_model, count_parameters, get_model_config
from mf_core.model.config import ModelConfig
from mf_core.sampling import sample

# Dense bf16 peak FLOP/s by CUDA device-name fragment (vendor data sheets), for MFU.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "4090": 165e12}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="MF-XS,MF-S,MF-B", help="comma-separated registry names")
    parser.add_argument(
        "--resolutions", default="320x256", help="comma-separated WxH (the full set: 320x256,640x480)"
    )
    parser.add_argument("--batch", type=int, default=1, help="samples per forward")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per measurement (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    parser.add_argument("--no-baseline", action="store_true", help="skip the diffusers SD3 comparison")
    parser.add_argument("--latency-size", default="MF-XS", help="model for the i2d latency")
    parser.add_argument("--latency-resolution", default="160x128", help="WxH for the i2d latency")
    parser.add_argument("--steps", default="1,4,50", help="comma-separated i2d step counts")
    parser.add_argument("--latency-repeats", type=int, default=1, help="timed samplings per step count")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    parser.add_argument("--compile", action="store_true", help="torch.compile every timed model (warm-up included)")


def _resolution(text: str) -> tuple[int, int]:
    """``"WxH"`` -> (height, width)."""
    from mf_training.bench.eval import parse_size

    width, height = parse_size(text, "resolution")
    return height, width


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def _median_seconds(fns: dict[str, Callable[[], None]], device: torch.device, repeats: int,
                    warmup: int) -> dict[str, float]:
    """Median wall time of each function; runs are interleaved so a busy machine slows all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _synchronize(device)
            start = time.perf_counter()
            fn()
            _synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


class Workload:
    """A model and its inputs; ``forward()`` runs inference, ``train_step()`` forward + backward."""

    def __init__(self, model: nn.Module, call: Callable[[nn.Module], torch.Tensor], device: torch.device):
        self.model, self.call, self.device = model, call, device

    def forward(self) -> None:
        with torch.no_grad(), _autocast(self.device):
            self.call(self.model)

    def train_step(self) -> None:
        with _autocast(self.device):
            loss = self.call(self.model).float().square().mean()
        loss.backward()
        self.model.zero_grad(set_to_none=True)


def count_flops(make_on_meta: Callable[[], Workload]) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs of one call, counted by torch on a meta-device copy."""
    with torch.device("meta"):
        meta = make_on_meta()
        with FlopCounterMode(display=False) as counter:
            meta.call(meta.model)
        forward = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            meta.call(meta.model).float().square().mean().backward()
    return float(forward), float(counter.get_total_flops())


def ours(config: ModelConfig, batch: int, h: int, w: int, device: torch.device) -> Workload:
    """Our DiT on joint-mode inputs (both modalities noised)."""
    model = build_model(config).to(device)
    image, depth = torch.randn(batch, 3, h, w, device=device), torch.randn(batch, 1, h, w, device=device)
    t = torch.rand(batch, device=device)

    def call(m: nn.Module) -> torch.Tensor:
        out = m(image, depth, t, t)
        return torch.cat([out.image_velocity.float(), out.depth_x0], dim=1)  # (B, 4, H, W)

    return Workload(model, call, device)


def sd3_baseline(config: ModelConfig, batch: int, h: int, w: int, device: torch.device) -> Workload:
    """diffusers SD3 MM-DiT with our width/heads/depth: N image tokens + N context tokens."""
    from diffusers import SD3Transformer2DModel

    p = config.patch_size
    grid = max(h, w) // p
    model = SD3Transformer2DModel(
        sample_size=grid,
        patch_size=p,
        in_channels=3,
        out_channels=3,
        num_layers=config.n_joint + config.n_single + config.n_dec,
        attention_head_dim=config.head_dim,
        num_attention_heads=config.heads,
        joint_attention_dim=config.width,
        caption_projection_dim=config.width,
        pooled_projection_dim=config.width,
        pos_embed_max_size=grid,
        qk_norm="rms_norm" if config.qk_norm else None,
    ).to(device)
    n_tokens = (h // p) * (w // p)
    image = torch.randn(batch, 3, h, w, device=device)
    context = torch.randn(batch, n_tokens, config.width, device=device)
    pooled = torch.randn(batch, config.width, device=device)
    t = torch.rand(batch, device=device) * 1000

    def call(m: nn.Module) -> torch.Tensor:
        return m(hidden_states=image, encoder_hidden_states=context, pooled_projections=pooled, timestep=t).sample

    return Workload(model, call, device)


def _peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_FLOPS.items() if key in name), None)


def _peak_memory_gib(workload: Workload, device: torch.device) -> float | None:
    """GPU memory high-water mark of one training step (weights, activations, gradients), GiB."""
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    workload.train_step()
    _synchronize(device)
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


def measure(makers: dict[str, Callable[..., Workload]], config: ModelConfig, batch: int, h: int, w: int,
            device: torch.device, args: argparse.Namespace) -> dict[str, dict]:
    """Per workload: samples/s and tokens/s for forward and forward+backward, FLOPs, MFU."""
    workloads = {name: make(config, batch, h, w, device) for name, make in makers.items()}
    if args.compile:
        for workload in workloads.values():
            workload.model = torch.compile(workload.model)
    tokens = 2 * batch * (h // config.patch_size) * (w // config.patch_size)
    fns = {}
    for name, workload in workloads.items():
        fns[name, "forward"], fns[name, "train"] = workload.forward, workload.train_step
    seconds = _median_seconds(fns, device, args.repeats, args.warmup)
    peak = _peak_flops(device)
    report = {}
    for name, make in makers.items():
        flops = count_flops(lambda make=make: make(config, batch, h, w, torch.device("meta")))
        report[name] = {"params": sum(p.numel() for p in workloads[name].model.parameters()),
                        "peak_train_memory_gib": _peak_memory_gib(workloads[name], device)}
        for kind, flop in zip(("forward", "train"), flops, strict=True):
            sec = seconds[name, kind]
            report[name][kind] = {
                "samples_per_s": round(batch / sec, 3),
                "tokens_per_s": round(tokens / sec, 1),
                "gflop_per_call": round(flop / 1e9, 2),
                "achieved_tflops": round(flop / sec / 1e12, 4),
                "mfu": round(flop / sec / peak, 4) if peak else None,
            }
    return report


def i2d_latency(config: ModelConfig, h: int, w: int, steps: list[int], device: torch.device,
                args: argparse.Namespace) -> dict:
    """Milliseconds for a full i2d Euler sampling (mf_core.sampling) of one image, per step count."""
    model = build_model(config).to(device).eval()
    image = torch.rand(1, 3, h, w, device=device) * 2 - 1

    def sampler(n: int) -> Callable[[], None]:
        def run_sampler() -> None:
            with _autocast(device):
                sample(model, "i2d", image=image, steps=n)

        return run_sampler

    sampler(1)()  # warm-up: one single-step sampling
    seconds = _median_seconds({str(n): sampler(n) for n in steps}, device, args.latency_repeats, warmup=0)
    return {n: round(1000 * sec, 1) for n, sec in seconds.items()}


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [get_model_config(name.strip()) for name in args.sizes.split(",")]
    resolutions = [_resolution(r) for r in args.resolutions.split(",")]
    for config in sizes:
        for h, w in resolutions:
            if h % config.patch_size or w % config.patch_size:
                raise InputError(f"{w}x{h} is not a multiple of {config.name}'s patch size {config.patch_size}")
    torch.manual_seed(0)
    rows = []
    for config in sizes:
        for h, w in resolutions:
            print(f"bench model: {config.name} at {w}x{h}", file=sys.stderr, flush=True)
            row = {"model": config.name, "resolution": f"{w}x{h}",
                   "tokens": 2 * (h // config.patch_size) * (w // config.patch_size)}
            makers = {"ours": ours} if args.no_baseline else {"ours": ours, "sd3_joint_blocks": sd3_baseline}
            row |= measure(makers, config, args.batch, h, w, device, args)
            if not args.no_baseline:
                row["speed_ratio_ours_over_sd3"] = {
                    kind: round(row["ours"][kind]["samples_per_s"] / row["sd3_joint_blocks"][kind]["samples_per_s"], 3)
                    for kind in ("forward", "train")
                }
                print(f"  ours / SD3 speed: {row['speed_ratio_ours_over_sd3']}", file=sys.stderr, flush=True)
            rows.append(row)
    latency_config = get_model_config(args.latency_size)
    lh, lw = _resolution(args.latency_resolution)
    steps = [int(s) for s in args.steps.split(",")]
    print(f"bench model: i2d latency of {latency_config.name} at {lh}x{lw}", file=sys.stderr, flush=True)
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
        "autocast": "bf16" if device.type == "cuda" else "off (fp32)",
        "compiled": bool(args.compile),
        "batch": args.batch,
        "repeats": args.repeats,
        "throughput": rows,
        "i2d_latency_ms": {
            "model": latency_config.name,
            "params": count_parameters(latency_config),
            "resolution": f"{lw}x{lh}",
            "steps": i2d_latency(latency_config, lh, lw, steps, device, args),
        },
    }
