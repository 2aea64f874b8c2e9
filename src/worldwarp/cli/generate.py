"""``worldwarp generate IMAGE --trajectory SPEC_OR_FILE --frames N --out DIR``: the main job."""

from __future__ import annotations

import argparse
from typing import Any


def add_common_generation_args(p: argparse.ArgumentParser) -> None:
    """Options shared by ``generate`` and ``demo``."""
    g = p.add_argument_group("method")
    g.add_argument(
        "--preset",
        choices=["release", "paper", "cpu"],
        help="settings preset (default: release with --denoiser wan, cpu with the embedded model; see docs/wan.md)",
    )
    g.add_argument("--height", type=int, help="working height (preset default)")
    g.add_argument("--width", type=int, help="working width (preset default)")
    g.add_argument("--chunk", type=int, help="frames per chunk, history included")
    g.add_argument("--overlap", type=int, help="history frames carried between chunks")
    g.add_argument(
        "--strength",
        type=float,
        help="revise strength tau of warped regions (release preset 0.6, paper 0.8, cpu 0.5; 0 keeps the warp)",
    )
    g.add_argument("--steps", type=int, help="diffusion steps")
    g.add_argument(
        "--solver",
        choices=["euler", "renoise", "direct"],
        help="sampler steps: flow-matching Euler, re-noising the clean estimate at each level, or one direct pass "
        "(the cpu preset's)",
    )
    g.add_argument("--cfg", type=float, help="classifier-free guidance scale")
    g.add_argument("--cache-steps", type=int, help="Adam steps of the 3DGS cache per chunk")
    g.add_argument("--cache", choices=["gaussians", "points", "none"], default="gaussians", help="cache (ablations)")
    g.add_argument(
        "--start-memory",
        choices=["on", "off"],
        help="start-frame memory: put the start image's pixels back wherever the start view sees the surface "
        "(default: the preset's; on in cpu)",
    )
    g.add_argument("--noise", choices=["spatiotemporal", "full", "spatial", "temporal"], default="spatiotemporal")
    g.add_argument("--fill", choices=["diffusion", "inpaint", "push_pull"], default="diffusion")
    g.add_argument("--prompt", default="", help="text prompt (wan only)")
    g.add_argument("--negative-prompt", help="negative prompt (wan only; default: the preset's)")
    g.add_argument("--seed", type=int, default=0)
    m = p.add_argument_group("model")
    m.add_argument("--denoiser", choices=["tiny", "wan"], default="tiny")
    m.add_argument("--checkpoint", help="tiny: checkpoint folder; wan: the WorldWarp ST-Diff state dict")
    m.add_argument("--wan-model", default="Wan-AI/Wan2.1-T2V-1.3B-Diffusers", help="wan: base model folder or id")
    m.add_argument("--offload", choices=["none", "model", "sequential"], default="none", help="wan: offloading")
    m.add_argument("--vae-tiling", action="store_true", help="wan: tiled VAE")
    m.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="wan: allow a checkpoint that loads only as a full pickle (runs code from the file; trusted files only)",
    )
    m.add_argument("--prompt-cache", help="wan: folder that caches prompt embeddings (text encoder loaded on a miss)")
    m.add_argument(
        "--caption-model",
        help="wan: image-text-to-text model (folder or hub id, e.g. Qwen2.5-VL) that captions each chunk's input "
        "frames into its prompt, as the release does",
    )
    m.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, help="output folder")
    o.add_argument("--fps", type=float, default=16)
    o.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    o.add_argument("--quiet", action="store_true", help="no progress bars")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "generate",
        help="one image and a camera path in, a long consistent video out",
        description="Generate a fly-through video from IMAGE along a camera path (preset spec or camera file).",
    )
    p.add_argument("image", help="start image (PNG, JPEG, ...; EXIF, alpha and 16-bit handled)")
    p.add_argument(
        "--trajectory", required=True,
        help="preset spec (e.g. orbit+zoom_in), camera file, or a video (.mp4 ...) whose camera motion to follow",
    )  # fmt: skip
    p.add_argument("--frames", type=int, required=True, help="number of frames to generate (frame 0 = IMAGE)")
    p.add_argument("--depth", help="depth of IMAGE: .npy, 16-bit PNG (mm), .exr, .pfm")
    p.add_argument("--depth-model", help="transformers depth model folder or hub id (e.g. Depth Anything V2)")
    p.add_argument("--fov", type=float, default=60.0, help="horizontal field of view of IMAGE for presets")
    p.add_argument("--speed", type=float, default=1.0, help="trajectory speed (video: frame k follows video frame S*k)")
    p.add_argument("--scale", type=float, default=1.0, help="trajectory scale (relative to the scene)")
    add_common_generation_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    from worldwarp.runner import GenerationRequest, run_generation
    from worldwarp.trajectory.from_video import is_video_file

    req = GenerationRequest.from_args(args)
    extra = None
    if is_video_file(args.trajectory):  # extract (or read the cached path) with progress before generating
        from worldwarp.cli._from_video import prepare_generation

        extra = prepare_generation(args.trajectory, args.frames, args.speed, quiet=args.quiet)
    run_generation(req, image=args.image, trajectory=args.trajectory, frames=args.frames, depth=args.depth,
                   depth_model=args.depth_model, fov=args.fov, speed=args.speed, scale=args.scale,
                   extra_run_info=extra)  # fmt: skip
    return 0
