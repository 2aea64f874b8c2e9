"""Velocity network of the embedded ST-Diff, transformer variant (``TinyDenoiserConfig.arch == "transformer"``).

Patchify (``patch_size`` x ``patch_size`` latent cells -> one token), factorised blocks (attention within each latent
frame, then across latent frames at each position, then an MLP), each modulated per token (adaLN-Zero) by the
token's (level, condition) embedding; fixed sinusoidal (t, y, x) positions, so any clip size works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldwarp.diffusion.denoisers.embeddings import LevelEmbedding, positions

__all__ = ["TinyTransformer"]


class _Block(nn.Module):
    """Spatial attention, temporal attention and MLP, each pre-normed, modulated and gated per token."""

    def __init__(self, d: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.qkv_s = nn.Linear(d, 3 * d)
        self.out_s = nn.Linear(d, d)
        self.qkv_t = nn.Linear(d, 3 * d)
        self.out_t = nn.Linear(d, d)
        hidden = int(d * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        self.mod = nn.Linear(d, 9 * d)
        nn.init.zeros_(self.mod.weight)
        nn.init.zeros_(self.mod.bias)

    def _attn(self, x: Tensor, qkv: nn.Linear, out: nn.Linear) -> Tensor:
        n, L, d = x.shape  # (sequences, length, d)
        q, k, v = qkv(x).reshape(n, L, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # (n, heads, L, d/heads)
        return out(y.transpose(1, 2).reshape(n, L, d))

    def forward(self, x: Tensor, mod: Tensor) -> Tensor:
        # x: (B, T, S, d) tokens of T latent frames with S positions each; mod: (B, T, S, 9d)
        B, T, S, d = x.shape
        m = mod.chunk(9, dim=-1)
        h = self.norm(x) * (1 + m[0]) + m[1]
        x = x + m[2] * self._attn(h.reshape(B * T, S, d), self.qkv_s, self.out_s).reshape(B, T, S, d)
        h = self.norm(x) * (1 + m[3]) + m[4]
        h = h.transpose(1, 2).reshape(B * S, T, d)
        x = x + m[5] * self._attn(h, self.qkv_t, self.out_t).reshape(B, S, T, d).transpose(1, 2)
        h = self.norm(x) * (1 + m[6]) + m[7]
        return x + m[8] * self.mlp(h)


class TinyTransformer(nn.Module):
    """Velocity of latents (B, C, T', H', W') given per-token levels (B, T', H'/p, W'/p) and a condition (B,)."""

    def __init__(
        self,
        channels: int,
        patch_size: int,
        width: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        freq_dim: int,
        refine_width: int = 0,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.width = width
        tok = channels * patch_size**2
        self.embed = nn.Linear(tok, width)
        self.level = LevelEmbedding(width, freq_dim)
        self.blocks = nn.ModuleList([_Block(width, heads, mlp_ratio) for _ in range(depth)])
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_mod = nn.Linear(width, 2 * width)
        self.final = nn.Linear(width, tok)
        for layer in (self.final_mod, self.final):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        # optional refiner: v += conv3x3(gelu(conv3x3([v, z_t, sigma]))) on each latent frame's cell grid, so that a
        # cell's prediction sees its neighbours' (the per-token head alone leaves seams between cells)
        self.refine: nn.Sequential | None = None
        if refine_width > 0:
            self.refine = nn.Sequential(
                nn.Conv2d(2 * channels + 1, refine_width, 3, padding=1),
                nn.GELU(approximate="tanh"),
                nn.Conv2d(refine_width, channels, 3, padding=1),
            )
            nn.init.zeros_(self.refine[2].weight)  # starts as the identity: v unchanged
            nn.init.zeros_(self.refine[2].bias)

    def forward(self, latents: Tensor, sigmas: Tensor, cond_index: Tensor) -> Tensor:
        B, C, T, H, W = latents.shape
        p = self.patch_size
        h, w = H // p, W // p
        dtype = self.embed.weight.dtype
        x = latents.to(dtype).reshape(B, C, T, h, p, w, p).permute(0, 2, 3, 5, 1, 4, 6).reshape(B, T, h * w, -1)
        x = self.embed(x) + positions(T, h, w, self.width, x.device).to(dtype).reshape(1, T, h * w, -1)
        e, inv = self.level(sigmas, cond_index)  # (U, d), (B, T, h, w)
        inv = inv.reshape(B, T, h * w)
        for blk in self.blocks:
            x = blk(x, blk.mod(e)[inv])
        shift, scale = self.final_mod(e)[inv].chunk(2, dim=-1)
        x = self.final(self.final_norm(x) * (1 + scale) + shift)  # (B, T, h w, C p p)
        x = x.reshape(B, T, h, w, C, p, p).permute(0, 4, 1, 2, 5, 3, 6).reshape(B, C, T, H, W)
        if self.refine is not None:
            cell_sigma = sigmas.to(dtype).repeat_interleave(p, dim=2).repeat_interleave(p, dim=3)  # (B, T, H, W)
            inp = torch.cat([x, latents.to(dtype), cell_sigma[:, None]], dim=1)  # (B, 2C + 1, T, H, W)
            inp = inp.permute(0, 2, 1, 3, 4).reshape(B * T, 2 * C + 1, H, W)
            dx = self.refine(inp).reshape(B, T, C, H, W).permute(0, 2, 1, 3, 4)
            x = x + dx
        return x.to(latents.dtype)
