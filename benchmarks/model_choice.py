"""Choose the shipped tiny ST-Diff checkpoint and its strength on the procedural "dev" suite (never on "test").

Run from the repository root (writes docs/benchmarks/model_choice.md):

    python benchmarks/model_choice.py --checkpoint stage-3=shipped \
        --checkpoint stage-5=runs/stage5_model [--checkpoint NAME=DIR ...] [--scenes 6] [--strengths 0.05] \
        [--frames 50,199]

Every checkpoint runs the full method (3DGS cache, spatio-temporal noise, CPU preset) at every strength on the
first ``--scenes`` dev clips; the same warp with OpenCV inpainting (no revision, no model) is the reference. A
lower training loss or denoising error does not guarantee a better video, so checkpoints are compared here, in
the pipeline, by PSNR at the last scored frame (the rule of benchmarks/strength_sweep.py). Results of identical
runs (same settings, clips and weights) are read back from ``--results``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from suite_eval import (
    describe_model,
    dev_scenes,
    evaluate_methods,
    mean_table,
    metric_table,
    parse_size,
    weights_digest,
)
from worldwarp.io.atomic import atomic_write_text


def _named(text: str) -> tuple[str, str]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {text!r}")
    return name, folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--checkpoint", type=_named, action="append", required=True, help="NAME=DIR (repeat; DIR 'shipped' = packaged)"
    )
    ap.add_argument("--scenes", type=int, default=6, help="procedural dev-suite clips (default 6)")
    ap.add_argument("--size", type=parse_size, default=(64, 96), help="evaluation size (default 64x96)")
    ap.add_argument("--frames", default="50,199", help="frames to score (default 50,199: the test suite's)")
    ap.add_argument("--strengths", default="0,0.05,0.1", help="comma-separated strengths")
    ap.add_argument("--cache", type=Path, default=Path("runs/suites"), help="rendered suite clips cache")
    ap.add_argument("--results", type=Path, default=Path("runs/model_choice"), help="per-run results JSON")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/model_choice.md"))
    args = ap.parse_args()

    from worldwarp.diffusion.denoisers.registry import DenoiserSpec, load_denoiser
    from worldwarp.eval.pipeline_methods import PipelineMethodConfig
    from worldwarp.pipeline import PipelineConfig

    t0 = time.perf_counter()
    strengths = [float(x) for x in args.strengths.split(",")]
    scenes = dev_scenes(args.cache, args.size, args.scenes, args.frames)

    rows: dict[str, dict] = {}
    models: list[str] = []
    den = None
    for name, folder in args.checkpoint:
        spec = DenoiserSpec(name="tiny", checkpoint=None if folder == "shipped" else folder)
        den = load_denoiser(spec, "cpu")
        n_params = sum(p.numel() for p in den.parameters())
        models.append(
            f"`{name}` = `{folder}`: {describe_model(den)}, {n_params / 1e6:.2f} M parameters, "
            f"weights {weights_digest(den)}"
        )
        for tau in strengths:
            config = PipelineMethodConfig(denoiser=spec, seed=args.seed, strength=tau)
            out_dir = args.results / name / f"tau_{tau:g}"
            docs = evaluate_methods(scenes, ("worldwarp",), den, config, out_dir, "dev", reuse=True)
            slots, table, names = mean_table(docs)
            rows[f"{name}, strength {tau:g}"] = table["worldwarp"]
    assert den is not None
    docs = evaluate_methods(
        scenes, ("inpaint-cache",), den, PipelineMethodConfig(seed=args.seed), args.results / "inpaint", "dev", True
    )
    slots, table, names = mean_table(docs)
    rows["inpaint-cache (reference, no model)"] = table["inpaint-cache"]

    last = slots[-1]
    candidates = [k for k in rows if not k.startswith("inpaint-cache")]
    best = max(candidates, key=lambda k: rows[k][last]["psnr"])
    preset = PipelineConfig.cpu()
    lines = [
        "# Choice of the shipped tiny ST-Diff checkpoint (dev suite)",
        "",
        f"Command: `python benchmarks/model_choice.py {' '.join(sys.argv[1:])}` (repository root). Script: "
        "`benchmarks/model_choice.py`.",
        "",
        "Models:",
        "",
        *[f"- {m}" for m in models],
        "",
        f"Scenes: procedural dev suite ({', '.join(names)}) at {args.size[0]}x{args.size[1]}, seed {args.seed}; "
        f"full method with the CPU preset otherwise ({preset.sampler.steps} steps, shift {preset.sampler.shift:g}, "
        f"no CFG, {preset.cache.steps} cache steps, cache init {preset.cache.init_scale}, w_depth "
        f"{preset.cache.w_depth:g}). Strength 0 = no revision (warped tokens stay as warped; only the holes are "
        f"generated). Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, load "
        f"average {os.getloadavg()[0]:.1f}; {(time.perf_counter() - t0) / 60:.1f} min (reused runs excluded).",
        "",
        *metric_table("model, strength", rows, slots),
    ]
    lines += ["", f"Best PSNR at frame {last}: {best}."]
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print(json.dumps({"out": str(args.out), "best": best}))
    return 0


if __name__ == "__main__":
    from worldwarp.errors import InputError

    try:
        raise SystemExit(main())
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
