"""``worldwarp train``: train an ST-Diff denoiser with the paper's recipe (docs/training.md).

    worldwarp train --denoiser tiny --dataset procedural|transforms:DIR --steps N --out DIR [--resume]
                    [--batch B --lr LR --frames T --height H --width W --seed S --save-every K]

Runs as one process, or under ``accelerate launch [--num_processes N] [--cpu] -m worldwarp train ...``.
``transforms:DIR`` is a nerfstudio ``transforms.json`` folder with ``depth_file_path`` entries (e.g. written by
``worldwarp scenes render``), or a folder of such folders.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from worldwarp.errors import InputError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train an ST-Diff denoiser (tiny or wan) on clips with depth and cameras",
        description="Train an ST-Diff denoiser with the paper's recipe (see docs/training.md).",
    )
    p.add_argument("--denoiser", choices=("tiny", "wan"), default="tiny")
    p.add_argument("--dataset", required=True, help="'procedural' or 'transforms:DIR'")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--out", required=True, help="output folder (checkpoints/, log.jsonl, model/)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    p.add_argument("--batch", type=int, default=1, help="clips per process and step")
    p.add_argument("--lr", type=float, default=None, help="default: 3e-4 (tiny), 5e-5 (wan)")
    p.add_argument("--warmup", type=int, default=None, help="default: 100 (tiny), 1000 (wan)")
    p.add_argument(
        "--lr-schedule", choices=("constant", "cosine"), default="constant", help="after warm-up (paper: constant)"
    )
    p.add_argument("--min-lr-ratio", type=float, default=0.0, help="cosine: final lr as a fraction of --lr")
    p.add_argument("--frames", type=int, default=17, help="frames per clip (T - 1 divisible by the time factor)")
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--frame-stride", type=int, default=1, help="transforms: take every k-th frame")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even when CUDA is available")
    p.add_argument("--history-prob", type=float, default=0.0, help="chance of clean history latent frames")
    p.add_argument("--init", default=None, help="tiny: start from this checkpoint folder; wan: ST-Diff weights")
    p.add_argument(
        "--sigma-shift", type=float, default=5.0, help="shift of the training level distribution (1 = uniform)"
    )
    p.add_argument("--max-history", type=int, default=1, help="at most this many clean history latent frames")
    p.add_argument(
        "--clean-warped-prob", type=float, default=0.0, help="chance per latent frame that warped tokens are clean"
    )
    p.add_argument(
        "--pure-hole-prob", type=float, default=0.0, help="chance per latent frame that holes are at level 1 exactly"
    )
    p.add_argument("--crop", default=None, help="HxW: train on random windows of this size (after warping)")
    p.add_argument(
        "--warp-source",
        choices=("points", "cache"),
        default="points",
        help="points: point-splat the source frame into the clip (fast); cache: fit the CPU preset's 3DGS cache to "
        "it and forward-warp without the reprojection check, as the CPU preset warps (one cache fit per clip)",
    )
    p.add_argument(
        "--warp-cache-steps", type=int, default=None, help="--warp-source cache: Adam steps (default: the CPU preset's)"
    )
    p.add_argument("--ema-decay", type=float, default=0.0, help="export an EMA of the weights (0 = none)")
    p.add_argument(
        "--tiny-width", type=int, default=None, help="tiny from scratch: size of the level embedding (default 64)"
    )
    p.add_argument(
        "--tiny-depth",
        type=int,
        default=None,
        help="tiny from scratch: residual blocks per level and direction (default 1)",
    )
    p.add_argument(
        "--tiny-widths", default=None, help="tiny from scratch: channels of the 3 levels (default 64,96,128)"
    )
    p.add_argument(
        "--tiny-pixel-width",
        type=int,
        default=None,
        help="tiny: hidden channels of the pixel head (with --init: adds a zero-initialised head to it)",
    )
    p.add_argument(
        "--tiny-hole-init",
        choices=("noise", "push_pull"),
        default=None,
        help="tiny unet: what holes start from (with --init: switches the checkpoint, weights kept)",
    )
    p.add_argument(
        "--tiny-revise-init",
        choices=("noise", "prior"),
        default=None,
        help="tiny unet: what the warped cells start from (prior: the warp itself, restored in one direct pass; "
        "with --init: switches the checkpoint, weights kept)",
    )
    p.add_argument(
        "--revise-level",
        type=float,
        default=None,
        help="--tiny-revise-init prior: level of the warped cells (the preset's warped start level; default "
        "TrainConfig's 5/6 = 2 grid steps, shift 5, strength 0.5)",
    )
    p.add_argument("--wan-model", default="Wan-AI/Wan2.1-T2V-1.3B-Diffusers", help="wan: local folder or hub id")
    p.add_argument("--no-progress", action="store_true")
    return p


def _with_pixel_head(base: Any, width: int, seed: int) -> Any:
    """``base`` (a tiny model) with a fresh pixel head of ``width`` channels; the same function (zero-initialised)."""
    import torch

    from worldwarp.diffusion.denoisers.tiny import TinyDenoiser

    if base.config.pixel_width:
        raise InputError("--tiny-pixel-width with --init adds a pixel head to a checkpoint that has none")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = TinyDenoiser(replace(base.config, pixel_width=width))
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("net.pixel.") for k in missing), (missing, unexpected)
    return model


def _with_hole_init(base: Any, hole_init: str) -> Any:
    """``base`` (a tiny U-Net) switched to ``hole_init``: same weights, ``blank_pure_noise`` off for a guess, and
    the output convolution set to zero for a guess, so the switched model returns the guess exactly (one step
    from level 1) and training learns the correction from there."""
    import torch

    from worldwarp.diffusion.denoisers.tiny import TinyDenoiser

    blank = base.config.blank_pure_noise and hole_init == "noise"
    try:
        model = TinyDenoiser(replace(base.config, hole_init=hole_init, blank_pure_noise=blank))
    except ValueError as e:
        raise InputError(f"--tiny-hole-init {hole_init}: {e}") from None
    model.load_state_dict(base.state_dict())
    if hole_init != "noise":
        with torch.no_grad():
            model.net.out.weight.zero_()
            model.net.out.bias.zero_()
    return model


def _with_revise_init(base: Any, revise_init: str) -> Any:
    """``base`` (a tiny U-Net) switched to ``revise_init``, same weights (the holes' trained correction is kept)."""
    from worldwarp.diffusion.denoisers.tiny import TinyDenoiser

    try:
        model = TinyDenoiser(replace(base.config, revise_init=revise_init))
    except ValueError as e:
        raise InputError(f"--tiny-revise-init {revise_init}: {e}") from None
    model.load_state_dict(base.state_dict())
    return model


def _denoiser(args: argparse.Namespace) -> Any:
    import torch

    if args.denoiser == "tiny":
        from worldwarp.diffusion.denoisers.tiny import TinyDenoiser, TinyDenoiserConfig

        if args.init:
            base = TinyDenoiser.from_pretrained(args.init)
            if args.tiny_hole_init is not None and args.tiny_hole_init != base.config.hole_init:
                base = _with_hole_init(base, args.tiny_hole_init)
            if args.tiny_revise_init is not None and args.tiny_revise_init != base.config.revise_init:
                base = _with_revise_init(base, args.tiny_revise_init)
            if args.tiny_pixel_width is None or args.tiny_pixel_width == base.config.pixel_width:
                return base
            return _with_pixel_head(base, args.tiny_pixel_width, args.seed)
        overrides: dict[str, Any] = {
            k: v
            for k, v in (
                ("width", args.tiny_width),
                ("depth", args.tiny_depth),
                ("pixel_width", args.tiny_pixel_width),
                ("hole_init", args.tiny_hole_init),
                ("revise_init", args.tiny_revise_init),
            )
            if v is not None
        }
        if args.tiny_widths:
            try:
                overrides["widths"] = tuple(int(w) for w in args.tiny_widths.split(","))
            except ValueError:
                raise InputError(f"--tiny-widths must be comma-separated integers, got {args.tiny_widths!r}") from None
        try:
            config = TinyDenoiserConfig(**overrides)
        except ValueError as e:
            raise InputError(f"bad tiny model options: {e}") from None
        with torch.random.fork_rng():
            torch.manual_seed(args.seed)
            return TinyDenoiser(config)
    from worldwarp.diffusion.denoisers.wan import WanConfig, WanDenoiser

    return WanDenoiser.from_config(WanConfig(model=args.wan_model, stdiff_weights=args.init))


def run(args: argparse.Namespace) -> int:
    from worldwarp.diffusion.training import DEFAULT_LR, TrainConfig, train
    from worldwarp.diffusion.training_data import training_dataset

    for name in ("steps", "batch", "frames", "height", "width", "frame_stride", "save_every"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.sigma_shift > 0:
        raise InputError(f"--sigma-shift must be > 0, got {args.sigma_shift}")
    if not 0 <= args.min_lr_ratio <= 1:
        raise InputError(f"--min-lr-ratio must lie in [0, 1], got {args.min_lr_ratio}")
    crop = None
    if args.crop:
        try:
            crop = tuple(int(x) for x in args.crop.lower().split("x"))
        except ValueError:
            crop = ()
        if len(crop) != 2 or min(crop) < 1 or crop[0] > args.height or crop[1] > args.width:
            raise InputError(f"--crop must be HxW within --height x --width, got {args.crop!r}")
    if args.revise_level is not None and not 0 < args.revise_level <= 1:
        raise InputError(f"--revise-level must lie in (0, 1], got {args.revise_level}")
    if not (0 <= args.clean_warped_prob <= 1 and 0 <= args.pure_hole_prob <= 1 and 0 <= args.ema_decay < 1):
        raise InputError("--clean-warped-prob and --pure-hole-prob must lie in [0, 1], --ema-decay in [0, 1)")
    warp_cache, cache_warp = None, None
    if args.warp_source == "cache":
        from dataclasses import replace

        from worldwarp.pipeline import PipelineConfig

        warp_cache, cache_warp = PipelineConfig.cpu().cache, PipelineConfig.cpu().warp  # as the preset warps
        if args.warp_cache_steps is not None:
            if args.warp_cache_steps < 1:
                raise InputError(f"--warp-cache-steps must be >= 1, got {args.warp_cache_steps}")
            warp_cache = replace(warp_cache, steps=args.warp_cache_steps)
    elif args.warp_cache_steps is not None:
        raise InputError("--warp-cache-steps needs --warp-source cache")
    denoiser = _denoiser(args)
    if (args.frames - 1) % denoiser.time_factor:
        raise InputError(f"--frames {args.frames}: T - 1 must be a multiple of {denoiser.time_factor}")
    cell = denoiser.space_factor * denoiser.patch_size
    if args.height % cell or args.width % cell or (crop and (crop[0] % cell or crop[1] % cell)):
        raise InputError(f"--height, --width and --crop must be multiples of {cell} for the {args.denoiser} denoiser")
    dataset = training_dataset(args.dataset, args.frames, args.height, args.width, args.frame_stride, args.seed)
    config = TrainConfig(
        steps=args.steps,
        batch=args.batch,
        lr=args.lr if args.lr is not None else DEFAULT_LR[args.denoiser],
        warmup=args.warmup if args.warmup is not None else (100 if args.denoiser == "tiny" else 1000),
        lr_schedule=args.lr_schedule,
        min_lr_ratio=args.min_lr_ratio,
        seed=args.seed,
        save_every=args.save_every,
        out=args.out,
        mixed_precision=args.mixed_precision,
        cpu=args.cpu,
        history_prob=args.history_prob,
        max_history=args.max_history,
        sigma_shift=args.sigma_shift,
        clean_warped_prob=args.clean_warped_prob,
        pure_hole_prob=args.pure_hole_prob,
        crop=crop,
        ema_decay=args.ema_decay,
        warp_cache=warp_cache,
        cache_warp=cache_warp,
        **({} if args.revise_level is None else {"revise_level": args.revise_level}),
    )
    result = train(denoiser, dataset, config, resume=args.resume, progress=not args.no_progress)
    print(f"trained to step {int(result['step'])}, loss {result['loss']:.4f}; weights in {Path(args.out) / 'model'}")
    return 0
