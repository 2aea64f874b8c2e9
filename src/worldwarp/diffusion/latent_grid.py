"""From a pixel validity mask to the diffusion model's latent grid: cells, patches, history and start levels.

A video VAE compresses time by ``time_factor`` (Wan: 4; the first frame is encoded on its own, so latent frame
``t >= 1`` covers pixel frames ``tf (t - 1) + 1 .. tf t``) and space by ``space_factor`` (Wan: 8); one latent
**cell** is one position of one latent frame. The transformer groups ``p x p`` cells (Wan: 2) into one **token**
(patch), and its forward takes one timestep per token.

Two rules, chosen per step by :class:`~worldwarp.diffusion.sampler.SamplerConfig` fields:

``mask_reduction`` (pixel mask -> cells, :func:`pixel_mask_to_cells`):

* ``"strict"``: a cell is warped only if every pixel of every frame it covers is warped;
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

__all__ = [
    "LatentGridRule",
    "LATENT_GRID_RULES",
    "NoiseMode",
    "NOISE_MODES",
    "history_latent_frames",
    "initial_levels",
    "model_levels",
    "pixel_mask_to_cells",
    "reduce_mask_to_patches",
    "start_levels",
    "warp_token_mask",
]

LatentGridRule = Literal["strict", "release"]
LATENT_GRID_RULES: tuple[str, ...] = get_args(LatentGridRule)
NoiseMode = Literal["spatiotemporal", "full", "spatial", "temporal"]
NOISE_MODES: tuple[str, ...] = get_args(NoiseMode)


def _check_rule(rule: str, what: str) -> None:
    if rule not in LATENT_GRID_RULES:
        raise ValueError(f"unknown {what} rule {rule!r}; choose one of {', '.join(LATENT_GRID_RULES)}")


def pixel_mask_to_cells(mask: Tensor, time_factor: int, space_factor: int, rule: LatentGridRule = "strict") -> Tensor:
    """Reduce a pixel mask (..., T, H, W) bool to latent cells (..., T', H / sf, W / sf) bool.

    ``T' = 1 + (T - 1) // time_factor`` (trailing frames that do not fill a group are dropped, as the VAE drops
    them); H and W must be multiples of ``space_factor``. See the module docstring for the two rules.
    """
    _check_rule(rule, "mask reduction")
    if mask.ndim < 3:
        raise ValueError(f"mask must have shape (..., T, H, W), got {tuple(mask.shape)}")
    if time_factor < 1 or space_factor < 1:
        raise ValueError(f"compression factors must be >= 1, got time {time_factor}, space {space_factor}")
    *lead, t, h, w = mask.shape
    if h % space_factor or w % space_factor:
        raise ValueError(f"mask size {h}x{w} is not a multiple of the spatial factor {space_factor}")
    mask = mask.bool()
    t_lat = 1 + (t - 1) // time_factor
    if rule == "release":
        frames = mask[..., : time_factor * (t_lat - 1) + 1 : time_factor, :, :]  # frames 0, tf, 2 tf, ...
        return frames[..., ::space_factor, ::space_factor].clone()
    # strict: every pixel of every frame a cell covers (frame 0 alone, then groups of time_factor frames)
    first = mask[..., :1, :, :]
    rest = mask[..., 1 : 1 + (t_lat - 1) * time_factor, :, :]
    rest = rest.reshape(*lead, t_lat - 1, time_factor, h, w).all(dim=-3)
    m = torch.cat([first, rest], dim=-3)  # (..., T', H, W)
    m = m.reshape(*lead, t_lat, h // space_factor, space_factor, w // space_factor, space_factor)
    return m.all(dim=-1).all(dim=-2)


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


def reduce_mask_to_patches(latent_mask: Tensor, patch_size: int) -> Tensor:
    """Token mask (B, T', H'/p, W'/p) bool: a patch is warped only if **all** its latent cells are warped.

    ``latent_mask`` is (B, T', H', W') bool (True = valid warped prior), H' and W' divisible by ``patch_size``.
    Reducing at patch resolution guarantees that noise levels are uniform within a model patch.
    """
    if latent_mask.ndim != 4:
        raise ValueError(f"latent_mask must have shape (B, T', H', W'), got {tuple(latent_mask.shape)}")
    p = int(patch_size)
    B, T, H, W = latent_mask.shape
    if H % p or W % p:
        raise ValueError(f"latent size {H}x{W} is not divisible by the patch size {p}")
    return latent_mask.bool().reshape(B, T, H // p, p, W // p, p).all(dim=5).all(dim=3)


def warp_token_mask(token_mask: Tensor, history: Tensor, mode: NoiseMode = "spatiotemporal") -> Tensor:
    """Which tokens start at the warped level, per noise mode (the paper's ablations), (B, T', h, w) bool.

    ``token_mask`` (B, T', h, w) bool is the patch-level validity of the warped prior; ``history`` (B, T') bool marks
    clean history latent frames, which are excluded from every statistic below (and get level 0 anyway).

    * ``"spatiotemporal"`` (the method): a token is warped iff it is valid.
    * ``"full"`` (full-sequence noise): every token is treated as warped, holes included, i.e. the whole chunk is
      noised from the warped prior at one shared level.
    * ``"spatial"`` (spatial-only noise): one spatial map for all frames: a position is warped iff it is valid in
      every non-history latent frame.
    * ``"temporal"`` (temporal-only noise): one level per frame: a whole frame is warped iff more than half of its
      tokens are valid, otherwise the whole frame is a hole.
    """
    m = token_mask.bool()
    hist = history.bool()[:, :, None, None]
    if mode == "spatiotemporal":
        return m
    if mode == "full":
        return torch.ones_like(m)
    if mode == "spatial":
        spatial = (m | hist).all(dim=1, keepdim=True)  # history frames do not veto a position
        return spatial.expand_as(m)
    if mode == "temporal":
        frac = m.float().mean(dim=(2, 3), keepdim=True)
        return (frac > 0.5).expand_as(m)
    raise ValueError(f"unknown noise mode {mode!r}; choose one of {', '.join(NOISE_MODES)}")


def initial_levels(
    latent_mask: Tensor,
    history: Tensor,
    sigma_warped: float,
    patch_size: int,
    mode: NoiseMode = "spatiotemporal",
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Starting level of every token (B, T', H'/p, W'/p): history 0, warped ``sigma_warped``, hole 1.

    ``latent_mask`` (B, T', H', W') bool (True = warped), ``history`` (B, T') bool. See :func:`warp_token_mask`
    for the modes.
    """
    if history.shape != latent_mask.shape[:2]:
        raise ValueError(f"history {tuple(history.shape)} does not match the mask's (B, T') {latent_mask.shape[:2]}")
    warped = warp_token_mask(reduce_mask_to_patches(latent_mask, patch_size), history, mode)
    return _levels(warped, history, sigma_warped, dtype)


def _levels(warped: Tensor, history: Tensor, sigma_warped: float, dtype: torch.dtype) -> Tensor:
    """History 0, warped ``sigma_warped``, everything else 1 (holes), on the grid of ``warped`` (B, T', h, w)."""
    device = warped.device
    levels = torch.where(
        warped,
        torch.tensor(float(sigma_warped), dtype=dtype, device=device),
        torch.tensor(1.0, dtype=dtype, device=device),
    )
    return levels.masked_fill(history.bool()[:, :, None, None], 0.0)


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
    own level. ``mode`` selects the noise-mode ablation (:func:`warp_token_mask`),
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
    return _levels(warp_token_mask(cell_mask.bool(), history, mode), history, sigma_warped, dtype)


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
