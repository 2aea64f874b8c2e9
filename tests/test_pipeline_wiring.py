"""What a chunk hands the sampler: history latents, latent mask, history latent frames and per-token start levels.

A toy denoiser with Wan's time factor (4) and a 2x2 patch makes every expectation computable by hand: its encoder
keeps the last pixel frame of each latent frame at every other pixel (so latents are pixels), its velocity is zero
(so the sampler's output is its own start) and it records the per-token levels of every call. The warp of each chunk
is replaced by a hand-made one (prior colour and validity mask), so the mask is known pixel by pixel.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

import worldwarp.diffusion.sampler as sampler_module
from worldwarp.cameras import Cameras, intrinsics_from_fov, look_at
from worldwarp.diffusion.sampler import SamplerConfig
from worldwarp.pipeline import PipelineConfig, WorldWarpPipeline
from worldwarp.warp import WarpResult

H, W = 8, 8  # latent grid 4x4 (space factor 2), tokens 2x2 (patch 2)
S5_6 = 5.0 / 6.0  # 4 steps, shift 5, strength 0.5: start index 2, sigma = 5 * 0.5 / (1 + 4 * 0.5)


class ToyDenoiser:
    time_factor = 4
    space_factor = 2
    patch_size = 2
    latent_channels = 3

    def __init__(self) -> None:
        self.calls: list[Tensor] = []

    def encode(self, video: Tensor) -> Tensor:  # (B, 3, T, H, W) -> (B, 3, T', H/2, W/2): frames 0, 4, 8, ...
        return video[:, :, ::4, ::2, ::2].clone()

    def decode(self, latents: Tensor) -> Tensor:  # latent 0 -> frame 0; latent t -> frames 4t-3 .. 4t
        up = latents.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
        return torch.cat([up[:, :, :1], up[:, :, 1:].repeat_interleave(4, dim=2)], dim=2).clamp(0, 1)

    def encode_prompt(self, prompt: str, negative: str = "") -> Any:
        return None

    def velocity(self, latents: Tensor, sigmas: Tensor, cond: Any, guidance_scale: float = 1.0) -> Tensor:
        self.calls.append(sigmas.clone())
        return torch.zeros_like(latents)


def _pipe(rule: str) -> tuple[WorldWarpPipeline, ToyDenoiser]:
    den = ToyDenoiser()
    sampler = SamplerConfig(
        steps=4, shift=5.0, strength=0.5, guidance_scale=1.0, mask_reduction=rule, patch_levels=rule
    )
    cfg = PipelineConfig.cpu(height=H, width=W, chunk_frames=9, overlap=5, sampler=sampler, cache_mode="none",
                             progress=False)  # fmt: skip
    return WorldWarpPipeline(den, cfg), den


def _inputs(n: int = 12) -> tuple[Tensor, Cameras, Tensor]:
    image = torch.arange(3 * H * W, dtype=torch.float32).reshape(3, H, W) / (3 * H * W)
    eye = torch.stack([torch.tensor([0.0, 0.0, 0.1 * i]) for i in range(n)]).double()
    c2w = look_at(eye, eye + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    return image, Cameras(c2w, intrinsics_from_fov(H, W, fov_x_deg=60), H, W), torch.full((H, W), 2.0)


def _mask(n: int, chunk: int) -> Tensor:
    """Validity of the n new frames of a chunk (frame 1 of the chunk is row 0 here)."""
    m = torch.ones(n, H, W, dtype=torch.bool)
    if chunk == 0:
        m[2, 0, 0] = False  # chunk frame 3 (latent 1), top-left pixel: cell (0, 0) of latent 1
        m[7, :, 4:] = False  # chunk frame 8 (latent 2): right half
        m[5, 7, 1] = False  # chunk frame 6 (latent 2), an odd pixel of cell (3, 0)
    else:
        m[3, 4:, :] = False  # chunk frame 8 of chunk 1 (its latent 2): bottom half
    return m


def _fake_warp(pipe: WorldWarpPipeline, chunk_of: list[int]):  # noqa: ANN202
    def warp(gaussians, frames, depths, cams, targets) -> WarpResult:  # noqa: ANN001
        k = chunk_of[0]
        n = len(targets)
        rgb = torch.stack([torch.full((3, H, W), 0.1 * (i + 1)) for i in range(n)])
        mask = _mask(n, k)
        chunk_of[0] += 1
        return WarpResult(rgb=rgb, depth=torch.full((n, H, W), 2.0), alpha=mask.float(), mask=mask)

    return warp


@pytest.mark.parametrize("rule", ["strict", "release"])
def test_what_each_chunk_hands_the_sampler(rule: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe, den = _pipe(rule)
    image, cams, depth = _inputs()
    seen: list[dict[str, Tensor]] = []
    real_sample = sampler_module.sample

    def spy(denoiser, prior, latent_mask, history, config, **kw):  # noqa: ANN001, ANN202
        seen.append({"prior": prior.clone(), "mask": latent_mask.clone(), "history": history.clone()})
        return real_sample(denoiser, prior, latent_mask, history, config, **kw)

    monkeypatch.setattr(sampler_module, "sample", spy)
    monkeypatch.setattr(pipe, "_warp", _fake_warp(pipe, [0]))
    state = pipe.start(image, cams, depth)
    assert state.layout == [(0, 1, 9), (4, 5, 13)]

    # ---- chunk 0: frames 0..8, one history frame (the start image)
    pipe.step(state)
    got = seen[0]
    assert got["prior"].shape == (1, 3, 3, 4, 4) and got["mask"].shape == (1, 3, 4, 4)
    assert got["history"].tolist() == [[True, False, False]]  # latent 0 = the start image only
    assert torch.equal(got["prior"][0, :, 0], ((image * 255).round() / 255)[:, ::2, ::2])  # the history latent
    # latents 1 and 2 are pixel frames 4 and 8 of the chunk: the warped prior (colour 0.1 * new index), zero in holes
    assert torch.allclose(got["prior"][0, :, 1], torch.full((3, 4, 4), 0.4))
    prior8 = torch.where(_mask(8, 0)[7, ::2, ::2], 0.8, 0.0)
    assert torch.allclose(got["prior"][0, :, 2], prior8.expand(3, 4, 4))
    expected = torch.ones(3, 4, 4, dtype=torch.bool)
    if rule == "strict":  # a cell needs every pixel of every frame it covers
        expected[1, 0, 0] = False  # frame 3, pixel (0, 0)
        expected[2, :, 2:] = False  # frame 8, right half
        expected[2, 3, 0] = False  # frame 6, pixel (7, 1) lies in cell (3, 0)
    else:  # release: frame 4t of each latent frame, the top-left pixel of each 2x2 block
        expected[2, :, 2:] = False
    assert torch.equal(got["mask"][0], expected)
    # per-token start levels the model sees first: history 0, warped 5/6, holes 1
    first = den.calls[0][0].double()
    tokens = torch.full((3, 2, 2), S5_6, dtype=torch.float64)
    tokens[0] = 0.0
    tokens[2, :, 1] = 1.0  # right-half tokens of latent 2 are holes under both rules
    if rule == "strict":  # a token is warped only if all its cells are
        tokens[1, 0, 0] = 1.0
        tokens[2, 1, 0] = 1.0
    assert torch.allclose(first, tokens, atol=1e-7)

    # ---- chunk 1: frames 4..12, five history frames (4..8) = latent frames 0 and 1
    pipe.step(state)
    got = seen[1]
    assert got["history"].tolist() == [[True, True, False]]
    assert torch.equal(got["prior"][0, :, 0], state.frames[4][:, ::2, ::2])  # frame 4
    assert torch.equal(got["prior"][0, :, 1], state.frames[8][:, ::2, ::2])  # frame 8 ends latent 1
    assert torch.allclose(got["prior"][0, :, 2, :2], torch.full((3, 2, 4), 0.4))  # chunk frame 8 = new frame 4
    assert torch.equal(got["prior"][0, :, 2, 2:], torch.zeros(3, 2, 4))
    expected = torch.ones(3, 4, 4, dtype=torch.bool)
    expected[2, 2:, :] = False
    assert torch.equal(got["mask"][0], expected)
    assert len(den.calls) == 8  # both chunks have holes, which move from the first step: 4 model calls each
    tokens = torch.full((3, 2, 2), S5_6, dtype=torch.float64)
    tokens[:2] = 0.0
    tokens[2, 1, :] = 1.0
    assert torch.allclose(den.calls[4][0].double(), tokens, atol=1e-7)
    # later steps: tokens wait at their own level until the schedule reaches it (levels min(level0, sigma_i))
    sigma1 = 5 * 0.75 / (1 + 4 * 0.75)
    assert torch.allclose(den.calls[5][0].double(), tokens.clamp(max=sigma1), atol=1e-7)
