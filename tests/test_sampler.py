"""The fill-and-revise sampler against an oracle denoiser that knows the clean video."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from worldwarp.diffusion.denoisers.base import Denoiser, classifier_free_guidance, tokens_to_cells
from worldwarp.diffusion.sampler import SamplerConfig, noise_init, sample


class OracleDenoiser:
    """Returns the exact velocity towards ``x0``: v = (x - x0) / sigma (0 where sigma = 0); records its calls."""

    time_factor = 1
    space_factor = 1
    latent_channels = 3
    patch_size = 2

    def __init__(self, x0: Tensor) -> None:
        self.x0 = x0
        self.calls: list[tuple[Tensor, float]] = []

    def encode(self, video: Tensor) -> Tensor:
        return video

    def decode(self, latents: Tensor) -> Tensor:
        return latents

    def encode_prompt(self, prompt: str, negative: str = "") -> Any:
        return (prompt, negative)

    def velocity(self, latents: Tensor, sigmas: Tensor, cond: Any, guidance_scale: float = 1.0) -> Tensor:
        self.calls.append((sigmas.clone(), guidance_scale))
        s = tokens_to_cells(sigmas, self.patch_size)[:, None].to(latents.dtype)
        return torch.where(s > 0, (latents - self.x0) / s.clamp_min(1e-30), torch.zeros_like(latents))


def _setup(seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    B, C, T, H, W = 2, 3, 4, 4, 6
    x0 = torch.randn(B, C, T, H, W, generator=g, dtype=torch.float64)
    prior = x0 + 0.3 * torch.randn(B, C, T, H, W, generator=g, dtype=torch.float64)
    mask = torch.rand(B, T, H, W, generator=g) > 0.3
    history = torch.zeros(B, T, dtype=torch.bool)
    history[:, 0] = True
    history[1, 1] = True
    return x0, prior, mask, history


def test_protocol_is_runtime_checkable() -> None:
    assert isinstance(OracleDenoiser(torch.zeros(1)), Denoiser)


@pytest.mark.parametrize("mode", ["spatiotemporal", "full", "spatial", "temporal"])
@pytest.mark.parametrize("strength", [1.0, 0.8, 0.5, 0.05])
def test_oracle_recovers_clean_video(mode: str, strength: float) -> None:
    x0, prior, mask, history = _setup()
    den = OracleDenoiser(x0)
    cfg = SamplerConfig(steps=12, shift=5.0, strength=strength, guidance_scale=1.0, noise_mode=mode)  # type: ignore[arg-type]
    out = sample(den, prior, mask, history, cfg, torch.Generator().manual_seed(1), progress=False)
    hmask = history[:, None, :, None, None].expand_as(out)
    # non-history tokens reach the oracle's clean video; history tokens are the prior, bit-exact
    torch.testing.assert_close(out[~hmask], x0[~hmask], atol=1e-4, rtol=0)
    assert torch.equal(out[hmask], prior[hmask])


def test_history_never_changes_and_levels_are_per_token() -> None:
    x0, prior, mask, history = _setup(3)
    den = OracleDenoiser(x0)
    cfg = SamplerConfig(steps=10, strength=0.7, guidance_scale=1.0)
    sample(den, prior, mask, history, cfg, torch.Generator().manual_seed(0), progress=False)
    # warped tokens wait until step 3 (= floor(0.3 * 10)): steps 0-2 still run for the holes
    assert len(den.calls) == 10
    first = den.calls[0][0]
    assert first.shape == (2, 4, 2, 3)
    h = history[:, :, None, None].expand_as(first)
    assert bool((first[h] == 0).all())
    # every non-history token's level is either 1 (hole) or sigma(start) at step 0
    from worldwarp.diffusion.schedule import sigma_for_strength

    sw = sigma_for_strength(0.7, 10)
    assert all(v == 1.0 or abs(v - sw) < 1e-12 for v in first[~h].tolist())


def test_strength_zero_keeps_the_warped_prior_and_fills_holes() -> None:
    from worldwarp.diffusion.latent_grid import initial_levels

    x0, prior, mask, history = _setup(4)
    den = OracleDenoiser(x0)
    cfg = SamplerConfig(steps=6, strength=0.0, guidance_scale=1.0)
    out = sample(den, prior, mask, history, cfg, torch.Generator().manual_seed(0), progress=False)
    token_levels = initial_levels(mask, history, 0.0, den.patch_size)  # (B, T, H/p, W/p)
    levels = tokens_to_cells(token_levels, den.patch_size)  # (B, T, H, W)
    keep = (levels == 0)[:, None].expand_as(out)  # history and warped tokens
    assert bool((levels == 0).any()) and bool((levels == 1).any())
    assert torch.equal(out[keep], prior[keep])  # no revision: the prior, bit-exact
    torch.testing.assert_close(out[~keep], x0[~keep], atol=1e-4, rtol=0)  # holes reach the clean video
    assert len(den.calls) == 6  # every step runs for the holes
    assert bool((token_levels[~history] == 0).any())  # some warped tokens outside the history frames
    for sigmas, _ in den.calls:  # ... which the model always sees clean, at level 0
        assert torch.equal(sigmas == 0, token_levels == 0)


def test_no_holes_skips_waiting_steps() -> None:
    x0, prior, _, history = _setup()
    full = torch.ones(2, 4, 4, 6, dtype=torch.bool)
    den = OracleDenoiser(x0)
    cfg = SamplerConfig(steps=10, strength=0.6, guidance_scale=1.0)
    sample(den, prior, full, history, cfg, torch.Generator().manual_seed(0), progress=False)
    assert len(den.calls) == 6  # steps 4..9 only; before that every token is waiting


def test_generator_determinism() -> None:
    x0, prior, mask, history = _setup()
    # a denoiser whose output does not cancel the noise: zero velocity, so the output is the initial noise mix
    den = OracleDenoiser(x0)
    den.velocity = lambda latents, sigmas, cond, guidance_scale=1.0: torch.zeros_like(latents)  # type: ignore[method-assign]
    cfg = SamplerConfig(steps=5, strength=0.8, guidance_scale=1.0)
    a = sample(den, prior, mask, history, cfg, torch.Generator().manual_seed(7), progress=False)
    b = sample(den, prior, mask, history, cfg, torch.Generator().manual_seed(7), progress=False)
    c = sample(den, prior, mask, history, cfg, torch.Generator().manual_seed(8), progress=False)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_noise_init_formula() -> None:
    prior = torch.full((1, 2, 1, 1, 3), 2.0)
    noise = torch.full((1, 2, 1, 1, 3), -1.0)
    lv = torch.tensor([[[[0.0, 0.25, 1.0]]]])
    out = noise_init(prior, lv, noise)
    assert out[0, 0, 0, 0].tolist() == [2.0, 0.75 * 2 - 0.25, -1.0]


def test_classifier_free_guidance_passes() -> None:
    calls: list[int] = []

    def predict(x: Tensor, s: Tensor, emb: Tensor) -> Tensor:
        calls.append(x.shape[0])
        return x * emb[:, None]

    x = torch.ones(2, 3)
    pos, neg = torch.tensor([2.0, 2.0]), torch.tensor([1.0, 1.0])
    out = classifier_free_guidance(predict, x, torch.zeros(2), pos, neg, 5.0)
    torch.testing.assert_close(out, torch.full((2, 3), 1.0 + 5.0 * (2.0 - 1.0)))
    assert calls == [4]  # one batched pass of 2B
    calls.clear()
    out = classifier_free_guidance(predict, x, torch.zeros(2), pos, neg, 1.0)
    torch.testing.assert_close(out, torch.full((2, 3), 2.0))
    assert calls == [2]  # guidance 1: no unconditional pass
    calls.clear()
    classifier_free_guidance(predict, x, torch.zeros(2), pos, neg, 3.0, batched=False)
    assert calls == [2, 2]


def test_sampler_passes_guidance_and_validates_shapes() -> None:
    x0, prior, mask, history = _setup()
    den = OracleDenoiser(x0)
    sample(den, prior, mask, history, SamplerConfig(steps=3, guidance_scale=4.0), progress=False)
    assert all(g == 4.0 for _, g in den.calls)
    with pytest.raises(ValueError):
        sample(den, prior, mask[:, :2], history, SamplerConfig(steps=3), progress=False)
    with pytest.raises(ValueError):
        SamplerConfig(noise_mode="bogus")  # type: ignore[arg-type]


@pytest.mark.parametrize("strength", [0.0, 0.6, 1.0])
def test_renoise_solver_recovers_the_clean_video_with_an_oracle(strength: float) -> None:
    # the oracle's clean estimate is exact at every level, so re-noising it and the last step (to level 0) give x0;
    # history stays the prior, and at strength 0 so do the warped tokens
    from worldwarp.diffusion.schedule import reduce_mask_to_patches

    x0, prior, mask, history = _setup()
    cfg = SamplerConfig(steps=6, strength=strength, guidance_scale=1.0, solver="renoise")
    out = sample(OracleDenoiser(x0), prior, mask, history, cfg, torch.Generator().manual_seed(3), progress=False)
    keep = history[:, None, :, None, None].expand_as(x0)
    if strength == 0:
        keep = keep | tokens_to_cells(reduce_mask_to_patches(mask, 2), 2)[:, None].expand_as(x0)
    torch.testing.assert_close(out, torch.where(keep, prior, x0), atol=1e-12, rtol=0)


def test_renoise_solver_draws_fresh_noise_from_the_generator() -> None:
    x0, prior, mask, history = _setup()
    den = OracleDenoiser(x0)
    den.velocity = lambda latents, sigmas, cond, guidance_scale=1.0: torch.zeros_like(latents)  # type: ignore[method-assign]
    noise = torch.randn(prior.shape, generator=torch.Generator().manual_seed(0), dtype=prior.dtype)
    runs = {}
    for solver in ("euler", "renoise"):
        for seed in (1, 2):
            cfg = SamplerConfig(steps=4, strength=0.0, guidance_scale=1.0, solver=solver)
            runs[solver, seed] = sample(
                den, prior, mask, history, cfg, torch.Generator().manual_seed(seed), progress=False, latents=noise
            )
    assert torch.equal(runs["euler", 1], runs["euler", 2])  # explicit latents: Euler draws nothing else
    assert not torch.equal(runs["renoise", 1], runs["renoise", 2])  # re-noising draws from the generator
    again = sample(
        den, prior, mask, history, SamplerConfig(steps=4, strength=0.0, guidance_scale=1.0, solver="renoise"),
        torch.Generator().manual_seed(1), progress=False, latents=noise,
    )  # fmt: skip
    assert torch.equal(again, runs["renoise", 1])


def test_unknown_solver_is_an_input_error() -> None:
    from worldwarp.errors import InputError

    with pytest.raises(InputError, match="unknown solver"):
        SamplerConfig(solver="heun")  # type: ignore[arg-type]
