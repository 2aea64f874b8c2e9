"""The pipeline-based evaluation methods (worldwarp.eval.pipeline_methods): registry, configs, runs on tiny scenes."""

from __future__ import annotations

import pytest
import torch

from worldwarp.cameras import Cameras
from worldwarp.diffusion.denoisers.tiny import TinyDenoiser, TinyDenoiserConfig
from worldwarp.errors import InputError
from worldwarp.eval.benchmark import METHODS, BenchmarkConfig, SkipScene, build_method, run_benchmark
from worldwarp.eval.datasets import EvalScene
from worldwarp.eval.pipeline_methods import (
    PIPELINE_METHODS,
    VARIANTS,
    PipelineMethodConfig,
    Variant,
    make_pipeline_config,
    pipeline_method,
)

H, W = 32, 48


def _tiny_denoiser(seed: int = 0) -> TinyDenoiser:
    torch.manual_seed(seed)
    den = TinyDenoiser(TinyDenoiserConfig(width=16, depth=1, heads=2, freq_dim=16, widths=(8, 16, 16)))
    # a fresh model predicts v = 0 (zero-initialised output); perturb every weight so the sampler really moves
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for p in den.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return den.eval()


def _scene(n: int, move: float, depth: bool = True, name: str = "synthetic") -> EvalScene:
    """A fronto-parallel textured plane at z = 2 seen by cameras sliding along +x by ``move`` per frame.

    Ground truth frame i is the texture shifted by the exact pixel disparity (f * move * i / 2, integer here).
    """
    f = 12.0
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], dtype=torch.float64).expand(n, 3, 3).clone()
    c2w = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    c2w[:, 0, 3] = move * torch.arange(n, dtype=torch.float64)
    cams = Cameras(c2w=c2w, K=K, height=H, width=W)
    g = torch.Generator().manual_seed(7)
    coarse = torch.rand(1, 3, H // 4, (W + 64) // 4, generator=g)
    tex = torch.nn.functional.interpolate(coarse, scale_factor=4, mode="bilinear")[0]  # smooth, wider than the view

    def load_frame(i: int) -> torch.Tensor:
        shift = round(f * move * i / 2.0)
        return tex[:, :, shift : shift + W].clone()

    def load_depth(i: int) -> torch.Tensor:
        return torch.full((H, W), 2.0)

    return EvalScene(
        name=name,
        dataset="synthetic",
        cameras=cams,
        frame_indices=(n // 2, n - 1),
        load_frame=load_frame,
        load_depth=load_depth if depth else None,
    )


def _fast(**over) -> PipelineMethodConfig:
    base = dict(chunk_frames=5, overlap=2, steps=5, cache_steps=5, seed=3)  # 5 steps: warped tokens start below 1
    base.update(over)
    return PipelineMethodConfig(**base)


def test_all_methods_registered_with_their_variant() -> None:
    assert set(PIPELINE_METHODS) == {
        "worldwarp",
        "no-cache",
        "point-cache",
        "full-noise",
        "spatial-noise",
        "temporal-noise",
        "inpaint-cache",
        "pushpull-cache",
    }
    for name in PIPELINE_METHODS:
        assert METHODS[name].config_type is PipelineMethodConfig
    assert VARIANTS["worldwarp"] == Variant(
        "gaussians", "diffusion", "spatiotemporal", VARIANTS["worldwarp"].description
    )
    assert (VARIANTS["point-cache"].cache_mode, VARIANTS["no-cache"].cache_mode) == ("points", "none")
    assert [VARIANTS[n].noise_mode for n in ("full-noise", "spatial-noise", "temporal-noise")] == [
        "full",
        "spatial",
        "temporal",
    ]
    assert VARIANTS["inpaint-cache"].fill == "inpaint" and VARIANTS["inpaint-cache"].cache_mode == "gaussians"
    assert VARIANTS["pushpull-cache"].fill == "push_pull" and VARIANTS["pushpull-cache"].cache_mode == "gaussians"
    with pytest.raises(TypeError):
        build_method("worldwarp", object())


def test_make_pipeline_config_applies_variant_and_overrides() -> None:
    cfg = make_pipeline_config(VARIANTS["spatial-noise"], PipelineMethodConfig(), 64, 96)
    assert (cfg.height, cfg.width, cfg.chunk_frames, cfg.overlap) == (64, 96, 25, 5)  # the CPU preset
    assert (cfg.sampler.steps, cfg.sampler.strength, cfg.sampler.noise_mode) == (2, 0.5, "spatial")
    assert cfg.sampler.solver == "direct"
    assert (cfg.cache_mode, cfg.fill, cfg.cache.steps) == ("gaussians", "diffusion", 150)
    assert (cfg.cache.init_scale, cfg.cache.w_depth) == ("knn", 0.1)  # chosen on the dev suite
    over = PipelineMethodConfig(
        chunk_frames=9, overlap=3, steps=7, strength=0.5, guidance_scale=2.0, cache_steps=11,
        cache_init_scale="footprint", cache_w_depth=0.5,
    )  # fmt: skip
    cfg = make_pipeline_config(VARIANTS["point-cache"], over, 16, 24)
    assert (cfg.chunk_frames, cfg.overlap, cfg.cache.steps, cfg.cache_mode) == (9, 3, 11, "points")
    assert (cfg.cache.init_scale, cfg.cache.w_depth, cfg.cache.max_points_per_frame) == ("footprint", 0.5, 12_000)
    assert (cfg.sampler.steps, cfg.sampler.strength, cfg.sampler.guidance_scale) == (7, 0.5, 2.0)
    assert cfg.sampler.shift == 5.0 and cfg.sampler.noise_mode == "spatiotemporal"
    paper = make_pipeline_config(VARIANTS["worldwarp"], PipelineMethodConfig(preset="paper"), 480, 720)
    assert (paper.chunk_frames, paper.sampler.steps, paper.sampler.guidance_scale) == (49, 50, 5.0)
    assert (paper.cache.steps, paper.cache.w_depth) == (500, 0.01)  # the paper preset keeps the paper's values


@pytest.mark.parametrize(
    "bad",
    [
        dict(preset="fast"),
        dict(steps=0),
        dict(strength=1.5),
        dict(chunk_frames=0),
        dict(cache_init_scale="grid"),
        dict(cache_w_depth=-1.0),
        dict(cache_w_depth=float("nan")),
    ],
)
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(InputError):
        PipelineMethodConfig(**bad)


def test_static_camera_point_cache_inpaint_reproduces_start_frame() -> None:
    """Identical cameras: the point warp is exact, so inside the eroded mask every frame is the start frame."""
    scene = _scene(7, move=0.0)
    method = pipeline_method(Variant("points", "inpaint", "spatiotemporal", "test"), _fast(), _tiny_denoiser())
    out = method(scene, [0, 3, 6])
    assert out.shape == (3, 3, H, W)
    start = (scene.start_image * 255).round() / 255
    inner = (slice(None), slice(None), slice(2, H - 2), slice(2, W - 2))
    assert torch.allclose(out[inner], start[None].expand(3, -1, -1, -1)[inner], atol=1.5 / 255)


def test_diffusion_methods_run_deterministically_and_keep_frame_zero() -> None:
    scene = _scene(7, move=1 / 6)
    den = _tiny_denoiser()
    start = (scene.start_image * 255).round() / 255
    # point cache: bit-reproducible (the multi-threaded CPU rasteriser's backward is not, so the 3DGS cache
    # variants are checked for shape and effect only)
    method = pipeline_method(VARIANTS["point-cache"], _fast(), den)
    a = method(scene, [4, 0, 6])
    assert a.shape == (3, 3, H, W) and torch.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a[1], start)  # frame 0 is the (quantised) start image
    assert torch.equal(a, method(scene, [4, 0, 6]))  # same seed, same frames
    assert torch.equal(a[[0, 2]], method(scene, [6, 4])[[1, 0]])  # frames come back in the requested order
    other_seed = pipeline_method(VARIANTS["point-cache"], _fast(seed=4), den)(scene, [4])
    assert not torch.equal(other_seed[0], a[0])
    # the 3DGS cache variant keeps frame 0 and its prior changes the frames compared with no cache at all
    short = _scene(5, move=1 / 6)  # one chunk; strength 0.2: warped tokens start at sigma 0.56, holes at 1
    ww = pipeline_method(VARIANTS["worldwarp"], _fast(strength=0.2), den)(short, [0, 4])
    no_cache = pipeline_method(VARIANTS["no-cache"], _fast(strength=0.2), den)(short, [4])
    assert torch.equal(ww[0], start)
    assert float((ww[1] - no_cache[0]).abs().mean()) > 0.01  # 0.025 with this random U-Net


def test_moving_camera_point_cache_inpaint_matches_ground_truth() -> None:
    """Cameras sliding 1 px per frame over a plane: the point warp is exact, so away from the borders and the
    newly revealed strip every generated frame equals the ground truth (to 8-bit quantisation)."""
    scene = _scene(7, move=1 / 6)
    method = pipeline_method(Variant("points", "inpaint", "spatiotemporal", "test"), _fast(), _tiny_denoiser())
    out = method(scene, [2, 4, 6])
    gt = scene.frames([2, 4, 6])
    inner = (slice(None), slice(None), slice(2, H - 2), slice(2, W - 10))
    assert torch.allclose(out[inner], gt[inner], atol=1.5 / 255)
    assert not torch.allclose(out[inner], scene.start_image[None].expand(3, -1, -1, -1)[inner], atol=0.05)


def test_skip_without_depth_and_size_check() -> None:
    method = pipeline_method(VARIANTS["worldwarp"], _fast(), _tiny_denoiser())
    with pytest.raises(SkipScene):
        method(_scene(5, 1 / 6, depth=False), [4])
    bad = _scene(5, 1 / 6)
    bad.cameras = bad.cameras.resize(26, 42)
    with pytest.raises(InputError, match="not a multiple of 4"):
        method(bad, [4])


def test_runs_inside_the_benchmark_runner() -> None:
    scene = _scene(9, move=1 / 6)
    method = pipeline_method(VARIANTS["inpaint-cache"], _fast(), _tiny_denoiser())
    doc, feats = run_benchmark([scene], method, "inpaint-cache", BenchmarkConfig(), method_config=_fast())
    rec = doc["scenes"][0]
    assert feats is None and set(rec["metrics"]) == {"4", "8"}
    m = rec["metrics"]["8"]
    assert {"psnr", "ssim", "psnr_holes", "psnr_visible"} <= set(m) and m["psnr"] > 10.0


def test_eval_cli_sees_the_pipeline_methods(tmp_path, capsys) -> None:
    from worldwarp.cli import main

    # the eval CLI imports the module before checking the method name: the error lists every method
    code = main(["eval", "--dataset", "procedural", "--root", str(tmp_path), "--method", "nope", "--out", "x.json"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown method 'nope'" in err
    for name in PIPELINE_METHODS:
        assert name in err
