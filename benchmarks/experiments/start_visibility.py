"""How much of each frame did the start view see? The upper bound of what the start-frame memory can put back.

Run from the repository root (writes docs/benchmarks/start_visibility.md):

    python benchmarks/experiments/start_visibility.py [--scenes 8] [--size 128x192] [--frames 10,50,100,150,199] \
        [--cache runs/suites]

Protocol: for every scored frame of the first ``--scenes`` clips of the procedural dev suite, each pixel is lifted
to 3D with the frame's exact depth and projected into the start camera; the start view saw it when it falls inside
the start image, in front of the camera, and the start frame's exact depth there agrees within ``--tol`` (3 %).
The share of such pixels is what a perfect start-frame memory could recall (:mod:`worldwarp.start_memory`); the
pipeline's own geometry recalls less. Dev suite only (settings are chosen there).
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from suite_eval import dev_scenes, parse_size
from worldwarp.io.atomic import atomic_write_text


def seen_by_start(scene, index: int, tol: float) -> float:
    """Share of frame ``index``'s pixels whose surface the start view sees (exact depths)."""
    d0 = scene.load_depth(0)  # (H, W)
    depth = scene.load_depth(index)
    h, w = d0.shape
    pts = scene.cameras[index].unproject(depth[None])[0].reshape(-1, 3)  # (H*W, 3)
    uv, z = scene.cameras[0].project(pts)
    uv, z = uv[0], z[0]
    px, py = uv[:, 0].floor(), uv[:, 1].floor()
    inside = (px >= 0) & (px < w) & (py >= 0) & (py < h) & (z > 0) & (depth.reshape(-1) > 0)
    d = d0[py.clamp(0, h - 1).long(), px.clamp(0, w - 1).long()]
    seen = inside & (d > 0) & ((d - z).abs() <= tol * z)
    return float(seen.float().mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=8, help="procedural dev-suite clips (default 8)")
    ap.add_argument("--size", type=parse_size, default=(128, 192), help="evaluation size (default 128x192)")
    ap.add_argument("--frames", default="10,50,100,150,199", help="frames to measure (default 10,50,100,150,199)")
    ap.add_argument("--tol", type=float, default=0.03, help="relative depth agreement (default 0.03)")
    ap.add_argument("--cache", type=Path, default=Path("runs/suites"), help="rendered suite clips cache")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/start_visibility.md"), help="markdown page")
    args = ap.parse_args()
    frames = [int(x) for x in args.frames.split(",")]
    scenes = dev_scenes(args.cache, args.size, args.scenes, args.frames)
    rows = {s.name: [seen_by_start(s, f, args.tol) for f in frames] for s in scenes}
    mean = [sum(r[i] for r in rows.values()) / len(rows) for i in range(len(frames))]
    lines = [
        "# How much of each frame the start view saw (procedural dev suite)",
        "",
        f"Written by `python benchmarks/experiments/start_visibility.py --scenes {args.scenes} --size "
        f"{args.size[0]}x{args.size[1]} --frames {args.frames} --tol {args.tol:g}` (exact depths; "
        f"{platform.machine()}, torch {torch.__version__}).",
        "",
        "Share of each frame's pixels whose surface the start frame shows (lifted with the frame's exact depth, "
        f"projected into the start camera, the start depth there within {args.tol:.0%}): the most a start-frame "
        "memory can put back ([worldwarp.start_memory](../../src/worldwarp/start_memory.py)).",
        "",
        "| clip | " + " | ".join(f"f{f}" for f in frames) + " |",
        "|---|" + "---|" * len(frames),
        *(f"| {n} | " + " | ".join(f"{v:.2f}" for v in r) + " |" for n, r in rows.items()),
        "| mean | " + " | ".join(f"{v:.2f}" for v in mean) + " |",
        "",
    ]
    atomic_write_text(args.out, "\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
