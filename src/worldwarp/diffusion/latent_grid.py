"""From a pixel validity mask to the diffusion model's latent grid: cells, patches, history and start levels.

A video VAE compresses time by ``time_factor`` (Wan: 4; the first frame is encoded on its own, so latent frame
``t >= 1`` covers pixel frames ``tf (t - 1) + 1 .. tf t``) and space by ``space_factor`` (Wan: 8); one latent
**cell** is one position of one latent frame. The transformer groups ``p x p`` cells (Wan: 2) into one **token**
(patch), and its forward takes one timestep per token.

Two rules, chosen per step by :class:`~worldwarp.diffusion.sampler.SamplerConfig` fields:

``mask_reduction`` (pixel mask -> cells, :func:`pixel_mask_to_cells`):

* ``"strict"``: a cell is warped only if every pixel of every frame it covers is warped
  (:func:`worldwarp.warp.mask_to_latent`);
* ``"release"``: as the authors' release samples it: frame ``tf t`` of each latent frame (frame 0 for ``t = 0``)
  and the top-left pixel ``(sf i, sf j)`` of each ``sf x sf`` block (nearest-neighbour downsampling).

``patch_levels`` (cells -> the level each token shows the model, :func:`start_levels`, :func:`model_levels`):

* ``"strict"``: a token is warped only if all its cells are, so levels are uniform within a patch;
* ``"release"``: every cell keeps its own start level and its own Euler update; the model sees, for each patch,
  the level of its top-left cell.

History (:func:`history_latent_frames`): a latent frame is history when every pixel frame it covers is a history
frame, i.e. the first ``(n_history - 1) // tf + 1`` latent frames (the release's rule too). History cells start
(and stay) at level 0; warped cells start at ``sigma_warped``; holes at 1.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from worldwarp.diffusion.denoisers.base import cells_to_tokens, tokens_to_cells
from worldwarp.diffusion.schedule import NoiseMode, initial_levels, warp_token_mask

__all__ = [
    "LatentGridRule",
    "LATENT_GRID_RULES",
    "history_latent_frames",
    "model_levels",
    "pixel_mask_to_cells",
    "start_levels",
]

LatentGridRule = Literal["strict", "release"]
LATENT_GRID_RULES: tuple[str, ...] = get_args(LatentGridRule)


def _check_rule(rule: str, what: str) -> None:
    if rule not in LATENT_GRID_RULES:
        raise ValueError(f"unknown {what} rule {rule!r}; choose one of {', '.join(LATENT_GRID_RULES)}")


def pixel_mask_to_cells(mask: Tensor, time_factor: int, space_factor: int, rule: LatentGridRule = "strict") -> Tensor:
    """Reduce a pixel mask (..., T, H, W) bool to latent cells (..., T', H / sf, W / sf) bool.

    ``T' = 1 + (T - 1) // time_factor`` (trailing frames that do not fill a group are dropped, as the VAE drops
    them); H and W must be multiples of ``space_factor``. See the module docstring for the two rules.
    """
    _check_rule(rule, "mask reduction")
    if rule == "strict":
        from worldwarp.warp import mask_to_latent

        return mask_to_latent(mask, time_factor, space_factor)
    if mask.ndim < 3:
        raise ValueError(f"mask must have shape (..., T, H, W), got {tuple(mask.shape)}")
    if time_factor < 1 or space_factor < 1:
        raise ValueError(f"compression factors must be >= 1, got time {time_factor}, space {space_factor}")
    *_, t, h, w = mask.shape
    if h % space_factor or w % space_factor:
        raise ValueError(f"mask size {h}x{w} is not a multiple of the spatial factor {space_factor}")
    t_lat = 1 + (t - 1) // time_factor
    frames = mask.bool()[..., : time_factor * (t_lat - 1) + 1 : time_factor, :, :]  # frames 0, tf, 2 tf, ...
    return frames[..., ::space_factor, ::space_factor].clone()


def history_latent_frames(
    num_history_frames: int, num_latent_frames: int, time_factor: int, device: torch.device | str | None = None
) -> Tensor:
    """(T',) bool: latent frame t is history when all pixel frames it covers are among the first ``n`` frames.

    Latent frame 0 covers frame 0; latent frame ``t >= 1`` ends at frame ``tf t``, so the history latent frames are
    the first ``(n - 1) // tf + 1`` (n >= 1).
    """
    if num_history_frames < 1:
        raise ValueError(f"need at least one history frame, got {num_history_frames}")
    last = torch.arange(num_latent_frames, device=device) * int(time_factor)  # last pixel frame of each latent
    return last < int(num_history_frames)


def start_levels(
    cell_mask: Tensor,
    history: Tensor,
    sigma_warped: float,
    patch_size: int,
    rule: LatentGridRule = "strict",
    mode: NoiseMode = "spatiotemporal",
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Start level of every latent cell (B, T', H', W'): history 0, warped ``sigma_warped``, holes 1.

    ``cell_mask`` (B, T', H', W') bool (True = warped), ``history`` (B, T') bool. With ``rule="strict"`` the mask is
    first reduced to patches (a patch is warped only if all its cells are); with ``"release"`` each cell keeps its
    own level. ``mode`` selects the noise-mode ablation (:func:`~worldwarp.diffusion.schedule.warp_token_mask`),
    applied on tokens (strict) or on cells (release).
    """
    _check_rule(rule, "patch level")
    if rule == "strict":
        return tokens_to_cells(initial_levels(cell_mask, history, sigma_warped, patch_size, mode, dtype), patch_size)
    if cell_mask.ndim != 4:
        raise ValueError(f"cell_mask must have shape (B, T', H', W'), got {tuple(cell_mask.shape)}")
    if history.shape != cell_mask.shape[:2]:
        raise ValueError(f"history {tuple(history.shape)} does not match the mask's (B, T') {cell_mask.shape[:2]}")
    p = int(patch_size)
    if cell_mask.shape[-2] % p or cell_mask.shape[-1] % p:
        raise ValueError(f"latent size {tuple(cell_mask.shape[-2:])} is not divisible by the patch size {p}")
    warped = warp_token_mask(cell_mask.bool(), history, mode)
    device = cell_mask.device
    levels = torch.where(
        warped,
        torch.tensor(float(sigma_warped), dtype=dtype, device=device),
        torch.tensor(1.0, dtype=dtype, device=device),
    )
    return levels.masked_fill(history.bool()[:, :, None, None], 0.0)


def model_levels(cell_levels: Tensor, patch_size: int, rule: LatentGridRule = "strict") -> Tensor:
    """The level each token shows the model (B, T', H'/p, W'/p) from per-cell levels (B, T', H', W').

    ``"strict"``: the cells' common level (raises ``ValueError`` if a patch is mixed); ``"release"``: the level of
    the patch's top-left cell.
    """
    _check_rule(rule, "patch level")
    if rule == "strict":
        return cells_to_tokens(cell_levels, patch_size)
    p = int(patch_size)
    if cell_levels.ndim != 4:
        raise ValueError(f"cell_levels must have shape (B, T', H', W'), got {tuple(cell_levels.shape)}")
    if cell_levels.shape[-2] % p or cell_levels.shape[-1] % p:
        raise ValueError(f"latent size {tuple(cell_levels.shape[-2:])} is not divisible by the patch size {p}")
    return cell_levels[..., ::p, ::p]
