"""ST-Diff training: the paper's recipe (sec. 4.1) for any :class:`~worldwarp.diffusion.denoisers.base.Denoiser`.

For every clip (frames (T, 3, H, W), z-depth (T, H, W), :class:`~worldwarp.cameras.Cameras`):

1. pick a source frame and forward-warp it into every frame of the clip by point splatting
   (:func:`worldwarp.warp.point_cloud_warp`, fixed radius) -> warped video + validity mask;
2. encode the warped and the ground-truth video; reduce the mask to the token grid
   (:func:`worldwarp.diffusion.latent_grid.pixel_mask_to_cells`, strict rule, then patches: a token is valid only
   if all its cells are);
3. composite ``z_c = warped where valid, ground truth elsewhere``;
4. for every latent frame draw an independent pair (sigma_warped, sigma_filled); ``Sigma = M sigma_warped +
   (1 - M) sigma_filled``; ``z_t = (1 - Sigma) z_c + Sigma eps``;
5. the model gets one level per token; loss = MSE(v, eps - z_gt).

Levels are drawn as ``shift_sigmas(u, sigma_shift)`` with ``u ~ U(0, 1)`` (the sampling schedule's shift).
Optionally (``history_prob``) the first latent frames are made clean history (level 0, ground truth, no loss),
as the sampler sees them. Every random draw of step ``k`` on process ``r`` comes from a generator seeded with
``(seed, k, r)`` and the clip indices are a function of ``(k, r)``, so resuming from a checkpoint is exact.

:func:`train` runs the loop under :class:`accelerate.Accelerator` (single process, or ``accelerate launch`` for
DDP), saving model + optimizer + scheduler + RNG states + step atomically every ``save_every`` steps.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

from worldwarp.cameras import Cameras
from worldwarp.diffusion.denoisers.base import Denoiser, tokens_to_cells
from worldwarp.diffusion.schedule import reduce_mask_to_patches, shift_sigmas
from worldwarp.splat.cache import CacheConfig
from worldwarp.warp import WarpConfig

__all__ = [
    "ClipDataset",
    "TrainConfig",
    "TrainingInputs",
    "DEFAULT_LR",
    "warp_source_into_clip",
    "cache_warp_source_into_clip",
    "make_training_inputs",
    "training_loss",
    "step_generator",
    "train",
    "trainable_module",
    "latest_checkpoint",
    "WeightAverage",
]

# Learning rates: the paper's for Wan (full fine-tune), a higher one for the small model trained from scratch.
DEFAULT_LR = {"wan": 5e-5, "tiny": 3e-4}
CHECKPOINTS = "checkpoints"
LATEST = "latest"
STATE_NAME = "train_state.json"
LOG_NAME = "log.jsonl"
EMA_NAME = "ema.safetensors"


class ClipDataset(Protocol):
    """Indexable clips: ``dataset[i] -> (frames (T, 3, H, W) in [0, 1], depths (T, H, W), Cameras of T)``.

    The index may exceed ``len(dataset)``; the trainer asks for ``i % len(dataset)``.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Cameras]: ...


@dataclass
class TrainConfig:
    """Training settings.

    Attributes:
        steps: optimiser steps in total (a resumed run continues up to this number).
        batch: clips per process and step (the global batch is ``batch * num_processes``).
        lr: AdamW learning rate (paper 5e-5 for Wan; see :data:`DEFAULT_LR`).
        weight_decay: AdamW weight decay.
        warmup: linear warm-up steps (paper 1000).
        lr_schedule: after warm-up, ``"constant"`` (paper) or ``"cosine"`` (half a cosine from ``lr`` down to
            ``min_lr_ratio * lr`` at ``steps``; see :func:`lr_factor`).
        min_lr_ratio: the cosine schedule's final learning rate as a fraction of ``lr``.
        grad_clip: clip the global gradient norm to this (0 disables).
        seed: seed of every random draw (clip choice, source frame, noise levels, noise).
        save_every: write a checkpoint every this many steps (and always at the end).
        log_every: append a line to ``log.jsonl`` every this many steps.
        out: output folder (checkpoints/, log.jsonl, model/ with the final weights).
        mixed_precision: ``"no"``, ``"fp16"`` or ``"bf16"`` (accelerate's autocast).
        cpu: force the CPU even when CUDA is available.
        sigma_shift: time shift of the training level distribution ``shift_sigmas(U(0, 1), sigma_shift)``.
        cond_dropout: probability that a step uses the empty prompt (enables classifier-free guidance).
        prompt: the text condition of the other steps.
        warp_radius: splat radius in pixels of the source-frame point warp.
        warp_erosion: erosion of the warp mask at 480 px (scaled with the resolution, as at inference).
        warp_cache: None: the source frame is point-splatted into the clip (:func:`warp_source_into_clip`); a
            :class:`~worldwarp.splat.cache.CacheConfig`: a 3DGS cache is fitted to the source frame with it and
            forward-warped into the clip without the reprojection check (:func:`cache_warp_source_into_clip`), as
            the CPU preset warps, so the holes and the warped pixels look as they do at inference (slower: one
            cache fit per clip and step).
        cache_warp: the forward warp's settings with ``warp_cache`` (the CLI passes the CPU preset's,
            ``PipelineConfig.cpu().warp``); None: no reprojection check and ``warp_erosion``.
        history_prob: probability that a clip's first latent frames are clean history (level 0, no loss).
        max_history: at most this many history latent frames when ``history_prob`` fires.
        clean_warped_prob: probability, per latent frame, that its warped tokens are clean (level 0) instead of
            drawn, as the sampler presents them at strength 0 (only the holes are generated).
        pure_hole_prob: probability, per latent frame, that its hole tokens are at level exactly 1 (pure noise)
            instead of drawn: the level every hole starts from, and the only one a one-step sampler shows the
            model (with ``blank_pure_noise`` the model then learns from zero inputs there).
        crop: ``(height, width)`` random window of the clip (after warping at full size) that the model sees, so a
            model can learn at the pixel scale of use on cheaper inputs; None = the whole frame.
        revise_level: for a denoiser with ``revise_init="prior"``: the level at which every warped token of a
            generated frame holds the warp without noise (the sampler's warped start level in the preset that runs
            the model, e.g. ``sigma_grid(2, 5)[1]`` for 2 grid steps, shift 5 and strength 0.5); see
            :func:`make_training_inputs`.
        ema_decay: keep an exponential moving average of the weights with this decay (0 = none); the exported
            ``OUT/model`` then holds the averaged weights.
    """

    steps: int = 1000
    batch: int = 1
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup: int = 100
    lr_schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    save_every: int = 500
    log_every: int = 1
    out: str = "runs/stdiff"
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    cpu: bool = False
    sigma_shift: float = 5.0
    cond_dropout: float = 0.1
    prompt: str = "a static 3D scene, camera moving"
    warp_radius: float = 1.0
    warp_erosion: int = 15
    warp_cache: CacheConfig | None = None
    cache_warp: WarpConfig | None = None
    history_prob: float = 0.0
    max_history: int = 1
    clean_warped_prob: float = 0.0
    pure_hole_prob: float = 0.0
    crop: tuple[int, int] | None = None
    ema_decay: float = 0.0
    revise_level: float = 5.0 / 6.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.save_every < 1 or self.log_every < 1:
            raise ValueError("steps, batch, save_every and log_every must be >= 1")
        if self.lr <= 0 or self.warmup < 0 or self.grad_clip < 0:
            raise ValueError("lr must be > 0, warmup and grad_clip >= 0")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        if not (0 <= self.cond_dropout <= 1 and 0 <= self.history_prob <= 1):
            raise ValueError("cond_dropout and history_prob must lie in [0, 1]")
        if not self.sigma_shift > 0:
            raise ValueError(f"sigma_shift must be > 0, got {self.sigma_shift}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be constant or cosine, got {self.lr_schedule!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if not (0 <= self.clean_warped_prob <= 1 and 0 <= self.pure_hole_prob <= 1 and 0 <= self.ema_decay < 1):
            raise ValueError("clean_warped_prob and pure_hole_prob must lie in [0, 1] and ema_decay in [0, 1)")
        if not 0 < self.revise_level <= 1:
            raise ValueError(f"revise_level must lie in (0, 1], got {self.revise_level}")
        if self.crop is not None:
            self.crop = (int(self.crop[0]), int(self.crop[1]))
            if min(self.crop) < 1:
                raise ValueError(f"crop must be positive, got {self.crop}")


def lr_factor(step: int, config: TrainConfig) -> float:
    """Learning-rate multiplier after ``step`` scheduler steps (0-based): linear warm-up, then the schedule.

    Warm-up gives ``(step + 1) / warmup`` until it reaches 1. ``"cosine"`` then follows
    ``m + (1 - m) (1 + cos(pi p)) / 2`` with ``p = (step + 1 - warmup) / (steps - warmup)`` clamped to [0, 1] and
    ``m = min_lr_ratio``, so the last step of the run uses ``m * lr``.
    """
    warm = max(1, config.warmup)
    if step + 1 < warm:
        return (step + 1) / warm
    if config.lr_schedule == "constant":
        return 1.0
    span = max(1, config.steps - warm)
    progress = min(1.0, max(0.0, (step + 1 - warm) / span))
    m = config.min_lr_ratio
    return m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class TrainingInputs:
    """One batch, ready for the model.

    Attributes:
        z_t: (B, C, T', H', W') noisy composite latents.
        sigmas: (B, T', H'/p, W'/p) per-token levels.
        target: (B, C, T', H', W') velocity target ``eps - z_gt``.
        weight: (B, 1, T', H', W') 1 for the cells that count in the loss; 0 for clean cells (history frames and
            clean warped tokens: at level 0 the input holds no noise, so the target's noise cannot be predicted).
        token_mask: (B, T', H'/p, W'/p) bool, True where the token took the warped prior.
    """

    z_t: Tensor
    sigmas: Tensor
    target: Tensor
    weight: Tensor
    token_mask: Tensor


def step_generator(seed: int, step: int, rank: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of every random draw of ``step`` on process ``rank`` (a pure function of the three)."""
    return torch.Generator(device=device).manual_seed((int(seed) * 1_000_003 + int(step)) * 1_009 + int(rank))


def warp_source_into_clip(
    frames: Tensor, depths: Tensor, cameras: Cameras, source: int, radius: float = 1.0, erosion: int = 15
) -> tuple[Tensor, Tensor]:
    """Point-splat frame ``source`` into every frame of the clip: warped (T, 3, H, W) and mask (T, H, W) bool."""
    from worldwarp.warp import WarpConfig, point_cloud_warp

    cfg = WarpConfig(point_radius=radius, erosion=erosion)
    res = point_cloud_warp(frames[source : source + 1], depths[source : source + 1], cameras[source], cameras, cfg)
    return res.rgb.to(frames.dtype), res.mask


def cache_warp_source_into_clip(
    frames: Tensor, depths: Tensor, cameras: Cameras, source: int, cache: CacheConfig, warp: WarpConfig
) -> tuple[Tensor, Tensor]:
    """Fit a 3DGS cache to frame ``source`` (with ``cache``) and forward-warp it into every frame of the clip with
    ``warp`` (whose reprojection check, if on, compares against the source frame's depth): warped (T, 3, H, W) and
    mask (T, H, W) bool; the source frame itself is kept exact."""
    from worldwarp.splat.cache import fit_cache
    from worldwarp.warp import forward_warp

    src = slice(source, source + 1)
    with torch.enable_grad():  # callers may run under no_grad; the cache fit needs autograd
        gaussians = fit_cache(frames[src], depths[src], cameras[[source]], cache, progress=False)
    res = forward_warp(gaussians, cameras, cameras[[source]], depths[src], warp)
    warped, mask = res.rgb.to(frames.dtype), res.mask.clone()
    warped[source], mask[source] = frames[source], True
    return warped, mask


def make_training_inputs(
    denoiser: Denoiser,
    frames: Tensor,
    warped: Tensor,
    mask: Tensor,
    generator: torch.Generator,
    sigma_shift: float = 5.0,
    history_prob: float = 0.0,
    max_history: int = 1,
    clean_warped_prob: float = 0.0,
    pure_hole_prob: float = 0.0,
    guess: Tensor | None = None,
    revise_level: float | None = None,
) -> TrainingInputs:
    """Steps 2-4 of the recipe for a batch: frames, warped (B, T, 3, H, W), mask (B, T, H, W) bool.

    ``guess`` (B, T, 3, H, W), for a denoiser with ``hole_init="push_pull"``: the hole guess of the warped frames
    (:func:`worldwarp.diffusion.hole_guess.push_pull_fill`); hole cells at level exactly 1 then hold its encoding
    instead of noise, and their target is ``z_guess - z_gt`` (one Euler step from 1 lands on the ground truth).

    ``revise_level`` (with ``guess``, for a denoiser with ``revise_init="prior"``): every warped token of a frame
    that is not history is at this level and holds the warp's encoding without noise, with the target
    ``(z_warp - z_gt) / revise_level`` (the sampler's ``"direct"`` jump from there lands on the ground truth); the
    drawn warped levels and ``clean_warped_prob`` then do not apply.

    Random draws, in order, from ``generator`` (on the latents' device): per-frame levels u_w, u_f (B, T'), the
    noise eps (B, C, T', H', W'), then the history draws (B,) and (B,) when ``history_prob > 0``, then the clean
    warped draw (B, T') when ``clean_warped_prob > 0``, then the pure-hole draw (B, T') when ``pure_hole_prob > 0``.
    """
    from worldwarp.diffusion.latent_grid import pixel_mask_to_cells

    with torch.no_grad():
        z_gt = denoiser.encode(frames.transpose(1, 2))  # (B, C, T', H', W')
        z_w = denoiser.encode(warped.transpose(1, 2))
    B, C, Tl, H, W = z_gt.shape
    p = denoiser.patch_size
    cells = pixel_mask_to_cells(mask, denoiser.time_factor, denoiser.space_factor)  # (B, T', H', W'), strict
    tok = reduce_mask_to_patches(cells, p)  # (B, T', H'/p, W'/p)
    dev, dt = z_gt.device, z_gt.dtype
    u = torch.rand(2, B, Tl, generator=generator, device=dev, dtype=torch.float64)
    s_w, s_f = shift_sigmas(u, sigma_shift).to(dt)
    sig_tok = torch.where(tok, s_w[:, :, None, None], s_f[:, :, None, None])  # (B, T', h, w)
    eps = torch.randn(z_gt.shape, generator=generator, device=dev, dtype=torch.float32).to(dt)
    weight = torch.ones(B, 1, Tl, 1, 1, dtype=dt, device=dev)
    if history_prob > 0:
        fire = torch.rand(B, generator=generator, device=dev) < history_prob
        n = torch.randint(1, max(1, min(max_history, Tl - 1)) + 1, (B,), generator=generator, device=dev)
        hist = fire[:, None] & (torch.arange(Tl, device=dev)[None] < n[:, None])  # (B, T')
        if Tl < 2:
            hist = torch.zeros_like(hist)
        sig_tok = sig_tok.masked_fill(hist[:, :, None, None], 0.0)
        tok = tok & ~hist[:, :, None, None]
        weight = weight * (~hist).to(dt)[:, None, :, None, None]
    if clean_warped_prob > 0:
        clean = torch.rand(B, Tl, generator=generator, device=dev) < clean_warped_prob  # (B, T')
        sig_tok = sig_tok.masked_fill(clean[:, :, None, None] & tok, 0.0)
    if pure_hole_prob > 0:
        pure = torch.rand(B, Tl, generator=generator, device=dev) < pure_hole_prob  # (B, T')
        sig_tok = sig_tok.masked_fill(pure[:, :, None, None] & ~tok & (sig_tok > 0), 1.0)  # holes, not history
    if revise_level is not None:
        if guess is None or not 0 < revise_level <= 1:
            raise ValueError("revise_level needs a hole guess and must lie in (0, 1]")
        sig_tok = torch.where(tok, torch.full_like(sig_tok, float(revise_level)), sig_tok)  # tok excludes history
    m_cells = tokens_to_cells(tok, p)[:, None]  # (B, 1, T', H', W')
    z_c = torch.where(m_cells, z_w, z_gt)
    sig = tokens_to_cells(sig_tok, p)[:, None]
    weight = weight * (sig > 0).to(dt)  # (B, 1, T', H', W'): clean cells are conditioning, not targets
    z_t = (1 - sig) * z_c + sig * eps
    target = eps - z_gt
    if guess is not None:
        with torch.no_grad():
            z_g = denoiser.encode(guess.transpose(1, 2))  # (B, C, T', H', W')
        at_one = (sig >= 1) & ~m_cells
        z_t = torch.where(at_one, z_g, z_t)
        target = torch.where(at_one, z_g - z_gt, target)
        if revise_level is not None:  # warped cells hold the warp itself; the direct jump must land on z_gt
            rev = m_cells & (sig > 0)
            z_t = torch.where(rev, z_w, z_t)
            target = torch.where(rev, (z_w - z_gt) / float(revise_level), target)
    return TrainingInputs(z_t=z_t, sigmas=sig_tok, target=target, weight=weight, token_mask=tok)


def training_loss(v: Tensor, inputs: TrainingInputs) -> Tensor:
    """Mean squared error between ``v`` and the target over the frames that count (float32)."""
    w = inputs.weight.float().expand_as(v)
    err = (v.float() - inputs.target.float()) ** 2 * w
    return err.sum() / w.sum().clamp_min(1.0)


class _Velocity(nn.Module):
    """Wraps a denoiser so that DDP sees its velocity call as ``forward`` (gradient sync happens there).

    ``trainable`` is the module whose parameters are optimised: the denoiser itself when it is an ``nn.Module``
    (tiny), else its ``transformer`` (wan; the VAE and text encoder stay frozen).
    """

    def __init__(self, denoiser: Any, trainable: nn.Module) -> None:
        super().__init__()
        self.trainable = trainable
        self._denoiser = [denoiser]  # not a registered submodule (it may not be a module, or be ``trainable``)

    @property
    def denoiser(self) -> Any:
        return self._denoiser[0]

    def forward(self, latents: Tensor, sigmas: Tensor, cond: Any) -> Tensor:
        return self.denoiser.velocity(latents, sigmas, cond, 1.0)


def trainable_module(denoiser: Any) -> nn.Module:
    """The part of ``denoiser`` that training optimises (set to train mode with gradients enabled)."""
    if isinstance(denoiser, nn.Module):
        module = denoiser
    elif isinstance(getattr(denoiser, "transformer", None), nn.Module):
        module = denoiser.transformer
        module.requires_grad_(True)
    else:
        raise ValueError(f"cannot train {type(denoiser).__name__}: it is neither an nn.Module nor has a .transformer")
    return module.train()


def latest_checkpoint(out: str | os.PathLike[str]) -> Path | None:
    """The checkpoint folder named by ``OUT/checkpoints/latest``, or None."""
    pointer = Path(out) / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    path = Path(out) / CHECKPOINTS / pointer.read_text().strip()
    return path if path.is_dir() else None


def _load_clips(dataset: ClipDataset, indices: Sequence[int]) -> list[tuple[Tensor, Tensor, Cameras]]:
    n = len(dataset)
    if n == 0:
        raise ValueError("the training dataset is empty")
    return [dataset[i % n] for i in indices]


def _batch(
    denoiser: Denoiser, clips: list[tuple[Tensor, Tensor, Cameras]], config: TrainConfig, gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Warp a random source frame of every clip into the clip: frames, warped (B, T, 3, H, W), mask (B, T, H, W),
    and the hole guess (B, T, 3, H, W) of a ``hole_init="push_pull"`` denoiser (else None), made at full size.

    With ``config.crop`` each clip is then cut to a random window of that size (a window of its own per clip).
    """
    from worldwarp.diffusion.hole_guess import push_pull_fill

    cell = denoiser.space_factor * denoiser.patch_size
    with_guess = getattr(denoiser, "hole_init", "noise") == "push_pull"
    frames, warped, masks, guesses = [], [], [], []
    for f, d, cams in clips:
        src = int(torch.randint(len(f), (1,), generator=gen))
        if config.warp_cache is None:
            w, m = warp_source_into_clip(f, d, cams, src, config.warp_radius, config.warp_erosion)
        else:  # a cache seed of its own per clip and step, drawn from the run's generator
            cache = replace(config.warp_cache, seed=int(torch.randint(2**31, (1,), generator=gen)))
            warp = config.cache_warp or WarpConfig(reprojection=False, erosion=config.warp_erosion)
            w, m = cache_warp_source_into_clip(f, d, cams, src, cache, warp)
        g = push_pull_fill(w, m) if with_guess else w
        if config.crop is not None:
            f, w, m, g = _random_crop((f, w, m, g), config.crop, cell, gen)
        frames.append(f)
        warped.append(w)
        masks.append(m)
        guesses.append(g)
    guess = torch.stack(guesses) if with_guess else None
    return torch.stack(frames), torch.stack(warped), torch.stack(masks), guess


def _random_crop(
    tensors: tuple[Tensor, ...], size: tuple[int, int], cell: int, gen: torch.Generator
) -> tuple[Tensor, ...]:
    """The same random ``size`` window of tensors (..., H, W), its corner on a multiple of ``cell`` pixels."""
    H, W = tensors[0].shape[-2:]
    h, w = size
    if h > H or w > W or h % cell or w % cell:
        raise ValueError(f"crop {h}x{w} must fit in {H}x{W} and be a multiple of {cell}")
    y = int(torch.randint((H - h) // cell + 1, (1,), generator=gen)) * cell
    x = int(torch.randint((W - w) // cell + 1, (1,), generator=gen)) * cell
    return tuple(t[..., y : y + h, x : x + w] for t in tensors)


class WeightAverage:
    """Exponential moving average of a module's floating-point parameters and buffers (kept on the CPU).

    ``update`` after every optimiser step: ``avg <- decay avg + (1 - decay) w``; ``apply_to`` copies the average
    into a module of the same architecture; ``save``/``load`` keep it with a checkpoint (safetensors).
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.avg = {
            k: (v.detach().to("cpu", copy=True).float() if v.is_floating_point() else v.detach().to("cpu", copy=True))
            for k, v in module.state_dict().items()
        }

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for k, v in module.state_dict().items():
            a = self.avg[k]
            if a.is_floating_point():
                a.mul_(self.decay).add_(v.detach().to("cpu").float(), alpha=1 - self.decay)
            else:
                a.copy_(v.detach())

    def apply_to(self, module: nn.Module) -> None:
        state = module.state_dict()
        module.load_state_dict({k: self.avg[k].to(state[k].dtype) for k in state})

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self.avg.items()}, str(path))

    def load(self, path: Path) -> None:
        from safetensors.torch import load_file

        if path.is_file():
            self.avg = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}


def _save(
    accelerator: Any, model: nn.Module, out: Path, step: int, config: TrainConfig, ema: WeightAverage | None = None
) -> Path:
    """Checkpoint atomically: state into ``step_N.tmp``, renamed to ``step_N``, then ``latest`` updated.

    With ``ema`` the average is saved beside the state (``ema.safetensors``) and exported to ``OUT/model``.
    """
    from worldwarp.io.atomic import atomic_write_json, atomic_write_text

    ckdir = out / CHECKPOINTS
    name = f"step_{step:07d}"
    tmp, final = ckdir / f"{name}.tmp", ckdir / name
    if accelerator.is_main_process:
        ckdir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(tmp / STATE_NAME, {"step": step, "config": asdict(config)})
        if ema is not None:
            ema.save(tmp / EMA_NAME)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        atomic_write_text(ckdir / LATEST, name + "\n")
        den = accelerator.unwrap_model(model).denoiser
        if hasattr(den, "save_pretrained"):
            if ema is None:
                den.save_pretrained(out / "model")
            else:
                import copy

                averaged = copy.deepcopy(den)
                ema.apply_to(averaged if isinstance(averaged, nn.Module) else averaged.transformer)
                averaged.save_pretrained(out / "model")
    accelerator.wait_for_everyone()
    return final


def _rewrite_log(path: Path, upto: int) -> None:
    """Keep only the log lines of steps <= ``upto`` (a resumed run re-logs the steps after its checkpoint)."""
    from worldwarp.io.atomic import atomic_write_text

    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= upto]
    atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def train(
    denoiser: Denoiser, dataset: ClipDataset, config: TrainConfig, resume: bool = False, progress: bool = True
) -> dict[str, float]:
    """Train ``denoiser`` in place (its :func:`trainable_module`, parameters with ``requires_grad``).

    Works as a plain single process and under ``accelerate launch`` (DDP). With ``resume`` the run continues from
    ``OUT/checkpoints/latest`` when it exists. Returns ``{"step": last step, "loss": last logged loss}``.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    out = Path(config.out)
    accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=config.cpu)
    model = _Velocity(denoiser, trainable_module(denoiser))
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the denoiser has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    den: Any = denoiser

    trainable = accelerator.unwrap_model(model).trainable
    ema = WeightAverage(trainable, config.ema_decay) if config.ema_decay > 0 else None
    start = 0
    ck = latest_checkpoint(out) if resume else None
    if ck is not None:
        accelerator.load_state(str(ck))
        start = int(json.loads((ck / STATE_NAME).read_text())["step"])
        if ema is not None:
            ema.load(ck / EMA_NAME)
    log_path = out / LOG_NAME
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if start > 0:
            _rewrite_log(log_path, start)
        elif log_path.exists():
            log_path.unlink()
    accelerator.wait_for_everyone()

    rank, world, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    cond = den.encode_prompt(config.prompt, "")
    uncond = den.encode_prompt("", "")
    last = {"step": float(start), "loss": math.nan}
    bar = tqdm(range(start, config.steps), desc="train", disable=not (progress and accelerator.is_main_process))
    t0 = time.time()
    for step in bar:
        gen = step_generator(config.seed, step, rank)
        first = (step * world + rank) * config.batch
        clips = _load_clips(dataset, range(first, first + config.batch))
        frames, warped, mask, guess = _batch(den, clips, config, gen)
        drop = bool(torch.rand((), generator=gen) < config.cond_dropout)
        dgen = step_generator(config.seed, step, rank, device)
        inputs = make_training_inputs(
            den,
            frames.to(device),
            warped.to(device),
            mask.to(device),
            dgen,
            config.sigma_shift,
            config.history_prob,
            config.max_history,
            config.clean_warped_prob,
            config.pure_hole_prob,
            None if guess is None else guess.to(device),
            config.revise_level if getattr(den, "revise_init", "noise") == "prior" else None,
        )
        with accelerator.autocast():
            v = model(inputs.z_t, inputs.sigmas, uncond if drop else cond)
        loss = training_loss(v, inputs)
        accelerator.backward(loss)
        grad_norm: float | None = None
        if config.grad_clip > 0 and accelerator.sync_gradients:
            grad_norm = float(accelerator.clip_grad_norm_(params, config.grad_clip))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(trainable)

        done = step + 1
        mean_loss = float(accelerator.gather(loss.detach()[None]).mean())
        last = {"step": float(done), "loss": mean_loss}
        if accelerator.is_main_process:
            bar.set_postfix(loss=f"{mean_loss:.4f}")
            if done % config.log_every == 0 or done == config.steps:
                rec = {
                    "step": done,
                    "loss": mean_loss,
                    "lr": float(scheduler.get_last_lr()[0]),
                    "grad_norm": grad_norm,
                    "seconds": round(time.time() - t0, 3),
                }
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
        if done % config.save_every == 0 or done == config.steps:
            _save(accelerator, model, out, done, config, ema)
    accelerator.wait_for_everyone()
    return last
