"""``mf bench lift``: peak memory and time of ``mf lift`` on a randomly initialised FLUX.2-shaped transformer.

A ``Flux2Transformer2DModel`` of the given shape is written (bf16, safetensors shards of
``--shard-mb``) with a tiny ``AutoencoderKLFlux2`` into a temporary folder, then lifted in a fresh
process (``mf_training.lift.lift`` + ``write_lifted``, bf16). Each step runs in its own process and
reports its own peak memory, so the figures do not mix: the import-only baseline (python, torch,
diffusers), the lift, and the sizes of the source and the lifted weights. Memory is the peak of
anonymous resident memory (``RssAnon``, sampled every 20 ms: what must fit in RAM); the peak RSS
(``ru_maxrss``) is also given, which adds the source shards' memory-mapped pages (page cache the
kernel can drop). The ratio that matters is (lift peak - baseline) / lifted weights: about 1 means
one copy of the model in memory (streaming works); 2 would mean a second copy.
"""

from __future__ import annotations

import argparse

_ANON_SAMPLER = r"""
import threading, time
def rss_anon():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))
peak_anon = [rss_anon()]
def sample():
    while True:
        peak_anon[0] = max(peak_anon[0], rss_anon())
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
"""

_SOURCE = r"""
import json, sys, torch, diffusers
shape, folder, shard_mb = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)
with torch.device("meta"):
    model = diffusers.Flux2Transformer2DModel(**shape)
model = model.to_empty(device="cpu").to(torch.bfloat16)
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0.0, 0.02)
model.save_pretrained(folder + "/transformer", max_shard_size=f"{shard_mb}MB")
torch.manual_seed(0)
vae = diffusers.AutoencoderKLFlux2(block_out_channels=(8, 8, 8, 8), norm_num_groups=4,
                                   latent_channels=shape["in_channels"] // 4)
vae.save_pretrained(folder + "/vae")
print(json.dumps({"parameters": sum(p.numel() for p in model.parameters())}))
"""

_BASELINE = _ANON_SAMPLER + r"""
import json, resource, torch, diffusers, mf_training.lift
print(json.dumps({"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "peak_anon_bytes": max(peak_anon[0], rss_anon())}))
"""

_LIFT = _ANON_SAMPLER + r"""
import json, resource, sys, time
from pathlib import Path
import torch, diffusers
from mf_training.lift import lift, write_lifted
folder = Path(sys.argv[1])
start = time.perf_counter()
model, metadata = lift(folder / "transformer", folder / "vae", dtype="bfloat16")
write_lifted(folder / "lifted", model, metadata, "bfloat16")
time.sleep(0.05)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "parameters": sum(p.numel() for n, p in model.named_parameters() if not n.startswith("vae.")),
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "peak_anon_bytes": max(peak_anon[0], rss_anon())}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--width", type=int, default=1024, help="hidden size (heads of 128; default 1024)")
    parser.add_argument("--joint", type=int, default=4, help="double-stream blocks (default 4)")
    parser.add_argument("--single", type=int, default=8, help="single-stream blocks (default 8)")
    parser.add_argument("--context-dim", type=int, default=1024, help="text embedding width (default 1024)")
    parser.add_argument("--shard-mb", type=int, default=200, help="safetensors shard size of the source (default 200)")


def _child(code: str, *argv: str) -> dict:
    import json
    import subprocess
    import sys

    from mf_core.errors import InputError

    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise InputError(f"a bench step failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict:
    import json
    import tempfile
    from pathlib import Path

    from mf_core.errors import InputError

    if args.width % 128 or args.width < 128 or args.joint < 1 or args.single < 0 or args.context_dim < 1:
        raise InputError("--width must be a positive multiple of 128 (heads of 128), --joint >= 1, --single >= 0, "
                         "--context-dim >= 1")
    shape = {"in_channels": 128, "num_layers": args.joint, "num_single_layers": args.single,
             "attention_head_dim": 128, "num_attention_heads": args.width // 128,
             "joint_attention_dim": args.context_dim, "guidance_embeds": False}
    with tempfile.TemporaryDirectory(prefix="mf_bench_lift_") as folder:
        source = _child(_SOURCE, json.dumps(shape), folder, str(args.shard_mb))
        baseline = _child(_BASELINE)
        lifted = _child(_LIFT, folder)
        source_bytes = sum(p.stat().st_size for p in Path(folder, "transformer").glob("*.safetensors"))
        lifted_bytes = (Path(folder) / "lifted" / "model.safetensors").stat().st_size
    extra = lifted["peak_anon_bytes"] - baseline["peak_anon_bytes"]
    gib = 1024**3
    return {
        "shape": shape, "source_parameters": source["parameters"], "lifted_parameters": lifted["parameters"],
        "source_weights_gib": round(source_bytes / gib, 3), "lifted_weights_gib": round(lifted_bytes / gib, 3),
        "baseline_peak_anon_gib": round(baseline["peak_anon_bytes"] / gib, 3),
        "lift_peak_anon_gib": round(lifted["peak_anon_bytes"] / gib, 3),
        "lift_peak_rss_gib": round(lifted["peak_rss_bytes"] / gib, 3),  # + memory-mapped source pages (page cache)
        "lift_memory_over_lifted_weights": round(extra / lifted_bytes, 3),
        "lift_memory_over_source_weights": round(extra / source_bytes, 3),
        "lift_seconds": round(lifted["seconds"], 1),
    }
