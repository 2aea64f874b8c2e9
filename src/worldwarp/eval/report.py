"""Aggregate results files into markdown tables and metric-vs-frame plots.

:func:`aggregate` turns one results document into per-slot means (slot k = the k-th scored frame of each
scene, e.g. "short" = frame 50 and "long" = frame 200) and per-frame-index curves; FID is computed over the
scenes of a slot from the stored features. :func:`write_report` writes ``report.md`` with one table per
dataset/split (one row per method, the paper's numbers beside where they exist) and one PNG per metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from worldwarp.eval.fid import fid_from_features

__all__ = ["PAPER", "aggregate", "mean_finite", "write_report"]

IMAGE_METRICS = ("psnr", "ssim", "lpips", "psnr_holes", "psnr_visible", "hf_ratio", "color_error")
# True: higher is better; False: lower is better; None: 1 is ideal (a ratio to the real frame)
HIGHER_IS_BETTER: dict[str, bool | None] = {"psnr": True, "ssim": True, "lpips": False, "fid": False,
                                            "psnr_holes": True, "psnr_visible": True, "hf_ratio": None,
                                            "color_error": False}  # fmt: skip
LABELS = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "fid": "FID", "psnr_holes": "PSNR holes",
          "psnr_visible": "PSNR visible", "rdist": "Rdist", "tdist": "Tdist", "hf_ratio": "HF ratio",
          "color_error": "colour error"}  # fmt: skip
_DIRECTION = {True: " (higher is better)", False: " (lower)", None: " (1 is ideal)"}

# The paper's numbers (arXiv 2512.19678, DESIGN.md section 2) at the short / long frame.
PAPER: dict[str, dict[str, tuple[float, float]]] = {
    "re10k": {"psnr": (20.32, 17.13), "ssim": (0.527, 0.281), "lpips": (0.216, 0.352), "fid": (15.56, 21.75),
              "rdist": (0.188, 0.697), "tdist": (0.039, 0.203)},
    "dl3dv": {"psnr": (18.10, 14.53), "lpips": (0.315, 0.413)},
}  # fmt: skip


def mean_finite(values: Sequence[float | None]) -> float:
    """Mean of the finite values (None, NaN and infinities skipped); NaN when there is none."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v)) and not math.isinf(float(v))]
    return float(np.mean(vals)) if vals else math.nan


def aggregate(doc: dict, features: dict[str, np.ndarray] | None = None) -> dict:
    """Summary of one results document.

    Returns ``{"slots": [{"frames": [...], "n": scenes, metric: mean, ...}], "curves": {metric: {index: mean}},
    "camera": {...} | None, "skipped": [(scene, reason)], "evaluated": n}``. Infinite PSNRs (identical
    frames) and NaNs (empty masks) are left out of the means.
    """
    scenes = [s for s in doc["scenes"] if not s.get("skipped")]
    skipped = [(s["name"], s["skipped"]) for s in doc["scenes"] if s.get("skipped")]
    nslots = max((len(s["frame_indices"]) for s in scenes), default=0)
    slots = []
    for k in range(nslots):
        rows = [(s, str(s["frame_indices"][k])) for s in scenes if len(s["frame_indices"]) > k]
        entry: dict = {"frames": sorted({int(f) for _, f in rows}), "n": len(rows)}
        for m in IMAGE_METRICS:
            vals = [s["metrics"][f].get(m) for s, f in rows if m in s["metrics"][f]]
            if vals:
                entry[m] = mean_finite(vals)
        if features is not None and f"gen_{k}" in features:
            gen, real = features[f"gen_{k}"], features[f"gt_{k}"]
            entry["fid"] = fid_from_features(gen, real) if len(gen) >= 2 else math.nan
        slots.append(entry)
    curves: dict[str, dict[int, float]] = {}
    for m in IMAGE_METRICS:
        per_index: dict[int, list[float]] = {}
        for s in scenes:
            for f, vals in s["metrics"].items():
                if m in vals:
                    per_index.setdefault(int(f), []).append(vals[m])
        if per_index:
            curves[m] = {i: mean_finite(v) for i, v in sorted(per_index.items())}
    camera = None
    with_cam = [s for s in scenes if s.get("camera")]
    if with_cam:
        camera = {"n": len(with_cam)}
        for key in ("camera", "camera_control"):
            recs = [s[key] for s in with_cam if s.get(key)]
            if not recs:
                continue
            tag = "" if key == "camera" else "control_"
            for m in ("rdist_mean", "rdist_sum", "tdist_mean", "tdist_sum", "rdist_sim3_mean", "tdist_sim3_mean"):
                camera[tag + m] = mean_finite([r[m] for r in recs])
            camera[tag + "registered"] = sum(r["registered"] for r in recs) / max(1, sum(r["total"] for r in recs))
    return {"slots": slots, "curves": curves, "camera": camera, "skipped": skipped, "evaluated": len(scenes)}


def _fmt(v: float | None, metric: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.2f}" if metric in ("psnr", "fid", "psnr_holes", "psnr_visible") else f"{v:.3f}"


def _table(group: list[tuple[dict, dict]], dataset: str) -> list[str]:
    nslots = max(len(agg["slots"]) for _, agg in group)
    metrics = [m for m in ("psnr", "ssim", "lpips", "fid", "psnr_holes", "hf_ratio", "color_error") if any(
        len(agg["slots"]) > k and m in agg["slots"][k] for _, agg in group for k in range(nslots))]  # fmt: skip
    header = ["method", "scenes"]
    for k in range(nslots):
        frames = sorted({f for _, agg in group if len(agg["slots"]) > k for f in agg["slots"][k]["frames"]})
        label = f"f{frames[0]}" if len(frames) == 1 else f"slot{k} (f{'/'.join(map(str, frames))})"
        header += [f"{LABELS[m]} {label}" for m in metrics]
    has_cam = any(agg["camera"] for _, agg in group)
    if has_cam:
        header += ["Rdist mean", "Tdist mean", "Rdist Sim3", "Tdist Sim3", "registered", "control Rdist/Tdist"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for doc, agg in group:
        row = [doc["method"], str(agg["evaluated"])]
        for k in range(nslots):
            slot = agg["slots"][k] if len(agg["slots"]) > k else {}
            row += [_fmt(slot.get(m), m) for m in metrics]
        if has_cam:
            c = agg["camera"] or {}
            row += [_fmt(c.get("rdist_mean"), "r"), _fmt(c.get("tdist_mean"), "t"), _fmt(c.get("rdist_sim3_mean"), "r"),
                    _fmt(c.get("tdist_sim3_mean"), "t"), _fmt(c.get("registered"), "r"),
                    f"{_fmt(c.get('control_rdist_mean'), 'r')} / {_fmt(c.get('control_tdist_mean'), 't')}"]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    paper = PAPER.get(dataset)
    if paper and nslots == 2:
        row = ["paper (WorldWarp)", "-"]
        for k in range(2):
            row += [_fmt(paper[m][k], m) if m in paper else "-" for m in metrics]
        if has_cam:
            row += [f"{paper['rdist'][1]:.3f}" if "rdist" in paper else "-"]
            row += [f"{paper['tdist'][1]:.3f}" if "tdist" in paper else "-", "-", "-", "-", "-"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _plot(group: list[tuple[dict, dict]], metric: str, title: str, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from worldwarp.io.atomic import atomic_path

    curves = [(doc["method"], agg["curves"][metric]) for doc, agg in group if metric in agg["curves"]]
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, curve in curves:
        xs = sorted(curve)
        ax.plot(xs, [curve[x] for x in xs], marker="o", label=name)
    ax.set_xlabel("frame index")
    ax.set_ylabel(LABELS.get(metric, metric) + _DIRECTION[HIGHER_IS_BETTER.get(metric, True)])
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True


def write_report(results: Sequence[tuple[dict, dict | None]], out_dir: Path) -> list[Path]:
    """Write ``report.md`` and ``<dataset>_<split>_<metric>.png`` plots into ``out_dir``; returns the files."""
    from worldwarp.io.atomic import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for doc, feats in results:
        groups.setdefault((doc["dataset"], doc["split"]), []).append((doc, aggregate(doc, feats)))
    written: list[Path] = []
    lines = ["# Evaluation report", ""]
    for (dataset, split), group in groups.items():
        lines += [f"## {dataset} / {split}", ""]
        lines += _table(group, dataset)
        lines.append("")
        for doc, agg in group:
            notes = []
            if not doc.get("lpips"):
                notes.append("LPIPS not computed (no weights given)")
            if not doc.get("fid"):
                notes.append("FID not computed (no feature network given)")
            elif any(s["n"] < 2 for s in agg["slots"]):
                notes.append("FID needs at least 2 scenes per slot")
            for name, reason in agg["skipped"]:
                notes.append(f"skipped {name}: {reason}")
            if notes:
                lines.append(f"- {doc['method']}: " + "; ".join(notes))
        lines.append("")
        for metric in IMAGE_METRICS:
            png = out_dir / f"{dataset}_{split}_{metric}.png".replace("/", "_")
            if _plot(group, metric, f"{dataset} / {split}: {LABELS[metric]}", png):
                lines.append(f"![{LABELS[metric]}]({png.name})")
                written.append(png)
        lines.append("")
    report = out_dir / "report.md"
    atomic_write_text(report, "\n".join(lines).rstrip() + "\n")
    return [report, *written]
