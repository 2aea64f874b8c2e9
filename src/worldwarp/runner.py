"""Run one generation from files to an output folder (what ``worldwarp generate`` and ``demo`` do).

Kept apart from the CLI so scripts and the UI can call it: build the config, load the denoiser, prepare the
inputs, run the pipeline with per-chunk checkpoints in ``OUT/.worldwarp`` (resumable), write the outputs.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from worldwarp.diffusion.denoisers.registry import DenoiserSpec, load_denoiser
from worldwarp.errors import InputError
from worldwarp.pipeline import ChunkStore, PipelineConfig, WorldWarpPipeline

__all__ = ["GenerationRequest", "run_generation", "build_config", "STATE_DIRNAME"]

STATE_DIRNAME = ".worldwarp"


@dataclass
class GenerationRequest:
    """Settings of one run (what the CLI options say); ``None`` keeps the preset's value."""

    out: str
    preset: str | None = None
    height: int | None = None
    width: int | None = None
    chunk: int | None = None
    overlap: int | None = None
    strength: float | None = None
    steps: int | None = None
    solver: str | None = None
    cfg: float | None = None
    cache_steps: int | None = None
    cache: str = "gaussians"
    start_memory: str | None = None
    noise: str = "spatiotemporal"
    fill: str = "diffusion"
    prompt: str = ""
    negative_prompt: str | None = None
    caption_model: str | None = None
    seed: int = 0
    denoiser: DenoiserSpec | None = None
    device: str | None = None
    fps: float = 16
    resume: bool = False
    quiet: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> GenerationRequest:
        spec = DenoiserSpec(
            name=args.denoiser,
            checkpoint=args.checkpoint,
            wan_model=args.wan_model,
            offload=args.offload,
            vae_tiling=args.vae_tiling,
            prompt_cache_dir=getattr(args, "prompt_cache", None),
            trust_checkpoint=bool(getattr(args, "trust_checkpoint", False)),
        )
        names = [f for f in cls.__dataclass_fields__ if f != "denoiser"]
        return cls(denoiser=spec, **{k: getattr(args, k.replace("-", "_")) for k in names if hasattr(args, k)})


def build_config(req: GenerationRequest) -> PipelineConfig:
    """The preset (by default the denoiser's, :func:`~worldwarp.pipeline.default_preset`) with the request's
    overrides (:func:`worldwarp.settings.configure`); a bad value is an :class:`~worldwarp.errors.InputError`."""
    from worldwarp.settings import Overrides, configure

    for name in ("strength", "cfg", "fps"):
        value = getattr(req, name)
        if value is not None and not math.isfinite(float(value)):
            raise InputError(f"--{name} must be a finite number, got {value}")
    if not req.fps > 0:
        raise InputError(f"--fps must be > 0, got {req.fps}")
    if not 0 <= req.seed < 2**32:
        raise InputError(f"--seed must lie in [0, {2**32 - 1}], got {req.seed}")
    overrides = Overrides(
        height=req.height,
        width=req.width,
        chunk_frames=req.chunk,
        overlap=req.overlap,
        steps=req.steps,
        solver=req.solver,  # type: ignore[arg-type]
        strength=req.strength,
        guidance_scale=req.cfg,
        noise_mode=req.noise,  # type: ignore[arg-type]
        cache_steps=req.cache_steps,
        cache_mode=req.cache,  # type: ignore[arg-type]
        start_memory=None if req.start_memory is None else req.start_memory == "on",
        fill=req.fill,  # type: ignore[arg-type]
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        seed=req.seed,
        progress=not req.quiet,
    )
    return configure(req.preset, overrides, denoiser=(req.denoiser or DenoiserSpec()).name)


def _device(name: str | None) -> torch.device:
    """The torch device ``name`` (default: cuda when available, else cpu); one that cannot be used here is an
    :class:`InputError`."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"--device {name!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: CUDA is not available here (no GPU, or a CPU-only torch build)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError(f"--device {name}: MPS is not available here")
    elif device.type != "cpu":
        raise InputError(f"--device {name}: only cpu, cuda and mps devices are supported")
    return device


def weights_id(spec: DenoiserSpec) -> str | None:
    """Content digest of the files a large denoiser is loaded from (Wan: the ST-Diff transformer checkpoint and
    every file of the base model folder or its hub cache snapshot), or None to digest the loaded parameters."""
    if spec.name != "wan":
        return None
    from worldwarp.digests import file_digest, folder_digest

    parts = [f"wan:{spec.wan_model}"]
    if spec.checkpoint:
        ck = Path(spec.checkpoint)
        parts.append(f"stdiff={folder_digest(ck) if ck.is_dir() else file_digest(ck)}")
    base = Path(spec.wan_model).expanduser()
    if not base.exists():
        try:
            from huggingface_hub import snapshot_download

            base = Path(snapshot_download(spec.wan_model, local_files_only=True))
        except Exception:  # loaded from somewhere we cannot see: fall back to the parameters' digest
            return None
    parts.append(f"base={folder_digest(base)}")
    return ";".join(parts)


def run_generation(
    req: GenerationRequest,
    *,
    image: str | os.PathLike[str],
    trajectory: str | os.PathLike[str],
    frames: int,
    depth: str | None = None,
    depth_model: str | None = None,
    fov: float = 60.0,
    speed: float = 1.0,
    scale: float = 1.0,
    extra_run_info: dict[str, Any] | None = None,
) -> Path:
    """Generate and write the outputs of one run; returns the output folder."""
    from worldwarp.inputs import prepare_inputs
    from worldwarp.io.outputs import check_output_dir, run_info, write_outputs

    t0 = time.perf_counter()
    # every option and the output folder first: bad input fails before any input is read or model loaded
    config = build_config(req)
    device = _device(req.device)
    out = check_output_dir(req.out)
    log = (lambda msg: None) if req.quiet else (lambda msg: print(msg, file=sys.stderr))

    inputs = prepare_inputs(
        image, trajectory, frames, config.height, config.width, depth_path=depth, depth_model=depth_model,
        fov_x_deg=fov, speed=speed, scale=scale,
    )  # fmt: skip
    for note in inputs.notes:
        log(f"worldwarp: {note}")
    t_inputs = time.perf_counter()
    spec = req.denoiser or DenoiserSpec()
    if req.caption_model is not None and spec.name != "wan":
        raise InputError("--caption-model needs --denoiser wan (the embedded model takes no prompt)")
    captioner = None  # loaded first: a bad caption model fails before the large denoiser loads
    if req.caption_model is not None and config.fill == "diffusion":
        from worldwarp.diffusion.captions import CaptionConfig, Captioner

        captioner = Captioner.from_config(CaptionConfig(model=req.caption_model, device=str(device), offload=True))
    denoiser = load_denoiser(spec, device=device) if config.fill == "diffusion" else None  # inpainting needs none
    pipe = WorldWarpPipeline(denoiser, config, device=device, captioner=captioner)
    pipe.weights_id = weights_id(spec)
    t_model = time.perf_counter()

    state_dir = out / STATE_DIRNAME
    if not req.resume and (out / "run.json").exists():
        log(f"worldwarp: overwriting the previous run in {out}")
    cache_dir = state_dir / "cache"

    def save_cache(record: Any, state: Any) -> None:
        if record.gaussians is not None:
            record.gaussians.save_ply(cache_dir / f"chunk_{record.index:03d}.ply")

    # frames stream to disk: the pipeline keeps only the next chunk's history; outputs are read back chunk by chunk
    output = pipe(
        inputs.image.to(device), inputs.cameras, inputs.depth.to(device), state_dir=state_dir, resume=req.resume,
        callback=save_cache, release=True,
    )  # fmt: skip
    store = ChunkStore(state_dir, output.fingerprint)
    valid_share: list[float] = []  # filled while the frames are written, before run.json is

    def batches() -> Any:
        first = (inputs.image.clamp(0, 1) * 255).round().to(torch.uint8)[None]
        yield [0], first, first, torch.ones(1, config.height, config.width, dtype=torch.bool)
        for idx, frames_u8, prior, mask in store.frames(len(output.chunks)):
            valid_share.append(float(mask.float().mean()))
            yield idx, frames_u8, prior, mask

    # seconds per stage, back to back: they add up to "seconds" (restored chunks of a resumed run are not counted)
    timings = {"inputs": t_inputs - t0, "model": t_model - t_inputs}
    for stage, seconds in output.timings.items():
        if stage != "total":
            timings[stage] = timings.get(stage, 0.0) + seconds
    run = {
        "command": sys.argv,
        "inputs": {
            "image": str(image),
            "trajectory": str(trajectory),
            "frames": frames,
            "depth": depth,
            "depth_model": depth_model,
            "depth_source": inputs.depth_source,
            "fov": fov,
            "speed": speed,
            "scale": scale,
            "notes": inputs.notes,
        },
        "denoiser": spec.__dict__,
        "fingerprint": output.fingerprint,
        "config": config.to_dict(),
        "seed": config.seed,
        "device": str(device),
        "chunks": [
            {"index": r.index, "frames": [r.start, r.end], "timings": r.timings, "prompt": r.prompt}
            for r in output.chunks
        ],
        "valid_share": valid_share,
        "timings": timings,
        "seconds": time.perf_counter() - t0,  # inputs, model and generation (the outputs are written after)
        "versions": run_info(),
        **(extra_run_info or {}),
    }
    write_outputs(out, output, run, fps=req.fps, cache_dir=cache_dir, batches=batches())
    shutil.rmtree(state_dir, ignore_errors=True)
    log(f"worldwarp: wrote {frames} frames to {out / 'video.mp4'} in {time.perf_counter() - t0:.1f} s")
    return out
