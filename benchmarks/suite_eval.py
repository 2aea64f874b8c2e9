"""Shared by the suite benchmarks (ablations.py, strength_sweep.py): run methods over a dataset's scenes with
results files that can be reused, and average them into tables."""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

import numpy as np
import torch

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


def mean_finite(values: list[float]) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def weights_digest(module: torch.nn.Module) -> str:
    """First 16 hex digits of the SHA-256 of a module's parameters and buffers (names, shapes, dtypes, bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def evaluate_methods(scenes, methods, den, method_config, results_dir: Path, tag: str, reuse: bool) -> dict[str, dict]:
    """Run every method on ``scenes``; returns ``{method: results document}`` (also written as JSON).

    Documents of methods that call the denoiser record its :func:`weights_digest` as ``"denoiser_weights"``. With
    ``reuse`` a method whose results file exists with the same method config, scenes and (for those methods)
    denoiser weights is read back: the model is identified by its weights, not by the folder it was read from, and
    methods that never call it ignore the denoiser setting.
    """
    from worldwarp.eval.benchmark import (
        BenchmarkConfig,
        _jsonable,
        build_method,
        read_results,
        run_benchmark,
        write_results,
    )
    from worldwarp.eval.pipeline_methods import VARIANTS, pipeline_method

    digest = weights_digest(den)
    docs = {}
    for name in methods:
        t0 = time.perf_counter()
        path = results_dir / f"{tag}_{name}.json"
        uses_model = name in VARIANTS and VARIANTS[name].fill == "diffusion"
        if reuse and path.is_file():
            doc, _ = read_results(path)
            want = _jsonable(method_config) if name in VARIANTS else {}
            have = dict(doc["method_config"] or {})
            if name in VARIANTS:  # the model is identified by its weights, not by the folder it was read from
                want = {**want, "denoiser": {**want["denoiser"], "checkpoint": None}} if uses_model else want
                if uses_model and isinstance(have.get("denoiser"), dict):
                    have["denoiser"] = {**have["denoiser"], "checkpoint": None}
                if not uses_model:  # no model involved: the denoiser setting does not matter
                    want = {k: v for k, v in want.items() if k != "denoiser"}
                    have.pop("denoiser", None)
            same_scenes = [s["name"] for s in doc["scenes"]] == [s.name for s in scenes]
            same_frames = [s["frame_indices"] for s in doc["scenes"]] == [list(s.frame_indices) for s in scenes]
            same_model = not uses_model or doc.get("denoiser_weights") == digest
            if have == want and same_scenes and same_frames and same_model:
                docs[name] = doc
                print(f"[{tag}] {name}: reused {path}", flush=True)
                continue
        if name in VARIANTS:
            method = pipeline_method(VARIANTS[name], method_config, den)
            cfg = method_config
        else:
            method, cfg = build_method(name), None
        doc, _ = run_benchmark(scenes, method, name, BenchmarkConfig(), dataset=tag, method_config=cfg)
        if uses_model:
            doc["denoiser_weights"] = digest
        write_results(path, doc)
        docs[name] = doc
        print(f"[{tag}] {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return docs


def mean_table(docs: dict[str, dict]) -> tuple[list[str], dict[str, dict[str, dict[str, float]]], list[str]]:
    """Mean over scenes per method, frame slot and metric; the frame-slot labels; the scored scene names.

    Slot k is the k-th scored frame of each scene (scenes of different lengths score different frames); its
    label joins the distinct frame indices, e.g. ``"24/49"`` when one scene scores frame 24 there and another 49.
    """
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


def describe_model(den: torch.nn.Module) -> str:
    """One phrase naming the tiny model's architecture, read from its config."""
    c = getattr(den, "config", None)
    if c is None:
        return type(den).__name__
    if getattr(c, "arch", "transformer") == "unet":
        return f"U-Net, widths {'/'.join(str(w) for w in c.widths)}, {c.depth} block(s) per level"
    refine = f", conv refiner {c.refine_width}" if getattr(c, "refine_width", 0) else ""
    return f"transformer, width {c.width}, depth {c.depth}, patch {c.patch_size}{refine}"
