"""Accuracy of the weight-free plane-sweep stereo depth on real data (a real RGB-D clip and real splats).

Run from the repository root (writes docs/benchmarks/stereo.md):

    python benchmarks/experiments/stereo.py [--data ../shared/data] [--sizes 72x96,240x320] [--sources 8] \
        [--threads N] [--out docs/benchmarks/stereo.md]

What is measured: :func:`worldwarp.geometry.stereo.plane_sweep_depth` with its default
:class:`~worldwarp.geometry.stereo.StereoDepthConfig` (automatic depth range), one reference frame against the
next ``--sources`` frames with the clip's cameras -- the call :func:`worldwarp.eval.datasets.with_start_depth`
makes for ``DatasetConfig(start_depth="stereo")`` (checked equal once, at the smallest size).

Clips:

* ``scenes/7scenes_redkitchen`` (Kinect depth in metres, metric poses) loaded with the project's loader
  (:func:`worldwarp.eval.datasets.load_transforms_scene`: OpenGL -> OpenCV, cover-resize, depth resampled with
  nearest), reference frames 0, 8 and 16 where the clip has ``--sources`` frames after them.
* orbit clips rendered from the real splats ``splats/plant`` and ``splats/academic_tarot_cards`` (the cameras of
  ``benchmarks/experiments/warp_quality.py``: 1.5 degrees per frame), frame 0 against frames 1.. ``--sources``;
  ground truth is the rendered expected depth where the rendered alpha > 0.5, so the images and the depth agree exactly.

Metrics on the pixels valid in both the estimate and the ground truth: AbsRel = mean |d - gt| / gt, median
relative error, the shares with delta = max(d / gt, gt / d) below 1.05 and 1.25; ``valid`` is the estimate's
valid share of the image. Also after a median-scale alignment (d times median(gt / d)), to tell scale errors
from structure errors; the pipeline uses the unaligned depth (the cameras' units). A photometric check of the
ground truth: the scale s of the ground-truth depth that minimises the mean colour error of reprojecting the
reference into the sources (1 when the colour images, cameras and depth agree).

Attribution: "Houseplant" and "Academic tarot cards" splats by Marcel Padilla, CC-BY-4.0; 7-Scenes by Microsoft
Research (non-commercial research use).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from warp_quality import render_splat_clip
from worldwarp.cameras import Cameras
from worldwarp.eval.datasets import DatasetConfig, ListEntry, load_transforms_scene
from worldwarp.geometry.stereo import StereoDepthConfig, plane_sweep_depth
from worldwarp.io.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[2]
KITCHEN = "7scenes_redkitchen"
KITCHEN_REFERENCES = (0, 8, 16)
SPLATS = ("plant/plant", "academic_tarot_cards/academic_tarot_cards")
DEG_PER_FRAME = 1.5
# images with at most this many pixels are timed as the best of SMALL_REPEATS runs (cheap), larger ones once
SMALL_PIXELS = 20_000
SMALL_REPEATS = 3
# scales of the ground-truth depth tried by the photometric check
CHECK_SCALES = torch.arange(0.70, 1.401, 0.01, dtype=torch.float64)


@dataclass
class View:
    """A reference frame with its sources: images (1 + M, 3, H, W), cameras, ground-truth depth (H, W)."""

    clip: str
    reference: int
    images: torch.Tensor
    cameras: Cameras
    gt: torch.Tensor


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"72x96,240x320"`` -> [(72, 96), (240, 320)]."""
    sizes = []
    for part in filter(None, text.split(",")):
        try:
            h, w = (int(x) for x in part.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"size {part!r} is not HxW (e.g. 72x96)") from None
        if min(h, w) < 16:
            raise argparse.ArgumentTypeError(f"size {part!r} must be at least 16x16")
        sizes.append((h, w))
    if not sizes:
        raise argparse.ArgumentTypeError("no size given")
    return sizes


# ---------------------------------------------------------------------------------------------- data
def kitchen_views(folder: Path, size: tuple[int, int], sources: int) -> list[View]:
    """Kitchen references 0, 8, 16 (those with ``sources`` frames after them) at ``size``."""
    views = []
    for ref in KITCHEN_REFERENCES:
        scene = load_transforms_scene(
            folder, DatasetConfig(name="transforms", root=folder, size=size), ListEntry(folder.name, None, ref)
        )
        if scene.num_frames < sources + 1:
            continue
        idx = list(range(sources + 1))
        views.append(View(KITCHEN, ref, scene.frames(idx), scene.cameras[idx], scene.load_depth(0)))
    return views


def splat_view(path: Path, size: tuple[int, int], sources: int) -> View:
    """Frame 0 of a splat orbit with frames 1..``sources`` (rendered at ``size``)."""
    clip = render_splat_clip(path, sources + 1, *size, deg_per_frame=DEG_PER_FRAME)
    return View(path.stem, 0, clip.images, clip.cameras, clip.depths[0])


def pipeline_matches(folder: Path, size: tuple[int, int], sources: int, depth: torch.Tensor) -> bool:
    """Whether ``DatasetConfig(start_depth="stereo")`` gives the kitchen's frame-0 depth measured here."""
    cfg = DatasetConfig(name="transforms", root=folder, size=size, start_depth="stereo", stereo_sources=sources)
    scene = load_transforms_scene(folder, cfg, ListEntry(folder.name, None, 0))
    return bool(torch.equal(scene.start_depth, depth.float()))


# ---------------------------------------------------------------------------------------------- metrics
def depth_metrics(depth: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """AbsRel, median relative error and delta shares of ``depth`` against ``gt`` on ``mask``."""
    if not bool(mask.any()):
        return {"absrel": math.nan, "medrel": math.nan, "d105": math.nan, "d125": math.nan}
    d, g = depth[mask].double(), gt[mask].double()
    rel = (d - g).abs() / g
    delta = torch.maximum(d / g, g / d)
    return {
        "absrel": float(rel.mean()),
        "medrel": float(rel.median()),
        "d105": float((delta < 1.05).double().mean()),
        "d125": float((delta < 1.25).double().mean()),
    }


def photometric_scale(view: View) -> float:
    """Scale of the ground-truth depth minimising the mean colour error of the reference warped into the sources.

    Every reference pixel with ground truth is lifted at ``s * gt``, projected into each source and sampled
    bilinearly there; the error is the mean absolute RGB difference over the projections inside the sources.
    """
    gt = view.gt.double()
    mask = gt > 0
    cams = view.cameras.to(dtype=torch.float64)
    h, w = gt.shape
    ref_rgb = view.images[0][:, mask]  # (3, P)
    errors = []
    for s in CHECK_SCALES:
        pts = cams[[0]].unproject((gt * s)[None])[0][mask]  # (P, 3)
        uv, z = cams[1:].project(pts)  # (M, P, 2), (M, P)
        grid = torch.stack([uv[..., 0] * (2.0 / w) - 1, uv[..., 1] * (2.0 / h) - 1], dim=-1)
        inside = (grid.abs() <= 1).all(dim=-1) & (z > 0)
        sampled = F.grid_sample(view.images[1:], grid[:, None].float(), align_corners=False)[:, :, 0]  # (M, 3, P)
        err = (sampled - ref_rgb[None]).abs().mean(dim=1)
        errors.append(float(err[inside].mean()) if bool(inside.any()) else math.inf)
    return float(CHECK_SCALES[int(torch.tensor(errors).argmin())])


def measure(view: View, repeats: int) -> dict[str, object]:
    """Run the stereo estimate on ``view`` (best time of ``repeats``) and score it."""
    ref, srcs = view.images[0], view.images[1:]
    cams = view.cameras
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        depth, valid, _ = plane_sweep_depth(ref, srcs, cams[[0]], cams[list(range(1, len(cams)))], StereoDepthConfig())
        times.append(time.perf_counter() - t)
    has_gt = view.gt > 0
    both = valid & has_gt
    scale = float((view.gt[both].double() / depth[both].double()).median()) if bool(both.any()) else math.nan
    centres = cams.centers.double()
    baseline = float((centres[1:] - centres[0]).norm(dim=-1).max())
    return {
        "clip": view.clip,
        "ref": view.reference,
        "size": f"{ref.shape[-2]}x{ref.shape[-1]}",
        "time": min(times),
        "repeats": repeats,
        "valid": float(valid.double().mean()),
        "gt_share": float(has_gt.double().mean()),
        "scored": float(both.double().mean()),
        "unscored": float((valid & ~has_gt).double().sum() / valid.sum().clamp_min(1)),
        "coverage": float(both.double().sum() / has_gt.sum().clamp_min(1)),
        "gt_median": float(view.gt[has_gt].median()) if bool(has_gt.any()) else math.nan,
        "baseline": baseline,
        "raw": depth_metrics(depth, view.gt, both),
        "scale": scale,
        "aligned": depth_metrics(depth * scale, view.gt, both),
        "photo_scale": photometric_scale(view),
        "depth": depth,
    }


# ---------------------------------------------------------------------------------------------- report
def _f(x: float, digits: int = 3) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


def to_markdown(rows: list[dict[str, object]], info: dict[str, str]) -> str:
    lines = [
        "# Plane-sweep stereo depth: accuracy on real data",
        "",
        f"Generated by `{info['command']}` (run under `nice -n 19`) on {info['date']}.",
        f"Machine: {info['machine']}. {info['timing']}",
        "",
        "What runs: `plane_sweep_depth` with the default `StereoDepthConfig` (64 planes, automatic depth range),",
        f"one reference frame against the next {info['sources']} frames of its clip with the clip's cameras -- the",
        'call `DatasetConfig(start_depth="stereo")` makes for the start frame '
        f"({info['pipeline_check']}). No learned weights; depth in the cameras' units.",
        "",
        "Clips: **7scenes_redkitchen** (Kinect depth in metres, metric poses, loaded with the project's loader:",
        "cover-resize, depth resampled with nearest), reference frames 0, 8 and 16 (25 frames: source frames",
        "100..172 step 3); **plant** and **academic_tarot_cards**:",
        f"orbits rendered from the real splats ({DEG_PER_FRAME:g} degrees per frame, the cameras of",
        "`benchmarks/experiments/warp_quality.py`), ground truth = the rendered expected depth where the rendered",
        "alpha > 0.5",
        "(images and depth agree exactly; at silhouettes the expected depth blends the surfaces, and the empty",
        "background has no ground truth).",
        "",
        "Columns: `valid` = share of the image the estimate marks valid; `gt` = share with ground truth; `scored` =",
        "share valid in both (where every error is measured); `coverage` = scored / gt; `no gt` = share of the valid",
        "pixels without ground truth (unscored: the kitchen's holes, the splats' background and silhouettes);",
        "`AbsRel` = mean |d - gt| / gt; `med rel` = median |d - gt| / gt; `d<1.05`, `d<1.25` = share with",
        "max(d / gt, gt / d) below 1.05, 1.25; `base/depth` = the largest reference-source baseline over the",
        "median ground-truth depth; `time` = wall time of one estimate (best of the stated runs).",
        "",
        "## Unaligned (what the pipeline uses)",
        "",
        "| clip | ref | size | valid | gt | scored | coverage | no gt | AbsRel | med rel | d<1.05 | d<1.25 "
        "| base/depth | time (s) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m = r["raw"]
        runs = f" (best of {r['repeats']})" if r["repeats"] > 1 else ""
        lines.append(
            f"| {r['clip']} | {r['ref']} | {r['size']} | {_f(r['valid'])} | {_f(r['gt_share'])} | {_f(r['scored'])} "
            f"| {_f(r['coverage'])} | {_f(r['unscored'])} | {_f(m['absrel'])} | {_f(m['medrel'])} | {_f(m['d105'])} "
            f"| {_f(m['d125'])} | {_f(r['baseline'] / r['gt_median'])} | {r['time']:.2f}{runs} |"
        )
    lines += [
        "",
        "## After median-scale alignment (diagnostic only)",
        "",
        "The estimate multiplied by `scale` = median(gt / d) over the scored pixels: what remains is the structure",
        "error. `photo scale` = the scale of the *ground-truth* depth that minimises the mean colour error of",
        "warping the reference into its sources (0.70 to 1.40 in steps of 0.01): 1.00 when colour, cameras and",
        "depth agree; a value away from 1 means the images themselves prefer another depth than the ground truth.",
        "`scale x photo` is about 1 when the estimate's scale error is the one the images prefer (the estimate",
        "then agrees with the images and cameras, and the ground truth does not).",
        "",
        "| clip | ref | size | scale | AbsRel | med rel | d<1.05 | d<1.25 | photo scale | scale x photo |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m = r["aligned"]
        lines.append(
            f"| {r['clip']} | {r['ref']} | {r['size']} | {_f(r['scale'])} | {_f(m['absrel'])} | {_f(m['medrel'])} "
            f"| {_f(m['d105'])} | {_f(m['d125'])} | {r['photo_scale']:.2f} | {_f(r['scale'] * r['photo_scale'], 2)} |"
        )
    lines += [
        "",
        "## Caveats",
        "",
        "- 7-Scenes colour and depth come from two sensors of the Kinect v1: the depth was re-projected into the",
        "  colour camera with an assumed colour focal length (525 px at 640x480; no calibration is published), so",
        "  expect a misregistration of a pixel or two at 640x480 (0.5 to 1 px at 240x320, 0.15 to 0.3 px at",
        "  72x96), more under fast rotation, plus motion blur and",
        "  auto-exposure in some frames. Part of the kitchen's error is the ground truth's: the `photo scale`",
        "  column shows where the images and cameras themselves disagree with the Kinect depth. The Kinect has",
        "  no depth on the black worktop and at some edges, so those pixels are not scored.",
        "- The splat clips are exact (rendered images, rendered depth, exact cameras) but a splat render is easier",
        "  than a photograph: no noise, no exposure change, no motion blur.",
        "- One reference per splat, three per kitchen: few samples, so read differences of a few per cent as",
        "  noise. Times are wall clock on a shared machine (see the load average above).",
        "",
        'Data: 7-Scenes redkitchen (Microsoft Research, non-commercial research use); splats "Houseplant" and',
        '"Academic tarot cards" by Marcel Padilla, CC-BY-4.0.',
        "",
    ]
    return "\n".join(lines)


def time_spread(rows: list[dict[str, object]]) -> str:
    """One sentence on the spread of the estimate's wall time at each size (the machine's load shows there)."""
    parts = []
    for size in dict.fromkeys(str(r["size"]) for r in rows):
        times = [float(r["time"]) for r in rows if r["size"] == size]
        parts.append(f"{min(times):.2f} to {max(times):.2f} s at {size}")
    return (
        "One estimate took "
        + ", ".join(parts)
        + " (the same plane counts at every size, so most of the spread within a size is the shared machine's)."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("WORLDWARP_DATA", ROOT.parent / "shared" / "data"))
    )
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("72x96,240x320"), help="HxW,HxW,...")
    parser.add_argument("--sources", type=int, default=8, help="source frames after each reference")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "stereo.md")
    args = parser.parse_args()
    if args.sources < 1:
        parser.error(f"--sources must be >= 1, got {args.sources}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if not args.data.is_dir():
        print(f"no data folder at {args.data} (give --data or WORLDWARP_DATA); nothing to measure", file=sys.stderr)
        return 1
    kitchen = args.data / "scenes" / KITCHEN
    splats = [args.data / "splats" / f"{name}.splat" for name in SPLATS]
    splats = [p for p in splats if p.is_file()]
    if not kitchen.is_dir() and not splats:
        print(f"neither {kitchen} nor the plant / tarot-card splats found under {args.data}", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    t_start = time.perf_counter()
    rows: list[dict[str, object]] = []
    pipeline_check = "kitchen not found: not checked"
    for si, size in enumerate(args.sizes):
        views: list[View] = kitchen_views(kitchen, size, args.sources) if kitchen.is_dir() else []
        views += [splat_view(p, size, args.sources) for p in splats]
        repeats = SMALL_REPEATS if size[0] * size[1] <= SMALL_PIXELS else 1
        for view in views:
            r = measure(view, repeats)
            if si == 0 and view.clip == KITCHEN and view.reference == 0:
                same = pipeline_matches(kitchen, size, args.sources, r["depth"])
                verdict = "identical" if same else "DIFFERENT"
                pipeline_check = f"checked at {r['size']} on the kitchen's frame 0: {verdict}"
            rows.append(r)
            m = r["raw"]
            print(
                f"{r['clip']:>22} ref {r['ref']:>2} {r['size']:>8}  valid {r['valid']:.3f} scored {r['scored']:.3f}  "
                f"AbsRel {m['absrel']:.3f} med {m['medrel']:.3f} d<1.05 {m['d105']:.3f} d<1.25 {m['d125']:.3f}  "
                f"scale {r['scale']:.3f} photo {r['photo_scale']:.2f}  {r['time']:.2f} s",
                flush=True,
            )
    load1 = os.getloadavg()[0]
    total = time.perf_counter() - t_start
    uname = platform.uname()
    info = {
        "command": shlex.join(["python", "benchmarks/experiments/stereo.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": (
            f"{platform.platform()} ({uname.machine}), {os.cpu_count()} cores, torch {torch.__version__} on CPU, "
            f"{torch.get_num_threads()} threads, one process; load average {load0:.1f} at the start and "
            f"{load1:.1f} at the end (other jobs shared the cores)"
        ),
        "timing": f"Whole run {total / 60:.1f} min. {time_spread(rows)}",
        "sources": str(args.sources),
        "pipeline_check": pipeline_check,
    }
    atomic_write_text(args.out, to_markdown(rows, info))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
