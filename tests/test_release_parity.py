"""Parity with the authors' release: our sampler and mask reduction against golden values made by its own code.

``tests/data/release_golden/release_golden.safetensors`` was written by ``make_golden.py`` beside it (see its
README): the release's ``sample_sequence`` and mask reduction (pose_control.py at 0396b80) run on the CPU in
float32 with a tiny random Wan transformer, fixed prompt embeddings and fixed initial noise. Here the same weights
go into diffusers' ``WanTransformer3DModel`` inside our :class:`WanDenoiser`, and the sampler runs with the
release's rules (``PipelineConfig.release().sampler``) and the same noise passed as ``latents=``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("safetensors")

from worldwarp.diffusion.latent_grid import history_latent_frames, pixel_mask_to_cells  # noqa: E402
from worldwarp.diffusion.sampler import SamplerConfig, sample  # noqa: E402
from worldwarp.diffusion.schedule import scheduler_sigmas, sigma_grid, start_index  # noqa: E402
from worldwarp.pipeline import PipelineConfig  # noqa: E402
from worldwarp.warp import erode_mask  # noqa: E402

GOLDEN = Path(__file__).parent / "data" / "release_golden" / "release_golden.safetensors"
ATOL = 1e-5


@pytest.fixture(scope="module")
def golden() -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    with safe_open(str(GOLDEN), "pt") as f:
        meta = json.loads(f.metadata()["meta"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, meta


@pytest.fixture(scope="module")
def denoiser(golden):
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from worldwarp.diffusion.denoisers.wan import WanConfig, WanDenoiser

    tensors, meta = golden
    cfg = dict(meta["transformer_config"])
    cfg["patch_size"] = tuple(cfg["patch_size"])
    transformer = WanTransformer3DModel(**cfg)
    weights = {k.removeprefix("weights/"): v for k, v in tensors.items() if k.startswith("weights/")}
    transformer.load_state_dict(weights, strict=True)
    z = cfg["in_channels"]
    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=8, z_dim=z, dim_mult=[1, 1, 1, 1], num_res_blocks=1, latents_mean=[0.0] * z, latents_std=[1.0] * z
    )  # never called here
    return WanDenoiser(transformer, vae, config=WanConfig(device="cpu", dtype="float32"))


def _release_sampler(strength: float, guidance: float, steps: int = 50) -> SamplerConfig:
    return replace(PipelineConfig.release().sampler, steps=steps, strength=strength, guidance_scale=guidance)


def test_release_preset_selects_the_release_rules() -> None:
    s = PipelineConfig.release().sampler
    assert (s.sigma_grid, s.start_rule, s.mask_reduction, s.patch_levels) == ("scheduler",) + ("release",) * 3
    assert (s.steps, s.shift, s.strength, s.guidance_scale) == (50, 5.0, 0.6, 5.0)


def test_sigma_grid_is_the_schedulers(golden) -> None:
    tensors, _ = golden
    grid = scheduler_sigmas(50, 5.0)
    assert grid.dtype == torch.float64
    assert torch.equal(grid, tensors["scheduler/sigmas"].double())
    assert torch.equal(sigma_grid(50, 5.0, "scheduler", dtype=torch.float32), tensors["scheduler/sigmas"])
    # the model's timesteps are sigma * 1000 in float32, exactly the scheduler's
    assert torch.equal(grid[:-1].float() * 1000, tensors["scheduler/timesteps"])
    assert float(grid[-2]) == pytest.approx(0.0244, abs=1e-4)


@pytest.mark.parametrize(
    ("strength", "release", "strict"), [(0.0, 49, 50), (0.6, 20, 20), (0.8, 9, 10), (1.0, 0, 0), (0.2, 40, 40)]
)
def test_start_index_rules(strength: float, release: int, strict: int) -> None:
    assert start_index(strength, 50, "release") == release
    assert start_index(strength, 50, "strict") == strict


def _cases(meta: dict) -> list[dict]:
    return meta["cases"]


@pytest.mark.parametrize("index", range(32))
def test_sampler_matches_release_sample_sequence(golden, denoiser, index: int) -> None:
    from worldwarp.diffusion.denoisers.wan import WanConditioning

    tensors, meta = golden
    case = _cases(meta)[index]
    prior = tensors["inputs/xs_warped"].permute(0, 2, 1, 3, 4)  # (B, C, T', H', W')
    noise = tensors["inputs/noise"].permute(0, 2, 1, 3, 4)
    mask = tensors[f"inputs/mask_{case['mask']}"][:, :, 0].bool()  # (B, T', H', W')
    T = prior.shape[2]
    history = history_latent_frames(case["context_frames"], T, 4)[None]
    assert int(history.sum()) == case["history_latent_frames"]
    cond = WanConditioning(tensors["inputs/prompt_embeds"], tensors["inputs/negative_prompt_embeds"])
    config = _release_sampler(case["strength"], case["guidance_scale"], meta["steps"])
    out = sample(denoiser, prior, mask, history, config, cond=cond, progress=False, latents=noise)
    expected = tensors[f"out/{case['name']}"].permute(0, 2, 1, 3, 4)
    err = float((out - expected).abs().max())
    assert err <= ATOL, f"{case['name']}: max |diff| {err}"


def test_strict_rules_do_not_match_the_release(golden, denoiser) -> None:
    """The golden values can tell the rules apart (the shipped embedded-model rules differ measurably)."""
    from worldwarp.diffusion.denoisers.wan import WanConditioning

    tensors, meta = golden
    prior = tensors["inputs/xs_warped"].permute(0, 2, 1, 3, 4)
    noise = tensors["inputs/noise"].permute(0, 2, 1, 3, 4)
    mask = tensors["inputs/mask_patch"][:, :, 0].bool()
    history = history_latent_frames(1, prior.shape[2], 4)[None]
    cond = WanConditioning(tensors["inputs/prompt_embeds"], tensors["inputs/negative_prompt_embeds"])
    expected = tensors["out/s0.8_patch_ctx1_cfg1"].permute(0, 2, 1, 3, 4)
    release = _release_sampler(0.8, 1.0)
    for field in ("sigma_grid", "start_rule"):
        strict = replace(release, **{field: SamplerConfig.__dataclass_fields__[field].default})
        out = sample(denoiser, prior, mask, history, strict, cond=cond, progress=False, latents=noise)
        assert float((out - expected).abs().max()) > 1e-3, field


@pytest.mark.parametrize("index", [0, 1])
def test_mask_reduction_matches_release(golden, index: int) -> None:
    tensors, meta = golden
    soft = tensors[f"pixmask/{index}/soft_u8"].float() / 255  # (1, T, H, W)
    expected = tensors[f"pixmask/{index}/latent"][:, :, 0].bool()  # (1, T', H/8, W/8)
    pixel = erode_mask(soft >= 0.5, 15, border="zero")
    cells = pixel_mask_to_cells(pixel, 4, 8, "release")
    assert cells.shape == expected.shape
    assert torch.equal(cells, expected)
    # the strict rule (all pixels of all frames) keeps strictly fewer cells on these soft masks
    strict = pixel_mask_to_cells(erode_mask(soft >= 0.5, 15, border="zero"), 4, 8, "strict")
    assert bool((strict <= cells).all()) and int(strict.sum()) < int(cells.sum())


def test_release_zero_border_erosion_regenerates_the_border() -> None:
    m = torch.ones(1, 32, 48, dtype=torch.bool)
    assert bool(erode_mask(m, 15, border="keep").all())
    z = erode_mask(m, 15, border="zero")[0]
    assert not bool(z[:7].any()) and not bool(z[:, :7].any()) and not bool(z[-7:].any()) and not bool(z[:, -7:].any())
    assert bool(z[7:-7, 7:-7].all())
