"""Holes that start from a guess: push-pull interpolation, the U-Net's correction at level 1, the fill, training."""

from __future__ import annotations

import pytest
import torch

from worldwarp.diffusion.denoisers.tiny import TinyDenoiser, TinyDenoiserConfig
from worldwarp.diffusion.hole_guess import push_pull_fill
from worldwarp.diffusion.sampler import SamplerConfig
from worldwarp.diffusion.training import make_training_inputs
from worldwarp.fill import STDiffFill
from worldwarp.warp import WarpResult

GUESS = TinyDenoiserConfig(
    arch="unet", space_factor=2, patch_size=1, width=16, depth=1, heads=2, freq_dim=8, widths=(8, 16, 16),
    hole_init="push_pull",
)  # fmt: skip


def _zero_output(model: TinyDenoiser) -> TinyDenoiser:
    """The network's last convolution set to 0, so F = 0 everywhere."""
    torch.nn.init.zeros_(model.net.out.weight)
    torch.nn.init.zeros_(model.net.out.bias)
    return model


# ---------------------------------------------------------------------------------------------- push-pull


def test_push_pull_keeps_valid_pixels_and_fills_every_hole() -> None:
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(2, 3, 13, 21, generator=g)
    mask = torch.rand(2, 13, 21, generator=g) > 0.7
    out = push_pull_fill(rgb, mask)
    assert out.shape == rgb.shape
    assert torch.equal(out[:, :, mask[0]][0], rgb[:, :, mask[0]][0])
    assert torch.equal(torch.where(mask[:, None], out, 0), torch.where(mask[:, None], rgb, 0))
    assert bool(torch.isfinite(out).all()) and out.min() >= rgb.min() and out.max() <= rgb.max()


def test_push_pull_constant_image_all_valid_and_empty_frames() -> None:
    rgb = torch.full((1, 3, 16, 24), 0.3, dtype=torch.float64)
    mask = torch.zeros(1, 16, 24, dtype=torch.bool)
    mask[0, 3:5, 7:9] = True
    torch.testing.assert_close(push_pull_fill(rgb, mask), rgb, rtol=0, atol=1e-15)  # a constant stays constant
    full = torch.rand(1, 3, 16, 24, dtype=torch.float64)
    assert torch.equal(push_pull_fill(full, torch.ones(1, 16, 24, dtype=torch.bool)), full)
    empty = push_pull_fill(full, torch.zeros(1, 16, 24, dtype=torch.bool), empty=0.25)
    assert torch.equal(empty, torch.full_like(full, 0.25))


@pytest.mark.parametrize("gain", [1.0, 16.0])
def test_push_pull_golden_4x4(gain: float) -> None:
    """Two valid pixels, 1 at the top-left and 0 at the bottom-right corner (hand-computed pyramid).

    Level 2 (1 x 1): mean 0.5. Level 1 (2 x 2): the corner blocks hold a quarter valid pixel, so
    0.25 * 1 + 0.75 * 0.5 = 0.625 and 0.25 * 0 + 0.75 * 0.5 = 0.375 with gain 1 (weight 0.25), 1 and 0 with gain 16
    (weight min(1, 16 * 0.25) = 1), the others 0.5. Level 0: bilinear upsampling of that 2 x 2 image; the result is
    antisymmetric about 0.5 under a 180-degree rotation.
    """
    rgb = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    rgb[0, 0, 0, 0] = 1.0
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0, 0] = mask[0, 3, 3] = True
    out = push_pull_fill(rgb, mask, gain=gain)[0, 0]
    a = min(1.0, gain * 0.25)
    coarse = torch.tensor([[a + (1 - a) * 0.5, 0.5], [0.5, (1 - a) * 0.5]], dtype=torch.float64)
    up = torch.nn.functional.interpolate(coarse[None, None], size=(4, 4), mode="bilinear", align_corners=False)[0, 0]
    expect = up.clone()
    expect[0, 0], expect[3, 3] = 1.0, 0.0
    torch.testing.assert_close(out, expect, rtol=0, atol=1e-15)
    torch.testing.assert_close(out + out.flip(0, 1), torch.ones(4, 4, dtype=torch.float64), rtol=0, atol=1e-15)
    # pixel (1, 1) samples the 2 x 2 image at (0.25, 0.25): 0.75^2 c00 + 2 (0.75 0.25) 0.5 + 0.25^2 c11
    expect11 = {1.0: 0.5625, 16.0: 0.75}[gain]
    assert float(out[1, 1]) == pytest.approx(expect11, abs=1e-15)


def test_push_pull_rejects_bad_shapes_and_gain() -> None:
    with pytest.raises(ValueError, match="mask"):
        push_pull_fill(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="gain"):
        push_pull_fill(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.bool), gain=0.5)


# ---------------------------------------------------------------------------------------------- the model


def test_hole_init_config_is_checked() -> None:
    with pytest.raises(ValueError, match="hole_init"):
        TinyDenoiserConfig(arch="unet", hole_init="telea")
    with pytest.raises(ValueError, match="blank_pure_noise"):
        TinyDenoiserConfig(arch="unet", hole_init="push_pull", blank_pure_noise=True)


def test_level_one_cells_predict_a_correction_of_their_input() -> None:
    """With F = 0 the velocity is 0 at level 1 (the clean estimate is the input) and a z_t elsewhere."""
    model = _zero_output(TinyDenoiser(GUESS)).eval()
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, model.latent_channels, 3, 4, 6, generator=g)
    sig = torch.full((1, 3, 4, 6), 0.4)
    sig[:, 1:, :, 3:] = 1.0
    v = model(z, sig, torch.zeros(1, dtype=torch.long))
    assert torch.equal(v[:, :, 1:, :, 3:], torch.zeros_like(v[:, :, 1:, :, 3:]))
    s2 = 0.25  # sigma_data 0.5
    a = (0.4 - 0.6 * s2) / (0.36 * s2 + 0.16)
    torch.testing.assert_close(v[:, :, 0], a * z[:, :, 0])


def test_fill_starts_holes_from_the_push_pull_guess() -> None:
    """One step at strength 0 with F = 0: holes hold the push-pull guess exactly, warped cells the warp."""
    model = _zero_output(TinyDenoiser(GUESS)).eval()
    g = torch.Generator().manual_seed(2)
    history = torch.rand(1, 3, 8, 12, generator=g)
    rgb = torch.rand(4, 3, 8, 12, generator=g)
    mask = torch.zeros(4, 8, 12, dtype=torch.bool)
    mask[:, :, :6] = True  # left half valid: whole 2 x 2 cells
    mask[1, 0, 7] = True  # one valid pixel inside a hole cell
    warp = WarpResult(rgb=rgb, depth=torch.ones(4, 8, 12), alpha=torch.ones(4, 8, 12), mask=mask)
    fill = STDiffFill(model, SamplerConfig(steps=1, strength=0.0, guidance_scale=1.0))
    out = fill.fill(history, warp, seed=0)
    expect = push_pull_fill(rgb, mask)
    torch.testing.assert_close(out, expect, rtol=0, atol=1e-6)
    assert fill.fill(history, warp, seed=0).equal(fill.fill(history, warp, seed=7))  # no noise reaches the output


def test_training_feeds_the_guess_at_level_one() -> None:
    model = TinyDenoiser(GUESS)
    g = torch.Generator().manual_seed(3)
    frames = torch.rand(1, 3, 3, 8, 8, generator=g)  # (B, T, 3, H, W)
    warped = torch.rand(1, 3, 3, 8, 8, generator=g)
    guess = torch.rand(1, 3, 3, 8, 8, generator=g)
    mask = torch.zeros(1, 3, 8, 8, dtype=torch.bool)
    mask[..., :4] = True  # left half warped
    base = make_training_inputs(model, frames, warped, mask, torch.Generator().manual_seed(5), pure_hole_prob=1.0)
    inp = make_training_inputs(
        model, frames, warped, mask, torch.Generator().manual_seed(5), pure_hole_prob=1.0, guess=guess
    )
    z_g = model.encode(guess.transpose(1, 2))
    z_gt = model.encode(frames.transpose(1, 2))
    assert bool((inp.sigmas[..., 2:] == 1).all())
    torch.testing.assert_close(inp.z_t[..., 2:], z_g[..., 2:])
    torch.testing.assert_close(inp.target[..., 2:], (z_g - z_gt)[..., 2:])
    torch.testing.assert_close(inp.z_t[..., :2], base.z_t[..., :2])  # warped cells: unchanged draws
    torch.testing.assert_close(inp.target[..., :2], base.target[..., :2])


def test_train_cli_switches_a_checkpoint_to_the_guess(tmp_path) -> None:
    from conftest import train_denoiser

    base = TinyDenoiser(TinyDenoiserConfig(**{**GUESS.__dict__, "hole_init": "noise", "blank_pure_noise": True}))
    for prm in (base.net.out.weight, base.net.out.bias):  # a trained output layer
        torch.nn.init.normal_(prm, generator=torch.Generator().manual_seed(6))
    base.save_pretrained(tmp_path / "base")
    model = train_denoiser("--init", str(tmp_path / "base"), "--tiny-hole-init", "push_pull")
    assert model.config.hole_init == "push_pull" and not model.config.blank_pure_noise
    for (k, a), (_, b) in zip(model.state_dict().items(), base.state_dict().items(), strict=True):
        if k.startswith("net.out."):  # the output layer restarts at 0: the switched model returns the guess
            assert not bool(a.any()) and bool(b.any()), k
        else:
            assert torch.equal(a, b), k


def test_strength_zero_keeps_every_valid_warped_pixel() -> None:
    """Cells the strict mask reduction makes holes are regenerated, but their valid pixels come back from the warp;
    with strength > 0 the warp is revised and nothing is copied."""
    cfg = TinyDenoiserConfig(**{**GUESS.__dict__, "hole_init": "noise"})
    model = TinyDenoiser(cfg).eval()
    g = torch.Generator().manual_seed(4)
    history = torch.rand(1, 3, 8, 12, generator=g)
    rgb = torch.rand(2, 3, 8, 12, generator=g)
    mask = torch.rand(2, 8, 12, generator=g) > 0.4
    warp = WarpResult(rgb=rgb, depth=torch.ones(2, 8, 12), alpha=torch.ones(2, 8, 12), mask=mask)
    kept = STDiffFill(model, SamplerConfig(steps=2, strength=0.0, guidance_scale=1.0)).fill(history, warp, seed=0)
    assert torch.equal(kept[:, :, mask[0]][0], rgb[:, :, mask[0]][0])
    assert torch.equal(torch.where(mask[:, None], kept, 0), torch.where(mask[:, None], rgb, 0))
    revised = STDiffFill(model, SamplerConfig(steps=2, strength=0.5, guidance_scale=1.0)).fill(history, warp, seed=0)
    assert not torch.equal(torch.where(mask[:, None], revised, 0), torch.where(mask[:, None], rgb, 0))


def test_push_pull_fill_strategy_needs_no_model() -> None:
    from worldwarp.fill import PushPullFill, fill_for
    from worldwarp.pipeline import PipelineConfig

    fill = fill_for(PipelineConfig.cpu(fill="push_pull"), None)
    assert isinstance(fill, PushPullFill) and not fill.uses_prompt
    g = torch.Generator().manual_seed(5)
    rgb, mask = torch.rand(2, 3, 8, 12, generator=g), torch.rand(2, 8, 12, generator=g) > 0.5
    warp = WarpResult(rgb=rgb, depth=torch.ones(2, 8, 12), alpha=torch.ones(2, 8, 12), mask=mask)
    assert torch.equal(fill.fill(torch.rand(1, 3, 8, 12), warp, seed=0), push_pull_fill(rgb, mask))


def test_kept_pixels_follow_the_noise_mode() -> None:
    """The method keeps every valid pixel; temporal-only noise drops the frames it makes holes entirely."""
    model = TinyDenoiser(GUESS).eval()
    history = torch.rand(1, 3, 8, 12)
    mask = torch.zeros(2, 8, 12, dtype=torch.bool)
    mask[0, :, :10] = True  # frame 1: 4 of 6 cell columns valid (> half): warped
    mask[1, :, :4] = True  # frame 2: 2 of 6 (< half): a hole frame under temporal-only noise
    mask[0, 0, 11] = True  # a valid pixel in a hole cell
    warp = WarpResult(rgb=torch.rand(2, 3, 8, 12), depth=torch.ones(2, 8, 12), alpha=torch.ones(2, 8, 12), mask=mask)
    for mode, frame2 in (("spatiotemporal", mask[1]), ("temporal", torch.zeros_like(mask[1]))):
        fill = STDiffFill(model, SamplerConfig(steps=1, strength=0.0, guidance_scale=1.0, noise_mode=mode))
        kept = fill.kept_pixels(warp, fill.sampler_inputs(history, warp), 1)
        assert torch.equal(kept[0], mask[0]) and torch.equal(kept[1], frame2), mode
