"""The plain-torch reference compositor: every pixel against every visible Gaussian, no tiling.

Short and readable on purpose; it is the truth the fast backends are tested against. Pixels are processed in
chunks (recomputed in the backward pass via checkpointing) so memory stays bounded.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from worldwarp.splat.raster.projection import ALPHA_MAX, ALPHA_MIN, T_STOP, Projected

__all__ = ["composite_reference"]

# pixel-Gaussian pairs per chunk
CHUNK_PAIRS = 1 << 22


def _composite_chunk(
    pix: Tensor, means2d: Tensor, conics: Tensor, opacities: Tensor, colors: Tensor, depths: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Composite P pixel centres (P, 2) against G depth-sorted Gaussians; returns (P, 3), (P,), (P,)."""
    d = pix[:, None, :] - means2d[None]  # (P, G, 2)
    dx, dy = d[..., 0], d[..., 1]
    power = -0.5 * (conics[:, 0] * dx * dx + conics[:, 2] * dy * dy) - conics[:, 1] * dx * dy
    alpha = (opacities * torch.exp(power)).clamp(max=ALPHA_MAX)  # (P, G)
    alpha = torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))
    survive = torch.cumprod(1.0 - alpha, dim=1)
    T = torch.cat([torch.ones_like(survive[:, :1]), survive[:, :-1]], dim=1)  # transmittance before each
    weights = alpha * T * (T >= T_STOP).detach()  # (P, G)
    return weights @ colors, weights.sum(dim=1), weights @ depths


def composite_reference(proj: Projected, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Front-to-back alpha compositing of depth-sorted visible Gaussians (see :func:`sorted_visible`).

    Returns ``color`` (H, W, 3) = sum_i w_i c_i, ``alpha`` (H, W) = sum_i w_i and ``depth`` (H, W) =
    sum_i w_i z_i (not yet divided by alpha) with ``w_i = alpha_i prod_{j<i} (1 - alpha_j)``.
    """
    dtype, device = proj.means2d.dtype, proj.means2d.device
    v, u = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device) + 0.5,
        torch.arange(width, dtype=dtype, device=device) + 0.5,
        indexing="ij",
    )
    pix = torch.stack([u, v], dim=-1).reshape(-1, 2)  # (H*W, 2)
    g = proj.means2d.shape[0]
    args = (proj.means2d, proj.conics, proj.opacities, proj.colors, proj.depths)
    use_ckpt = torch.is_grad_enabled() and any(a.requires_grad for a in args)
    step = max(1, CHUNK_PAIRS // max(g, 1))
    outs = []
    for s in range(0, pix.shape[0], step):
        if use_ckpt:
            outs.append(checkpoint(_composite_chunk, pix[s : s + step], *args, use_reentrant=False))
        else:
            outs.append(_composite_chunk(pix[s : s + step], *args))
    color = torch.cat([o[0] for o in outs]).reshape(height, width, 3)
    alpha = torch.cat([o[1] for o in outs]).reshape(height, width)
    depth = torch.cat([o[2] for o in outs]).reshape(height, width)
    return color, alpha, depth
