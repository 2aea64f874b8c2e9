"""Embeddings of the embedded denoiser's U-Net: sinusoidal codes and the per-token (level, condition) embedding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldwarp.diffusion.denoisers.base import NUM_TRAIN_TIMESTEPS

__all__ = ["sinusoidal", "positions", "LevelEmbedding"]


def sinusoidal(x: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """(..., dim) sinusoidal embedding [cos, sin] of the values ``x`` (...)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
    args = x.float()[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def positions(T: int, h: int, w: int, dim: int, device: torch.device) -> Tensor:
    """(T*h*w, dim) fixed sinusoidal position codes: dim/4 for time, 3dim/8 each for y and x."""
    dt = dim // 4
    dy = (dim - dt) // 2
    dx = dim - dt - dy
    t = sinusoidal(torch.arange(T, device=device, dtype=torch.float32), dt)
    y = sinusoidal(torch.arange(h, device=device, dtype=torch.float32), dy)
    x = sinusoidal(torch.arange(w, device=device, dtype=torch.float32), dx)
    return torch.cat(
        [t[:, None, None].expand(T, h, w, dt), y[None, :, None].expand(T, h, w, dy), x[None, None].expand(T, h, w, dx)],
        dim=-1,
    ).reshape(T * h * w, dim)


class LevelEmbedding(nn.Module):
    """``silu(MLP(sinusoidal(1000 sigma)) + cond_embedding)`` for every token, computed once per distinct pair.

    Sampling has at most three distinct levels per step (history, warped, holes), so the embedding is computed for
    the distinct (sigma, condition) pairs and gathered: :meth:`forward` returns the (U, d) distinct embeddings and
    the (B, ...) index of each token into them.
    """

    def __init__(self, dim: int, freq_dim: int, conditions: int = 2) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.sigma_mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.cond_embed = nn.Embedding(conditions, dim)

    def forward(self, sigmas: Tensor, cond_index: Tensor) -> tuple[Tensor, Tensor]:
        """sigmas (B, ...) in [0, 1], cond_index (B,) long -> embeddings (U, d), index (B, ...) into them."""
        shape = sigmas.shape
        key = sigmas.to(torch.float64) + 2.0 * cond_index.to(torch.float64).reshape(-1, *([1] * (len(shape) - 1)))
        uniq, inv = torch.unique(key.reshape(-1), return_inverse=True)
        u_cond = torch.div(uniq, 2.0, rounding_mode="floor")
        u_sigma = uniq - 2.0 * u_cond
        dtype = self.cond_embed.weight.dtype
        e = self.sigma_mlp(sinusoidal(u_sigma * NUM_TRAIN_TIMESTEPS, self.freq_dim).to(dtype))
        return F.silu(e + self.cond_embed(u_cond.long())), inv.reshape(shape)
