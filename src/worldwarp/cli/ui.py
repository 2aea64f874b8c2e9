"""``worldwarp ui [--port N] [--host H]``: the web UI (Gradio), bound to 127.0.0.1 unless asked otherwise."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "ui",
        help="web UI: pick an image and a camera path, generate chunk by chunk, roll back, download",
        description="Serve the WorldWarp web UI (needs the 'ui' extra: pip install 'worldwarp[ui]').",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    p.add_argument(
        "--preset",
        choices=["release", "paper", "cpu"],
        help="settings preset (default: release with --denoiser wan, cpu with the embedded model)",
    )
    p.add_argument("--denoiser", choices=["tiny", "wan"], default="tiny")
    p.add_argument("--checkpoint", help="tiny: checkpoint folder (default: the packaged one); wan: ST-Diff weights")
    p.add_argument("--wan-model", default="Wan-AI/Wan2.1-T2V-1.3B-Diffusers", help="wan: base model folder or id")
    p.add_argument("--examples", help="folder of examples (<name>/image.png, depth.png, example.json)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--work-dir", help="folder for the sessions' files (default: the system's temp folder)")
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from worldwarp.devices import resolve_device
    from worldwarp.errors import InputError
    from worldwarp.settings import configure
    from worldwarp.ui.session import UIConfig

    try:
        import gradio  # noqa: F401
    except ImportError as e:
        raise InputError(f"the web UI needs Gradio ({e}): pip install 'worldwarp[ui]'") from None
    from worldwarp.ui.app import build_app, launch_app

    if not 0 < args.port < 65536:
        raise InputError(f"--port must lie in 1..65535, got {args.port}")
    device = str(resolve_device(args.device))
    config = UIConfig(
        checkpoint=args.checkpoint,
        pipeline=configure(args.preset, denoiser=args.denoiser),
        examples_dir=Path(args.examples) if args.examples else None,
        denoiser=args.denoiser,
        wan_model=args.wan_model,
        device=device,
        work_dir=Path(args.work_dir) if args.work_dir else None,
    )
    demo = build_app(config)
    launch_app(demo, host=args.host, port=args.port, share=args.share)
    return 0
