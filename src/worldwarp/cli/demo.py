"""``worldwarp demo [--out DIR]``: a 200-frame fly-through of a bundled example, offline, on the CPU."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import Any

from worldwarp.cli.generate import add_common_generation_args

DEMO_TRAJECTORY = "move_forward*0.7+pan_left,move_backward*0.7+pan_right"
DEMO_FRAMES = 200


def example_dir(name: str = "room") -> Path:
    """Folder of a bundled example: image.png, depth.png (16-bit, millimetres), example.json."""
    return Path(str(resources.files("worldwarp") / "assets" / "examples" / name))


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="200-frame video from a bundled example with the embedded model (offline, CPU)",
        description="Generate a fly-through of a bundled example image with the embedded ST-Diff model.",
    )
    p.add_argument("--example", default="room", help="bundled example (default: room)")
    p.add_argument("--frames", type=int, default=DEMO_FRAMES)
    p.add_argument("--trajectory", default=DEMO_TRAJECTORY, help=f"preset spec (default: {DEMO_TRAJECTORY})")
    add_common_generation_args(p)
    p.set_defaults(out="worldwarp_demo")
    for action in p._actions:
        if action.dest == "out":
            action.required = False
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from worldwarp.errors import InputError
    from worldwarp.runner import GenerationRequest, run_generation

    folder = example_dir(args.example)
    meta_file = folder / "example.json"
    if not meta_file.is_file():
        raise InputError(f"no bundled example named {args.example!r} (looked in {folder})")
    meta = json.loads(meta_file.read_text())
    req = GenerationRequest.from_args(args)
    run_generation(
        req,
        image=folder / "image.png",
        trajectory=args.trajectory,
        frames=args.frames,
        depth=str(folder / "depth.png"),
        fov=float(meta.get("fov_x_deg", 60.0)),
        speed=float(meta.get("speed", 1.0)),
        scale=float(meta.get("scale", 1.0)),
        extra_run_info={"example": args.example},
    )
    return 0
