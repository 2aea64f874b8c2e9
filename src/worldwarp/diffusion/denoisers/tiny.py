"""The embedded ST-Diff: a small spatio-temporal transformer that runs on a CPU through the same sampler.

Design (measured and justified in docs/training.md):

* **Autoencoder**: exact and weight-free. Pixels in [0, 1] are mapped to [-1, 1]; frames after the first are
  stacked in groups of ``time_factor`` (the first frame is encoded on its own, replicated, like Wan's causal VAE);
  then ``space_factor`` x ``space_factor`` pixel-unshuffle. ``latent_channels = 3 * time_factor * space_factor**2``
  (48 with the defaults 1 and 4). Decoding is the exact inverse (clamped to [0, 1]).
* **Velocity model**: patchify (``patch_size`` x ``patch_size`` cells -> one token), factorised transformer blocks
  (attention within each latent frame, then across latent frames at each position, then an MLP), each modulated
  per token (adaLN-Zero) by a sinusoidal embedding of the token's ``sigma * 1000`` plus a conditioning embedding;
  fixed sinusoidal (t, y, x) positions, so any size works.
* **Conditioning**: no text model. A prompt maps to one of two learned embeddings: the empty string is the
  "null" embedding, any other text is the "scene" embedding. Training drops the prompt to "" at random, so
  classifier-free guidance between a non-empty prompt and an empty negative prompt is meaningful; a non-empty
  negative prompt gives the same embedding as the prompt and guidance then has no effect.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldwarp.diffusion.denoisers.base import NUM_TRAIN_TIMESTEPS, classifier_free_guidance
from worldwarp.errors import InputError

__all__ = ["TinyDenoiserConfig", "TinyConditioning", "TinyDenoiser", "DEFAULT_CHECKPOINT"]

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "assets" / "tiny_stdiff"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class TinyDenoiserConfig:
    """Architecture of :class:`TinyDenoiser`.

    Attributes:
        space_factor: pixel-unshuffle factor (pixels per latent cell along each axis).
        time_factor: frames stacked per latent frame after the first (1 = one latent frame per frame).
        patch_size: latent cells per token along each spatial axis.
        width: transformer width d.
        depth: number of transformer blocks.
        heads: attention heads (``width`` must be divisible by it).
        mlp_ratio: hidden size of the MLP relative to ``width``.
        freq_dim: size of the sinusoidal noise-level embedding.
    """

    space_factor: int = 4
    time_factor: int = 1
    patch_size: int = 2
    width: int = 128
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 2.0
    freq_dim: int = 64

    def __post_init__(self) -> None:
        for name in ("space_factor", "time_factor", "patch_size", "width", "depth", "heads", "freq_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TinyDenoiserConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.width % 8 or self.freq_dim % 2:
            raise ValueError("width must be a multiple of 8 and freq_dim even")


@dataclass
class TinyConditioning:
    """Indices of the learned conditioning embeddings: 0 = "scene" (non-empty text), 1 = "null" (empty)."""

    positive: int
    negative: int


def sinusoidal(x: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """(..., dim) sinusoidal embedding [cos, sin] of the values ``x`` (...)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
    args = x.float()[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _positions(T: int, h: int, w: int, dim: int, device: torch.device) -> Tensor:
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
        # x, mod_c: (B, T, S, d) tokens of T latent frames with S positions each; mod (B, T, S, 9d)
        B, T, S, d = x.shape
        m = mod.chunk(9, dim=-1)
        h = self.norm(x) * (1 + m[0]) + m[1]
        x = x + m[2] * self._attn(h.reshape(B * T, S, d), self.qkv_s, self.out_s).reshape(B, T, S, d)
        h = self.norm(x) * (1 + m[3]) + m[4]
        h = h.transpose(1, 2).reshape(B * S, T, d)
        x = x + m[5] * self._attn(h, self.qkv_t, self.out_t).reshape(B, S, T, d).transpose(1, 2)
        h = self.norm(x) * (1 + m[6]) + m[7]
        return x + m[8] * self.mlp(h)


class TinyDenoiser(nn.Module):
    """Embedded ST-Diff denoiser implementing the :class:`~worldwarp.diffusion.denoisers.base.Denoiser` protocol.

    Construct with a :class:`TinyDenoiserConfig` (random weights) or load with :meth:`from_pretrained`. The caller
    moves it with ``.to(device, dtype)``; ``encode``/``decode`` are exact and keep the input's dtype.
    """

    def __init__(self, config: TinyDenoiserConfig | None = None) -> None:
        super().__init__()
        self.config = config or TinyDenoiserConfig()
        c = self.config
        self.time_factor = c.time_factor
        self.space_factor = c.space_factor
        self.patch_size = c.patch_size
        self.latent_channels = 3 * c.time_factor * c.space_factor**2
        d, tok = c.width, self.latent_channels * c.patch_size**2
        self.embed = nn.Linear(tok, d)
        self.sigma_mlp = nn.Sequential(nn.Linear(c.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.cond_embed = nn.Embedding(2, d)
        self.blocks = nn.ModuleList([_Block(d, c.heads, c.mlp_ratio) for _ in range(c.depth)])
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_mod = nn.Linear(d, 2 * d)
        self.final = nn.Linear(d, tok)
        for layer in (self.final_mod, self.final):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ------------------------------------------------------------------ autoencoder (exact)
    def latent_frames(self, frames: int) -> int:
        """T' = 1 + (T - 1) // time_factor (T - 1 must be divisible by time_factor)."""
        if frames < 1 or (frames - 1) % self.time_factor:
            raise ValueError(f"{frames} frames: T - 1 must be a multiple of time_factor {self.time_factor}")
        return 1 + (frames - 1) // self.time_factor

    def encode(self, video: Tensor) -> Tensor:
        """Latents (B, C, T', H/s, W/s) of a video (B, 3, T, H, W) in [0, 1] (s = space_factor)."""
        B, three, T, H, W = video.shape
        s, k = self.space_factor, self.time_factor
        if three != 3 or H % s or W % s:
            raise ValueError(f"video must be (B, 3, T, H, W) with H, W divisible by {s}, got {tuple(video.shape)}")
        Tl = self.latent_frames(T)
        x = video * 2 - 1
        x = torch.cat([x[:, :, :1].expand(B, 3, k, H, W), x[:, :, 1:]], dim=2)  # (B, 3, k T', H, W)
        x = x.reshape(B, 3, Tl, k, H, W).permute(0, 2, 1, 3, 4, 5).reshape(B * Tl, 3 * k, H, W)
        x = F.pixel_unshuffle(x, s)  # (B T', 3 k s^2, H/s, W/s)
        return x.reshape(B, Tl, self.latent_channels, H // s, W // s).transpose(1, 2).contiguous()

    def decode(self, latents: Tensor) -> Tensor:
        """Video (B, 3, T, H, W) in [0, 1] of latents (B, C, T', H', W'); the first frame averages its replicas."""
        B, C, Tl, h, w = latents.shape
        s, k = self.space_factor, self.time_factor
        if C != self.latent_channels:
            raise ValueError(f"latents must have {self.latent_channels} channels, got {C}")
        x = latents.transpose(1, 2).reshape(B * Tl, C, h, w)
        x = F.pixel_shuffle(x, s).reshape(B, Tl, 3, k, h * s, w * s).permute(0, 2, 1, 3, 4, 5)
        x = x.reshape(B, 3, Tl * k, h * s, w * s)
        first = x[:, :, :k].mean(dim=2, keepdim=True)
        video = torch.cat([first, x[:, :, k:]], dim=2)
        return ((video + 1) / 2).clamp(0, 1)

    # ------------------------------------------------------------------ conditioning
    def encode_prompt(self, prompt: str, negative: str = "") -> TinyConditioning:
        """Empty text -> the "null" embedding, any other text -> the "scene" embedding (text is not read)."""
        return TinyConditioning(positive=0 if prompt.strip() else 1, negative=0 if negative.strip() else 1)

    # ------------------------------------------------------------------ velocity
    def forward(self, latents: Tensor, sigmas: Tensor, cond_index: Tensor) -> Tensor:
        """Raw model: latents (B, C, T', H', W'), per-token sigmas (B, T', H'/p, W'/p), cond_index (B,) long."""
        B, C, T, H, W = latents.shape
        p = self.patch_size
        h, w = H // p, W // p
        if sigmas.shape != (B, T, h, w):
            raise ValueError(f"sigmas must have shape {(B, T, h, w)}, got {tuple(sigmas.shape)}")
        dtype = self.embed.weight.dtype
        x = latents.to(dtype).reshape(B, C, T, h, p, w, p).permute(0, 2, 3, 5, 1, 4, 6).reshape(B, T, h * w, -1)
        x = self.embed(x) + _positions(T, h, w, self.config.width, x.device).to(dtype).reshape(1, T, h * w, -1)
        # per-token conditioning, computed once per distinct (sigma, cond) pair and gathered
        key = sigmas.to(torch.float64) + 2.0 * cond_index.to(torch.float64)[:, None, None, None]
        uniq, inv = torch.unique(key.reshape(-1), return_inverse=True)
        u_cond = torch.div(uniq, 2.0, rounding_mode="floor")
        u_sigma = uniq - 2.0 * u_cond
        e = self.sigma_mlp(sinusoidal(u_sigma * NUM_TRAIN_TIMESTEPS, self.config.freq_dim).to(dtype))
        e = F.silu(e + self.cond_embed(u_cond.long()))  # (U, d)
        inv = inv.reshape(B, T, h * w)
        for blk in self.blocks:
            x = blk(x, blk.mod(e)[inv])
        shift, scale = self.final_mod(e)[inv].chunk(2, dim=-1)
        x = self.final(self.final_norm(x) * (1 + scale) + shift)  # (B, T, h w, C p p)
        x = x.reshape(B, T, h, w, C, p, p).permute(0, 4, 1, 2, 5, 3, 6).reshape(B, C, T, H, W)
        return x.to(latents.dtype)

    def velocity(
        self, latents: Tensor, sigmas: Tensor, cond: TinyConditioning | None = None, guidance_scale: float = 1.0
    ) -> Tensor:
        """Guided velocity (B, C, T', H', W') for per-token levels ``sigmas`` (B, T', H'/p, W'/p) in [0, 1]."""
        cond = cond or self.encode_prompt("scene", "")
        B = latents.shape[0]
        dev = latents.device
        pos = torch.full((B,), cond.positive, dtype=torch.long, device=dev)
        neg = torch.full((B,), cond.negative, dtype=torch.long, device=dev)
        if cond.positive == cond.negative:
            guidance_scale = 1.0  # identical embeddings: guidance is the identity, skip the second pass
        return classifier_free_guidance(self.forward, latents, sigmas, pos, neg, guidance_scale)

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, path: str | os.PathLike[str]) -> None:
        """Write ``config.json`` and ``model.safetensors`` into the folder ``path`` (each atomically)."""
        from safetensors.torch import save_file

        from worldwarp.io.atomic import atomic_path, atomic_write_json

        out = Path(path)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        with atomic_path(out / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp))
        atomic_write_json(out / CONFIG_NAME, {"model": "tiny_stdiff", **asdict(self.config)})

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None) -> TinyDenoiser:
        """Load a checkpoint folder written by :meth:`save_pretrained` (default: the packaged one), on CPU float32."""
        from safetensors.torch import load_file

        folder = Path(path) if path is not None else DEFAULT_CHECKPOINT
        cfg_file, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        if not cfg_file.is_file() or not weights.is_file():
            raise InputError(
                f"{folder}: no tiny ST-Diff checkpoint ({CONFIG_NAME} + {WEIGHTS_NAME}); train one with "
                f"`worldwarp train --denoiser tiny --out DIR` and pass DIR"
            )
        try:
            raw = json.loads(cfg_file.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"{cfg_file}:{e.lineno}: invalid JSON ({e.msg})") from None
        known = {f.name for f in fields(TinyDenoiserConfig)}
        unknown = set(raw) - known - {"model"}
        if unknown:
            raise InputError(f"{cfg_file}: unknown config keys {sorted(unknown)}")
        model = cls(TinyDenoiserConfig(**{k: v for k, v in raw.items() if k in known}))
        try:
            model.load_state_dict(load_file(str(weights)))
        except Exception as e:  # safetensors header errors, missing/unexpected keys, shape mismatches
            raise InputError(f"{weights}: cannot load weights ({str(e).splitlines()[0]})") from None
        return model
