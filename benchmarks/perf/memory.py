"""Memory against video length, and against input image size; writes docs/benchmarks/memory.md.

    python benchmarks/perf/memory.py [--frames 1000] [--steps 2] [--cache-steps 10] [--huge 12000]
    python benchmarks/perf/memory.py --src /path/to/other/checkout/src   # the same on another tree

1. A long `worldwarp generate` run at the CPU preset's resolution and chunking (128x192, 25-frame chunks, overlap
   5) with the packaged tiny model, but few diffusion and cache steps (``--steps``, ``--cache-steps``) so that
   1000 frames take minutes: memory per chunk does not depend on the step counts. The resident set size (RSS)
   is read after every chunk, and the peak (getrusage) at the end, which includes writing the outputs.
2. ``prepare_inputs`` on a huge start image (``--huge`` pixels square, PNG and JPEG): peak RSS.

Every measurement runs in a fresh child process. ``--src`` runs the children on another source tree (e.g. the
main branch before a change) and names it in the table.
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

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "memory.md"


def rss_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child_generate(args: argparse.Namespace) -> None:
    """Run one generation, recording RSS after every chunk (the pipeline's step is wrapped)."""
    import numpy as np
    from PIL import Image

    from worldwarp import pipeline
    from worldwarp.cli import main as cli_main

    per_chunk: list[float] = []
    step = pipeline.WorldWarpPipeline.step

    def step_and_measure(self, state):  # type: ignore[no-untyped-def]
        record = step(self, state)
        per_chunk.append(rss_mb())
        return record

    pipeline.WorldWarpPipeline.step = step_and_measure  # type: ignore[method-assign]
    released: list[float] = []  # after each chunk was saved, released and the heap trimmed (steady state)
    trim = getattr(pipeline, "_trim_heap", None)
    if trim is not None:

        def trim_and_measure() -> None:
            trim()
            released.append(rss_mb())

        pipeline._trim_heap = trim_and_measure  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        img = Path(tmp) / "start.png"
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (360, 540, 3), dtype=np.uint8)).save(img)
        depth = Path(tmp) / "depth.npy"
        np.save(depth, np.full((360, 540), 3.0, dtype=np.float32))
        t0 = time.perf_counter()
        code = cli_main(["generate", str(img), "--trajectory", "orbit", "--frames", str(args.frames), "--depth",
                         str(depth), "--out", str(Path(tmp) / "run"), "--quiet", "--steps", str(args.steps),
                         "--cache-steps", str(args.cache_steps)])  # fmt: skip
        wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"code": code, "per_chunk": per_chunk, "released": released, "peak": peak, "wall": wall}))


def child_huge(args: argparse.Namespace) -> None:
    """prepare_inputs on a huge image written beforehand; prints the peak RSS (MB)."""
    from worldwarp.inputs import prepare_inputs

    before = rss_mb()
    t0 = time.perf_counter()
    prepare_inputs(args.image, "orbit", 10, 128, 192)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak": peak, "before": before, "wall": time.perf_counter() - t0}))


def run_child(argv: list[str], src: str | None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), HF_HUB_OFFLINE="1")
    if src:
        env["PYTHONPATH"] = src
    out = subprocess.run([sys.executable, __file__, *argv], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_huge(folder: Path, side: int) -> dict[str, Path]:
    """A side x side PNG and JPEG with some structure (stripes), written once."""
    import numpy as np
    from PIL import Image

    a = np.zeros((side, side, 3), dtype=np.uint8)
    a[::7] = 200
    a[:, ::5, 1] = 90
    paths = {"PNG": folder / f"huge_{side}.png", "JPEG": folder / f"huge_{side}.jpg"}
    Image.fromarray(a).save(paths["PNG"], compress_level=1)
    Image.fromarray(a).save(paths["JPEG"], quality=80)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--cache-steps", type=int, default=10)
    ap.add_argument("--huge", type=int, default=12000, help="side of the huge test image (0: skip)")
    ap.add_argument("--src", default=None, help="run the children on this source tree (PYTHONPATH)")
    ap.add_argument("--out", type=Path, default=DOC)
    ap.add_argument("--child", choices=["generate", "huge"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--image", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "generate":
        return child_generate(args)
    if args.child == "huge":
        return child_huge(args)

    import numpy as np
    import torch

    load0 = os.getloadavg()[0]
    tree = args.src or "this checkout"
    gen = run_child(["--child", "generate", "--frames", str(args.frames), "--steps", str(args.steps),
                     "--cache-steps", str(args.cache_steps)], args.src)  # fmt: skip
    if gen["code"] != 0:
        raise SystemExit(f"generation failed with exit code {gen['code']}")
    rss = gen["per_chunk"]
    n = len(rss)
    huge: dict[str, dict] = {}
    if args.huge:
        with tempfile.TemporaryDirectory() as tmp:
            for fmt, path in make_huge(Path(tmp), args.huge).items():
                huge[fmt] = run_child(["--child", "huge", "--image", str(path)], args.src)

    rel = gen.get("released") or []

    def at(k: int, values: list[float] = rss) -> str:
        return f"{values[k - 1]:.0f} MB" if k <= len(values) else "-"

    lines = [
        "# Memory against length and input size",
        "",
        f"Source tree: {tree}. Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"load average at start {load0:.1f}.",
        "",
        f"## A {args.frames}-frame run ({n} chunks)",
        "",
        f"`worldwarp generate` with the packaged tiny model at the CPU preset's resolution and chunking (128x192, "
        f"25-frame chunks, overlap 5), {args.steps} diffusion steps and {args.cache_steps} cache steps per chunk "
        "(memory per chunk does not depend on the step counts; the preset's 20 and 150 would take about 20 "
        "minutes), random 540x360 start image with constant depth, `orbit` path. RSS after each chunk:",
        "",
        "| after chunk | 1 | 5 | 10 | 25 | 50 | last | peak (incl. writing outputs) | wall |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| RSS | {at(1)} | {at(5)} | {at(10)} | {at(25)} | {at(50)} | {rss[-1]:.0f} MB | {gen['peak']:.0f} MB | "
        f"{gen['wall']:.0f} s |",
    ]
    if rel:
        lines += [
            f"| RSS once the chunk is saved and released | {at(1, rel)} | {at(5, rel)} | {at(10, rel)} | "
            f"{at(25, rel)} | {at(49, rel)} (49) | {rel[-1]:.0f} MB | | |"
        ]
    lines += [""]
    for name, v in (("after the chunk", rss), ("released", rel)):
        if len(v) >= 10:
            k = min(50, len(v))
            fit = np.polyfit(np.arange(5, len(v) + 1), np.asarray(v[4:]), 1)[0]
            lines += [
                f"- {name}: chunk {k} against chunk 5: {100 * (v[k - 1] / v[4] - 1):+.1f}%; mean of the last 10 "
                f"chunks against chunks 5-14: {100 * (np.mean(v[-10:]) / np.mean(v[4:14]) - 1):+.1f}%; "
                f"least-squares slope from chunk 5 on: {fit:+.2f} MB per chunk."
            ]
    lines += ["", "Target (issue #20): RSS at chunk 50 within 5% of chunk 5.", ""]
    if huge:
        lines += [
            f"## A {args.huge}x{args.huge} start image",
            "",
            "`prepare_inputs(image, 'orbit', 10, 128, 192)` (read, reduce, prepare, ground-plane depth), peak RSS:",
            "",
            "| format | peak RSS | seconds |",
            "|---|---:|---:|",
        ]
        lines += [f"| {fmt} | {r['peak']:.0f} MB | {r['wall']:.1f} |" for fmt, r in huge.items()]
        lines += [""]
    cmd = "python benchmarks/perf/memory.py" + "".join(
        f" --{k.replace('_', '-')} {v}"
        for k, v in (
            ("frames", args.frames),
            ("steps", args.steps),
            ("cache_steps", args.cache_steps),
            ("huge", args.huge),
            ("src", args.src),
        )  # fmt: skip
        if v is not None
    )
    lines += [
        f"Command: `{cmd}`",
        "",
        "RSS after every chunk (MB):",
        "",
        "```",
        " ".join(f"{v:.0f}" for v in rss),
        "```",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
