"""The embedded ST-Diff: a small spatio-temporal velocity model that runs on a CPU through the same sampler.

Design (measured and justified in docs/training.md):

* **Autoencoder**: exact and weight-free. Pixels in [0, 1] are mapped to [-1, 1]; frames after the first are
  stacked in groups of ``time_factor`` (the first frame is encoded on its own, replicated, like Wan's causal VAE);
  then ``space_factor`` x ``space_factor`` pixel-unshuffle. ``latent_channels = 3 * time_factor * space_factor**2``
  (48 with the defaults 1 and 4). Decoding is the exact inverse (clamped to [0, 1]).
* **Velocity model**: :class:`~worldwarp.diffusion.denoisers.tiny_unet.TinyUNet`, a preconditioned video U-Net
  (residual convolutions per latent frame, temporal attention on the finer levels, spatio-temporal attention on the
  coarsest) that takes one noise level per token, embedded together with the condition. ``arch`` names it in
  ``config.json``; ``"unet"`` is the only value. The transformer that was shipped before it is retired: its
  checkpoints are refused with a message (docs/training.md keeps its recipe).
* **Conditioning**: no text model. A prompt maps to one of two learned embeddings: the empty string is the
  "null" embedding, any other text is the "scene" embedding. Training drops the prompt to "" at random, so
  classifier-free guidance between a non-empty prompt and an empty negative prompt is meaningful; a non-empty
  negative prompt gives the same embedding as the prompt and guidance then has no effect.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldwarp.diffusion.denoisers.base import classifier_free_guidance
from worldwarp.diffusion.denoisers.tiny_unet import TinyUNet
from worldwarp.errors import InputError

__all__ = ["TinyDenoiserConfig", "TinyConditioning", "TinyDenoiser", "DEFAULT_CHECKPOINT"]

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "assets" / "tiny_stdiff"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
HOLE_INITS = ("noise", "push_pull")
REVISE_INITS = ("noise", "prior")
# config keys of retired architectures that older U-Net checkpoints still carry (read and ignored): the transformer's
# MLP ratio and convolutional refiner, and the skip of the first U-Net experiment
RETIRED_KEYS = ("mlp_ratio", "refine_width", "skip_std")


@dataclass
class TinyDenoiserConfig:
    """Architecture of :class:`TinyDenoiser`; the defaults are the shipped model's sizes.

    Attributes:
        arch: velocity network; ``"unet"`` (:class:`~worldwarp.diffusion.denoisers.tiny_unet.TinyUNet`) is the only
            one.
        space_factor: pixel-unshuffle factor (pixels per latent cell along each axis).
        time_factor: frames stacked per latent frame after the first (1 = one latent frame per frame).
        patch_size: latent cells per token along each spatial axis (noise levels are uniform within a token).
        width: size of the (noise level, condition) embedding that modulates every residual block.
        depth: residual blocks per level and direction.
        heads: attention heads (``width`` and every entry of ``widths`` must be divisible by it).
        freq_dim: size of the sinusoidal noise-level code.
        widths: feature channels of the three levels, finest first.
        sigma_data: data standard deviation ``s`` of the EDM preconditioning (latents in [-1, 1]).
        pixel_width: hidden channels of the zero-initialised pixel head, 3x3 convolutions at pixel resolution across
            latent-cell borders (0 = none).
        blank_pure_noise: the network sees 0 instead of the input at cells of level 1 (pure noise), so the clean
            estimate there is deterministic (:mod:`~worldwarp.diffusion.denoisers.tiny_unet`).
        hole_init: what the holes start from at level 1: ``"noise"`` (pure noise, the method) or ``"push_pull"``
            (the push-pull interpolation of the warped frame, :mod:`~worldwarp.diffusion.hole_guess`; the network
            then predicts a correction of that guess, and training feeds the same guess).
        revise_init: what the warped cells start from at their revision level: ``"noise"`` (the warp noised to
            that level, the method) or ``"prior"`` (the warp itself, without noise; needs ``hole_init="push_pull"``):
            the network predicts a correction of the warp as it does of the hole guess, for the sampler's
            ``"direct"`` solver (one pass restores the warp and fills the holes; module docstring of
            :mod:`~worldwarp.diffusion.denoisers.tiny_unet`).
    """

    arch: str = "unet"
    space_factor: int = 4
    time_factor: int = 1
    patch_size: int = 1
    width: int = 64
    depth: int = 1
    heads: int = 4
    freq_dim: int = 64
    widths: tuple[int, int, int] = (64, 96, 128)
    sigma_data: float = 0.5
    pixel_width: int = 0
    blank_pure_noise: bool = False
    hole_init: str = "noise"
    revise_init: str = "noise"

    def __post_init__(self) -> None:
        if self.arch != "unet":
            raise ValueError(f"TinyDenoiserConfig.arch must be 'unet', got {self.arch!r}")
        self.widths = tuple(int(w) for w in self.widths)  # type: ignore[assignment]
        for name in ("space_factor", "time_factor", "patch_size", "width", "depth", "heads", "freq_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TinyDenoiserConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.width % 8 or self.freq_dim % 2:
            raise ValueError("width must be a multiple of 8 and freq_dim even")
        if len(self.widths) != 3 or any(w < 8 or w % 8 or w % self.heads for w in self.widths):
            raise ValueError(f"widths must be 3 multiples of 8 and of heads, got {list(self.widths)}")
        if int(self.pixel_width) < 0:
            raise ValueError(f"TinyDenoiserConfig.pixel_width must be >= 0, got {self.pixel_width}")
        if self.hole_init not in HOLE_INITS:
            raise ValueError(f"hole_init must be one of {', '.join(HOLE_INITS)}, got {self.hole_init!r}")
        if self.hole_init != "noise" and self.blank_pure_noise:
            raise ValueError("hole_init 'push_pull' needs blank_pure_noise off (the network must see the guess)")
        if self.revise_init not in REVISE_INITS:
            raise ValueError(f"revise_init must be one of {', '.join(REVISE_INITS)}, got {self.revise_init!r}")
        if self.revise_init == "prior" and self.hole_init != "push_pull":
            raise ValueError("revise_init 'prior' needs hole_init 'push_pull' (every cell above level 0 holds a guess)")
        if not 0.0 < float(self.sigma_data) < 10.0:
            raise ValueError(f"sigma_data must be in (0, 10), got {self.sigma_data}")


@dataclass
class TinyConditioning:
    """Indices of the learned conditioning embeddings: 0 = "scene" (non-empty text), 1 = "null" (empty)."""

    positive: int
    negative: int


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
        self.hole_init = c.hole_init  # read by the fill and by training (what level-1 hole cells hold)
        self.revise_init = c.revise_init  # read by the fill and by training (what revised warped cells hold)
        self.net = TinyUNet(
            self.latent_channels,
            c.patch_size,
            c.widths,
            c.depth,
            c.heads,
            c.width,
            c.freq_dim,
            c.sigma_data,
            c.space_factor,
            c.pixel_width,
            c.blank_pure_noise,
            c.hole_init != "noise",
            c.revise_init == "prior",
        )

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
        if C != self.latent_channels or H % p or W % p:
            raise ValueError(f"latents must be (B, {self.latent_channels}, T', H', W') with H', W' divisible by {p}")
        if sigmas.shape != (B, T, H // p, W // p):
            raise ValueError(f"sigmas must have shape {(B, T, H // p, W // p)}, got {tuple(sigmas.shape)}")
        return self.net(latents, sigmas, cond_index)

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
        if not isinstance(raw, dict):
            raise InputError(f"{cfg_file}: invalid config (expected a JSON object)")
        if raw.get("arch", "transformer") == "transformer":  # checkpoints written before the U-Net have no "arch"
            raise InputError(
                f"{folder}: a checkpoint of the tiny transformer, the embedded model before the U-Net; that "
                f"architecture was retired (docs/training.md); retrain with `worldwarp train --denoiser tiny`"
            )
        known = {f.name for f in fields(TinyDenoiserConfig)}
        for key in RETIRED_KEYS:
            raw.pop(key, None)
        unknown = set(raw) - known - {"model"}
        if unknown:
            raise InputError(f"{cfg_file}: unknown config keys {sorted(unknown)}")
        try:
            model = cls(TinyDenoiserConfig(**{k: v for k, v in raw.items() if k in known}))
        except (TypeError, ValueError) as e:
            raise InputError(f"{cfg_file}: invalid config ({e})") from None
        try:
            model.load_state_dict(load_file(str(weights)))
        except Exception as e:  # safetensors header errors, missing/unexpected keys, shape mismatches
            raise InputError(f"{weights}: cannot load weights ({str(e).splitlines()[0]})") from None
        return model
