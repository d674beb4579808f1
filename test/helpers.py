"""Small builders shared by several test files (imported as ``from helpers import ...``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from mf_core.model import build_model
from mf_core.model.taef2 import DECODER_FILE, ENCODER_FILE, taef2_decoder, taef2_encoder


def random_model(seed: int = 0, std: float = 0.05, **overrides) -> torch.nn.Module:
    """MF-XS with N(0, std) weights everywhere (its adaLN-Zero init would make every output 0)."""
    torch.manual_seed(seed)
    model = build_model("MF-XS", **overrides)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, std)
    return model.eval()


def sim_bag_as_rclpy(folder: Path, seed: int, topics: dict[str, type]) -> tuple[dict[str, list], np.ndarray]:
    """Generate a small `mf sim` bag in ``folder`` and return its ``topics`` as rclpy messages.

    Returns ({topic: [rclpy message, ...]}, T_camera_from_lidar from the bag's /tf_static).
    """
    from rclpy.serialization import deserialize_message

    from mf_ros.bags import read_messages
    from mf_ros.conversions import tf_message_to_edges
    from mf_ros.extrinsics import static_transform
    from mf_training.cli import main as mf_main

    bag = folder / "sim"
    assert mf_main(["sim", "--out", str(bag), "--frames", "3", "--seed", str(seed), "--width", "160",
                    "--height", "120"]) == 0
    frames: dict[str, list] = {topic: [] for topic in topics}
    edges = []
    for m in read_messages(bag, [*topics, "/tf_static"], decode=["/tf_static"]):
        if m.topic == "/tf_static":
            edges += tf_message_to_edges(m.msg)
        else:
            frames[m.topic].append(deserialize_message(bytes(m.raw), topics[m.topic]))
    image, cloud = frames["/camera/image_raw"][0], frames["/lidar/points"][0]
    return frames, static_transform(edges, image.header.frame_id, cloud.header.frame_id)


def inputs_connected(publishers, stats: list[dict]) -> bool:
    """Both ends of every input matched: each of ``publishers`` sees a subscription, and the node's last stats
    (``stats``, the JSON of its stats topic) report a matched publisher on each of as many inputs. A message sent
    before the node's own end has matched can be lost."""
    return (all(pub.get_subscription_count() for pub in publishers) and bool(stats)
            and len(stats[-1].get("publishers", {})) == len(publishers) and all(stats[-1]["publishers"].values()))


def spin_until(executor, done, timeout_s: float) -> bool:
    """Spin an rclpy executor until ``done()`` or ``timeout_s`` seconds; whether ``done()`` came true."""
    import time

    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return done()


def png_header_claiming(width: int, height: int) -> np.ndarray:
    """The first bytes of a PNG whose header says width x height: a decompression bomb's header without
    its body (a few dozen bytes), for tests of limits checked before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return np.frombuffer(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(bytes(64))), np.uint8)


def random_taef2(folder: Path, seed: int = 0) -> Path:
    """A TAEF2 folder with random weights in the published layout (fp16 safetensors, the same key names)."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for build, name in ((taef2_encoder, ENCODER_FILE), (taef2_decoder, DECODER_FILE)):
        save_file({k: v.half().contiguous() for k, v in build().state_dict().items()}, str(folder / name))
    return folder


def flux2_statistics_folder(folder: Path, channels: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A FLUX.2 VAE folder as far as its latent statistics go: config.json and the batch-norm tensors."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(4 * channels, generator=generator) * 0.5
    var = torch.rand(4 * channels, generator=generator) + 0.5
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLFlux2", "batch_norm_eps": 1e-4}))
    save_file({"bn.running_mean": mean, "bn.running_var": var, "bn.num_batches_tracked": torch.tensor(1)},
              str(folder / "diffusion_pytorch_model.safetensors"))
    return mean, torch.sqrt(var + 1e-4)


def calibration_yaml(camera, focal_scale: float = 1.0) -> str:
    """camera_calibration's ost.yaml of a pinhole ``camera`` (its focal lengths times ``focal_scale``)."""
    fx, fy = focal_scale * camera.fx, focal_scale * camera.fy
    return (f"image_width: {camera.width}\nimage_height: {camera.height}\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
            f"  data: [{fx}, 0.0, {camera.cx}, 0.0, {fy}, {camera.cy}, 0.0, 0.0, 1.0]\n"
            "distortion_model: plumb_bob\ndistortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0, 0, 0, 0, 0]\n")
