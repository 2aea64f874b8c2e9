"""The embedded model's revision of the warp: warped cells hold the warp itself (``revise_init="prior"``), the
U-Net predicts a correction of it, the sampler's ``"direct"`` solver applies it in the pass that fills the holes,
and training presents the warped cells the same way."""

from __future__ import annotations

import pytest
import torch

from worldwarp.diffusion.denoisers.tiny import TinyDenoiser, TinyDenoiserConfig
from worldwarp.diffusion.hole_guess import push_pull_fill
from worldwarp.diffusion.sampler import SamplerConfig, sample
from worldwarp.diffusion.training import TrainConfig, make_training_inputs
from worldwarp.fill import STDiffFill
from worldwarp.warp import WarpResult

REVISE = TinyDenoiserConfig(
    arch="unet", space_factor=2, patch_size=1, width=16, depth=1, heads=2, freq_dim=8, widths=(8, 16, 16),
    hole_init="push_pull", revise_init="prior",
)  # fmt: skip


def _constant_output(model: TinyDenoiser, value: float) -> TinyDenoiser:
    """The network's last convolution set to the constant ``value``, so F = value everywhere."""
    torch.nn.init.zeros_(model.net.out.weight)
    torch.nn.init.constant_(model.net.out.bias, value)
    return model


def test_revise_init_config_is_checked() -> None:
    with pytest.raises(ValueError, match="revise_init"):
        TinyDenoiserConfig(arch="unet", hole_init="push_pull", revise_init="warp")
    with pytest.raises(ValueError, match="hole_init 'push_pull'"):
        TinyDenoiserConfig(arch="unet", revise_init="prior")
    with pytest.raises(ValueError, match="revise_level"):
        TrainConfig(revise_level=0.0)


def test_every_level_above_zero_predicts_a_correction_of_its_input() -> None:
    """F = c: the clean estimate ``z_t - sigma v`` is ``z_t + s c`` at every level above 0; level 0 is kept."""
    model = _constant_output(TinyDenoiser(REVISE), 0.3).eval()
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, model.latent_channels, 3, 4, 6, generator=g)
    sig = torch.tensor([0.0, 5 / 6, 1.0])[None, :, None, None].expand(1, 3, 4, 6).clone()
    sig[0, 1, 0, 0] = 0.25
    v = model(z, sig, torch.zeros(1, dtype=torch.long))
    clean = z - sig[:, None] * v
    torch.testing.assert_close(clean[:, :, 1:], z[:, :, 1:] + 0.5 * 0.3)  # s = 0.5
    torch.testing.assert_close(v[:, :, 0], -z[:, :, 0] - 0.3)  # level 0 as before: a = -1, b = 1


def test_direct_solver_is_one_evaluation_at_the_start_levels() -> None:
    """Any denoiser: one velocity call with history 0, warped ``sigma_w``, holes 1; every cell jumps to
    ``x - sigma v`` and the history comes back exactly."""
    calls = []

    class Stub:
        patch_size = 1

        def encode_prompt(self, prompt: str, negative: str = "") -> None:
            return None

        def velocity(self, x, sigmas, cond, guidance_scale):  # noqa: ANN001, ANN202
            calls.append(sigmas.clone())
            return torch.full_like(x, 2.0)

    g = torch.Generator().manual_seed(2)
    prior = torch.randn(1, 4, 3, 2, 3, generator=g)
    mask = torch.zeros(1, 3, 2, 3, dtype=torch.bool)
    mask[:, :, :, :2] = True
    history = torch.tensor([[True, False, False]])
    eps = torch.randn(prior.shape, generator=g)
    cfg = SamplerConfig(steps=2, shift=5.0, strength=0.5, guidance_scale=1.0, solver="direct")
    out = sample(Stub(), prior, mask, history, cfg, latents=eps, progress=False)
    assert len(calls) == 1
    lv = calls[0]
    assert bool((lv[:, 0] == 0).all()) and bool((lv[:, 1:, :, 2] == 1).all())
    torch.testing.assert_close(lv[:, 1:, :, :2], torch.full_like(lv[:, 1:, :, :2], 5 / 6))
    torch.testing.assert_close(out[:, :, 0], prior[:, :, 0])
    start_w = (1 / 6) * prior + (5 / 6) * eps
    torch.testing.assert_close(out[:, :, 1:, :, :2], (start_w - (5 / 6) * 2.0)[:, :, 1:, :, :2])
    torch.testing.assert_close(out[:, :, 1:, :, 2:], (eps - 2.0)[:, :, 1:, :, 2:])


def _warp(seed: int) -> tuple[torch.Tensor, WarpResult]:
    g = torch.Generator().manual_seed(seed)
    history = torch.rand(1, 3, 8, 12, generator=g)
    rgb = torch.rand(4, 3, 8, 12, generator=g)
    mask = torch.zeros(4, 8, 12, dtype=torch.bool)
    mask[:, :, :6] = True  # left half valid: whole 2 x 2 cells
    mask[1, 0, 7] = True  # one valid pixel inside a hole cell
    return history, WarpResult(rgb=rgb, depth=torch.ones(4, 8, 12), alpha=torch.ones(4, 8, 12), mask=mask)


def test_fill_revises_the_warp_from_the_warp_itself() -> None:
    """Direct solver, strength 0.5: with F = 0 the output is the warp plus the push-pull guess, exactly and for
    every seed (no noise reaches the warped cells); with F = c every pixel moves by the same amount."""
    history, warp = _warp(3)
    sampler = SamplerConfig(steps=2, shift=5.0, strength=0.5, guidance_scale=1.0, solver="direct")
    still = STDiffFill(_constant_output(TinyDenoiser(REVISE), 0.0).eval(), sampler)
    out = still.fill(history, warp, seed=0)
    torch.testing.assert_close(out, push_pull_fill(warp.rgb, warp.mask), rtol=0, atol=1e-6)
    assert out.equal(still.fill(history, warp, seed=9))
    moved = STDiffFill(_constant_output(TinyDenoiser(REVISE), 0.1).eval(), sampler).fill(history, warp, seed=0)
    # latents are 2 x - 1 of pixels, so a latent step of s c = 0.05 is 0.025 in pixels
    torch.testing.assert_close(moved, (push_pull_fill(warp.rgb, warp.mask) + 0.025).clamp(0, 1), rtol=0, atol=1e-6)


def test_training_presents_the_warp_at_the_revision_level() -> None:
    model = TinyDenoiser(REVISE)
    g = torch.Generator().manual_seed(4)
    frames = torch.rand(1, 3, 3, 8, 8, generator=g)  # (B, T, 3, H, W)
    warped = torch.rand(1, 3, 3, 8, 8, generator=g)
    guess = torch.rand(1, 3, 3, 8, 8, generator=g)
    mask = torch.zeros(1, 3, 8, 8, dtype=torch.bool)
    mask[..., :4] = True  # left half warped
    inp = make_training_inputs(
        model, frames, warped, mask, torch.Generator().manual_seed(5), pure_hole_prob=1.0, guess=guess,
        revise_level=0.8, clean_warped_prob=1.0,
    )  # fmt: skip
    z_w, z_g = model.encode(warped.transpose(1, 2)), model.encode(guess.transpose(1, 2))
    z_gt = model.encode(frames.transpose(1, 2))
    torch.testing.assert_close(inp.sigmas[..., :2], torch.full_like(inp.sigmas[..., :2], 0.8))
    assert bool((inp.sigmas[..., 2:] == 1).all())
    torch.testing.assert_close(inp.z_t[..., :2], z_w[..., :2])
    torch.testing.assert_close(inp.target[..., :2], ((z_w - z_gt) / 0.8)[..., :2])
    torch.testing.assert_close(inp.z_t[..., 2:], z_g[..., 2:])
    assert bool((inp.weight == 1).all())
    with pytest.raises(ValueError, match="revise_level"):
        make_training_inputs(model, frames, warped, mask, torch.Generator(), revise_level=0.8)


def test_training_keeps_history_clean_with_the_revision() -> None:
    model = TinyDenoiser(REVISE)
    g = torch.Generator().manual_seed(6)
    frames, warped, guess = (torch.rand(1, 4, 3, 8, 8, generator=g) for _ in range(3))
    mask = torch.ones(1, 4, 8, 8, dtype=torch.bool)
    inp = make_training_inputs(
        model, frames, warped, mask, torch.Generator().manual_seed(7), history_prob=1.0, max_history=1,
        pure_hole_prob=1.0, guess=guess, revise_level=0.5,
    )  # fmt: skip
    assert bool((inp.sigmas[:, 0] == 0).all()) and bool((inp.weight[:, :, 0] == 0).all())
    torch.testing.assert_close(inp.sigmas[:, 1:], torch.full_like(inp.sigmas[:, 1:], 0.5))


def test_train_cli_switches_a_checkpoint_to_the_revision(tmp_path) -> None:
    from conftest import train_denoiser

    base = TinyDenoiser(TinyDenoiserConfig(**{**REVISE.__dict__, "revise_init": "noise"}))
    base.save_pretrained(tmp_path / "base")
    model = train_denoiser("--init", str(tmp_path / "base"), "--tiny-revise-init", "prior")
    assert model.config.revise_init == "prior" and model.revise_init == "prior"
    for (k, a), (_, b) in zip(model.state_dict().items(), base.state_dict().items(), strict=True):
        assert torch.equal(a, b), k  # every weight kept, the trained hole correction included
