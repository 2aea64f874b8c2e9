"""The embedded tiny ST-Diff: exact autoencoder, protocol, guidance, checkpoints, sampling end to end."""

from __future__ import annotations

import json

import pytest
import torch

from worldwarp.diffusion.denoisers.base import Denoiser
from worldwarp.diffusion.denoisers.tiny import TinyDenoiser, TinyDenoiserConfig
from worldwarp.diffusion.sampler import SamplerConfig, sample
from worldwarp.errors import InputError

SMALL = TinyDenoiserConfig(space_factor=2, time_factor=1, patch_size=2, width=32, depth=2, heads=2, freq_dim=16)


def _random_model(config: TinyDenoiserConfig = SMALL, seed: int = 0) -> TinyDenoiser:
    torch.manual_seed(seed)
    model = TinyDenoiser(config)
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for p in model.parameters():  # the zero-initialised output would hide every bug: randomise all weights
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize(("space", "time", "frames"), [(4, 1, 3), (2, 4, 9), (2, 2, 1)])
def test_autoencoder_is_exact(space: int, time: int, frames: int) -> None:
    model = TinyDenoiser(TinyDenoiserConfig(space_factor=space, time_factor=time, width=16, depth=1, heads=2))
    g = torch.Generator().manual_seed(0)
    video = torch.rand(2, 3, frames, 8, 12, generator=g, dtype=torch.float64)
    z = model.encode(video)
    assert z.shape == (2, 3 * time * space**2, 1 + (frames - 1) // time, 8 // space, 12 // space)
    assert z.dtype == torch.float64 and float(z.min()) >= -1 and float(z.max()) <= 1
    torch.testing.assert_close(model.decode(z), video, atol=1e-12, rtol=0)
    # a latent cell holds exactly its pixels: cell (0, 0) of frame 0 is the top-left space x space block
    block = video[0, :, 0, :space, :space].reshape(3, -1) * 2 - 1
    torch.testing.assert_close(z[0, :, 0, 0, 0].reshape(3, time, -1)[:, 0], block)


def test_autoencoder_rejects_bad_sizes() -> None:
    model = TinyDenoiser(TinyDenoiserConfig(space_factor=4, time_factor=4, width=16, depth=1, heads=2))
    with pytest.raises(ValueError):
        model.encode(torch.rand(1, 3, 6, 8, 8))  # 6 - 1 not divisible by 4
    with pytest.raises(ValueError):
        model.encode(torch.rand(1, 3, 5, 10, 8))  # 10 not divisible by 4


def test_protocol_attributes() -> None:
    model = TinyDenoiser(TinyDenoiserConfig())
    assert isinstance(model, Denoiser)
    assert (model.time_factor, model.space_factor, model.patch_size, model.latent_channels) == (1, 4, 2, 48)
    # freshly initialised: adaLN-Zero output layer predicts zero velocity
    z = torch.randn(1, 48, 2, 4, 4)
    assert torch.equal(model.velocity(z, torch.rand(1, 2, 2, 2)), torch.zeros_like(z))


def test_velocity_shapes_batch_independence_and_sigma_dependence() -> None:
    model = _random_model()
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, model.latent_channels, 3, 4, 6, generator=g)
    s = torch.rand(2, 3, 2, 3, generator=g)
    cond = model.encode_prompt("a room", "")
    with torch.no_grad():
        v = model.velocity(z, s, cond)
        v0 = model.velocity(z[:1], s[:1], cond)
        s2 = s.clone()
        s2[0, 1, 1, 2] = 0.0
        v2 = model.velocity(z, s2, cond)
    assert v.shape == z.shape
    torch.testing.assert_close(v[:1], v0, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(v2[0], v[0])  # one token's level matters
    torch.testing.assert_close(v2[1], v[1])  # ...and only in its own batch item
    with pytest.raises(ValueError):
        model.velocity(z, s[:, :, :1])


def test_guidance_formula_and_prompt_mapping() -> None:
    model = _random_model()
    assert model.encode_prompt("", "").positive == 1 and model.encode_prompt("x", "").positive == 0
    g = torch.Generator().manual_seed(2)
    z = torch.randn(1, model.latent_channels, 2, 4, 4, generator=g)
    s = torch.rand(1, 2, 2, 2, generator=g)
    with torch.no_grad():
        vp = model.forward(z, s, torch.tensor([0]))
        vn = model.forward(z, s, torch.tensor([1]))
        guided = model.velocity(z, s, model.encode_prompt("x", ""), 4.0)
        same = model.velocity(z, s, model.encode_prompt("x", "blurry"), 4.0)
    assert not torch.allclose(vp, vn)
    torch.testing.assert_close(guided, vn + 4.0 * (vp - vn), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(same, vp)


def test_save_load_round_trip(tmp_path) -> None:
    model = _random_model()
    model.save_pretrained(tmp_path / "ckpt")
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert cfg["width"] == 32 and cfg["model"] == "tiny_stdiff"
    loaded = TinyDenoiser.from_pretrained(tmp_path / "ckpt").eval()
    assert loaded.config == SMALL
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]


def test_from_pretrained_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="no tiny ST-Diff checkpoint"):
        TinyDenoiser.from_pretrained(tmp_path)
    _random_model().save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"width": 32,\n "bogus": }')
    with pytest.raises(InputError, match=r"config.json:2"):
        TinyDenoiser.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"width": 64, "depth": 2, "heads": 2}))
    with pytest.raises(InputError, match="cannot load weights"):
        TinyDenoiser.from_pretrained(tmp_path)


def test_sampling_end_to_end_keeps_history() -> None:
    model = _random_model()
    g = torch.Generator().manual_seed(3)
    video = torch.rand(1, 3, 4, 8, 8, generator=g)
    prior = model.encode(video)
    mask = torch.ones(1, 4, 4, 4, dtype=torch.bool)
    mask[:, 2:, :, 2:] = False
    history = torch.tensor([[True, False, False, False]])
    cfg = SamplerConfig(steps=4, strength=0.6, guidance_scale=2.0)
    with torch.no_grad():
        out = sample(
            model, prior, mask, history, cfg, torch.Generator().manual_seed(0), model.encode_prompt("x"), False
        )
    assert out.shape == prior.shape and bool(torch.isfinite(out).all())
    assert torch.equal(out[:, :, 0], prior[:, :, 0])
    assert model.decode(out).shape == video.shape
