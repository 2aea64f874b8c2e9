"""Fill-and-revise sampling (ST-Diff): per-token Euler sampling of a flow-matching model from a warped prior.

Independent of any particular model: it drives a :class:`~worldwarp.diffusion.denoisers.base.Denoiser` through
the schedule of :mod:`worldwarp.diffusion.schedule`. See that module for the rules (start levels, waiting tokens,
history re-imposed after every step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from worldwarp.diffusion.denoisers.base import Denoiser, cells_to_tokens, tokens_to_cells
from worldwarp.diffusion.schedule import (
    NOISE_MODES,
    NoiseMode,
    euler_step,
    flow_sigmas,
    initial_levels,
    levels_at,
    start_index,
)

__all__ = ["SamplerConfig", "sample", "noise_init"]


@dataclass
class SamplerConfig:
    """Sampling settings (paper defaults).

    Attributes:
        steps: Euler steps S of the global schedule (paper 50).
        shift: flow-matching time shift (Wan 5).
        strength: tau in [0, 1]; warped tokens start at schedule index ``min(floor((1 - tau) S), S - 1)``
            (paper 0.8; the UI's default 0.6; useful range 0.5-0.8); 0 exactly keeps them as warped (no
            revision: only the holes are generated).
        guidance_scale: classifier-free guidance against the negative prompt (paper 5; 1 disables it and skips
            the unconditional pass).
        noise_mode: ``"spatiotemporal"`` (the method) or one of the ablations ``"full"``, ``"spatial"``,
            ``"temporal"`` (see :func:`worldwarp.diffusion.schedule.warp_token_mask`).
    """

    steps: int = 50
    shift: float = 5.0
    strength: float = 0.8
    guidance_scale: float = 5.0
    noise_mode: NoiseMode = "spatiotemporal"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.shift <= 0:
            raise ValueError(f"shift must be > 0, got {self.shift}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must lie in [0, 1], got {self.strength}")
        if self.noise_mode not in NOISE_MODES:
            raise ValueError(f"unknown noise mode {self.noise_mode!r}; choose one of {', '.join(NOISE_MODES)}")


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
) -> Tensor:
    """Fill holes and revise the warped prior; returns clean latents (B, C, T', H', W').

    Args:
        denoiser: any :class:`Denoiser`.
        prior_latents: (B, C, T', H', W') encoded warped prior; history latent frames must hold the clean history.
        latent_mask: (B, T', H', W') bool, True where the warped prior is valid (reduced to patches internally: a
            patch is valid only if all its cells are).
        history: (B, T') bool, True for clean history latent frames (level 0, restored after every step).
        config: :class:`SamplerConfig`.
        generator: the source of the initial noise (on the latents' device); None uses torch's global RNG.
        cond: the denoiser's conditioning (``denoiser.encode_prompt(...)``); None means empty prompts.
        progress: show a tqdm bar.

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
    p = denoiser.patch_size
    sigmas = flow_sigmas(config.steps, config.shift, dtype=torch.float64, device=device)
    sigma_w = float(sigmas[start_index(config.strength, config.steps)])
    levels0 = initial_levels(latent_mask.to(device), history.to(device), sigma_w, p, config.noise_mode)  # (B,T,h,w)
    levels0_cells = tokens_to_cells(levels0, p)  # (B, T', H', W')
    hist = history.to(device).bool()[:, None, :, None, None]  # (B, 1, T', 1, 1)

    noise = torch.randn(prior.shape, generator=generator, device=device, dtype=torch.float32).to(dtype)
    x = noise_init(prior, levels0_cells, noise)
    if cond is None:
        cond = denoiser.encode_prompt("", "")

    for i in tqdm(range(config.steps), desc="ST-Diff", disable=not progress, leave=False):
        cur = levels_at(levels0_cells, sigmas[i])
        nxt = levels_at(levels0_cells, sigmas[i + 1])
        if not bool((cur != nxt).any()):
            continue  # every token is waiting (or done): nothing to integrate in this step
        token_sigmas = cells_to_tokens(cur, p).to(dtype)  # (B, T', H'/p, W'/p)
        v = denoiser.velocity(x, token_sigmas, cond, config.guidance_scale)
        x = euler_step(x, v, cur, nxt)
        x = torch.where(hist, prior, x)
    return x.to(prior_latents.dtype)
