"""Time `worldwarp demo` end to end (wall time, peak memory, per-stage seconds) and write docs/benchmarks/demo.md.

    python benchmarks/perf/demo.py [--frames 200] [--checkpoint DIR]

The demo runs in a child process so its peak resident memory can be read with getrusage(RUSAGE_CHILDREN).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "demo.md"


def write_strip(video: Path, out: Path, n: int = 6) -> None:
    """Frames 0, ..., last (n evenly spaced) of ``video`` side by side, as a PNG."""
    from worldwarp.io.images import save_image
    from worldwarp.io.video import frame_strip, read_video

    save_image(out, frame_strip(read_video(video), n, gap=4))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--checkpoint", default=None, help="tiny checkpoint folder (default: the packaged one)")
    ap.add_argument("--out", type=Path, default=DOC)
    ap.add_argument("--strip", type=Path, default=None, help="also write a strip of 6 frames (the README's)")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "worldwarp", "demo", "--out", tmp, "--frames", str(args.frames), "--quiet"]
        if args.checkpoint:
            cmd += ["--checkpoint", args.checkpoint]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        run = json.loads((Path(tmp) / "run.json").read_text())
        if args.strip is not None:
            write_strip(Path(tmp) / "video.mp4", args.strip)
    stages: dict[str, float] = {}
    for chunk in run["chunks"]:
        for k, v in chunk["timings"].items():
            stages[k] = stages.get(k, 0.0) + v
    cfg = run["config"]
    lines = [
        "# End-to-end demo",
        "",
        f"`worldwarp demo` ({args.frames} frames, preset cpu: {cfg['height']}x{cfg['width']}, "
        f"{cfg['chunk_frames']}-frame chunks, overlap {cfg['overlap']}, {cfg['sampler']['steps']} steps, "
        f"{cfg['cache']['steps']} cache steps), embedded tiny model, CPU.",
        "",
        "| measure | value | target (issue #17, 2 idle cores) |",
        "|---|---:|---:|",
        f"| wall time | {wall:.0f} s | <= 240 s |",
        f"| peak memory (RSS) | {peak_gb:.2f} GB | <= 2 GB |",
        f"| chunks | {len(run['chunks'])} | |",
        "",
        "Seconds per stage, summed over chunks:",
        "",
        "| stage | seconds |",
        "|---|---:|",
        *[f"| {k} | {v:.1f} |" for k, v in stages.items()],
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, load average at start {load0:.1f}.",
        "",
        f"Command: `python benchmarks/perf/demo.py --frames {args.frames}`",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
