"""Does the embedded ST-Diff make pictures? The full method against the strongest simple baseline, at the CPU
preset's real size (issue #17).

Run from the repository root:

    python benchmarks/experiments/embedded_model.py [--split test] [--scenes 8] [--size 128x192] [--checkpoint DIR] \
        [--strength TAU] [--steps S] [--seeds 0,1,2] [--data ../shared/data] [--results docs/results/embedded] \
        [--reuse]

Methods (all with the embedded CPU preset, one run per pipeline seed): ``worldwarp`` (3DGS cache + ST-Diff),
``inpaint-cache`` (the same 3DGS cache warps, holes filled by OpenCV inpainting, no model) and ``pushpull-cache``
(the same warps, holes filled by push-pull interpolation: the guess a ``hole_init="push_pull"`` model starts from).
Procedural: the first ``--scenes`` clips
of the ``--split`` suite (200 frames; frames 50 and 199). Real: the 7-Scenes kitchen under ``DATA/scenes`` with its
Kinect start depth (evaluation only; frames 12 and 24). Metrics per scored frame: PSNR, SSIM, PSNR inside the holes
of the start frame's warp, the high-frequency energy ratio (generated / real mean squared Laplacian: grain > 1,
blur < 1) and the mean-colour error (max over channels of |mean generated - mean real|). The table gives the means,
and the number of clips on which worldwarp beats each baseline one by one. With several ``--seeds`` each clip's
metrics are first averaged over the seeds (the seed, through the cache's random pixels, usually moves a clip by
hundredths of a decibel but can move one clip's frame 199 by decibels), and the wins of each seed alone are tabled
too. Choose settings with ``--split dev``;
report with ``--split test``. Each split's section of docs/benchmarks/embedded_model.md is rewritten in place.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from suite_eval import (
    describe_model,
    evaluate_methods,
    mean_table,
    paired_wins,
    parse_size,
    scene_values,
    seed_mean_doc,
    weights_digest,
)
from worldwarp.io.atomic import atomic_write_text

BASELINES = ("inpaint-cache", "pushpull-cache")
METHODS = ("worldwarp", *BASELINES)
PAGE_HEAD = (
    "# Embedded ST-Diff against cache + classical hole filling (OpenCV inpainting, push-pull)\n\n"
    "Written by `benchmarks/experiments/embedded_model.py` (one section per suite: choose on dev, report on test).\n"
)
COLUMNS = (("psnr", "PSNR", 2), ("ssim", "SSIM", 3), ("psnr_holes", "PSNR holes", 2), ("hf_ratio", "HF ratio", 2),
           ("color_error", "colour err", 3))  # fmt: skip


def _section(title: str, per_seed: list[dict[str, dict]], seeds: list[int]) -> list[str]:
    docs = {name: seed_mean_doc([d[name] for d in per_seed]) for name in per_seed[0]}
    slots, table, names = mean_table(docs)
    lines = [f"### {title}", "", f"Clips: {', '.join(names)}.", ""]
    if len(seeds) > 1:
        lines += [f"Every number is the mean over {len(seeds)} pipeline seeds ({', '.join(map(str, seeds))}) of the "
                  "same clip; the wins compare those per-clip means.", ""]  # fmt: skip
    head = "| method | frame | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines += [head, "|---|---|" + "---|" * len(COLUMNS)]
    for name in (n for n in METHODS if n in docs):
        for s in slots:
            cells = [f"{table[name][s][m]:.{nd}f}" for m, _, nd in COLUMNS]
            lines.append(f"| {name} | {s} | " + " | ".join(cells) + " |")
    base = [b for b in BASELINES if b in docs]
    lines += ["", "Clips won one by one, and in brackets the mean of the per-clip differences (worldwarp minus the "
              "baseline) with its standard error:", ""]  # fmt: skip
    lines += ["| frame | " + " | ".join(f"{m} wins vs {b}" for b in base for m in ("PSNR", "SSIM"))]
    lines[-1] += " | mean HF ratio in [0.7, 1.3] |"
    lines += ["|---|" + "---|" * (2 * len(base) + 1)]
    for k, s in enumerate(slots):
        wins = []
        for b_name in base:
            for m in ("psnr", "ssim"):
                a, b = scene_values(docs["worldwarp"], k, m), scene_values(docs[b_name], k, m)
                wins.append(paired_wins(a, b, 2 if m == "psnr" else 3))
        hf = table["worldwarp"][s]["hf_ratio"]
        lines.append(f"| {s} | {' | '.join(wins)} | {hf:.2f}: {'yes' if 0.7 <= hf <= 1.3 else 'no'} |")
    if len(seeds) > 1:
        lines += ["", "The same wins seed by seed (one run per clip), showing how much one run decides:", ""]
        lines += ["| frame | seed | " + " | ".join(f"{m} wins vs {b}" for b in base for m in ("PSNR", "SSIM")) + " |"]
        lines += ["|---|---|" + "---|" * (2 * len(base))]
        for k, s in enumerate(slots):
            for seed, d in zip(seeds, per_seed, strict=True):
                cells = [
                    paired_wins(scene_values(d["worldwarp"], k, m), scene_values(d[b], k, m), 2 if m == "psnr" else 3)
                    for b in base
                    for m in ("psnr", "ssim")
                ]
                lines.append(f"| {s} | {seed} | {' | '.join(cells)} |")
    return lines + [""]


def _evaluate(scenes: list, den, config, results: Path, tag: str, args: argparse.Namespace) -> list[dict[str, dict]]:
    """Per seed: the baselines with the preset's own settings (they never call the model), then worldwarp with
    ``config``. Seed 0's files sit in ``results``, seed s's in ``results/seed{s}``."""
    from worldwarp.eval.pipeline_methods import PipelineMethodConfig

    per_seed = []
    for seed in args.seeds:
        folder = results if seed == 0 else results / f"seed{seed}"
        docs = {}
        if not args.model_only:
            docs = evaluate_methods(scenes, BASELINES, den, PipelineMethodConfig(seed=seed), folder, tag, reuse=True)
        if not args.baseline_only:
            model = evaluate_methods(scenes, ("worldwarp",), den, replace(config, seed=seed), folder, tag, args.reuse)
            docs = {**model, **docs}
        per_seed.append(docs)
    return per_seed


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (distinct whole numbers >= 0)."""
    try:
        seeds = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be whole numbers separated by commas, got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct whole numbers >= 0, got {text!r}")
    return seeds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="tiny ST-Diff folder (default: the shipped one)")
    ap.add_argument("--split", choices=("test", "dev"), default="test")
    ap.add_argument("--scenes", type=int, default=8, help="procedural clips (default 8)")
    ap.add_argument("--size", type=parse_size, default=(128, 192), help="evaluation size (default 128x192)")
    ap.add_argument("--real-size", type=parse_size, default=(128, 192), help="real-scene size (default 128x192)")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="development data folder")
    ap.add_argument("--cache", type=Path, default=Path("runs/suites"), help="rendered suite clips cache")
    ap.add_argument("--results", type=Path, default=Path("docs/results/embedded"), help="results JSON folder")
    ap.add_argument("--strength", type=float, default=None, help="sampler strength (default: the preset's)")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the preset's)")
    ap.add_argument(
        "--solver", choices=("euler", "renoise", "direct"), default=None, help="sampler solver (default: preset's)"
    )
    ap.add_argument(
        "--seeds",
        type=parse_seeds,
        default=[0],
        help="pipeline seeds, comma-separated (default 0); with several, each clip's metrics are averaged over them",
    )
    ap.add_argument("--no-real", action="store_true", help="skip the real scene")
    ap.add_argument("--baseline-only", action="store_true", help="run the baselines only (no table)")
    ap.add_argument(
        "--model-only",
        action="store_true",
        help="run worldwarp only (no table; beside a --baseline-only run, then --reuse writes the table)",
    )
    ap.add_argument("--reuse", action="store_true", help="read back results of identical earlier runs")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/embedded_model.md"), help="markdown page")
    args = ap.parse_args()

    from worldwarp.diffusion.denoisers.registry import DenoiserSpec, load_denoiser
    from worldwarp.eval.datasets import DatasetConfig, load_dataset
    from worldwarp.eval.pipeline_methods import PipelineMethodConfig
    from worldwarp.pipeline import PipelineConfig

    t0 = time.perf_counter()
    spec = DenoiserSpec(name="tiny", checkpoint=args.checkpoint)
    den = load_denoiser(spec, "cpu")
    # the seed is set per run (_evaluate)
    config = PipelineMethodConfig(denoiser=spec, strength=args.strength, steps=args.steps, solver=args.solver)
    preset = PipelineConfig.cpu()
    sampler = preset.sampler
    strength = sampler.strength if args.strength is None else args.strength
    steps = sampler.steps if args.steps is None else args.steps
    results = args.results / args.split
    sections = []
    proc = load_dataset(
        DatasetConfig("procedural", args.cache, args.split, size=args.size, max_scenes=args.scenes, frames=(50, 199))
    )
    docs = _evaluate(proc, den, config, results, f"procedural-{args.split}", args)
    sections.append((f"Procedural {args.split} suite at {args.size[0]}x{args.size[1]}", docs))
    kitchen = args.data / "scenes" / "7scenes_redkitchen"
    if not args.no_real and kitchen.is_dir():
        real = load_dataset(DatasetConfig(name="transforms", root=kitchen, size=args.real_size, start_depth="given"))
        docs = _evaluate(real, den, config, results, "real", args)
        sections.append((f"Real: 7-Scenes redkitchen at {args.real_size[0]}x{args.real_size[1]} (Kinect depth)", docs))

    if args.baseline_only or args.model_only:
        return 0
    n_params = sum(p.numel() for p in den.parameters())
    lines = [
        f"## {args.split} suite",
        "",
        f"Command: `python benchmarks/experiments/embedded_model.py {' '.join(sys.argv[1:])}` (repository root).",
        "",
        f"Model: {describe_model(den)}, {n_params / 1e6:.2f} M parameters, weights {weights_digest(den)}"
        f" ({args.checkpoint or 'shipped'}). CPU preset: {steps} steps, shift {sampler.shift:g}, strength "
        f"{strength:g}, CFG {sampler.guidance_scale:g}, {preset.chunk_frames}-frame chunks with {preset.overlap} "
        f"history frames, {preset.cache.steps} cache steps; seed(s) {','.join(map(str, args.seeds))}. Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.1f}; "
        f"{(time.perf_counter() - t0) / 60:.1f} min (reused runs excluded).",
        "",
        "HF ratio: generated / real mean squared Laplacian (1 = as much fine detail as the real frame; > 1 grain, "
        "< 1 blur). Colour error: max over RGB of |mean generated - mean real| (a cast). Means over clips.",
        "",
    ]
    for title, per_seed in sections:
        lines += _section(title, per_seed, args.seeds)
    begin, end = f"<!-- {args.split}:begin -->", f"<!-- {args.split}:end -->"
    block = "\n".join([begin, *lines, end])
    text = args.out.read_text() if args.out.is_file() else PAGE_HEAD
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_text(args.out, text)
    print(json.dumps({"out": str(args.out)}))
    return 0


if __name__ == "__main__":
    from worldwarp.errors import InputError

    try:
        raise SystemExit(main())
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
