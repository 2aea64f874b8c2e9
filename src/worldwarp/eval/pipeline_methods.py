"""Evaluation methods built on :class:`worldwarp.pipeline.WorldWarpPipeline`: the method and its ablations.

Importing this module registers, in :data:`worldwarp.eval.benchmark.METHODS`:

============== ============ ========= ================ ==========================================
name           cache        fill      noise mode       what it measures
============== ============ ========= ================ ==========================================
worldwarp      3DGS         ST-Diff   spatiotemporal   the full method
point-cache    point cloud  ST-Diff   spatiotemporal   3DGS cache vs plain point splatting
no-cache       none         ST-Diff   spatiotemporal   generation without any geometric prior
full-noise     3DGS         ST-Diff   full             one noise level for every token
spatial-noise  3DGS         ST-Diff   spatial          per-position levels only
temporal-noise 3DGS         ST-Diff   temporal         per-frame levels only
inpaint-cache  3DGS         cv2       (none)           classical inpainting of the warped prior
============== ============ ========= ================ ==========================================

Every method runs the pipeline from the scene's start frame with its start depth along the scene's cameras
(at the scene's resolution) and returns the requested frames. Scenes without start depth are skipped
(:class:`~worldwarp.eval.benchmark.SkipScene`): the benchmark compares fill strategies on the same geometry.
The settings are one typed :class:`PipelineMethodConfig`; the variant of each name is fixed (:data:`VARIANTS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from worldwarp.diffusion.denoisers.registry import DenoiserSpec
from worldwarp.errors import InputError
from worldwarp.eval.benchmark import Method, SkipScene, register_method
from worldwarp.eval.datasets import EvalScene

__all__ = [
    "PIPELINE_METHODS",
    "VARIANTS",
    "PipelineMethodConfig",
    "Variant",
    "make_pipeline_config",
    "pipeline_method",
]


@dataclass(frozen=True)
class Variant:
    """What distinguishes one registered pipeline method from another.

    Attributes:
        cache_mode: ``"gaussians"``, ``"points"`` or ``"none"`` (:class:`~worldwarp.pipeline.PipelineConfig`).
        fill: ``"diffusion"``, ``"inpaint"`` or ``"push_pull"``.
        noise_mode: the sampler's noise mode (``"spatiotemporal"``, ``"full"``, ``"spatial"``, ``"temporal"``).
        description: one line for the method list.
    """

    cache_mode: Literal["gaussians", "points", "none"]
    fill: Literal["diffusion", "inpaint", "push_pull"]
    noise_mode: Literal["spatiotemporal", "full", "spatial", "temporal"]
    description: str


VARIANTS: dict[str, Variant] = {
    "worldwarp": Variant("gaussians", "diffusion", "spatiotemporal", "the method: 3DGS cache + ST-Diff"),
    "point-cache": Variant("points", "diffusion", "spatiotemporal", "ablation: point-cloud cache + ST-Diff"),
    "no-cache": Variant("none", "diffusion", "spatiotemporal", "ablation: no geometric cache, ST-Diff only"),
    "full-noise": Variant("gaussians", "diffusion", "full", "ablation: one noise level for all tokens"),
    "spatial-noise": Variant("gaussians", "diffusion", "spatial", "ablation: spatial-only noise levels"),
    "temporal-noise": Variant("gaussians", "diffusion", "temporal", "ablation: temporal-only noise levels"),
    "inpaint-cache": Variant("gaussians", "inpaint", "spatiotemporal", "3DGS cache warp + cv2.inpaint, no revision"),
    "pushpull-cache": Variant("gaussians", "push_pull", "spatiotemporal", "3DGS cache warp + push-pull hole filling"),
}
PIPELINE_METHODS = tuple(VARIANTS)


@dataclass
class PipelineMethodConfig:
    """Settings shared by every pipeline-based method (the variant is fixed by the method's name).

    Attributes:
        denoiser: which ST-Diff model (default: the embedded tiny model shipped with the package).
        preset: base pipeline settings: ``"cpu"`` (embedded: 25-frame chunks, one direct model pass), ``"release"`` (the
            authors' demo) or ``"paper"`` (see docs/wan.md); None picks the denoiser's default
            (:func:`worldwarp.pipeline.default_preset`: ``release`` for ``wan``, ``cpu`` otherwise).
        chunk_frames: override the preset's frames per chunk (history included), or None.
        overlap: override the preset's history frames per chunk, or None.
        steps: override the sampler's Euler steps, or None.
        strength: override the sampler's strength tau, or None.
        guidance_scale: override the sampler's CFG scale, or None.
        solver: override the sampler's solver (``"euler"``, ``"renoise"`` or ``"direct"``), or None.
        cache_steps: override the 3DGS cache's Adam steps, or None.
        cache_init_scale: override the cache's initial Gaussian scales (``"knn"`` or ``"footprint"``), or None.
        cache_w_depth: override the cache's inverse-depth loss weight, or None.
        seed: the pipeline's seed (every chunk's noise and cache fit derive from it).
        device: where the denoiser, the cache and the sampler run (the caller's choice).
        progress: show the pipeline's progress bars.
    """

    denoiser: DenoiserSpec = field(default_factory=DenoiserSpec)
    preset: Literal["cpu", "release", "paper"] | None = None
    chunk_frames: int | None = None
    overlap: int | None = None
    steps: int | None = None
    strength: float | None = None
    guidance_scale: float | None = None
    solver: Literal["euler", "renoise", "direct"] | None = None
    cache_steps: int | None = None
    cache_init_scale: Literal["knn", "footprint"] | None = None
    cache_w_depth: float | None = None
    seed: int = 0
    device: str = "cpu"
    progress: bool = False

    def __post_init__(self) -> None:
        # every value is checked where it is used, by the pipeline's configs: a bad one fails here already
        make_pipeline_config(VARIANTS["worldwarp"], self)


def make_pipeline_config(
    variant: Variant, config: PipelineMethodConfig, height: int | None = None, width: int | None = None
) -> Any:
    """The :class:`~worldwarp.pipeline.PipelineConfig` of ``variant`` at ``height x width`` (None: the preset's)
    under ``config`` (:func:`worldwarp.settings.configure`)."""
    from worldwarp.settings import Overrides, configure

    overrides = Overrides(
        height=height,
        width=width,
        chunk_frames=config.chunk_frames,
        overlap=config.overlap,
        steps=config.steps,
        strength=config.strength,
        guidance_scale=config.guidance_scale,
        noise_mode=variant.noise_mode,
        solver=config.solver,
        cache_steps=config.cache_steps,
        cache_init_scale=config.cache_init_scale,
        cache_w_depth=config.cache_w_depth,
        cache_mode=variant.cache_mode,
        fill=variant.fill,
        seed=config.seed,
        progress=config.progress,
    )
    return configure(config.preset, overrides, denoiser=config.denoiser.name)


def pipeline_method(variant: Variant, config: PipelineMethodConfig, denoiser: Any | None = None) -> Method:
    """A :data:`~worldwarp.eval.benchmark.Method` running the pipeline in ``variant``.

    Args:
        variant: cache / fill / noise mode of the method.
        config: shared settings.
        denoiser: an already built denoiser to use instead of loading ``config.denoiser`` (tests, or to share
            one model between methods); loaded lazily on the first scene otherwise (never for ``inpaint`` fill).
    """
    device = torch.device(config.device)
    holder: dict[str, Any] = {"denoiser": denoiser}

    def get_denoiser() -> Any:
        """The shared denoiser (None for the inpainting fill, which runs no model)."""
        if holder["denoiser"] is None and variant.fill == "diffusion":
            from worldwarp.diffusion.denoisers.registry import load_denoiser

            holder["denoiser"] = load_denoiser(config.denoiser, device)
        return holder["denoiser"] if variant.fill == "diffusion" else None

    def method(scene: EvalScene, indices: list[int]) -> Tensor:
        from worldwarp.pipeline import WorldWarpPipeline

        depth = scene.start_depth
        if depth is None:
            raise SkipScene(f"scene {scene.name} has no start depth (the pipeline methods need it)")
        den = get_denoiser()
        grid = den.space_factor * den.patch_size if den is not None else 1
        if scene.height % grid or scene.width % grid:
            raise InputError(
                f"scene {scene.name}: {scene.height}x{scene.width} is not a multiple of {grid}; "
                f"evaluate at a size that is (e.g. --size 128x192)"
            )
        if max(indices) >= scene.num_frames:
            raise InputError(f"scene {scene.name}: frame {max(indices)} requested, the scene has {scene.num_frames}")
        pcfg = make_pipeline_config(variant, config, scene.height, scene.width)
        pipe = WorldWarpPipeline(den, pcfg, device=device)
        image = scene.start_image.to(device, torch.float32)  # (3, H, W)
        d = depth.to(device, torch.float32)  # (H, W)
        d = torch.where(torch.isfinite(d) & (d > 0), d, torch.zeros_like(d))
        out = pipe(image, scene.cameras, d)
        return out.frames[list(indices)].float().cpu()  # (len(indices), 3, H, W)

    return method


def _factory(name: str) -> Any:
    variant = VARIANTS[name]

    def factory(config: PipelineMethodConfig) -> Method:
        return pipeline_method(variant, config)

    return factory


def register_all() -> None:
    """Register every pipeline method (done once on import; calling it again re-registers the same entries)."""
    for name, variant in VARIANTS.items():
        register_method(name, _factory(name), PipelineMethodConfig, variant.description)


register_all()
