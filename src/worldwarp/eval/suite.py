"""Run several evaluation methods over the same scenes, reusing earlier results files of the same settings.

What the method studies in ``benchmarks/experiments/`` share: :func:`evaluate_methods` runs each named method
(:data:`~worldwarp.eval.benchmark.METHODS`; the pipeline variants of :mod:`worldwarp.eval.pipeline_methods` share
one already loaded denoiser) with :func:`~worldwarp.eval.benchmark.run_benchmark` and writes one results file per
method; with ``reuse`` a file made with the same method settings, scenes and model weights is read back instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from worldwarp.diffusion.denoisers.digest import weights_digest
from worldwarp.eval.benchmark import (
    BenchmarkConfig,
    _jsonable,
    build_method,
    read_results,
    run_benchmark,
    write_results,
)
from worldwarp.eval.datasets import EvalScene
from worldwarp.eval.pipeline_methods import VARIANTS, PipelineMethodConfig, make_pipeline_config, pipeline_method

__all__ = ["evaluate_methods"]


def evaluate_methods(
    scenes: Sequence[EvalScene],
    methods: Sequence[str],
    den: torch.nn.Module,
    method_config: PipelineMethodConfig,
    results_dir: Path,
    tag: str,
    reuse: bool,
) -> dict[str, dict]:
    """Run every method on ``scenes``; returns ``{method: results document}`` (also written as JSON).

    Documents of methods that call the denoiser record its
    :func:`~worldwarp.diffusion.denoisers.digest.weights_digest` as ``"denoiser_weights"``. With
    ``reuse`` a method whose results file exists with the same method config, scenes and (for those methods)
    denoiser weights is read back: the model is identified by its weights, not by the folder it was read from, and
    methods that never call it ignore the denoiser setting. Pipeline methods also record the resolved pipeline
    settings (``"pipeline_config"``: the preset with the method's overrides), so a file made before a preset
    changed is run again rather than read back.
    """
    digest = weights_digest(den)
    docs = {}
    for name in methods:
        t0 = time.perf_counter()
        path = results_dir / f"{tag}_{name}.json"
        uses_model = name in VARIANTS and VARIANTS[name].fill == "diffusion"
        pipeline = _pipeline_settings(name, method_config, scenes)
        if reuse and path.is_file():
            doc, _ = read_results(path)
            want = _jsonable(method_config) if name in VARIANTS else {}
            have = dict(doc["method_config"] or {})
            # a config field added after the file was written reads as its default, None (e.g. the solver)
            have = {**{k: None for k in want if k not in have}, **have}
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
            same_pipeline = doc.get("pipeline_config") == pipeline
            if have == want and same_scenes and same_frames and same_model and same_pipeline:
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
        if pipeline is not None:
            doc["pipeline_config"] = pipeline
        write_results(path, doc)
        docs[name] = doc
        print(f"[{tag}] {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return docs


def _pipeline_settings(name: str, method_config: PipelineMethodConfig, scenes: Sequence[EvalScene]) -> dict | None:
    """The resolved pipeline settings of pipeline method ``name`` at the first scene's size, as they read back from
    JSON (None for other methods); the progress flag is left out (it does not change the frames), and so are the
    sampler and the prompts of a method that fills without the model (they do not change its frames either)."""
    if name not in VARIANTS:
        return None
    size = (scenes[0].height, scenes[0].width) if scenes else (None, None)
    settings = make_pipeline_config(VARIANTS[name], method_config, *size).to_dict()
    settings.pop("progress", None)
    if VARIANTS[name].fill != "diffusion":
        for key in ("sampler", "prompt", "negative_prompt"):
            settings.pop(key, None)
    return json.loads(json.dumps(_jsonable(settings)))
