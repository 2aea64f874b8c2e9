"""GPU timing and memory of the ``wan`` ST-Diff backend on one 49-frame 480x720 chunk (random Wan-1.3B weights).

What it measures, per memory setting (offload none / model / sequential, VAE tiling off / on):

* VAE encode of the 49-frame warped prior, the 50-step fill-and-revise sampling (CFG 5, i.e. two transformer
  passes per step) through :func:`worldwarp.diffusion.sampler.sample`, and the VAE decode;
* peak GPU memory allocated by PyTorch during the chunk (``torch.cuda.max_memory_allocated``).

Reference in the same process: one transformer forward with diffusers' scalar timestep (the stock Wan pipeline's
call) against the same forward with per-token timesteps (B, seq_len) as ST-Diff uses it; the ratio is the cost of
per-token levels. The prompt embeddings are random (1, 512, 4096) tensors: the umT5 text encoder is not part of the
chunk cost (its embeddings are cached per prompt).

Weights are random, so the output is noise; timings and memory are those of the real architecture
(Wan2.1-T2V-1.3B: 30 layers, width 1536, 12 heads, FFN 8960; Wan2.1 VAE, base width 96, z_dim 16).

With ``--preset release`` (or ``paper``) the chunk is the preset's (release: 81 frames at 480x720, 1 history
frame, 50 steps with the scheduler's sigma grid and the release's latent-grid rules, strength 0.6, CFG 5); the
page says which chunk it timed.

Usage (a CUDA GPU; writes docs/benchmarks/wan.md)::

    python benchmarks/perf/wan.py
    python benchmarks/perf/wan.py --preset release --settings none model+tiling   # the release's chunk
    python benchmarks/perf/wan.py --steps 10 --settings none model   # quicker
    python benchmarks/perf/wan.py --tiny --device cpu --out /tmp/wan.md   # smoke test of the script itself
    python benchmarks/perf/wan.py --tiny --device cpu --preset release --out /tmp/wan_release.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

# memory settings: name -> (offload mode, VAE tiling)
SETTINGS = {
    "none": ("none", False),
    "none+tiling": ("none", True),
    "model": ("model", False),
    "model+tiling": ("model", True),
    "sequential+tiling": ("sequential", True),
}

WAN_13B = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=12,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=8960,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
)
TINY = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=8,
    in_channels=4,
    out_channels=4,
    text_dim=32,
    freq_dim=32,
    ffn_dim=32,
    num_layers=2,
)


@dataclass
class ChunkResult:
    setting: str
    encode_s: float
    sample_s: float
    decode_s: float
    peak_gib: float

    @property
    def total_s(self) -> float:
        return self.encode_s + self.sample_s + self.decode_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_models(tiny: bool, device: torch.device, dtype: torch.dtype, seed: int):
    """Random-weight transformer (Wan-1.3B shape, or tiny) and VAE (Wan2.1 shape, or tiny), on the CPU."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    torch.manual_seed(seed)
    # initialise on the device (fast), keep a CPU copy so that every setting starts from the same place
    with torch.device(device):
        transformer = WanTransformer3DModel(**(TINY if tiny else WAN_13B)).to(dtype)
    transformer.to("cpu")
    if tiny:
        vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1, latents_mean=[0.0] * 4,
                               latents_std=[1.0] * 4)  # fmt: skip
    else:
        vae = AutoencoderKLWan()
    return transformer, vae


def time_forward(denoiser, latents: torch.Tensor, embeds: torch.Tensor, per_token: bool, repeats: int) -> float:
    """Median seconds of one transformer forward with scalar (B,) or per-token (B, seq_len) timesteps."""
    B, _, T, H, W = latents.shape
    p = denoiser.patch_size
    x = latents.to(denoiser.device, denoiser.dtype)
    if per_token:
        ts = torch.full((B, T * (H // p) * (W // p)), 700.0, device=denoiser.device)
        ts[:, : (H // p) * (W // p)] = 0.0  # a clean first latent frame, as history tokens are
    else:
        ts = torch.full((B,), 700.0, device=denoiser.device)
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            _sync(denoiser.device)
            t0 = time.perf_counter()
            denoiser.transformer(hidden_states=x, timestep=ts, encoder_hidden_states=embeds, return_dict=False)
            _sync(denoiser.device)
            times.append(time.perf_counter() - t0)
    times = sorted(times[1:])  # first call warms up kernels
    return times[len(times) // 2]


def run_chunk(
    denoiser, setting: str, frames: int, height: int, width: int, sampler, history_frames: int, text_dim: int, seed: int
):
    from worldwarp.diffusion.denoisers.wan import WanConditioning
    from worldwarp.diffusion.latent_grid import history_latent_frames
    from worldwarp.diffusion.sampler import sample

    device = denoiser.device
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(1, 3, frames, height, width, generator=g)  # the warped prior (B, 3, T, H, W)
    cond = WanConditioning(
        positive=torch.randn(1, 512, text_dim, generator=g).to(device, denoiser.dtype),
        negative=torch.randn(1, 512, text_dim, generator=g).to(device, denoiser.dtype),
    )
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    t0 = time.perf_counter()
    prior = denoiser.encode(video.to(device))  # (1, C, T', H', W')
    _sync(device)
    t1 = time.perf_counter()
    B, _, Tl, Hl, Wl = prior.shape
    mask = torch.rand(B, Tl, Hl, Wl, generator=g) > 0.3  # 70 % warped, 30 % holes
    history = history_latent_frames(history_frames, Tl, denoiser.time_factor)[None].expand(B, Tl)
    with torch.no_grad():
        out = sample(denoiser, prior, mask.to(device), history.to(device), sampler, cond=cond, progress=False)
    _sync(device)
    t2 = time.perf_counter()
    video_out = denoiser.decode(out)
    _sync(device)
    t3 = time.perf_counter()
    assert video_out.shape == video.shape, (video_out.shape, video.shape)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return ChunkResult(setting, t1 - t0, t2 - t1, t3 - t2, peak)


def write_markdown(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".md", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="execution device (default cuda)")
    parser.add_argument("--dtype", default="bfloat16", help="transformer dtype (default bfloat16)")
    parser.add_argument("--preset", choices=["release", "paper"], help="time the preset's chunk (see module doc)")
    parser.add_argument("--frames", type=int, help="frames per chunk (default 49, or the preset's)")
    parser.add_argument("--height", type=int, help="default 480, or the preset's")
    parser.add_argument("--width", type=int, help="default 720, or the preset's")
    parser.add_argument("--steps", type=int, help="Euler steps (default 50, or the preset's)")
    parser.add_argument("--repeats", type=int, default=5, help="forwards per timing of the reference ratio")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--tiny", action="store_true", help="tiny random model (smoke test of this script)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="default docs/benchmarks/wan.md")
    args = parser.parse_args(argv)
    from dataclasses import replace

    from worldwarp.diffusion.sampler import SamplerConfig
    from worldwarp.pipeline import PipelineConfig

    if args.preset is not None:
        pcfg = PipelineConfig.preset(args.preset)
        sampler, history_frames = pcfg.sampler, pcfg.overlap
        defaults = dict(frames=pcfg.chunk_frames, height=pcfg.height, width=pcfg.width, steps=sampler.steps)
    else:
        sampler = SamplerConfig(steps=50, shift=5.0, strength=0.8, guidance_scale=5.0)
        history_frames = 5  # the paper's 5 overlap frames = 2 latent frames
        defaults = dict(frames=49, height=480, width=720, steps=50)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.out is None:
        args.out = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "wan.md"

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("perf/wan.py: CUDA is not available; pass --tiny --device cpu for a smoke test", file=sys.stderr)
        return 2
    if args.tiny:
        args.frames, args.height, args.width = min(args.frames, 9), min(args.height, 32), min(args.width, 32)
        args.steps = min(args.steps, 2)
    sampler = replace(sampler, steps=args.steps)

    from worldwarp.diffusion.denoisers.wan import WanConfig, WanDenoiser

    transformer, vae = build_models(args.tiny, device, getattr(torch, args.dtype), args.seed)
    text_dim = int(transformer.config.text_dim)
    n_params = sum(p.numel() for p in transformer.parameters())

    # reference ratio: scalar (stock Wan pipeline) vs per-token timesteps, same model, same process
    base = WanDenoiser(transformer, vae, config=WanConfig(device=args.device, dtype=args.dtype))
    latent_shape = (1, base.latent_channels, 1 + (args.frames - 1) // 4, args.height // 8, args.width // 8)
    g = torch.Generator().manual_seed(args.seed)
    latents = torch.randn(latent_shape, generator=g)
    embeds = torch.randn(1, 512, text_dim, generator=g).to(device, base.dtype)
    t_scalar = time_forward(base, latents, embeds, per_token=False, repeats=args.repeats)
    t_token = time_forward(base, latents, embeds, per_token=True, repeats=args.repeats)
    del base

    results: list[ChunkResult] = []
    for name in args.settings:
        offload, tiling = SETTINGS[name]
        cfg = WanConfig(device=args.device, dtype=args.dtype, offload=offload, vae_tiling=tiling)
        if offload == "sequential":  # hooks stay on the modules: build fresh ones, last
            transformer, vae = build_models(args.tiny, device, getattr(torch, args.dtype), args.seed)
        vae.disable_tiling()  # WanDenoiser enables it when the setting asks for it
        denoiser = WanDenoiser(transformer, vae, config=cfg)
        res = run_chunk(
            denoiser, name, args.frames, args.height, args.width, sampler, history_frames, text_dim, args.seed
        )
        results.append(res)
        print(
            f"{name:18s} encode {res.encode_s:6.2f} s  sample {res.sample_s:7.2f} s  decode {res.decode_s:6.2f} s  "
            f"peak {res.peak_gib:6.2f} GiB"
        )
        del denoiser

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    tokens = latent_shape[2] * (latent_shape[3] // 2) * (latent_shape[4] // 2)
    lines = [
        "# Wan ST-Diff backend: one chunk, time and memory",
        "",
        "Generated by `python benchmarks/perf/wan.py"
        + (f" --preset {args.preset}" if args.preset else "")
        + (" --tiny` (smoke run, not a measurement)" if args.tiny else "`"),
        "",
        f"- device: {device_name}; torch {torch.__version__}; transformer dtype {args.dtype}, VAE float32",
        f"- model: random weights, {n_params / 1e9:.3f} B transformer parameters "
        f"({'tiny' if args.tiny else 'Wan2.1-T2V-1.3B shape'}); text encoder not included (cached embeddings)",
        f"- chunk: {args.frames} frames {args.height}x{args.width} -> latents {tuple(latent_shape[1:])}, "
        f"{tokens} tokens; {args.steps} Euler steps, CFG {sampler.guidance_scale:g} (2 transformer passes per "
        f"step), strength {sampler.strength:g}, {history_frames} history frame(s), 30 % hole cells; sigma grid "
        f"{sampler.sigma_grid}, start rule {sampler.start_rule}, latent grid {sampler.mask_reduction}/"
        f"{sampler.patch_levels}",
        "",
        "## Per-token timesteps vs diffusers' scalar timestep (one transformer forward)",
        "",
        "| timestep | median s | ratio |",
        "|---|---|---|",
        f"| scalar (B,) - stock Wan pipeline | {t_scalar:.4f} | 1.00 |",
        f"| per token (B, {tokens}) - ST-Diff | {t_token:.4f} | {t_token / t_scalar:.2f} |",
        "",
        "## Chunk cost per memory setting",
        "",
        "| setting (offload + VAE tiling) | encode s | sampling s | decode s | total s | peak GiB | peak vs none |",
        "|---|---|---|---|---|---|---|",
    ]
    ref_peak = next((r.peak_gib for r in results if r.setting == "none"), float("nan"))
    for r in results:
        lines.append(
            f"| {r.setting} | {r.encode_s:.2f} | {r.sample_s:.2f} | {r.decode_s:.2f} | {r.total_s:.2f} | "
            f"{r.peak_gib:.2f} | {r.peak_gib / ref_peak:.2f} |"
        )
    lines += [
        "",
        "Paper (A100-class GPU): ST-Diff 42.5 s per 49-frame chunk; the official release needs about 40 GB.",
        "Peak = `torch.cuda.max_memory_allocated` during the chunk (CUDA context and allocator slack not included).",
        "",
    ]
    write_markdown(args.out, "\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
