"""Build a denoiser by name: ``tiny`` (the embedded CPU model) or ``wan`` (Wan2.1 ST-Diff)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldwarp.diffusion.denoisers.base import Denoiser
from worldwarp.errors import InputError

__all__ = ["DENOISERS", "DenoiserSpec", "load_denoiser"]

DENOISERS = ("tiny", "wan")


@dataclass
class DenoiserSpec:
    """Which denoiser to build and from what.

    Attributes:
        name: ``"tiny"`` or ``"wan"``.
        checkpoint: tiny: a checkpoint folder (default: the one shipped with the package);
            wan: the WorldWarp ST-Diff transformer state dict.
        wan_model: wan: a local Wan2.1-T2V-1.3B-Diffusers folder or its hub id.
        offload: wan: ``"none"``, ``"model"`` or ``"sequential"``.
        vae_tiling: wan: tiled VAE encode/decode.
        prompt_cache_dir: wan: folder of cached prompt embeddings.
        trust_checkpoint: wan: allow a checkpoint that only loads as a full pickle (``torch.load(weights_only=False)``
            runs code from the file: only for files you trust); a warning is printed when it is used.
    """

    name: str = "tiny"
    checkpoint: str | None = None
    wan_model: str = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    offload: str = "none"
    vae_tiling: bool = False
    prompt_cache_dir: str | None = None
    trust_checkpoint: bool = False


def load_denoiser(spec: DenoiserSpec, device: torch.device | str = "cpu") -> Denoiser:
    """The denoiser ``spec`` names, in eval mode on ``device`` (the tiny model in float32)."""
    if spec.name == "tiny":
        from worldwarp.diffusion.denoisers.tiny import TinyDenoiser

        model = TinyDenoiser.from_pretrained(spec.checkpoint)
        return model.to(device=device, dtype=torch.float32).eval()
    if spec.name == "wan":
        from worldwarp.diffusion.denoisers.wan import WanConfig, WanDenoiser

        cfg = WanConfig(
            model=spec.wan_model,
            stdiff_weights=spec.checkpoint,
            device=str(device),
            offload=spec.offload,
            vae_tiling=spec.vae_tiling,
            prompt_cache_dir=spec.prompt_cache_dir,
            trust_checkpoint=spec.trust_checkpoint,
        )
        return WanDenoiser.from_config(cfg)
    raise InputError(f"unknown denoiser {spec.name!r}; choose one of {', '.join(DENOISERS)}")
