"""One way from a named preset and a user's changes to a :class:`~worldwarp.pipeline.PipelineConfig`.

The CLI (``generate``, ``demo``, ``ui``), the web UI and the evaluation methods all describe what the user changed
as one typed :class:`Overrides` and get the config from :func:`configure` (a preset by name, by default the
denoiser's) or :func:`apply_overrides` (an existing config). Every value is checked by the config classes
themselves, so a bad one is an :class:`~worldwarp.errors.InputError` (one line; exit code 2 on the CLI) whichever
interface it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from worldwarp.pipeline import PipelineConfig

__all__ = ["Overrides", "apply_overrides", "configure"]

# Overrides field -> (sub-config of PipelineConfig or None for a top-level field, field name there)
_TARGETS: dict[str, tuple[str | None, str]] = {
    "height": (None, "height"),
    "width": (None, "width"),
    "chunk_frames": (None, "chunk_frames"),
    "overlap": (None, "overlap"),
    "steps": ("sampler", "steps"),
    "strength": ("sampler", "strength"),
    "guidance_scale": ("sampler", "guidance_scale"),
    "noise_mode": ("sampler", "noise_mode"),
    "solver": ("sampler", "solver"),
    "cache_steps": ("cache", "steps"),
    "cache_init_scale": ("cache", "init_scale"),
    "cache_w_depth": ("cache", "w_depth"),
    "start_memory": ("start_memory", "enabled"),
    "cache_mode": (None, "cache_mode"),
    "fill": (None, "fill"),
    "prompt": (None, "prompt"),
    "negative_prompt": (None, "negative_prompt"),
    "seed": (None, "seed"),
    "progress": (None, "progress"),
}


@dataclass(frozen=True)
class Overrides:
    """Changes to a preset; ``None`` keeps the preset's value.

    Attributes:
        height, width: working resolution.
        chunk_frames, overlap: frames per chunk (history included) and history frames carried between chunks.
        steps, strength, guidance_scale, noise_mode, solver: the sampler's
            (:class:`~worldwarp.diffusion.sampler.SamplerConfig`).
        cache_steps, cache_init_scale, cache_w_depth: the 3DGS cache's ``steps``, ``init_scale`` and ``w_depth``
            (:class:`~worldwarp.splat.cache.CacheConfig`).
        start_memory: turn the start-frame memory on or off
            (:class:`~worldwarp.start_memory.StartMemoryConfig` ``enabled``).
        cache_mode, fill, prompt, negative_prompt, seed, progress: the pipeline's own fields.
    """

    height: int | None = None
    width: int | None = None
    chunk_frames: int | None = None
    overlap: int | None = None
    steps: int | None = None
    strength: float | None = None
    guidance_scale: float | None = None
    noise_mode: Literal["spatiotemporal", "full", "spatial", "temporal"] | None = None
    solver: Literal["euler", "renoise", "direct"] | None = None
    cache_steps: int | None = None
    cache_init_scale: Literal["knn", "knn_rms", "footprint"] | None = None
    cache_w_depth: float | None = None
    start_memory: bool | None = None
    cache_mode: Literal["gaussians", "points", "none"] | None = None
    fill: Literal["diffusion", "inpaint", "push_pull"] | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    progress: bool | None = None


def apply_overrides(config: PipelineConfig, overrides: Overrides | None = None) -> PipelineConfig:
    """``config`` with every non-None field of ``overrides`` applied (a new config; ``config`` is unchanged).

    Raises:
        InputError: a value out of range or of the wrong kind (the configs' own checks).
    """
    from worldwarp.errors import InputError

    if overrides is None:
        return config
    top: dict[str, Any] = {}
    sub: dict[str, dict[str, Any]] = {"sampler": {}, "cache": {}, "start_memory": {}}
    for f in fields(Overrides):
        value = getattr(overrides, f.name)
        if value is None:
            continue
        part, name = _TARGETS[f.name]
        (top if part is None else sub[part])[name] = value
    try:
        for part, changes in sub.items():
            if changes:
                top[part] = replace(getattr(config, part), **changes)
        return replace(config, **top)
    except InputError:
        raise
    except (TypeError, ValueError) as e:  # a value of the wrong kind caught by a comparison in a check
        raise InputError(f"invalid setting: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def configure(
    preset: str | None = None, overrides: Overrides | None = None, *, denoiser: str = "tiny"
) -> PipelineConfig:
    """The pipeline preset ``preset`` (None: the denoiser's, :func:`~worldwarp.pipeline.default_preset`) with
    ``overrides`` applied.

    >>> from worldwarp.settings import Overrides, configure
    >>> cfg = configure("cpu", Overrides(strength=0.3, seed=7))
    >>> (cfg.height, cfg.sampler.strength, cfg.seed)
    (128, 0.3, 7)
    >>> configure(None, denoiser="wan").chunk_frames  # the release preset
    81
    """
    from worldwarp.pipeline import PipelineConfig, default_preset

    return apply_overrides(PipelineConfig.preset(preset or default_preset(denoiser)), overrides)
