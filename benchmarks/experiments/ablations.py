"""The paper's ablations with the embedded ST-Diff model, on procedural worlds and on a real RGB-D scene.

Run from the repository root (one command; writes docs/benchmarks/ablations.md and the "Embedded model"
section of docs/benchmarks.md):

    python benchmarks/experiments/ablations.py [--checkpoint DIR] [--scenes 2] [--size 64x96] [--real-size 96x128] \
        [--data ../shared/data] [--cache runs/suites] [--results docs/results/ablations] [--split test] \
        [--strength TAU] [--steps S]

Protocol (DESIGN.md section 2, scaled down for a 2-core CPU): start from frame 0 of each clip with its depth,
follow its cameras, score the "short" and "long" frames against the real frames: PSNR, SSIM, and PSNR inside
the holes of the start frame's warp only (the pixels no start-frame point reaches: what must be invented).

* Procedural: the first ``--scenes`` clips of the held-out "test" suite (200 frames; frames 50 and 199, the
  dataset module's rule), rendered at ``--size``. ``--split dev`` uses the "dev" suite instead: the one to choose
  settings on (e.g. a strength sweep), so that the test suite stays held out.
* Real: every scene under ``DATA/scenes`` (7scenes_redkitchen: 25 frames, so the dataset module's rule for
  clips without a list picks the middle and the last frame, 12 and 24; ingp_fox: 24 and 49). Start depth:
  ``--real-start-depth auto`` (default) takes the scene's own depth (the kitchen's Kinect depth) and, where a
  scene has none (the fox), plane-sweep stereo of frame 0 against frames 1-8 with the scene's cameras.

Methods: the pipeline methods of :mod:`worldwarp.eval.pipeline_methods` (worldwarp, point-cache, no-cache,
full-noise, spatial-noise, temporal-noise, inpaint-cache = 3DGS warp + cv2 inpainting, no revision), all with
the embedded CPU preset (25-frame chunks, 5 overlap, 1 step at strength 0, no CFG, 150 cache steps; ``--strength`` and
``--steps`` override it) and one shared denoiser; plus the cheap references of :mod:`worldwarp.eval.benchmark`
(inpaint of the start-frame warp, copy-first). The ordering checks are evaluated on the numbers as measured;
nothing is tuned to make one hold.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from suite_eval import METRICS, describe_model, mean_table, paired_wins, parse_size, scene_values
from worldwarp.eval.suite import evaluate_methods
from worldwarp.io.atomic import atomic_write_text

PIPELINE = ("worldwarp", "point-cache", "no-cache", "full-noise", "spatial-noise", "temporal-noise", "inpaint-cache")
REFERENCES = ("inpaint", "copy-first")
# (better, worse, what the paper claims); checked on PSNR and on PSNR inside the holes, per frame slot
ORDERINGS = (
    ("worldwarp", "point-cache", "3DGS cache > point cache"),
    ("point-cache", "no-cache", "point cache > no cache"),
    ("worldwarp", "spatial-noise", "spatio-temporal noise > spatial only"),
    ("worldwarp", "temporal-noise", "spatio-temporal noise > temporal only"),
    ("spatial-noise", "full-noise", "spatial noise > full-sequence noise"),
    ("temporal-noise", "full-noise", "temporal noise > full-sequence noise"),
    ("worldwarp", "inpaint-cache", "ST-Diff > cv2 inpainting (same 3DGS warp)"),
)
BEGIN, END = "<!-- ablations:begin -->", "<!-- ablations:end -->"


def _markdown_table(slots: list[str], table: dict, label: str) -> list[str]:
    head = "| method | " + " | ".join(f"PSNR {label}{s} | SSIM {label}{s} | PSNR holes {label}{s}" for s in slots)
    lines = [head + " |", "|---|" + "---|" * (3 * len(slots))]
    for name, per in table.items():
        cells = []
        for s in slots:
            v = per[s]
            cells += [f"{v['psnr']:.2f}", f"{v['ssim']:.3f}", f"{v['psnr_holes']:.2f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _orderings(slots: list[str], table: dict, label: str, docs: dict[str, dict]) -> tuple[list[str], int, int]:
    """The claim table: means, whether each claim holds on them, and on how many scenes it holds one by one."""
    lines = [
        "| claim | frame | PSNR (better vs worse) | holds? | scenes (paired diff) | PSNR in holes | holds? "
        "| scenes (paired diff) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    held = total = 0
    for better, worse, claim in ORDERINGS:
        if better not in table or worse not in table:
            continue
        for k, s in enumerate(slots):
            cells = []
            for m in ("psnr", "psnr_holes"):
                a, b = table[better][s][m], table[worse][s][m]
                ok = a > b
                held += ok
                total += 1
                va, vb = scene_values(docs[better], k, m), scene_values(docs[worse], k, m)
                cells += [f"{a:.2f} vs {b:.2f}", "holds" if ok else "does not hold", paired_wins(va, vb)]
            lines.append(f"| {claim} | {label}{s} | " + " | ".join(cells) + " |")
    return lines, held, total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="tiny ST-Diff folder (default: the shipped one)")
    ap.add_argument("--scenes", type=int, default=2, help="procedural test-suite clips (default 2)")
    ap.add_argument("--size", type=parse_size, default=(64, 96), help="procedural evaluation size (default 64x96)")
    ap.add_argument(
        "--real-size", type=parse_size, default=(96, 128), help="real-scene evaluation size (default 96x128)"
    )
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="development data folder")
    ap.add_argument("--cache", type=Path, default=Path("runs/suites"), help="rendered suite clips cache")
    ap.add_argument(
        "--results", type=Path, default=Path("docs/results/ablations"), help="per-method results JSON (committed)"
    )
    ap.add_argument("--split", choices=("test", "dev"), default="test", help="procedural suite (default test)")
    ap.add_argument("--strength", type=float, default=None, help="sampler strength tau (default: the preset's)")
    ap.add_argument("--steps", type=int, default=None, help="sampler Euler steps (default: the preset's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-steps", type=int, default=None, help="3DGS cache Adam steps (default: the preset's 150)")
    ap.add_argument("--only", choices=("procedural", "real"), default=None, help="run one part only")
    ap.add_argument("--reuse", action="store_true", help="read back results files of identical earlier runs")
    ap.add_argument("--methods", default=None, help="comma-separated subset of the methods (default: all)")
    ap.add_argument("--no-real", action="store_true", help="skip the real scenes")
    ap.add_argument(
        "--real-start-depth",
        choices=("given", "stereo", "auto"),
        default="auto",
        help="real scenes' start depth: given, stereo, or auto = given where present, else stereo (default)",
    )
    ap.add_argument("--frames", default=None, help="procedural frames to score (default: the dataset's 50,199)")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/ablations.md"))
    ap.add_argument("--summary", type=Path, default=Path("docs/benchmarks.md"))
    args = ap.parse_args()

    from worldwarp.diffusion.denoisers.registry import DenoiserSpec, load_denoiser
    from worldwarp.eval.datasets import DatasetConfig, load_dataset
    from worldwarp.eval.pipeline_methods import PipelineMethodConfig

    t_start = time.perf_counter()
    load0 = os.getloadavg()[0]
    spec = DenoiserSpec(name="tiny", checkpoint=args.checkpoint)
    den = load_denoiser(spec, "cpu")
    n_params = sum(p.numel() for p in den.parameters())
    method_config = PipelineMethodConfig(
        denoiser=spec, seed=args.seed, cache_steps=args.cache_steps, strength=args.strength, steps=args.steps
    )
    from worldwarp.eval.pipeline_methods import VARIANTS, make_pipeline_config

    resolved = make_pipeline_config(VARIANTS["worldwarp"], method_config, *args.size)
    args.results.mkdir(parents=True, exist_ok=True)
    methods = tuple(args.methods.split(",")) if args.methods else PIPELINE + REFERENCES

    sections = []
    if args.only != "real":
        frames = tuple(int(x) for x in args.frames.split(",")) if args.frames else None
        data = DatasetConfig(
            "procedural", args.cache, args.split, size=args.size, max_scenes=args.scenes, frames=frames
        )
        proc = load_dataset(data)
        docs = evaluate_methods(proc, methods, den, method_config, args.results, f"procedural-{args.split}", args.reuse)
        sections.append(
            ("procedural", f"procedural {args.split} suite, {len(proc)} clips at {args.size[0]}x{args.size[1]}", docs)
        )
    real_root = args.data / "scenes"
    if args.only != "procedural" and not args.no_real and real_root.is_dir():
        real_data = DatasetConfig(
            name="transforms", root=real_root, size=args.real_size, start_depth=args.real_start_depth
        )
        real = load_dataset(real_data)
        docs = evaluate_methods(real, methods, den, method_config, args.results, "real", args.reuse)
        sections.append(("real", f"real scenes ({real_root.name}/) at {args.real_size[0]}x{args.real_size[1]}", docs))

    ckpt = args.checkpoint or "src/worldwarp/assets/tiny_stdiff (shipped)"
    # generation time as recorded in the results (also right when they were reused from earlier runs)
    wall = sum(rec.get("seconds", 0.0) for _, _, docs in sections for d in docs.values() for rec in d["scenes"])
    wall = max(wall, time.perf_counter() - t_start)
    lines = [
        "# Ablations with the embedded ST-Diff model",
        "",
        "Command: `python benchmarks/experiments/ablations.py "
        + " ".join(a for a in sys.argv[1:])
        + "` (repository root). Script: `benchmarks/experiments/ablations.py`.",
        "",
        f"Model: tiny ST-Diff `{ckpt}`: {describe_model(den)}, {n_params / 1e6:.2f} M parameters (recipe and",
        "training time: docs/training.md). Pipeline: CPU preset ("
        f"{resolved.chunk_frames}-frame chunks, {resolved.overlap} overlap, {resolved.sampler.steps} Euler steps, "
        f"shift {resolved.sampler.shift:g}, strength {resolved.sampler.strength:g}, CFG "
        f"{resolved.sampler.guidance_scale:g}), {resolved.cache.steps} cache steps (init "
        f"{resolved.cache.init_scale}, inverse-depth weight {resolved.cache.w_depth:g}), seed {args.seed}. Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; load average {load0:.1f} "
        f"when this file was written; generation time {wall / 60:.1f} min in all. Per-method results (JSON, "
        f"per scene and frame): `{args.results}/`.",
        "",
        "Metrics: mean over the scored scenes; PSNR / SSIM against the real frame; 'PSNR holes' = PSNR over the",
        "pixels the start frame's point warp does not reach (what must be invented). The paper's numbers",
        "(DESIGN.md section 2: frame-200 PSNR on RealEstate10K, Wan 1.3B at 480x720) are not comparable in absolute",
        f"value: this is a {n_params / 1e6:.2f} M-parameter model trained on two CPU cores (docs/model_card.md).",
        "",
    ]
    summary = []
    for key, title, docs in sections:
        slots, table, names = mean_table(docs)
        first = next(iter(docs.values()))
        skipped = [f"{s['name']} ({s['skipped']})" for s in first["scenes"] if s.get("skipped")]
        label = "f"
        lines += [f"## {title}", "", f"Scored scenes: {', '.join(names) or 'none'}."]
        if skipped:
            lines.append(f"Skipped: {'; '.join(skipped)}.")
        sources = [f"{s['name']} {s['start_depth']}" for s in first["scenes"] if "metrics" in s and "start_depth" in s]
        if sources and key == "real":
            lines.append(f"Start depth: {'; '.join(sources)}.")
        lines.append("")
        if not names:
            continue
        lines += _markdown_table(slots, table, label) + [""]
        order_lines, held, total = _orderings(slots, table, label, docs)
        lines += [
            "Ordering checks (paper's claims) on the means; 'scenes' = on how many scenes the claim holds one by one, "
            "and in brackets the mean of the per-scene differences (better minus worse, dB) with its standard "
            "error: a difference within about two standard errors of 0 is not resolved by these scenes:",
            "",
        ]
        lines += order_lines + [""]
        lines.append(f"{held} of {total} ordering checks hold on {key} data.")
        diff = [n for n in PIPELINE if n in table and n != "inpaint-cache"]
        if diff:
            vals = [table[n][slots[-1]]["psnr"] for n in diff]
            ssims = [table[n][slots[-1]]["ssim"] for n in diff]
            lines.append(
                f"Spread of PSNR over the {len(diff)} ST-Diff variants at frame {slots[-1]}: "
                f"{max(vals) - min(vals):.2f} dB (SSIM {min(ssims):.3f}-{max(ssims):.3f})"
                + (
                    "; a difference this small on this few scenes does not establish an ordering either way."
                    if max(vals) - min(vals) < 1.0
                    else "."
                )
            )
        lines.append("")
        long = slots[-1]

        def psnr_of(name: str, slot: str = long, table: dict = table) -> str:
            return f"{table[name][slot]['psnr']:.2f}" if name in table else "n/a"

        w = table["worldwarp"][long] if "worldwarp" in table else {m: math.nan for m in METRICS}
        summary.append(
            f"- {title}: worldwarp at frame {long}: PSNR {w['psnr']:.2f}, SSIM {w['ssim']:.3f}, PSNR in holes "
            f"{w['psnr_holes']:.2f} (point cache {psnr_of('point-cache')}, no cache {psnr_of('no-cache')}, "
            f"full noise {psnr_of('full-noise')}, cache + cv2 inpaint {psnr_of('inpaint-cache')}, start-frame warp + "
            f"cv2 inpaint {psnr_of('inpaint')}); {held} of {total} ordering "
            "checks hold."
        )
    atomic_write_text(args.out, "\n".join(lines) + "\n")

    block = "\n".join(
        [
            BEGIN,
            "## Embedded model",
            "",
            f"`python benchmarks/experiments/ablations.py {' '.join(sys.argv[1:])}` ({wall / 60:.0f} min of generation "
            "on 2 shared CPU cores); tables and ordering checks in [benchmarks/ablations.md](benchmarks/ablations.md).",
            "",
            *summary,
            END,
        ]
    )
    text = args.summary.read_text(encoding="utf-8") if args.summary.is_file() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_text(args.summary, text)
    print(json.dumps({"out": str(args.out), "summary": str(args.summary), "minutes": round(wall / 60, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
