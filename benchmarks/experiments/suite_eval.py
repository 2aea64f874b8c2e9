"""Shared by the method studies in this folder: the dev suite's scenes, means over scenes and their tables.

Running the methods (with reusable results files) is the library's :func:`worldwarp.eval.suite.evaluate_methods`."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from worldwarp.diffusion.denoisers.digest import weights_digest  # noqa: F401  (re-exported for the scripts)
from worldwarp.eval.suite import evaluate_methods  # noqa: F401  (re-exported for the scripts)

METRICS = ("psnr", "ssim", "psnr_holes", "hf_ratio", "color_error")


def parse_size(text: str) -> tuple[int, int]:
    """``"HxW"`` -> ``(H, W)``."""
    h, w = (int(x) for x in text.lower().split("x"))
    return h, w


def dev_scenes(cache: Path, size: tuple[int, int], count: int, frames_text: str) -> list:
    """The first ``count`` clips of the procedural "dev" suite at ``size``, scoring the frames ``"a,b,..."``."""
    from worldwarp.eval.datasets import DatasetConfig, load_dataset

    frames = tuple(int(x) for x in frames_text.split(","))
    return load_dataset(DatasetConfig("procedural", cache, "dev", size=size, max_scenes=count, frames=frames))


def metric_table(first_column: str, rows: dict[str, dict], slots: list[str]) -> list[str]:
    """Markdown lines of a ``{row name: mean_table entry}`` table: PSNR, SSIM and PSNR in holes per frame slot."""
    lines = [
        f"| {first_column} | " + " | ".join(f"PSNR f{s} | SSIM f{s} | PSNR holes f{s}" for s in slots) + " |",
        "|---|" + "---|" * (3 * len(slots)),
    ]
    for name, tab in rows.items():
        cells = " | ".join(f"{tab[s]['psnr']:.2f} | {tab[s]['ssim']:.3f} | {tab[s]['psnr_holes']:.2f}" for s in slots)
        lines.append(f"| {name} | {cells} |")
    return lines


def mean_table(docs: dict[str, dict]) -> tuple[list[str], dict[str, dict[str, dict[str, float]]], list[str]]:
    """Mean over scenes per method, frame slot and metric; the frame-slot labels; the scored scene names.

    Slot k is the k-th scored frame of each scene (scenes of different lengths score different frames); its
    label joins the distinct frame indices, e.g. ``"24/49"`` when one scene scores frame 24 there and another 49.
    """
    from worldwarp.eval.report import mean_finite

    first = next(iter(docs.values()))
    scored = [s for s in first["scenes"] if "metrics" in s]
    n_slots = min((len(s["frame_indices"]) for s in scored), default=0)
    slots = []
    for k in range(n_slots):
        frames = sorted({int(s["frame_indices"][k]) for s in scored})
        slots.append("/".join(str(f) for f in frames))
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, doc in docs.items():
        table[name] = {}
        for k, slot in enumerate(slots):
            recs = []
            for s in doc["scenes"]:
                key = str(s["frame_indices"][k]) if k < len(s.get("frame_indices", ())) else None
                if "metrics" in s and key in s["metrics"]:
                    recs.append(s["metrics"][key])
            table[name][slot] = {m: mean_finite([r.get(m, math.nan) for r in recs]) for m in METRICS}
    return slots, table, [s["name"] for s in scored]


def scene_values(doc: dict, slot: int, metric: str) -> dict[str, float]:
    """``{scene: value}`` of one metric at the ``slot``-th scored frame of each scored scene of a results doc."""
    out = {}
    for s in doc["scenes"]:
        if "metrics" in s and slot < len(s["frame_indices"]):
            rec = s["metrics"].get(str(s["frame_indices"][slot]), {})
            if metric in rec and math.isfinite(rec[metric]):
                out[s["name"]] = float(rec[metric])
    return out


def paired_wins(a: dict[str, float], b: dict[str, float], digits: int = 2) -> str:
    """``wins/n (mean ± standard error of the per-scene difference a - b)`` over the scenes both score; the bracket
    needs 2 scenes or more. A mean within about two standard errors of 0 is not resolved by those scenes."""
    common = sorted(set(a) & set(b))
    diffs = [a[n] - b[n] for n in common]
    cell = f"{sum(d > 0 for d in diffs)}/{len(common)}"
    if len(diffs) >= 2:
        mean = sum(diffs) / len(diffs)
        se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs))
        cell += f" ({mean:+.{digits}f} ± {se:.{digits}f})"
    return cell


def seed_mean_doc(docs: list[dict]) -> dict:
    """One results doc whose per-scene metrics are the means over ``docs`` (the same method and scenes run with
    different pipeline seeds); a scene or frame missing from any doc is dropped. Per-clip comparisons of methods
    are made on these means, so that one seed's outlier on one clip (it happens at frame 199) does not decide them."""
    if len(docs) == 1:
        return docs[0]
    from worldwarp.eval.report import mean_finite

    by_name = [{s["name"]: s for s in d["scenes"] if "metrics" in s} for d in docs]
    scenes = []
    for s in docs[0]["scenes"]:
        runs = [b.get(s["name"]) for b in by_name]
        if "metrics" not in s or any(r is None for r in runs):
            continue
        metrics = {}
        for key, rec in s["metrics"].items():
            if all(key in r["metrics"] for r in runs):
                metrics[key] = {m: mean_finite([r["metrics"][key].get(m, math.nan) for r in runs]) for m in rec}
        scenes.append({**s, "metrics": metrics})
    return {**docs[0], "scenes": scenes, "seeds": len(docs)}


def describe_model(den: torch.nn.Module) -> str:
    """One phrase naming the tiny model's architecture, read from its config."""
    c = getattr(den, "config", None)
    if c is None or not hasattr(c, "widths"):
        return type(den).__name__
    head = f", pixel head {c.pixel_width}" if getattr(c, "pixel_width", 0) else ""
    return f"U-Net, widths {'/'.join(str(w) for w in c.widths)}, {c.depth} block(s) per level{head}"
