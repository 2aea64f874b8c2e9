"""ST-Diff training: the recipe's tensors (analytic), the warp on an exact scene, exact resume, accelerate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.diffusion.denoisers.tiny import TinyDenoiser, TinyDenoiserConfig
from worldwarp.diffusion.schedule import shift_sigmas
from worldwarp.diffusion.training import (
    TrainConfig,
    cache_warp_source_into_clip,
    latest_checkpoint,
    make_training_inputs,
    step_generator,
    train,
    training_loss,
    warp_source_into_clip,
)

TINY = TinyDenoiserConfig(
    space_factor=2, time_factor=1, patch_size=2, width=16, depth=1, heads=2, freq_dim=8, widths=(8, 16, 16)
)
PLANE_Z = 2.0


def _texture(X: Tensor, Y: Tensor) -> Tensor:
    return torch.stack([0.5 + 0.4 * torch.sin(3 * X), 0.5 + 0.4 * torch.cos(2 * Y), 0.5 + 0.2 * torch.sin(X + Y)])


class PlaneClips:
    """Clips of a textured fronto-parallel plane z = 2 seen by cameras sliding along x (exact RGB and depth)."""

    def __init__(self, count: int = 3, frames: int = 3, size: int = 16, span: float = 0.2) -> None:
        self.count, self.frames, self.size, self.span = count, frames, size, span

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Cameras]:
        n, s = self.frames, self.size
        c2w = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
        c2w[:, 0, 3] = torch.linspace(0, self.span, n, dtype=torch.float64) + 0.37 * index
        K = torch.tensor([[s, 0, s / 2], [0, s, s / 2], [0, 0, 1]], dtype=torch.float64)
        cams = Cameras(c2w, K, s, s)
        depth = torch.full((n, s, s), PLANE_Z, dtype=torch.float64)
        pts = cams.unproject(depth)  # (n, s, s, 3)
        rgb = _texture(pts[..., 0], pts[..., 1]).permute(1, 0, 2, 3)  # (n, 3, s, s)
        return rgb.float(), depth.float(), cams


def test_warp_source_into_clip_on_exact_plane() -> None:
    frames, depths, cams = PlaneClips(frames=3, size=16)[0]
    warped, mask = warp_source_into_clip(frames, depths, cams, source=0, radius=1.0, erosion=0)
    assert warped.shape == frames.shape and mask.shape == (3, 16, 16) and mask.dtype == torch.bool
    assert bool(mask[0].all())
    torch.testing.assert_close(warped[0], frames[0])  # the source warps onto itself exactly
    # the camera moved 0.2 along x = 1.6 px at z = 2: the rightmost source pixel (u = 15.5) lands at u = 13.9,
    # pixel 13, and its radius-1 disk reaches pixel 14; column 15 of the last frame sees no source pixel
    assert not mask[2, :, 15].any() and bool(mask[2, :, :15].all())
    err = (warped - frames).abs().amax(dim=1)[mask]
    # a pixel takes a point at most ~1 px (0.125 plane units) away; |d rgb / dX| <= 1.2 -> error <= 0.15
    assert float(err.max()) < 0.151 and float(err.median()) < 0.05


def test_cache_warp_source_into_clip_on_exact_plane() -> None:
    """The cache warp keeps the source frame exact and, on a plane, renders the other frames close to the truth."""
    from worldwarp.splat.cache import CacheConfig
    from worldwarp.warp import WarpConfig

    frames, depths, cams = PlaneClips(frames=3, size=16, span=1.0)[0]
    cache = CacheConfig(steps=30, backend="torch")
    warp = WarpConfig(reprojection=False, erosion=0)
    warped, mask = cache_warp_source_into_clip(frames, depths, cams, source=0, cache=cache, warp=warp)
    assert warped.shape == frames.shape and mask.shape == (3, 16, 16) and mask.dtype == torch.bool
    assert bool(mask[0].all()) and torch.equal(warped[0], frames[0])
    # frame 2 looks 1.0 to the right of the source (8 px at z = 2): the source covers its columns 0-7 only
    assert bool(mask[2, :, :6].all()) and not mask[2, :, 10:].any()
    err = (warped - frames).abs().amax(dim=1)[mask]
    assert float(err.median()) < 0.05
    again = cache_warp_source_into_clip(frames, depths, cams, source=0, cache=cache, warp=warp)
    assert torch.equal(again[0], warped) and torch.equal(again[1], mask)  # seeded by the cache config


def test_make_training_inputs_matches_the_recipe() -> None:
    model = TinyDenoiser(TINY)
    g = torch.Generator().manual_seed(0)
    B, T, H, W = 2, 3, 8, 8
    frames = torch.rand(B, T, 3, H, W, generator=g)
    warped = torch.rand(B, T, 3, H, W, generator=g)
    mask = torch.rand(B, T, H, W, generator=g) > 0.2
    mask[:, :, :4, :4] = True  # a fully valid 2x2-token corner so both levels occur
    inp = make_training_inputs(model, frames, warped, mask, torch.Generator().manual_seed(5), sigma_shift=3.0)
    # replay the generator: levels (2, B, T'), then the noise
    rg = torch.Generator().manual_seed(5)
    u = torch.rand(2, B, T, generator=rg, dtype=torch.float64)
    s_w, s_f = shift_sigmas(u, 3.0).float()
    C = model.latent_channels
    eps = torch.randn(B, C, T, H // 2, W // 2, generator=rg)
    # token (2x2 cells = 4x4 pixels) valid iff all its pixels are
    tok = mask.reshape(B, T, 2, 4, 2, 4).all(dim=5).all(dim=3)
    assert torch.equal(inp.token_mask, tok)
    expected = torch.where(tok, s_w[:, :, None, None], s_f[:, :, None, None])
    torch.testing.assert_close(inp.sigmas, expected)
    z_gt, z_w = model.encode(frames.transpose(1, 2)), model.encode(warped.transpose(1, 2))
    m = tok.repeat_interleave(2, -2).repeat_interleave(2, -1)[:, None]
    sig = expected.repeat_interleave(2, -2).repeat_interleave(2, -1)[:, None]
    z_c = torch.where(m, z_w, z_gt)
    torch.testing.assert_close(inp.z_t, (1 - sig) * z_c + sig * eps)
    torch.testing.assert_close(inp.target, eps - z_gt)
    assert bool((inp.weight == 1).all())
    # a perfect model has zero loss
    assert float(training_loss(inp.target, inp)) == 0.0


def test_history_frames_are_clean_and_excluded() -> None:
    model = TinyDenoiser(TINY)
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(1, 3, 3, 8, 8, generator=g)
    inp = make_training_inputs(
        model, frames, frames, torch.ones(1, 3, 8, 8, dtype=torch.bool), g, history_prob=1.0, max_history=1
    )
    assert bool((inp.sigmas[:, 0] == 0).all()) and bool((inp.sigmas[:, 1:] > 0).all())
    torch.testing.assert_close(inp.z_t[:, :, 0], model.encode(frames.transpose(1, 2))[:, :, 0])
    assert inp.weight[0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]
    v = inp.target.clone()
    v[:, :, 0] += 100.0  # errors on history frames do not count
    assert float(training_loss(v, inp)) == 0.0


def test_step_generator_is_a_pure_function() -> None:
    a = torch.rand(3, generator=step_generator(1, 5, 0))
    assert torch.equal(a, torch.rand(3, generator=step_generator(1, 5, 0)))
    assert not torch.equal(a, torch.rand(3, generator=step_generator(1, 6, 0)))
    assert not torch.equal(a, torch.rand(3, generator=step_generator(1, 5, 1)))


def _model() -> TinyDenoiser:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return TinyDenoiser(TINY)


def _config(out: Path, steps: int, **kw: object) -> TrainConfig:
    base = dict(steps=steps, batch=2, lr=1e-3, warmup=2, save_every=2, out=str(out), cpu=True, warp_erosion=0)
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_train_resume_is_exact(tmp_path: Path) -> None:
    data = PlaneClips()
    straight = _model()
    res = train(straight, data, _config(tmp_path / "a", 4), progress=False)
    assert res["step"] == 4.0
    half = _model()
    train(half, data, _config(tmp_path / "b", 2), progress=False)
    resumed = _model()  # fresh weights: everything must come from the checkpoint
    train(resumed, data, _config(tmp_path / "b", 4), resume=True, progress=False)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert not torch.equal(straight.net.out.weight, _model().net.out.weight)  # training did change the weights
    log = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    ref = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log] == [r["loss"] for r in ref]
    ck = latest_checkpoint(tmp_path / "b")
    assert ck is not None and ck.name == "step_0000004"
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == [
        "latest",
        "step_0000002",
        "step_0000004",
    ]
    loaded = TinyDenoiser.from_pretrained(tmp_path / "b" / "model")
    assert torch.equal(loaded.net.out.weight, resumed.net.out.weight)


def _train_straight_and_resumed(tmp_path: Path, data: PlaneClips, **kw: object) -> TinyDenoiser:
    """Train 4 steps in one go (``a``) and as 2 + 2 with a resume from fresh weights (``b``); assert the two end
    bit-identical and return the straight model."""
    straight = _model()
    train(straight, data, _config(tmp_path / "a", 4, **kw), progress=False)
    train(_model(), data, _config(tmp_path / "b", 2, **kw), progress=False)
    resumed = _model()  # fresh weights: everything must come from the checkpoint
    train(resumed, data, _config(tmp_path / "b", 4, **kw), resume=True, progress=False)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    return straight


def test_train_with_crop_and_weight_average_resumes_exactly(tmp_path: Path) -> None:
    """Random windows and the weight average are part of the exact-resume promise; the export is the average."""
    data = PlaneClips(size=16)
    straight = _train_straight_and_resumed(tmp_path, data, crop=(8, 12), ema_decay=0.5, clean_warped_prob=0.5)
    exported = [TinyDenoiser.from_pretrained(tmp_path / d / "model") for d in ("a", "b")]
    for (k, a), b in zip(exported[0].state_dict().items(), exported[1].state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # the export is the average, not the last weights: with decay 0.5 over 4 steps it lies between init and now
    init, last, avg = _model().net.out.weight, straight.net.out.weight, exported[0].net.out.weight
    assert not torch.equal(avg, last) and not torch.equal(avg, init)


def test_train_with_cache_warps_resumes_exactly(tmp_path: Path) -> None:
    """Training on cache warps draws each fit's seed from the run's generator, so a resumed run is exact too."""
    from worldwarp.splat.cache import CacheConfig

    data = PlaneClips(size=16)
    straight = _train_straight_and_resumed(tmp_path, data, warp_cache=CacheConfig(steps=5, backend="torch"))
    points = _model()
    train(points, data, _config(tmp_path / "c", 4), progress=False)
    assert not torch.equal(points.net.out.weight, straight.net.out.weight)  # the warp changed what was learnt


def test_weight_average_is_the_exponential_mean() -> None:
    from worldwarp.diffusion.training import WeightAverage

    m = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema = WeightAverage(m, 0.75)
    for w in (2.0, 4.0):
        with torch.no_grad():
            m.weight.fill_(w)
        ema.update(m)
    # 1 -> 0.75 + 0.25 * 2 = 1.25 -> 0.9375 + 1.0 = 1.9375
    assert ema.avg["weight"].item() == 1.9375
    ema.apply_to(m)
    assert m.weight.item() == 1.9375


def test_clean_warped_tokens_start_at_level_zero() -> None:
    model = TinyDenoiser(TINY)
    g = torch.Generator().manual_seed(3)
    frames = torch.rand(1, 4, 3, 8, 8, generator=g)  # (B, T, 3, H, W)
    mask = torch.zeros(1, 4, 8, 8, dtype=torch.bool)
    mask[..., :4] = True  # left half warped (token column 0 of 2: 4 px = 2 cells = 1 patch), right half holes
    inp = make_training_inputs(model, frames, frames, mask, g, clean_warped_prob=1.0)
    assert bool((inp.sigmas[..., :1] == 0).all())  # warped tokens are clean
    assert bool((inp.sigmas[..., 1:] > 0).all())  # holes keep their drawn level
    z = model.encode(frames.transpose(1, 2))
    torch.testing.assert_close(inp.z_t[..., :2], z[..., :2])
    # clean cells are conditioning: they carry no noise, so their (unpredictable) target is not in the loss
    assert bool((inp.weight[..., :2] == 0).all()) and bool((inp.weight[..., 2:] == 1).all())
    v = inp.target.clone()
    v[..., :2] += 100.0
    assert float(training_loss(v, inp)) == 0.0


def test_pure_holes_start_at_level_one_and_other_draws_are_unchanged() -> None:
    model = TinyDenoiser(TINY)
    g = torch.Generator().manual_seed(3)
    frames = torch.rand(1, 4, 3, 8, 8, generator=g)  # (B, T, 3, H, W)
    mask = torch.zeros(1, 4, 8, 8, dtype=torch.bool)
    mask[..., :4] = True  # left half warped (token column 0), right half holes
    base = make_training_inputs(model, frames, frames, mask, torch.Generator().manual_seed(5), history_prob=1.0)
    inp = make_training_inputs(
        model, frames, frames, mask, torch.Generator().manual_seed(5), history_prob=1.0, pure_hole_prob=1.0
    )
    hist = base.weight[0, 0, :, 0, 0] == 0  # (T',): history latent frames (level 0, no loss)
    assert bool(hist.any()) and bool((inp.sigmas[0, hist] == 0).all())  # history stays clean
    assert bool((inp.sigmas[0, ~hist][..., 1:] == 1).all())  # holes are pure noise
    torch.testing.assert_close(inp.sigmas[..., :1], base.sigmas[..., :1])  # warped tokens keep their draw
    torch.testing.assert_close(inp.target, base.target)  # the pure-hole draw comes after every other draw


_LAUNCH_SCRIPT = """
import sys
from test_training import PlaneClips, _config, _model
from worldwarp.diffusion.training import train
from pathlib import Path
train(_model(), PlaneClips(count=4), _config(Path(sys.argv[1]), 2, batch=1), progress=False)
"""


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(_LAUNCH_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parent))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu", str(script)]
    cmd += [str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = [json.loads(x) for x in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    assert latest_checkpoint(tmp_path / "out") is not None


def test_cli_train_on_real_scene(shared_data: Path, tmp_path: Path) -> None:
    from worldwarp.cli import main

    scene = shared_data / "scenes" / "7scenes_redkitchen"
    out = tmp_path / "run"
    args = ["train", "--dataset", f"transforms:{scene}", "--steps", "1", "--out", str(out), "--frames", "3"]
    args += [
        "--height",
        "16",
        "--width",
        "24",
        "--tiny-width",
        "16",
        "--tiny-depth",
        "1",
        "--tiny-widths",
        "8,16,16",
        "--no-progress",
    ]
    assert main(args) == 0
    assert [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()] == [1]
    assert TinyDenoiser.from_pretrained(out / "model").config.width == 16


def test_cli_train_bad_input_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from worldwarp.cli import main

    base = [
        "train",
        "--steps",
        "1",
        "--out",
        str(tmp_path / "o"),
        "--tiny-width",
        "16",
        "--tiny-depth",
        "1",
        "--tiny-widths",
        "8,16,16",
    ]
    assert main([*base, "--dataset", f"transforms:{tmp_path / 'missing'}"]) == 2
    assert "missing: dataset folder not found" in capsys.readouterr().err
    assert main([*base, "--dataset", "bogus"]) == 2
    assert "unknown dataset 'bogus'" in capsys.readouterr().err
    assert main([*base, "--dataset", "procedural", "--height", "18"]) == 2
    assert "multiples of 4" in capsys.readouterr().err
    assert main([*base, "--dataset", "procedural", "--warp-cache-steps", "10"]) == 2
    assert "--warp-cache-steps needs --warp-source cache" in capsys.readouterr().err
    assert main([*base, "--dataset", "procedural", "--warp-source", "cache", "--warp-cache-steps", "0"]) == 2
    assert "--warp-cache-steps must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_train_procedural(tmp_path: Path) -> None:
    from worldwarp.cli import main

    out = tmp_path / "run"
    args = ["train", "--dataset", "procedural", "--steps", "2", "--out", str(out), "--frames", "3", "--height", "16"]
    args += [
        "--width",
        "24",
        "--tiny-width",
        "16",
        "--tiny-depth",
        "1",
        "--tiny-widths",
        "8,16,16",
        "--no-progress",
        "--save-every",
        "1",
    ]
    assert main(args) == 0
    assert latest_checkpoint(out) is not None and latest_checkpoint(out).name == "step_0000002"  # type: ignore[union-attr]


def test_lr_factor_warmup_then_constant_or_cosine() -> None:
    from worldwarp.diffusion.training import TrainConfig, lr_factor

    const = TrainConfig(steps=10, warmup=4)
    assert [lr_factor(s, const) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cos = TrainConfig(steps=10, warmup=4, lr_schedule="cosine", min_lr_ratio=0.1)
    # warm-up ends at step index 3 (factor 1); the cosine spans the remaining 6 steps down to 0.1 at index 9
    assert [lr_factor(s, cos) for s in range(3)] == [0.25, 0.5, 0.75]
    assert lr_factor(3, cos) == 1.0
    assert lr_factor(6, cos) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: p = 3 / 6
    assert lr_factor(9, cos) == pytest.approx(0.1)
    assert lr_factor(50, cos) == pytest.approx(0.1)  # a run continued past `steps` stays at the floor
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_lr_ratio"):
        TrainConfig(min_lr_ratio=1.5)
