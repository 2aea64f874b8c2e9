"""The embedded tiny ST-Diff: exact autoencoder, protocol, guidance, checkpoints, sampling end to end."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from worldwarp.diffusion.denoisers.base import Denoiser
from worldwarp.diffusion.denoisers.tiny import TinyDenoiser, TinyDenoiserConfig
from worldwarp.diffusion.denoisers.tiny_unet import precondition
from worldwarp.diffusion.sampler import SamplerConfig, sample
from worldwarp.errors import InputError

SMALL = TinyDenoiserConfig(
    space_factor=2, time_factor=1, patch_size=2, width=16, depth=1, heads=2, freq_dim=16, widths=(8, 16, 16)
)
SMALL_PIXEL = dataclasses.replace(SMALL, pixel_width=8)
SMALL_BLANK = dataclasses.replace(SMALL, blank_pure_noise=True)
CONFIGS = pytest.mark.parametrize("config", [SMALL, SMALL_PIXEL, SMALL_BLANK], ids=["unet", "pixel", "blank"])


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
    model = TinyDenoiser(
        TinyDenoiserConfig(space_factor=space, time_factor=time, width=16, depth=1, heads=2, widths=(8, 16, 16))
    )
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
    model = TinyDenoiser(
        TinyDenoiserConfig(space_factor=4, time_factor=4, width=16, depth=1, heads=2, widths=(8, 16, 16))
    )
    with pytest.raises(ValueError):
        model.encode(torch.rand(1, 3, 6, 8, 8))  # 6 - 1 not divisible by 4
    with pytest.raises(ValueError):
        model.encode(torch.rand(1, 3, 5, 10, 8))  # 10 not divisible by 4


def test_default_config_is_the_shipped_architecture() -> None:
    shipped = TinyDenoiser.from_pretrained().config
    assert dataclasses.replace(shipped, hole_init="noise", revise_init="noise") == TinyDenoiserConfig()
    assert shipped.hole_init == "push_pull"  # the shipped model starts its holes from the push-pull guess
    assert shipped.revise_init == "prior"  # and its warped cells from the warp itself


def test_protocol_attributes() -> None:
    model = TinyDenoiser(TinyDenoiserConfig())
    assert isinstance(model, Denoiser)
    assert (model.time_factor, model.space_factor, model.patch_size, model.latent_channels) == (1, 4, 1, 48)
    # freshly initialised, the zero-initialised output layer leaves the preconditioning's skip: v = a(sigma) z_t,
    # i.e. the clean estimate z_t - sigma v is c_skip(sigma) z_t
    z = torch.randn(1, 48, 2, 4, 4)
    sig = torch.rand(1, 2, 4, 4)
    _, a, _ = precondition(sig, 0.5)
    torch.testing.assert_close(model.velocity(z, sig), a[:, None] * z)


def test_precondition_golden_values() -> None:
    # D = (1 - sigma)^2 s^2 + sigma^2; c_in = 1 / sqrt(D); a = (sigma - (1 - sigma) s^2) / D; b = s / sqrt(D)
    c_in, a, b = precondition(torch.tensor([0.0, 0.5, 1.0]), 0.5)
    torch.testing.assert_close(c_in, torch.tensor([2.0, 1 / 0.3125**0.5, 1.0]))
    torch.testing.assert_close(a, torch.tensor([-1.0, 0.375 / 0.3125, 1.0]))
    torch.testing.assert_close(b, torch.tensor([1.0, 0.5 / 0.3125**0.5, 0.5]))
    # the skip is the least-squares clean estimate: c_skip = 1 - sigma a minimises E|z - c z_t|^2 for data of std s
    g = torch.Generator().manual_seed(0)
    z, eps = 0.5 * torch.randn(200_000, generator=g), torch.randn(200_000, generator=g)
    zt = 0.7 * z + 0.3 * eps
    best = (z * zt).mean() / (zt * zt).mean()
    _, a3, b3 = precondition(torch.tensor(0.3), 0.5)
    assert abs(best.item() - (1 - 0.3 * a3.item())) < 0.01
    # c_out = sigma b makes the network's target (z - c_skip z_t) / c_out unit-variance
    target = (z - (1 - 0.3 * a3) * zt) / (0.3 * b3)
    assert abs(target.std().item() - 1.0) < 0.01


@pytest.mark.parametrize(
    "bad",
    [
        {"arch": "mlp"},
        {"arch": "transformer"},
        {"widths": (8, 16)},
        {"widths": (8, 12, 16)},
        {"width": 12},
        {"sigma_data": 0.0},
        {"pixel_width": -1},
        {"refine_width": 8},  # a field of the retired transformer
    ],
)
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises((ValueError, TypeError)):
        TinyDenoiserConfig(**bad)


@CONFIGS
def test_velocity_shapes_batch_independence_and_sigma_dependence(config: TinyDenoiserConfig) -> None:
    model = _random_model(config)
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


@CONFIGS
def test_guidance_formula_and_prompt_mapping(config: TinyDenoiserConfig) -> None:
    model = _random_model(config)
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


@CONFIGS
def test_save_load_round_trip(tmp_path, config: TinyDenoiserConfig) -> None:
    model = _random_model(config)
    model.save_pretrained(tmp_path / "ckpt")
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert cfg["width"] == config.width and cfg["model"] == "tiny_stdiff" and cfg["arch"] == config.arch
    loaded = TinyDenoiser.from_pretrained(tmp_path / "ckpt").eval()
    assert loaded.config == config
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
    (tmp_path / "config.json").write_text(json.dumps({"arch": "unet", "width": 64, "depth": 2, "heads": 2}))
    with pytest.raises(InputError, match="cannot load weights"):
        TinyDenoiser.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"arch": "unet", "bogus": 1}))
    with pytest.raises(InputError, match=r"unknown config keys \['bogus'\]"):
        TinyDenoiser.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"arch": "mlp"}))
    with pytest.raises(InputError, match="invalid config"):
        TinyDenoiser.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="expected a JSON object"):
        TinyDenoiser.from_pretrained(tmp_path)


# config.json of the transformer shipped until session 6 (commit 8734bc8): no "arch" key
OLD_TRANSFORMER_CONFIG = {
    "model": "tiny_stdiff",
    "space_factor": 4,
    "time_factor": 1,
    "patch_size": 1,
    "width": 64,
    "depth": 4,
    "heads": 4,
    "mlp_ratio": 2.0,
    "freq_dim": 64,
    "refine_width": 0,
}


@pytest.mark.parametrize(
    "config",
    [OLD_TRANSFORMER_CONFIG, {**OLD_TRANSFORMER_CONFIG, "arch": "transformer", "widths": [64, 96, 128]}],
    ids=["before-arch", "arch-transformer"],
)
def test_transformer_checkpoint_is_refused_with_one_clear_line(tmp_path, config: dict) -> None:
    """The transformer was retired: its checkpoints give one InputError naming the way out, not a traceback."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"not read")
    with pytest.raises(InputError) as err:
        TinyDenoiser.from_pretrained(tmp_path)
    msg = str(err.value)
    assert msg == (
        f"{tmp_path}: a checkpoint of the tiny transformer, the embedded model before the U-Net; that architecture "
        "was retired (docs/training.md); retrain with `worldwarp train --denoiser tiny`"
    )
    assert "\n" not in msg


def test_retired_config_keys_are_ignored(tmp_path) -> None:
    """U-Net checkpoints written while the transformer existed carry its keys (like the shipped config.json)."""
    model = _random_model(SMALL)
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert not {"mlp_ratio", "refine_width", "skip_std"} & set(cfg)
    cfg.update(mlp_ratio=2.0, refine_width=0, skip_std=0.5)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    loaded = TinyDenoiser.from_pretrained(tmp_path)
    assert loaded.config == SMALL
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)


def test_unet_pads_odd_sizes_and_mixes_time() -> None:
    model = _random_model(SMALL)
    g = torch.Generator().manual_seed(4)
    z = torch.randn(1, model.latent_channels, 3, 6, 10, generator=g)  # 6 x 10 cells: not multiples of 4
    s = torch.rand(1, 3, 3, 5, generator=g)
    with torch.no_grad():
        v = model.velocity(z, s)
        z2 = z.clone()
        z2[:, :, 0] += 1.0  # change only the first latent frame
        v2 = model.velocity(z2, s)
    assert v.shape == z.shape and bool(torch.isfinite(v).all())
    assert not torch.allclose(v2[:, :, 2], v[:, :, 2])  # the last frame sees the first (temporal attention)


@CONFIGS
def test_sampling_end_to_end_keeps_history(config: TinyDenoiserConfig) -> None:
    model = _random_model(config)
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


def test_pixel_head_starts_as_the_identity_and_works_on_pixels() -> None:
    base = _random_model(SMALL)
    torch.manual_seed(3)
    grown = TinyDenoiser(SMALL_PIXEL).eval()
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert sorted(missing) == [f"net.pixel.{i}.{n}" for i in (0, 2, 4) for n in ("bias", "weight")] and not unexpected
    g = torch.Generator().manual_seed(2)
    z = torch.randn(1, base.latent_channels, 3, 4, 8, generator=g)  # a multiple of 4: no padding
    s = torch.rand(1, 3, 2, 4, generator=g)
    cond = base.encode_prompt("a room", "")
    with torch.no_grad():
        assert torch.equal(grown.velocity(z, s, cond), base.velocity(z, s, cond))  # zero-initialised last conv
        head = grown.net.pixel
        for p in head.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
        v = grown.velocity(z, s, cond)
        # v = a z - b F: the head adds unshuffle(head(...)) to F, so the velocities differ by -b times it
        from worldwarp.diffusion.denoisers.base import tokens_to_cells

        cells = tokens_to_cells(s, 2)  # (1, 3, 4, 8)
        c_in, _, b = (t[:, None] for t in precondition(cells, SMALL_PIXEL.sigma_data))
        x = (z * c_in)[0].transpose(0, 1)  # (T, C, H, W)
        f = (base.velocity(z, s, cond) - v)[0].transpose(0, 1)  # (T, C, H, W): b * unshuffle(head(...))
        # recover F of the grown model from the base model: F = (a z - v_base) / b
        a = precondition(cells, SMALL_PIXEL.sigma_data)[1][:, None]
        f_base = ((a * z - base.velocity(z, s, cond)) / b)[0].transpose(0, 1)
        lv = cells[0][:, None].repeat_interleave(2, 2).repeat_interleave(2, 3)  # (T, 1, 2H, 2W)
        inp = torch.cat([torch.nn.functional.pixel_shuffle(f_base, 2), torch.nn.functional.pixel_shuffle(x, 2), lv], 1)
        expected = b[0].transpose(0, 1) * torch.nn.functional.pixel_unshuffle(head(inp), 2)
    torch.testing.assert_close(f, expected, atol=1e-5, rtol=1e-4)


def test_train_init_adds_a_pixel_head(tmp_path) -> None:
    from conftest import train_denoiser

    base = _random_model(SMALL)
    base.save_pretrained(tmp_path / "base")
    grown = train_denoiser("--init", str(tmp_path / "base"), "--tiny-pixel-width", "8")
    assert grown.config.pixel_width == 8
    g = torch.Generator().manual_seed(2)
    z = torch.randn(1, base.latent_channels, 3, 4, 6, generator=g)
    s = torch.rand(1, 3, 2, 3, generator=g)
    with torch.no_grad():
        assert torch.equal(grown.velocity(z, s, None), base.velocity(z, s, None))
    grown.save_pretrained(tmp_path / "grown")  # a head of another width on a model that has one
    with pytest.raises(InputError, match="pixel head"):
        train_denoiser("--init", str(tmp_path / "grown"), "--tiny-pixel-width", "16")


def test_blank_pure_noise_makes_the_level_one_estimate_independent_of_the_noise() -> None:
    model = _random_model(dataclasses.replace(SMALL, blank_pure_noise=True))
    plain = _random_model(SMALL)  # the same weights without the option
    g = torch.Generator().manual_seed(4)
    z = torch.randn(1, model.latent_channels, 3, 4, 8, generator=g)
    s = torch.rand(1, 3, 2, 4, generator=g)
    s[0, 1:] = 1.0  # latent frames 1 and 2 are holes: pure noise
    z2 = z.clone()
    z2[:, :, 1:] = torch.randn(z2[:, :, 1:].shape, generator=g)  # another draw of the noise
    cond = model.encode_prompt("", "")
    with torch.no_grad():
        x0 = z - model.velocity(z, s, cond)  # clean estimate z_t - sigma v at sigma = 1 (and below)
        x0_2 = z2 - model.velocity(z2, s, cond)
        p0, p2 = z - plain.velocity(z, s, cond), z2 - plain.velocity(z2, s, cond)
    torch.testing.assert_close(x0[:, :, 1:], x0_2[:, :, 1:], atol=1e-6, rtol=0)
    torch.testing.assert_close(x0[:, :, 0], x0_2[:, :, 0], atol=1e-6, rtol=0)  # frame 0 never saw the noise
    assert (p0[:, :, 1:] - p2[:, :, 1:]).abs().max() > 1e-3  # without the option the noise leaks into the estimate


def test_train_from_scratch_builds_the_shipped_architecture(capsys: pytest.CaptureFixture[str]) -> None:
    from worldwarp.cli import build_parser, main
    from worldwarp.cli.train import _denoiser

    args = build_parser().parse_args(["train", "--dataset", "procedural", "--steps", "1", "--out", "o"])
    model = _denoiser(args)
    assert model.config == TinyDenoiserConfig()
    assert (model.config.widths, model.config.depth, model.config.width, model.config.heads) == (
        (64, 96, 128),
        1,
        64,
        4,
    )
    assert (model.config.freq_dim, model.config.sigma_data, model.config.patch_size) == (64, 0.5, 1)
    # the architecture option went with the transformer
    assert main(["train", "--dataset", "procedural", "--steps", "1", "--out", "o", "--tiny-arch", "unet"]) == 2
    assert "--tiny-arch" in capsys.readouterr().err
