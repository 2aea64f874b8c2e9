"""Rebuild the bundled demo example (src/worldwarp/assets/examples/room) from a procedural world.

    python scripts/make_demo_example.py [--seed 20261125]

Writes image.png (8-bit RGB), depth.png (16-bit z-depth in millimetres) and example.json. The world is
procedural (textures: procedural patterns and scikit-image's bundled photographs), so the example is free to
ship.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from worldwarp.io.atomic import atomic_write_text
from worldwarp.io.depth import save_depth
from worldwarp.io.images import save_image
from worldwarp.scenes import make_clip

OUT = Path(__file__).resolve().parents[1] / "src" / "worldwarp" / "assets" / "examples" / "room"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=384)
    args = ap.parse_args()
    clip = make_clip(args.seed, 2, args.height, args.width, kind="room", trajectory="random")
    OUT.mkdir(parents=True, exist_ok=True)
    save_image(OUT / "image.png", clip.frames[0])
    save_depth(OUT / "depth.png", clip.depths[0], scale=0.001)
    meta = {
        "name": "room",
        "description": "a procedural room rendered by worldwarp.scenes (exact z-depth)",
        "seed": args.seed,
        "fov_x_deg": float(clip.cameras.fov_x()[0]),
        "height": args.height,
        "width": args.width,
        "depth": "depth.png: 16-bit PNG, z-depth in millimetres (0 = invalid)",
        "license": "CC0-1.0 (procedural; photographic textures from scikit-image's bundled data)",
        "speed": 1.0,
        "scale": 1.0,
    }
    atomic_write_text(OUT / "example.json", json.dumps(meta, indent=2) + "\n")
    print(f"wrote {OUT}: depth range {float(clip.depths[0][clip.depths[0] > 0].min()):.2f}"
          f"..{float(clip.depths[0].max()):.2f}, fov {meta['fov_x_deg']:.1f}")  # fmt: skip


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
