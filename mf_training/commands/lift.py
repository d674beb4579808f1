"""``mf lift --transformer DIR --vae DIR --out MODEL``: a FLUX.2 transformer as an mf checkpoint.

See :mod:`mf_training.lift` for what is copied, what is fresh and why the image output is exact.
Then post-train it: ``mf train --config config/mf_flux2_klein.yaml --out RUN init_from=MODEL``.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mf_training.lift import DEFAULT_GUIDANCE, DTYPES

    parser.add_argument("--transformer", required=True,
                        help="a diffusers Flux2Transformer2DModel folder (config.json + safetensors, sharded or not)")
    parser.add_argument("--vae", required=True,
                        help="the matching AutoencoderKLFlux2 folder, or a TAEF2 folder (taef2_encoder/decoder"
                             ".safetensors): the frozen image tokenizer (referenced, not copied)")
    parser.add_argument("--vae-statistics", default=None,
                        help="with a TAEF2 --vae: the FLUX.2 VAE folder whose latent batch-norm statistics "
                             "standardise its latents (default: the transformer folder's sibling vae/)")
    parser.add_argument("--out", required=True, help="the checkpoint folder to write (must not exist)")
    parser.add_argument("--context", default=None,
                        help="safetensors file with a tensor 'context' (L, D): precomputed text embeddings stored "
                             "in the model and used when none is passed (default: the empty context)")
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE,
                        help=f"guidance scale fixed into a guidance-distilled checkpoint (default {DEFAULT_GUIDANCE})")
    parser.add_argument("--dtype", choices=list(DTYPES), default="bfloat16",
                        help="weights dtype written (default bfloat16; the depth head is float32 at load)")
    parser.add_argument("--no-lidar", action="store_true",
                        help="no LiDAR input (monocular model); default: LiDAR-conditioned (depth_conditioned)")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from mf_core.errors import InputError
    from mf_training.lift import lift, write_lifted

    out = Path(args.out)
    if out.exists():
        raise InputError(f"{out} exists; choose a new --out folder")
    for flag, folder in (("--transformer", args.transformer), ("--vae", args.vae),
                         ("--vae-statistics", args.vae_statistics)):
        if folder is not None and not Path(folder).is_dir():
            raise InputError(f"{flag} {folder} is not a folder")
    model, metadata = lift(args.transformer, args.vae, depth_conditioned=not args.no_lidar, context=args.context,
                           guidance=args.guidance, dtype=args.dtype, vae_statistics=args.vae_statistics)
    write_lifted(out, model, metadata, args.dtype)
    parameters = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("vae."))
    print(json.dumps({"out": str(out), "model": model.config.name, "parameters": parameters, **metadata}, indent=2))
    return 0
