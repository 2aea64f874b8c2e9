"""Flow-matching noise schedule with per-token noise levels (ST-Diff, paper sec. 3.3; DESIGN.md §1 step 5).

Conventions: a latent at noise level ``sigma`` is ``x = (1 - sigma) x0 + sigma eps``; the velocity is
``v = eps - x0``; sampling walks the global schedule ``sigmas[0] = 1 > ... > sigmas[S] = 0``.

Every token (one latent patch of one latent frame) has a **starting level** (set by
:mod:`worldwarp.diffusion.latent_grid`):

* history tokens (clean frames carried over from the previous chunk): ``0``;
* warped tokens (valid forward-warped prior): ``sigmas[start_index(strength, S)]``;
* hole tokens (no valid prior): ``1``.

During step ``i`` (``sigmas[i] -> sigmas[i + 1]``) a token's current level is ``min(level0, sigmas[i])``: it waits
at its own level until the global schedule comes down to it, then follows the schedule. The Euler update
``x <- x + (next - cur) v`` is applied only where the level changes; other tokens are left untouched (bit-exact).

Two global grids (:func:`sigma_grid`) and two start-index rules (:func:`start_index`):

* ``"shifted_linspace"``: ``shift(linspace(1, 0, S + 1))`` computed in float64 (the embedded model's grid);
  ``"scheduler"``: the sigmas of diffusers' ``FlowMatchEulerDiscreteScheduler(shift=shift)`` after
  ``set_timesteps(S)``, as the authors' release calls it (float32 values; the scheduler shifts a grid whose lower
  end is already shifted, so its last non-zero sigma is smaller);
* start index ``"strict"``: ``min(floor((1 - strength) S + 1e-9), S - 1)`` and ``S`` for strength 0;
  ``"release"``: ``min(int((1 - strength) * S), S - 1)`` in plain floating point, as the release computes it
  (strength 0.8 at S = 50 gives 9, because ``(1 - 0.8) * 50 = 9.999999999999998``; strength 0 gives ``S - 1``).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor

# the latent-grid rules (which token starts at which level) live in latent_grid; re-exported for older imports
from worldwarp.diffusion.latent_grid import (
    NOISE_MODES,
    NoiseMode,
    initial_levels,
    reduce_mask_to_patches,
    warp_token_mask,
)

__all__ = [
    "NoiseMode",
    "NOISE_MODES",
    "SigmaGrid",
    "SIGMA_GRIDS",
    "StartRule",
    "START_RULES",
    "shift_sigmas",
    "flow_sigmas",
    "scheduler_sigmas",
    "sigma_grid",
    "start_index",
    "sigma_for_strength",
    "reduce_mask_to_patches",
    "warp_token_mask",
    "initial_levels",
    "levels_at",
    "euler_step",
]

SigmaGrid = Literal["shifted_linspace", "scheduler"]
SIGMA_GRIDS: tuple[str, ...] = get_args(SigmaGrid)
StartRule = Literal["strict", "release"]
START_RULES: tuple[str, ...] = get_args(StartRule)


def shift_sigmas(s: Tensor, shift: float) -> Tensor:
    """Time-shifted levels ``shift * s / (1 + (shift - 1) * s)`` (maps 0 -> 0 and 1 -> 1; shift > 1 noisier)."""
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    return shift * s / (1 + (shift - 1) * s)


def flow_sigmas(
    steps: int, shift: float = 5.0, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> Tensor:
    """The global schedule (steps + 1,): shifted levels of ``linspace(1, 0, steps + 1)``, from 1 down to 0.

    Identical to Wan's sampling sigmas and to diffusers' ``FlowMatchEulerDiscreteScheduler(shift=shift)`` driven
    with ``set_timesteps(sigmas=linspace(1, 0, steps + 1)[:-1])`` (which appends the final 0).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return shift_sigmas(grid, shift).to(device=device, dtype=dtype)


def scheduler_sigmas(
    steps: int, shift: float = 5.0, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> Tensor:
    """The global schedule (steps + 1,) of diffusers' ``FlowMatchEulerDiscreteScheduler(shift=shift)``.

    Exactly ``scheduler.sigmas`` after ``scheduler.set_timesteps(steps)`` (the scheduler's other settings at their
    defaults, 1000 training timesteps), which is how the authors' release builds its grid; the values are float32
    numbers (cast to ``dtype`` exactly), ending in 0. Needs diffusers (``pip install 'worldwarp[wan]'``).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    try:
        from diffusers import FlowMatchEulerDiscreteScheduler
    except ImportError as e:  # pragma: no cover - depends on the install
        from worldwarp.errors import InputError

        raise InputError("the 'scheduler' sigma grid needs diffusers: pip install 'worldwarp[wan]'") from e
    scheduler = FlowMatchEulerDiscreteScheduler(shift=float(shift))
    scheduler.set_timesteps(int(steps), device="cpu")
    return scheduler.sigmas.to(device=device, dtype=dtype)


def sigma_grid(
    steps: int,
    shift: float = 5.0,
    grid: SigmaGrid = "shifted_linspace",
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """The global schedule (steps + 1,) from 1 down to 0: :func:`flow_sigmas` or :func:`scheduler_sigmas`."""
    if grid == "shifted_linspace":
        return flow_sigmas(steps, shift, dtype=dtype, device=device)
    if grid == "scheduler":
        return scheduler_sigmas(steps, shift, dtype=dtype, device=device)
    raise ValueError(f"unknown sigma grid {grid!r}; choose one of {', '.join(SIGMA_GRIDS)}")


def start_index(strength: float, steps: int, rule: StartRule = "strict") -> int:
    """Schedule index where warped tokens start.

    ``rule="strict"``: ``min(floor((1 - strength) * steps), steps - 1)``, and ``steps`` for strength 0.
    ``strength`` 1 starts them at pure noise (index 0); small positive strengths start late but always at least
    one step before the end, so every warped token is revised at least once. ``strength`` 0 exactly is "no
    revision" (as an image-to-image strength of 0 is the identity): index ``steps``, level 0, so warped tokens
    keep the prior like history tokens and only the holes are generated.

    ``rule="release"``: ``min(int((1 - strength) * steps), steps - 1)`` evaluated in floating point, as the
    authors' release does (so 0.8 at 50 steps gives 9, and strength 0 still revises in the last step).
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must lie in [0, 1], got {strength}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if rule == "release":
        return min(int((1.0 - strength) * steps), steps - 1)
    if rule != "strict":
        raise ValueError(f"unknown start rule {rule!r}; choose one of {', '.join(START_RULES)}")
    if strength == 0.0:
        return steps
    # the small epsilon keeps e.g. (1 - 0.8) * 50 = 9.999999999999998 from flooring to 9
    return min(int(math.floor((1.0 - strength) * steps + 1e-9)), steps - 1)


def sigma_for_strength(
    strength: float,
    steps: int,
    shift: float = 5.0,
    grid: SigmaGrid = "shifted_linspace",
    rule: StartRule = "strict",
) -> float:
    """Starting level of warped tokens: ``sigma_grid(steps, shift, grid)[start_index(strength, steps, rule)]``."""
    return float(sigma_grid(steps, shift, grid)[start_index(strength, steps, rule)])


def levels_at(levels0: Tensor, sigma: Tensor | float) -> Tensor:
    """Current level of every token when the global schedule is at ``sigma``: ``min(levels0, sigma)``."""
    return torch.clamp(levels0, max=float(sigma))


def euler_step(x: Tensor, v: Tensor, cur: Tensor, nxt: Tensor) -> Tensor:
    """Per-token flow-matching Euler step ``x + (nxt - cur) v`` where the level changes; elsewhere ``x`` as is.

    ``x``, ``v`` (B, C, T', H', W'); ``cur``, ``nxt`` per-cell levels (B, T', H', W') (broadcast over C).
    """
    dt = (nxt - cur).to(x.dtype)[:, None]
    moving = (nxt != cur)[:, None]
    return torch.where(moving, x + dt * v.to(x.dtype), x)


def renoise_step(x: Tensor, v: Tensor, cur: Tensor, nxt: Tensor, noise: Tensor) -> Tensor:
    """Per-token re-noising step where the level changes; elsewhere ``x`` as is.

    The clean estimate ``x0 = x - cur v`` is noised afresh to the next level: ``(1 - nxt) x0 + nxt noise``
    (``x0`` itself at level 0). Unlike :func:`euler_step`, the model's next input is a fresh noising of its own
    estimate (the distribution it was trained on) instead of a point on its own ODE trajectory, so errors of the
    velocity do not accumulate along the path. ``x``, ``v``, ``noise`` (B, C, T', H', W'); ``cur``, ``nxt``
    (B, T', H', W').
    """
    c = cur.to(x.dtype)[:, None]
    n = nxt.to(x.dtype)[:, None]
    x0 = x - c * v.to(x.dtype)
    moving = (nxt != cur)[:, None]
    return torch.where(moving, torch.where(n == 0, x0, (1 - n) * x0 + n * noise.to(x.dtype)), x)
