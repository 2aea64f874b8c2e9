import torch

from worldwarp.cameras import Cameras, intrinsics_from_fov, look_at
from worldwarp.diffusion.denoisers.tiny import TinyDenoiser, TinyDenoiserConfig
from worldwarp.diffusion.sampler import SamplerConfig
from worldwarp.pipeline import PipelineConfig, WorldWarpPipeline, chunk_layout, fill_depth
from worldwarp.splat.cache import CacheConfig

H, W = 32, 48


def _inputs(n: int = 12) -> tuple[torch.Tensor, Cameras, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, H, W, generator=g)
    depth = 2.0 + torch.rand(H, W, generator=g)
    eye = torch.stack([torch.tensor([0.02 * i, 0.0, 0.05 * i]) for i in range(n)])
    c2w = look_at(eye.double(), eye.double() + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    return image, Cameras(c2w, intrinsics_from_fov(H, W, fov_x_deg=60), H, W), depth


def _pipe(**kw) -> WorldWarpPipeline:
    torch.manual_seed(0)
    den = TinyDenoiser(TinyDenoiserConfig(width=16, depth=1, heads=2, freq_dim=8, widths=(8, 16, 16)))
    cfg = PipelineConfig.cpu(
        height=H,
        width=W,
        chunk_frames=5,
        overlap=2,
        sampler=SamplerConfig(steps=3, guidance_scale=1.0),
        cache=CacheConfig(steps=3, max_points_per_frame=500),
        progress=False,
        **kw,
    )
    return WorldWarpPipeline(den, cfg)


def test_chunk_layout() -> None:
    assert chunk_layout(12, 5, 2) == [(0, 1, 5), (3, 2, 8), (6, 2, 11), (9, 2, 14)]
    assert chunk_layout(200, 49, 5) == [(0, 1, 49), (44, 5, 93), (88, 5, 137), (132, 5, 181), (176, 5, 225)]


def test_fill_depth_prefers_background() -> None:
    d = torch.tensor([[[1.0, 1.0, 0.0, 5.0, 5.0]]])
    out = fill_depth(d, d > 0)
    assert out[0, 0, 2] == 5.0
    assert torch.equal(out[0, 0, [0, 1, 3, 4]], d[0, 0, [0, 1, 3, 4]])


def test_pipeline_end_to_end_reproducible_and_resumable(tmp_path) -> None:
    image, cams, depth = _inputs()
    out = _pipe()(image, cams, depth, state_dir=tmp_path / "a")
    assert out.frames.shape == (12, 3, H, W)
    assert out.depths.shape == (12, H, W)
    assert torch.equal(out.frames[0], (image * 255).round() / 255)
    assert len(out.chunks) == 4
    assert torch.isfinite(out.frames).all() and (out.depths > 0).all()
    # frames are exact 8-bit levels
    assert torch.equal(out.frames, (out.frames * 255).round() / 255)

    # same seed -> same frames; resuming from two saved chunks -> the same frames as well
    again = _pipe()(image, cams, depth)
    assert torch.equal(again.frames, out.frames)
    for f in sorted((tmp_path / "a").glob("chunk_*.pt"))[2:]:
        f.unlink()
    resumed = _pipe()(image, cams, depth, state_dir=tmp_path / "a", resume=True)
    assert torch.equal(resumed.frames, out.frames)


def test_rollback_and_regenerate() -> None:
    image, cams, depth = _inputs()
    pipe = _pipe()
    state = pipe.start(image, cams, depth)
    pipe.step(state)
    pipe.step(state)
    frames2 = state.frames.clone()
    assert frames2.shape[0] == 8
    state.rollback(1)
    assert state.frames.shape[0] == 5 and len(state.chunks) == 1
    pipe.step(state)
    assert torch.equal(state.frames, frames2)


def test_ablation_modes_run() -> None:
    image, cams, depth = _inputs(6)
    for kw in ({"cache_mode": "points"}, {"cache_mode": "none"}, {"fill": "inpaint"}):
        out = _pipe(**kw)(image, cams, depth)
        assert out.frames.shape == (6, 3, H, W)
