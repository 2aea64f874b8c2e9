"""How well each tiny ST-Diff checkpoint denoises, at every noise level the CPU sampler visits.

Run from the repository root (writes docs/benchmarks/denoiser_levels.md):

    python benchmarks/experiments/denoiser_levels.py --checkpoint shipped=src/worldwarp/assets/tiny_stdiff \
        [--checkpoint NAME=DIR ...] [--size 128x192] [--data ../shared/data]

Clips: 25 consecutive frames (one CPU chunk) of the first procedural "dev" clip, and, when the development data is
present, the 25 frames of the 7-Scenes kitchen (real photographs; evaluation only), both at ``--size``. Every
latent cell gets the same level sigma, ``z_t = (1 - sigma) z + sigma eps``; the model predicts the velocity and the
table gives the RMS error of its clean estimate ``z_t - sigma v`` against ``z`` (latents in [-1, 1]). The levels are
those of the CPU preset's sampler (``flow_sigmas(steps, shift)`` without the final 0; ``--steps S`` tables an
S-step schedule instead). Reference rows: "noisy input" returns ``z_t`` itself (what a model that does nothing
leaves), "linear" the best linear guess ``(1 - sigma) s^2 / ((1 - sigma)^2 s^2 + sigma^2) z_t`` with ``s = 0.5``.
A model is useful at a level only where it beats both; where it loses to "noisy input" the sampler's last steps add
grain. A model with ``hole_init="push_pull"`` sees a guess, not noise, at level 1: there its input is the guess of
an empty warp (mid-grey, latent 0), so "noisy input" at level 1 is that guess. A model with
``revise_init="prior"`` sees the warp itself at the levels below 1 that its sampler visits, so its row shows '-'
there and the last table gives those levels on real warps.

For such a model a second table gives the level the CPU preset actually uses, on real holes: frame 0 is warped (with
its depth) into frames 1-24, the warped cells stay clean (level 0, the history frame 0 too), the hole cells hold the
push-pull guess at level 1, and the RMS error over the hole cells compares the model's clean estimate with the guess
itself (a model that does nothing returns the guess). Two warps: "point splat", the one training uses
(``warp_source_into_clip``), and "preset cache", the CPU preset's first chunk (its 3DGS cache fitted on frame 0, its
forward warp and mask).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from dataclasses import replace
from pathlib import Path

import torch

from suite_eval import parse_size


def _errors(den, frames: torch.Tensor, sigmas: list[float], seed: int) -> tuple[list[float], list[float], list[float]]:
    """Model, noisy-input and linear-guess RMS errors of the clean latent per level, for frames (T, 3, H, W)."""
    z = den.encode(frames.transpose(0, 1)[None])  # (1, C, T, H', W')
    eps = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed))
    cond = den.encode_prompt("", "")
    p = den.patch_size
    model, noisy, linear = [], [], []
    guess_at_one = getattr(den, "hole_init", "noise") == "push_pull"
    revise = getattr(den, "revise_init", "noise") == "prior"
    for s in sigmas:
        if revise and 0 < s < 1:  # these cells hold the warp, not noise: see the revision table
            model.append(float("nan"))
            noisy.append(float("nan"))
            linear.append(float("nan"))
            continue
        z_t = (1 - s) * z + s * eps
        if guess_at_one and s >= 1:
            z_t = torch.zeros_like(z)  # the guess of an empty warp: mid-grey
        levels = torch.full((1, z.shape[2], z.shape[3] // p, z.shape[4] // p), s)
        v = den.velocity(z_t, levels, cond)
        model.append(float(((z_t - s * v - z) ** 2).mean().sqrt()))
        noisy.append(float(((z_t - z) ** 2).mean().sqrt()))
        c = (1 - s) * 0.25 / ((1 - s) ** 2 * 0.25 + s**2)
        linear.append(float(((c * z_t - z) ** 2).mean().sqrt()))
    return model, noisy, linear


def _point_warp(frames: torch.Tensor, depth: torch.Tensor, cameras) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame 0 point-splatted into every frame of the clip (as training warps): RGB (T, 3, H, W), mask (T, H, W)."""
    from worldwarp.diffusion.training import warp_source_into_clip

    n = frames.shape[0]
    depths = torch.zeros(n, *depth.shape)
    depths[0] = depth
    return warp_source_into_clip(frames, depths, cameras[:n], 0)


def _cache_warp(frames: torch.Tensor, depth: torch.Tensor, cameras) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame 0 warped into the clip as the CPU preset's first chunk warps it (its cache fit, warp and mask)."""
    from worldwarp.diffusion.training import cache_warp_source_into_clip
    from worldwarp.pipeline import PipelineConfig

    preset = PipelineConfig.cpu()
    depths = torch.zeros(frames.shape[0], *depth.shape)
    depths[0] = depth
    return cache_warp_source_into_clip(frames, depths, cameras, 0, preset.cache, preset.warp)


def _hole_errors(
    den, frames: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor
) -> tuple[float, float, float, tuple[float, float, float] | None]:
    """(model, guess) RMS error over the hole cells of a warp (T, 3, H, W) of frame 0 into the clip, valid where
    ``mask`` (T, H, W); the hole share; and, for a ``revise_init="prior"`` model (warped cells at the CPU preset's
    warped start level, holding the warp), the (model, warp) RMS error over the warped cells of frames 1-24 and
    their share."""
    from worldwarp.diffusion.denoisers.base import tokens_to_cells
    from worldwarp.diffusion.hole_guess import push_pull_fill
    from worldwarp.diffusion.latent_grid import pixel_mask_to_cells, reduce_mask_to_patches

    mask = mask.clone()
    mask[0] = True  # frame 0 is the clean history frame
    guess = push_pull_fill(warped, mask)
    guess[0] = frames[0]
    z = den.encode(frames.transpose(0, 1)[None])  # (1, C, T, H', W')
    z_g = den.encode(guess.transpose(0, 1)[None])
    p = den.patch_size
    tok = reduce_mask_to_patches(pixel_mask_to_cells(mask, den.time_factor, den.space_factor)[None], p)
    holes = ~tokens_to_cells(tok, p)[:, None]  # (1, 1, T, H', W')
    levels = (~tok).float()  # (1, T, H'/p, W'/p): 1 at holes, 0 elsewhere
    z_t = torch.where(holes, z_g, z)
    revise = getattr(den, "revise_init", "noise") == "prior"
    warped_cells = ~holes
    warped_cells[:, :, 0] = False  # frame 0 is history
    if revise:  # the warped cells hold the warp at the preset's warped start level
        from worldwarp.diffusion.schedule import sigma_grid, start_index
        from worldwarp.pipeline import PipelineConfig

        cfg = PipelineConfig.cpu().sampler
        sigma_w = float(sigma_grid(cfg.steps, cfg.shift, cfg.sigma_grid)[start_index(cfg.strength, cfg.steps)])
        levels[:, 1:] = torch.where(tok[:, 1:], torch.full_like(levels[:, 1:], sigma_w), levels[:, 1:])
        z_t = torch.where(warped_cells, den.encode(warped.transpose(0, 1)[None]), z_t)
    v = den.velocity(z_t, levels, den.encode_prompt("", ""))
    clean = z_t - tokens_to_cells(levels, p)[:, None] * v
    w = holes.expand_as(z).float()
    rms = lambda e, w: float(((e**2) * w).sum().div(w.sum().clamp_min(1)).sqrt())  # noqa: E731
    out = rms(clean - z, w), rms(z_g - z, w), float(holes.float().mean())
    if not revise:
        return (*out, None)
    ww = warped_cells.expand_as(z).float()
    return (*out, (rms(clean - z, ww), rms(z_t - z, ww), float(warped_cells.float().mean())))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", required=True, help="NAME=DIR (repeat)")
    ap.add_argument("--size", type=parse_size, default=(128, 192), help="frame size (default 128x192)")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="development data folder")
    ap.add_argument("--cache", type=Path, default=Path("runs/suites"), help="rendered suite clips cache")
    ap.add_argument("--steps", type=int, default=None, help="levels of an S-step schedule (default: the CPU preset's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/denoiser_levels.md"))
    args = ap.parse_args()

    from worldwarp.diffusion.denoisers.tiny import TinyDenoiser
    from worldwarp.diffusion.schedule import flow_sigmas
    from worldwarp.eval.datasets import DatasetConfig, load_dataset
    from worldwarp.io.atomic import atomic_write_text
    from worldwarp.pipeline import PipelineConfig

    preset = PipelineConfig.cpu().sampler
    if args.steps is not None:
        preset = replace(preset, steps=args.steps)
    sigmas = [float(s) for s in flow_sigmas(preset.steps, preset.shift)[:-1]]
    clips = []
    scene = load_dataset(DatasetConfig("procedural", args.cache, "dev", size=args.size, max_scenes=1))[0]
    clips.append((f"procedural {scene.name}, frames 0-24", scene.frames(list(range(25))), scene))
    kitchen = args.data / "scenes" / "7scenes_redkitchen"
    if kitchen.is_dir():
        real = load_dataset(DatasetConfig(name="transforms", root=kitchen, size=args.size, start_depth="given"))[0]
        clips.append((f"real {real.name} (7-Scenes), frames 0-24", real.frames(list(range(25))), real))

    lines = [
        "# Denoising error of the tiny ST-Diff at the CPU sampler's levels",
        "",
        f"Command: `python benchmarks/experiments/denoiser_levels.py {' '.join(sys.argv[1:])}`. Size {args.size[0]}x"
        f"{args.size[1]}, seed {args.seed}; levels of a {preset.steps}-step schedule with shift {preset.shift:g} "
        f"(the CPU preset: {PipelineConfig.cpu().sampler.steps} steps); "
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}.",
        "",
        "RMS error of the clean estimate `z_t - sigma v` against the clean latent (latents in [-1, 1]; lower is "
        "better). 'beats noisy input' counts the levels where the model's error is below the noisy input's.",
    ]
    with torch.no_grad():
        for title, frames, _ in clips:
            lines += ["", f"## {title}", ""]
            lines += ["| model | beats noisy input | " + " | ".join(f"{s:.3f}" for s in sigmas) + " |"]
            lines += ["|---|---|" + "---|" * len(sigmas)]
            reference: tuple[list[float], list[float]] | None = None
            for spec in args.checkpoint:
                name, _, path = spec.partition("=")
                den = TinyDenoiser.from_pretrained(path)
                model, noisy, linear = _errors(den, frames.float(), sigmas, args.seed)
                n = sum(p.numel() for p in den.parameters())
                wins = sum(m < q for m, q in zip(model, noisy, strict=True))
                asked = sum(m == m for m in model)
                label = f"{name} ({den.config.arch}, {n / 1e6:.2f} M)"
                lines.append(f"| {label} | {wins}/{asked} | " + " | ".join(map(_cell, model)) + " |")
                if reference is None or asked == len(sigmas):
                    reference = noisy, linear
            assert reference is not None
            lines.append("| noisy input z_t | - | " + " | ".join(map(_cell, reference[0])) + " |")
            lines.append("| linear guess | - | " + " | ".join(map(_cell, reference[1])) + " |")
        guessing = [spec for spec in args.checkpoint if _hole_init(spec) == "push_pull"]
        if guessing:
            lines += ["", "## Level 1 on real holes (models with a push-pull guess)", ""]
            lines += [
                "| clip | warp | model | hole cells | model RMS | guess RMS | beats its guess |",
                "|---|---|---|---|---|---|---|",
            ]
            revised: list[str] = []
            for title, frames, sc in clips:
                if sc.start_depth is None:
                    continue
                frames, depth = frames.float(), sc.start_depth.float()
                for warp_name, make in (("point splat", _point_warp), ("preset cache", _cache_warp)):
                    warped, mask = make(frames, depth, sc.cameras[: frames.shape[0]])
                    for spec in guessing:
                        name, _, path = spec.partition("=")
                        den = TinyDenoiser.from_pretrained(path)
                        m, g, share, rev = _hole_errors(den, frames, warped, mask)
                        lines.append(
                            f"| {title} | {warp_name} | {name} | {share:.2f} | {m:.4f} | {g:.4f} | "
                            f"{'yes' if m < g else 'no'} |"
                        )
                        if rev is not None:
                            revised.append(
                                f"| {title} | {warp_name} | {name} | {rev[2]:.2f} | {rev[0]:.4f} | {rev[1]:.4f} "
                                f"| {'yes' if rev[0] < rev[1] else 'no'} |"
                            )
            if revised:
                lines += [
                    "",
                    '## The warped cells at the preset\'s revision level (models with `revise_init="prior"`)',
                    "",
                    "The same warps; the warped cells of frames 1-24 hold the warp itself at the CPU preset's warped "
                    "start level, as the `direct` solver shows them. A model that does nothing returns the warp.",
                    "",
                    "| clip | warp | model | warped cells | model RMS | warp RMS | beats the warp |",
                    "|---|---|---|---|---|---|---|",
                    *revised,
                ]
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _cell(e: float) -> str:
    """A table cell: the error, or '-' where the level does not hold noise for that model."""
    return f"{e:.3f}" if e == e else "-"


def _hole_init(spec: str) -> str:
    from worldwarp.diffusion.denoisers.tiny import TinyDenoiser

    return TinyDenoiser.from_pretrained(spec.partition("=")[2]).hole_init


if __name__ == "__main__":
    raise SystemExit(main())
