"""``worldwarp demo [--out DIR]``: a 200-frame fly-through of a bundled example, offline, on the CPU."""

from __future__ import annotations

import argparse
from typing import Any

from worldwarp.cli.generate import add_common_generation_args

DEMO_TRAJECTORY = "move_forward*0.7+pan_left,move_backward*0.7+pan_right"
DEMO_FRAMES = 200


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
    from worldwarp.examples import load_example
    from worldwarp.runner import GenerationRequest, run_generation

    example = load_example(None, args.example)
    req = GenerationRequest.from_args(args)
    run_generation(
        req,
        image=example.image,
        trajectory=args.trajectory,
        frames=args.frames,
        depth=None if example.depth is None else str(example.depth),
        fov=example.fov_x_deg,
        speed=example.speed,
        scale=example.scale,
        extra_run_info={"example": args.example},
    )
    return 0
