"""Velocity network of the embedded ST-Diff: a small preconditioned video U-Net (``TinyDenoiserConfig.arch``).

A video U-Net over the latent grid, built for a CPU: 2D residual convolutions per latent frame, temporal attention
(across latent frames at each position) on the two finer levels, full spatio-temporal attention on the coarsest
level, skip connections between levels. Every residual block is modulated per cell (scale and shift) by the cell's
(noise level, condition) embedding, and the level map is an extra input channel, so the network sees which cells
are clean (history, kept prior), revised prior or holes.

**Preconditioning** (EDM, Karras et al. 2022, written for flow matching ``z_t = (1 - sigma) z + sigma eps``,
data standard deviation ``s``): with ``D(sigma) = (1 - sigma)^2 s^2 + sigma^2`` the network ``F`` sees
``c_in z_t = z_t / sqrt(D)`` (unit variance at every level) and the clean estimate is

    z_hat = c_skip z_t + c_out F,    c_skip = (1 - sigma) s^2 / D,    c_out = sigma s / sqrt(D),

so at low levels the model is near the identity and only corrects the noise, and at ``sigma = 1`` it predicts the
content. The returned velocity ``v = (z_t - z_hat) / sigma`` is written without the division,
``v = a(sigma) z_t - b(sigma) F`` with ``a = (sigma - (1 - sigma) s^2) / D`` and ``b = s / sqrt(D)``
(:func:`precondition`), so clean cells (``sigma = 0``) are finite too.

**Pixel head** (``pixel_width > 0``): the latent cell of the exact autoencoder is a ``k x k`` block of pixels whose
values come from separate output channels, so a cell-level network shows seams between blocks. The head
rearranges ``F``, the scaled input and the level map to pixels and adds a small residual of 3x3 convolutions there
(zero-initialised, so adding it to a trained network keeps its function), letting every pixel see its neighbours
across cell borders.

**Blank pure noise** (``blank_pure_noise``): a cell at level 1 is pure noise, independent of the video, so it
tells the network nothing; with this option the network sees 0 there (the noise's mean) instead of the draw, and the
clean estimate at level 1 (``c_out F``) is a deterministic function of the conditioning frames: one sampler step
then gives the same fill for every seed, without the grain of a network that lets some of its input noise through.
The velocity still carries the cell's noise (``v = z_t - F / 2`` at level 1), so Euler paths are unchanged in form.

**Guess at level 1** (``guess_at_one``, the model's ``hole_init="push_pull"``): level-1 cells hold a deterministic
guess of the clean latent (the push-pull interpolation of the warped frame, :mod:`~worldwarp.diffusion.hole_guess`)
instead of noise; the network sees it (``c_in = 1`` there) and predicts a correction: the clean estimate is
``z_t + s F``, i.e. ``a = 0`` and ``v = -s F``. One Euler step from level 1 then returns the guess plus the learned
correction.

**Guess at every level** (``guess_everywhere``, the model's ``revise_init="prior"``): every cell above level 0
holds a guess, not only the level-1 ones: the holes their push-pull guess, the warped cells the warped prior
itself, without noise. The clean estimate is ``z_t + s F`` at any level ``sigma > 0`` (``a = 0``,
``b = s / sigma``, so ``v = -s F / sigma`` and the sampler's ``"direct"`` jump ``z_t - sigma v`` returns it); the
level is then a code of what the cell holds (1: a hole's guess; the revision level: a warp to restore), and the
model revises the warp (corrects what the 3DGS cache rendered wrong) in the same pass that fills the holes.

Shapes: latents (B, C, T', H', W') -> velocity of the same shape; levels per token (B, T', H'/p, W'/p).
H' and W' need not be multiples of the level strides: the input is padded and the output cropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldwarp.diffusion.denoisers.base import tokens_to_cells
from worldwarp.diffusion.denoisers.embeddings import LevelEmbedding, positions, sinusoidal

__all__ = ["TinyUNet", "precondition"]

GROUPS = 8


def precondition(sigmas: Tensor, std: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(c_in, a, b)`` per level (float32): network input scale and ``v = a z_t - b F`` (module docstring)."""
    sig = sigmas.float()
    s2 = std * std
    d = (1 - sig) ** 2 * s2 + sig**2
    root = d.sqrt()
    return 1.0 / root, (sig - (1 - sig) * s2) / d, std / root


class _ResBlock(nn.Module):
    """GroupNorm -> per-cell FiLM from the level embedding -> SiLU -> conv3x3 -> GroupNorm -> SiLU -> conv3x3."""

    def __init__(self, cin: int, cout: int, emb: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, cin, eps=1e-6)
        self.film = nn.Conv2d(emb, 2 * cin, 1)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(GROUPS, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        # x: (N, cin, h, w) with N = B T' frames; emb: (N, e, h, w) level embedding map at this resolution
        scale, shift = self.film(emb).chunk(2, dim=1)
        h = self.norm1(x) * (1 + scale) + shift
        h = self.conv1(F.silu(h))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class _Attention(nn.Module):
    """Pre-normed multi-head self-attention over sequences (N, L, c) with additive position codes (L, c)."""

    def __init__(self, c: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.qkv = nn.Linear(c, 3 * c)
        self.out = nn.Linear(c, c)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        n, L, c = x.shape
        q, k, v = self.qkv(self.norm(x) + pos).reshape(n, L, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # (n, heads, L, c/heads)
        return x + self.out(y.transpose(1, 2).reshape(n, L, c))


def _temporal(attn: _Attention, x: Tensor, B: int, T: int) -> Tensor:
    """Attention across the T latent frames at each position of x (B T, c, h, w)."""
    _, c, h, w = x.shape
    seq = x.reshape(B, T, c, h * w).permute(0, 3, 1, 2).reshape(B * h * w, T, c)
    pos = sinusoidal(torch.arange(T, device=x.device), c).to(x.dtype)
    seq = attn(seq, pos)
    return seq.reshape(B, h * w, T, c).permute(0, 2, 3, 1).reshape(B * T, c, h, w)


def _spatiotemporal(attn: _Attention, x: Tensor, B: int, T: int) -> Tensor:
    """Attention over all T h w cells of x (B T, c, h, w) at once."""
    _, c, h, w = x.shape
    seq = x.reshape(B, T, c, h * w).permute(0, 1, 3, 2).reshape(B, T * h * w, c)
    seq = attn(seq, positions(T, h, w, c, x.device).to(x.dtype))
    return seq.reshape(B, T, h * w, c).permute(0, 1, 3, 2).reshape(B * T, c, h, w)


class TinyUNet(nn.Module):
    """Three-level preconditioned video U-Net predicting the flow-matching velocity with per-token noise levels.

    Args:
        channels: latent channels C.
        patch_size: latent cells per token (levels are given per token and broadcast to cells).
        widths: feature channels per level, finest first (3 levels; each a multiple of 8 and of ``heads``).
        depth: residual blocks per level and direction.
        heads: attention heads.
        emb: size of the level embedding.
        freq_dim: size of the sinusoidal code of the level.
        sigma_data: data standard deviation ``s`` of the preconditioning (latents in [-1, 1]).
        space_factor: pixels per latent cell along each axis (the pixel head's unshuffle factor).
        pixel_width: hidden channels of the pixel head (0 = none).
        blank_pure_noise: feed 0 instead of the input at cells of level 1 (module docstring).
        guess_at_one: level-1 cells hold a guess; predict its correction (module docstring).
        guess_everywhere: every cell above level 0 holds a guess (implies ``guess_at_one``; module docstring).
    """

    def __init__(
        self,
        channels: int,
        patch_size: int,
        widths: Sequence[int] = (64, 96, 128),
        depth: int = 1,
        heads: int = 4,
        emb: int = 64,
        freq_dim: int = 64,
        sigma_data: float = 0.5,
        space_factor: int = 4,
        pixel_width: int = 0,
        blank_pure_noise: bool = False,
        guess_at_one: bool = False,
        guess_everywhere: bool = False,
    ) -> None:
        super().__init__()
        if len(widths) != 3 or any(int(w) % GROUPS or int(w) % heads for w in widths):
            raise ValueError(f"widths must be 3 multiples of {GROUPS} and of heads {heads}, got {list(widths)}")
        c0, c1, c2 = (int(w) for w in widths)
        self.patch_size = patch_size
        self.sigma_data = float(sigma_data)
        self.level = LevelEmbedding(emb, freq_dim)
        self.stem = nn.Conv2d(channels + 1, c0, 3, padding=1)
        self.enc0 = nn.ModuleList([_ResBlock(c0, c0, emb) for _ in range(depth)])
        self.enc0_t = _Attention(c0, heads)
        self.down0 = nn.Conv2d(c0, c1, 3, stride=2, padding=1)
        self.enc1 = nn.ModuleList([_ResBlock(c1, c1, emb) for _ in range(depth)])
        self.enc1_t = _Attention(c1, heads)
        self.down1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.mid1 = _ResBlock(c2, c2, emb)
        self.mid_st = _Attention(c2, heads)
        self.mid2 = _ResBlock(c2, c2, emb)
        self.up1 = nn.Conv2d(c2, c1, 3, padding=1)
        self.dec1 = nn.ModuleList([_ResBlock(2 * c1 if i == 0 else c1, c1, emb) for i in range(depth)])
        self.dec1_t = _Attention(c1, heads)
        self.up0 = nn.Conv2d(c1, c0, 3, padding=1)
        self.dec0 = nn.ModuleList([_ResBlock(2 * c0 if i == 0 else c0, c0, emb) for i in range(depth)])
        self.dec0_t = _Attention(c0, heads)
        self.out_norm = nn.GroupNorm(GROUPS, c0, eps=1e-6)
        self.out = nn.Conv2d(c0, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.space_factor = int(space_factor)
        self.blank_pure_noise = bool(blank_pure_noise)
        self.guess_at_one = bool(guess_at_one) or bool(guess_everywhere)
        self.guess_everywhere = bool(guess_everywhere)
        self.pixel: nn.Sequential | None = None
        if pixel_width > 0:
            if channels % self.space_factor**2:
                raise ValueError(f"{channels} latent channels are not a multiple of space_factor^2")
            cp = channels // self.space_factor**2  # channels per pixel
            self.pixel = nn.Sequential(
                nn.Conv2d(2 * cp + 1, pixel_width, 3, padding=1),
                nn.SiLU(),
                nn.Conv2d(pixel_width, pixel_width, 3, padding=1),
                nn.SiLU(),
                nn.Conv2d(pixel_width, cp, 3, padding=1),
            )
            nn.init.zeros_(self.pixel[-1].weight)
            nn.init.zeros_(self.pixel[-1].bias)

    def forward(self, latents: Tensor, sigmas: Tensor, cond_index: Tensor) -> Tensor:
        B, C, T, H, W = latents.shape
        dtype = self.stem.weight.dtype
        cells = tokens_to_cells(sigmas, self.patch_size)  # (B, T, H, W)
        c_in, a, b = (t.to(dtype)[:, None] for t in precondition(cells, self.sigma_data))  # (B, 1, T, H, W)
        e, inv = self.level(cells, cond_index)  # (U, emb), (B, T, H, W)
        # 1. frames as a batch of images (input scaled to unit variance), padded to a multiple of 4
        ph, pw = (-H) % 4, (-W) % 4
        z = latents.to(dtype)
        if self.blank_pure_noise:
            c_in = torch.where(cells[:, None] >= 1, torch.zeros_like(c_in), c_in)
        if self.guess_everywhere:  # every cell above 0 holds a guess: z_t + s F (v = -s F / sigma)
            guess = cells[:, None] > 0
            a = torch.where(guess, torch.zeros_like(a), a)
            b = torch.where(guess, self.sigma_data / cells[:, None].clamp_min(1e-6).to(dtype), b)
        elif self.guess_at_one:  # level-1 cells hold a guess: the clean estimate is z_t + s F (v = -s F)
            a = torch.where(cells[:, None] >= 1, torch.zeros_like(a), a)
        x = (z * c_in).transpose(1, 2).reshape(B * T, C, H, W)
        lv = cells.to(dtype).reshape(B * T, 1, H, W)
        emb0 = e[inv].reshape(B * T, H, W, -1).permute(0, 3, 1, 2)  # (B T, emb, H, W)
        if ph or pw:
            x, lv, emb0 = (F.pad(t, (0, pw, 0, ph), mode="replicate") for t in (x, lv, emb0))
        emb1 = F.avg_pool2d(emb0, 2)
        emb2 = F.avg_pool2d(emb1, 2)
        # 2. encoder
        h0 = self.stem(torch.cat([x, lv], dim=1))
        for blk in self.enc0:
            h0 = blk(h0, emb0)
        h0 = _temporal(self.enc0_t, h0, B, T)
        h1 = self.down0(h0)
        for blk in self.enc1:
            h1 = blk(h1, emb1)
        h1 = _temporal(self.enc1_t, h1, B, T)
        # 3. middle: residual, spatio-temporal attention, residual
        h = self.mid1(self.down1(h1), emb2)
        h = self.mid2(_spatiotemporal(self.mid_st, h, B, T), emb2)
        # 4. decoder with skips
        h = self.up1(F.interpolate(h, size=h1.shape[-2:], mode="nearest"))
        h = torch.cat([h, h1], dim=1)
        for blk in self.dec1:
            h = blk(h, emb1)
        h = _temporal(self.dec1_t, h, B, T)
        h = self.up0(F.interpolate(h, size=h0.shape[-2:], mode="nearest"))
        h = torch.cat([h, h0], dim=1)
        for blk in self.dec0:
            h = blk(h, emb0)
        h = _temporal(self.dec0_t, h, B, T)
        f = self.out(F.silu(self.out_norm(h)))  # (B T, C, H + ph, W + pw)
        if self.pixel is not None:
            # 5. pixel head: the residual sees F, the input and the level map at pixel resolution
            k = self.space_factor
            lvp = F.interpolate(lv, scale_factor=k, mode="nearest")  # (B T, 1, k H, k W)
            inp = torch.cat([F.pixel_shuffle(f, k), F.pixel_shuffle(x, k), lvp], dim=1)
            f = f + F.pixel_unshuffle(self.pixel(inp), k)
        f = f[..., :H, :W]
        f = f.reshape(B, T, C, H, W).transpose(1, 2)  # (B, C, T, H, W)
        # 6. preconditioned output: v = a z_t - b F
        return (a * z - b * f).to(latents.dtype)
