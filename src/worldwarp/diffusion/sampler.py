"""Fill-and-revise sampling (ST-Diff): per-token Euler sampling of a flow-matching model from a warped prior.

Independent of any particular model: it drives a :class:`~worldwarp.diffusion.denoisers.base.Denoiser` through
the schedule of :mod:`worldwarp.diffusion.schedule` on the latent grid of :mod:`worldwarp.diffusion.latent_grid`.
See those modules for the rules (start levels, waiting tokens, history re-imposed after every step, and the
``strict`` / ``release`` variants of the sigma grid, the start index and the patch levels).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from worldwarp.diffusion.denoisers.base import Denoiser
from worldwarp.diffusion.latent_grid import (
    LATENT_GRID_RULES,
    NOISE_MODES,
    LatentGridRule,
    NoiseMode,
    model_levels,
    start_levels,
)
from worldwarp.diffusion.schedule import (
    SIGMA_GRIDS,
    START_RULES,
    SigmaGrid,
    StartRule,
    euler_step,
    levels_at,
    renoise_step,
    sigma_grid,
    start_index,
)
from worldwarp.errors import InputError, check_finite

__all__ = ["SOLVERS", "SamplerConfig", "Solver", "sample", "noise_init"]

Solver = Literal["euler", "renoise", "direct"]
SOLVERS: tuple[str, ...] = ("euler", "renoise", "direct")


@dataclass
class SamplerConfig:
    """Sampling settings (paper numbers; the rule fields default to the embedded model's ``strict`` rules).

    Attributes:
        steps: Euler steps S of the global schedule (paper 50).
        shift: flow-matching time shift (Wan 5).
        strength: tau in [0, 1]; warped tokens start at schedule index ``start_index(tau, S, start_rule)``
            (paper 0.8; the release's UI 0.6; useful range 0.5-0.8); with the strict rule 0 exactly keeps them
            as warped (no revision: only the holes are generated).
        guidance_scale: classifier-free guidance against the negative prompt (paper 5; 1 disables it and skips
            the unconditional pass).
        noise_mode: ``"spatiotemporal"`` (the method) or one of the ablations ``"full"``, ``"spatial"``,
            ``"temporal"`` (see :func:`worldwarp.diffusion.latent_grid.warp_token_mask`).
        sigma_grid: ``"shifted_linspace"`` or ``"scheduler"`` (diffusers' ``FlowMatchEulerDiscreteScheduler``, as
            the release), see :func:`worldwarp.diffusion.schedule.sigma_grid`.
        start_rule: ``"strict"`` or ``"release"`` start index, see :func:`worldwarp.diffusion.schedule.start_index`.
        mask_reduction: pixel mask -> latent cells, ``"strict"`` or ``"release"`` (read by the pipeline), see
            :func:`worldwarp.diffusion.latent_grid.pixel_mask_to_cells`.
        patch_levels: cells -> token levels, ``"strict"`` (uniform patches) or ``"release"`` (per-cell levels, the
            model sees the top-left cell's), see :mod:`worldwarp.diffusion.latent_grid`.
        solver: ``"euler"`` (the paper's and the release's flow-matching Euler steps) or ``"renoise"`` (each step
            noises the clean estimate afresh to the next level with new noise from the generator, see
            :func:`worldwarp.diffusion.schedule.renoise_step`; for small models whose ODE path drifts), or
            ``"direct"``: one model evaluation at the start levels, and every token jumps to its clean estimate
            ``x - sigma v`` (the grid then only places the warped start level; for the embedded model with
            ``revise_init="prior"``, which restores the warp and fills the holes in one pass).
    """

    steps: int = 50
    shift: float = 5.0
    strength: float = 0.8
    guidance_scale: float = 5.0
    noise_mode: NoiseMode = "spatiotemporal"
    sigma_grid: SigmaGrid = "shifted_linspace"
    start_rule: StartRule = "strict"
    mask_reduction: LatentGridRule = "strict"
    patch_levels: LatentGridRule = "strict"
    solver: Solver = "euler"

    def __post_init__(self) -> None:
        check_finite(self)
        if isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Integral) or self.steps < 1:
            raise InputError(f"steps must be a whole number >= 1, got {self.steps!r}")
        if self.shift <= 0:
            raise InputError(f"shift must be > 0, got {self.shift}")
        if not 0.0 <= self.strength <= 1.0:
            raise InputError(f"strength must lie in [0, 1], got {self.strength}")
        if self.guidance_scale < 0:
            raise InputError(f"guidance scale (cfg) must be >= 0, got {self.guidance_scale}")
        if self.noise_mode not in NOISE_MODES:
            raise InputError(f"unknown noise mode {self.noise_mode!r}; choose one of {', '.join(NOISE_MODES)}")
        if self.sigma_grid not in SIGMA_GRIDS:
            raise InputError(f"unknown sigma grid {self.sigma_grid!r}; choose one of {', '.join(SIGMA_GRIDS)}")
        if self.start_rule not in START_RULES:
            raise InputError(f"unknown start rule {self.start_rule!r}; choose one of {', '.join(START_RULES)}")
        if self.solver not in SOLVERS:
            raise InputError(f"unknown solver {self.solver!r}; choose one of {', '.join(SOLVERS)}")
        for name in ("mask_reduction", "patch_levels"):
            if getattr(self, name) not in LATENT_GRID_RULES:
                raise InputError(
                    f"unknown {name} rule {getattr(self, name)!r}; choose one of {', '.join(LATENT_GRID_RULES)}"
                )


def noise_init(prior: Tensor, levels: Tensor, noise: Tensor) -> Tensor:
    """``(1 - level) prior + level noise`` per latent cell; prior, noise (B, C, T', H', W'), levels (B, T', H', W').

    Holes (level 1) are pure noise; history (level 0) is the prior exactly.
    """
    lv = levels.to(prior.dtype)[:, None]
    return torch.where(lv == 1, noise, torch.where(lv == 0, prior, (1 - lv) * prior + lv * noise))


def sample(
    denoiser: Denoiser,
    prior_latents: Tensor,
    latent_mask: Tensor,
    history: Tensor,
    config: SamplerConfig,
    generator: torch.Generator | None = None,
    cond: Any = None,
    progress: bool = True,
    latents: Tensor | None = None,
) -> Tensor:
    """Fill holes and revise the warped prior; returns clean latents (B, C, T', H', W').

    Args:
        denoiser: any :class:`Denoiser`.
        prior_latents: (B, C, T', H', W') encoded warped prior; history latent frames must hold the clean history.
        latent_mask: (B, T', H', W') bool, True where the warped prior is valid (with ``patch_levels="strict"``
            reduced to patches internally: a patch is valid only if all its cells are).
        history: (B, T') bool, True for clean history latent frames (level 0, restored after every step).
        config: :class:`SamplerConfig`.
        generator: the source of the initial noise (on the latents' device) when ``latents`` is None, and of the
            fresh noise of the ``"renoise"`` solver; None uses torch's global RNG.
        cond: the denoiser's conditioning (``denoiser.encode_prompt(...)``); None means empty prompts.
        progress: show a tqdm bar.
        latents: explicit initial noise eps (B, C, T', H', W') (like diffusers' ``latents=``); warped cells start at
            ``(1 - sigma) prior + sigma eps``, holes at ``eps``. None draws it from ``generator``.

    The sampler works in float32 (or float64 if the prior is float64); the denoiser casts to its own dtype.
    """
    if prior_latents.ndim != 5:
        raise ValueError(f"prior_latents must have shape (B, C, T', H', W'), got {tuple(prior_latents.shape)}")
    B, C, T, H, W = prior_latents.shape
    if tuple(latent_mask.shape) != (B, T, H, W):
        raise ValueError(
            f"latent_mask {tuple(latent_mask.shape)} does not match latents (B, T', H', W') {(B, T, H, W)}"
        )
    if tuple(history.shape) != (B, T):
        raise ValueError(f"history {tuple(history.shape)} does not match latents (B, T') {(B, T)}")
    from tqdm.auto import tqdm

    device = prior_latents.device
    dtype = torch.promote_types(prior_latents.dtype, torch.float32)
    prior = prior_latents.to(dtype)
    if latents is not None and tuple(latents.shape) != tuple(prior.shape):
        raise ValueError(f"latents {tuple(latents.shape)} do not match prior_latents {tuple(prior.shape)}")
    p = denoiser.patch_size
    sigmas = sigma_grid(config.steps, config.shift, config.sigma_grid, dtype=torch.float64, device=device)
    sigma_w = float(sigmas[start_index(config.strength, config.steps, config.start_rule)])
    levels0_cells = start_levels(
        latent_mask.to(device), history.to(device), sigma_w, p, config.patch_levels, config.noise_mode
    )  # (B, T', H', W')
    hist = history.to(device).bool()[:, None, :, None, None]  # (B, 1, T', 1, 1)

    if latents is None:
        noise = torch.randn(prior.shape, generator=generator, device=device, dtype=torch.float32).to(dtype)
    else:
        noise = latents.to(device=device, dtype=dtype)
    x = noise_init(prior, levels0_cells, noise)
    if cond is None:
        cond = denoiser.encode_prompt("", "")

    if config.solver == "direct":  # one evaluation at the start levels; every token jumps to its clean estimate
        cur = levels_at(levels0_cells, sigmas[0])
        token_sigmas = model_levels(cur, p, config.patch_levels).to(dtype)
        v = denoiser.velocity(x, token_sigmas, cond, config.guidance_scale)
        x = euler_step(x, v, cur, torch.zeros_like(cur))
        return torch.where(hist, prior, x).to(prior_latents.dtype)
    for i in tqdm(range(config.steps), desc="ST-Diff", disable=not progress, leave=False):
        cur = levels_at(levels0_cells, sigmas[i])
        nxt = levels_at(levels0_cells, sigmas[i + 1])
        if not bool((cur != nxt).any()):
            continue  # every token is waiting (or done): nothing to integrate in this step
        token_sigmas = model_levels(cur, p, config.patch_levels).to(dtype)  # (B, T', H'/p, W'/p)
        v = denoiser.velocity(x, token_sigmas, cond, config.guidance_scale)
        if config.solver == "renoise":
            fresh = torch.randn(prior.shape, generator=generator, device=device, dtype=torch.float32).to(dtype)
            x = renoise_step(x, v, cur, nxt, fresh)
        else:
            x = euler_step(x, v, cur, nxt)
        x = torch.where(hist, prior, x)
    return x.to(prior_latents.dtype)
