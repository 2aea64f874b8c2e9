"""How many correct pixels does the warp's reprojection check drop? Coverage and accuracy of the 3DGS cache warp of
the CPU preset against the check's depth tolerance, on the first chunk of procedural dev clips.

Run from the repository root (writes docs/benchmarks/warp_tolerance.md):

    python benchmarks/experiments/warp_tolerance.py [--scenes 3] [--size 128x192] [--targets 5,10,20] \
        [--tolerances 0.1,0.2,0.4,off] [--cache runs/suites]

Protocol: the cache is fitted to frame 0 of each clip with its exact depth and the CPU preset's cache settings
(150 Adam steps), then forward-warped into the ``--targets`` frames with the preset's warp settings, the
reprojection check's relative depth tolerance replaced by each of ``--tolerances`` (``off``: no check). Per
tolerance: the share of the target frames the mask marks valid, and the PSNR against the real frames over the
valid pixels. Settings are chosen on the "dev" suite only.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from suite_eval import dev_scenes, parse_size
from worldwarp.io.atomic import atomic_write_text


def _label(tol: float | None) -> str:
    return "off" if tol is None else f"{tol:g}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=3, help="procedural dev-suite clips (default 3)")
    ap.add_argument("--size", type=parse_size, default=(128, 192), help="evaluation size (default 128x192)")
    ap.add_argument("--targets", default="5,10,20", help="frames warped into (default 5,10,20)")
    ap.add_argument("--tolerances", default="0.1,0.2,0.4,off", help="relative depth tolerances, or off")
    ap.add_argument("--cache", type=Path, default=Path("runs/suites"), help="rendered suite clips cache")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/warp_tolerance.md"))
    args = ap.parse_args()

    from worldwarp.eval.metrics import masked_psnr
    from worldwarp.pipeline import PipelineConfig
    from worldwarp.splat.cache import fit_cache
    from worldwarp.warp import forward_warp

    t0 = time.perf_counter()
    preset = PipelineConfig.cpu()
    targets = [int(x) for x in args.targets.split(",")]
    tols = [None if x == "off" else float(x) for x in args.tolerances.split(",")]
    scenes = dev_scenes(args.cache, args.size, args.scenes, "50,199")
    rows: dict[str, list[str]] = {_label(t): [] for t in tols}
    for scene in scenes:
        image, depth = scene.start_image[None], scene.start_depth[None]  # (1, 3, H, W), (1, H, W)
        gaussians = fit_cache(image, depth, scene.cameras[[0]], preset.cache, progress=False)
        real = torch.stack([scene.load_frame(i) for i in targets])  # (n, 3, H, W)
        for tol in tols:
            warp_cfg = replace(preset.warp, reprojection=tol is not None, depth_rel_tol=tol or 0.1)
            w = forward_warp(gaussians, scene.cameras[targets], scene.cameras[[0]], depth, warp_cfg)
            # all target frames pooled: stacked into one tall image (1, 3, n H, W)
            psnr = masked_psnr(
                torch.cat(list(w.rgb), -2)[None], torch.cat(list(real), -2)[None], w.mask.flatten(0, 1)[None]
            )
            rows[_label(tol)].append(f"{w.mask.float().mean():.2f} / {psnr.item():.1f}")
    names = [s.name for s in scenes]
    lines = [
        "# Reprojection tolerance of the cache warp (CPU preset)",
        "",
        f"Command: `python benchmarks/experiments/warp_tolerance.py --scenes {args.scenes} --size "
        f"{args.size[0]}x{args.size[1]} --targets {args.targets} --tolerances {args.tolerances}` (repository root).",
        "",
        f"Cache fitted to frame 0 (exact depth, {preset.cache.steps} steps), warped into frames {args.targets}. "
        "Cells: valid share of the target frames / PSNR over the valid pixels (dB). Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
        f"{time.perf_counter() - t0:.0f} s.",
        "",
        "| tolerance | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items()]
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
