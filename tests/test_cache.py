"""3DGS cache: SSIM, initialisation from history frames, and fitting."""

from __future__ import annotations

import math

import pytest
import torch

from worldwarp.cameras import Cameras, look_at
from worldwarp.errors import InputError
from worldwarp.splat.cache import CacheConfig, cache_loss, fit_cache, init_gaussians, sample_pixels, scene_extent
from worldwarp.splat.gaussians import SH_C0, Gaussians
from worldwarp.splat.raster import rasterize
from worldwarp.splat.ssim import ssim, ssim_fused, ssim_map

pytestmark = pytest.mark.usefixtures("one_thread")  # small workloads: one thread (tests/conftest.py)


def _cam(h: int, w: int, f: float, c2w: torch.Tensor | None = None) -> Cameras:
    K = torch.tensor([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], dtype=torch.float64)
    return Cameras(torch.eye(4, dtype=torch.float64) if c2w is None else c2w, K, h, w)


# ---------------------------------------------------------------------------------------------- SSIM
def test_ssim_matches_skimage_and_identity() -> None:
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 24, 31, generator=g, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(2, 3, 24, 31, generator=g, dtype=torch.float64)).clamp(0, 1)
    ours = ssim(a, b)
    for i in range(2):
        ref = structural_similarity(
            a[i].numpy(), b[i].numpy(), gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=1.0, channel_axis=0,
        )  # fmt: skip
        assert abs(float(ours[i]) - ref) < 1e-10
    assert torch.allclose(ssim(a, a), torch.ones(2, dtype=torch.float64))
    assert ssim_map(a, b, window=7).shape == (2, 3, 18, 25)
    # a constant shift of a constant image: SSIM = (2 mu_a mu_b + c1) / (mu_a^2 + mu_b^2 + c1)
    c = torch.full((1, 1, 12, 12), 0.2, dtype=torch.float64)
    c1 = 1e-4
    expected = (2 * 0.2 * 0.5 + c1) / (0.2**2 + 0.5**2 + c1)
    assert math.isclose(float(ssim(c, c + 0.3)), expected, rel_tol=1e-12)
    # differentiable
    x = b.clone().requires_grad_(True)
    (1 - ssim(a, x)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError):
        ssim(a[:, :, :5, :5], b[:, :, :5, :5])


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_fused_ssim_matches_reference_forward_and_backward(dtype: torch.dtype, rtol: float) -> None:
    # the C++ SSIM (analytic gradient) against the plain-torch definition: value and gradients w.r.t. both inputs,
    # a batch, a width that is not a multiple of the 8-lane vectors, a non-default window
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 3, 29, 45, generator=g, dtype=torch.float64)
    b = (0.7 * a + 0.3 * torch.rand(2, 3, 29, 45, generator=g, dtype=torch.float64)).to(dtype)
    a = a.to(dtype)
    weight = torch.tensor([0.7, -1.3], dtype=dtype)
    for window in (11, 7):
        ra, rb = a.clone().requires_grad_(), b.clone().requires_grad_()
        fa, fb = a.clone().requires_grad_(), b.clone().requires_grad_()
        ref = ssim(ra, rb, window=window)
        fast = ssim_fused(fa, fb, window=window)
        (ref * weight).sum().backward()
        (fast * weight).sum().backward()
        torch.testing.assert_close(fast.detach(), ref.detach(), rtol=rtol, atol=rtol)
        for x, y in ((fa, ra), (fb, rb)):
            scale = float(y.grad.abs().max())
            torch.testing.assert_close(x.grad, y.grad, rtol=rtol, atol=rtol * scale)
    # only the first input needs a gradient (the fit's case); no gradient at all; identical images
    x = a.clone().requires_grad_()
    ssim_fused(x, b).sum().backward()
    y = a.clone().requires_grad_()
    ssim(y, b).sum().backward()
    torch.testing.assert_close(x.grad, y.grad, rtol=rtol, atol=rtol * float(y.grad.abs().max()))
    torch.testing.assert_close(ssim_fused(a, b), ssim(a, b), rtol=rtol, atol=rtol)
    torch.testing.assert_close(ssim_fused(a, a), torch.ones(2, dtype=dtype), rtol=rtol, atol=rtol)
    with pytest.raises(ValueError):
        ssim_fused(a[:, :, :5, :5], b[:, :, :5, :5])


def test_fused_losses_do_not_depend_on_the_thread_count() -> None:
    # the C++ SSIM and fit loss split rows over threads and sum rows in order: bitwise equal for any thread count
    from worldwarp.splat.kernels.ops import fit_loss
    from worldwarp.splat.ssim import gaussian_window, stabilisers

    g = torch.Generator().manual_seed(5)
    h, w = 70, 93
    a, b = torch.rand(2, 3, h, w, generator=g), torch.rand(2, 3, h, w, generator=g)
    color, alpha = torch.rand(h, w, 3, generator=g), torch.rand(h, w, generator=g)
    depth_acc, inv_depth = 2 * torch.rand(h, w, generator=g), torch.rand(h, w, generator=g)
    depth_ok = torch.rand(h, w, generator=g) > 0.3
    taps = gaussian_window(11, 1.5, dtype=torch.float32, device=torch.device("cpu"))
    bg = torch.tensor([0.2, 0.5, 0.1])

    def run() -> list[torch.Tensor]:
        x = a.clone().requires_grad_()
        value = ssim_fused(x, b)
        value.sum().backward()
        terms, grads = fit_loss(
            color, alpha, depth_acc, bg, a[0], depth_ok, inv_depth, taps, (0.8, 0.2, 0.1), 1e-3, 1e-6, *stabilisers()
        )
        return [value.detach(), x.grad, terms, *grads]

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(3)
        many = run()
    finally:
        torch.set_num_threads(threads)
    for x, y in zip(one, many, strict=True):
        assert torch.equal(x, y)


# ---------------------------------------------------------------------------------------------- init
def _random_view(h: int = 12, w: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, Cameras]:
    g = torch.Generator().manual_seed(seed)
    c2w = look_at(torch.tensor([0.3, -0.2, -2.0]), torch.tensor([0.0, 0.0, 0.5]))
    cam = _cam(h, w, 14.0, c2w)
    img = torch.rand(1, 3, h, w, generator=g, dtype=torch.float64)
    depth = 1 + 2 * torch.rand(1, h, w, generator=g, dtype=torch.float64)
    depth[0, 0, :5] = 0.0  # unknown
    depth[0, 3, 3] = 5e-4  # below near
    depth[0, 4, 4] = float("nan")
    return img, depth, cam


def test_init_places_one_gaussian_per_valid_pixel_on_its_ray() -> None:
    img, depth, cam = _random_view()
    h, w = depth.shape[1:]
    gs = init_gaussians(img, depth, cam, CacheConfig())
    valid = torch.isfinite(depth[0]) & (depth[0] > 1e-3)
    assert gs.num == int(valid.sum()) == h * w - 7
    uv, z = cam.project(gs.means)
    ij = valid.nonzero()
    centres = torch.stack([ij[:, 1] + 0.5, ij[:, 0] + 0.5], dim=1).double()
    assert torch.allclose(uv[0], centres, atol=1e-9)
    assert torch.allclose(z[0], depth[0][valid], atol=1e-12)
    assert torch.allclose(gs.rgb, img[0].permute(1, 2, 0)[valid], atol=1e-12)
    assert torch.allclose(gs.sh[:, 0], (img[0].permute(1, 2, 0)[valid] - 0.5) / SH_C0, atol=1e-12)
    assert torch.equal(gs.quats, torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64).expand(gs.num, 4))
    assert torch.allclose(gs.opacities, torch.full((gs.num,), 0.9, dtype=torch.float64))
    assert gs.sh_degree == 0 and gs.dtype == torch.float64
    # isotropic scale = mean distance to the 3 nearest other points (brute force)
    d = torch.cdist(gs.means, gs.means)
    d.fill_diagonal_(math.inf)
    knn = d.topk(3, largest=False).values.mean(dim=1)
    assert torch.allclose(gs.scales, knn[:, None].expand(-1, 3), rtol=1e-9)
    # float32 input gives float32 Gaussians; SH degree 2 gives 9 coefficients, higher ones zero
    gs2 = init_gaussians(img.float(), depth.float(), cam, CacheConfig(sh_degree=2))
    assert gs2.dtype == torch.float32 and gs2.sh.shape == (gs.num, 9, 3) and (gs2.sh[:, 1:] == 0).all()


def test_init_scale_on_a_fronto_parallel_plane() -> None:
    h, w, f, z = 8, 10, 10.0, 2.0
    cam = _cam(h, w, f)
    img = torch.full((1, 3, h, w), 0.5, dtype=torch.float64)
    depth = torch.full((1, h, w), z, dtype=torch.float64)
    knn = init_gaussians(img, depth, cam, CacheConfig())
    fp = init_gaussians(img, depth, cam, CacheConfig(init_scale="footprint"))
    # grid spacing 0.2: every pixel has 3 neighbours at 0.2 except the corners (0.2, 0.2, 0.2 * sqrt(2))
    expected = torch.full((h, w), z / f, dtype=torch.float64)
    expected[[0, 0, -1, -1], [0, -1, 0, -1]] = (2 + math.sqrt(2)) / 3 * z / f
    assert torch.allclose(knn.scales, expected.flatten()[:, None].expand(-1, 3))
    assert torch.allclose(fp.scales, torch.full_like(fp.scales, z / f))
    # capped to a quarter of the pixels: the footprint doubles (sqrt(4))
    fp4 = init_gaussians(img, depth, cam, CacheConfig(init_scale="footprint", max_points_per_frame=h * w // 4))
    assert fp4.num == h * w // 4 and torch.allclose(fp4.scales, torch.full_like(fp4.scales, 2 * z / f))


def test_sample_pixels_stride_and_random() -> None:
    valid = torch.ones(4, 5, dtype=torch.bool)
    valid[1, 2] = False
    assert torch.equal(sample_pixels(valid, 100), valid.flatten().nonzero()[:, 0])
    idx = sample_pixels(valid, 4)  # 19 valid pixels, ranks 0, 4, 9, 14
    order = valid.flatten().nonzero()[:, 0]
    assert torch.equal(idx, order[torch.tensor([0, 4, 9, 14])])
    r1 = sample_pixels(valid, 6, "random", torch.Generator().manual_seed(3))
    r2 = sample_pixels(valid, 6, "random", torch.Generator().manual_seed(3))
    assert torch.equal(r1, r2) and r1.numel() == 6 and valid.flatten()[r1].all()
    assert torch.equal(r1, r1.sort().values) and r1.unique().numel() == 6


def test_init_caps_points_per_frame_and_concatenates_frames() -> None:
    img, depth, cam = _random_view()
    imgs = torch.cat([img, img.flip(-1)])
    depths = torch.cat([depth, torch.full_like(depth, 2.0)])
    cams = Cameras.cat([cam, cam])
    gs = init_gaussians(imgs, depths, cams, CacheConfig(max_points_per_frame=50))
    assert gs.num == 100
    uv, z = cams[1].project(gs.means[50:])
    assert torch.allclose(z, torch.full_like(z, 2.0))
    with pytest.raises(InputError, match="no history pixel"):
        init_gaussians(img, torch.zeros_like(depth), cam)
    with pytest.raises(InputError, match="do not match"):
        init_gaussians(imgs, depths, cam)


def test_scene_extent_and_config_validation() -> None:
    d = torch.tensor([[0.0, 1.0, 2.0], [3.0, float("nan"), 5.0]])
    assert scene_extent(d) == 2.0  # median of 1, 2, 3, 5 (lower middle)
    assert scene_extent(torch.zeros(2, 2)) == 1.0
    for bad in ({"steps": -1}, {"init_opacity": 1.0}, {"sh_degree": 4}, {"sampling": "grid"}, {"ssim_window": 4}):
        with pytest.raises(InputError):
            CacheConfig(**bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- fitting
def synthetic_scene(seed: int = 0) -> Gaussians:
    """A wall of 12x12 large Gaussians at z = 4 and 40 random blobs in front (z in 2..3), random colours."""
    g = torch.Generator().manual_seed(seed)
    s = torch.linspace(-2.0, 2.0, 12, dtype=torch.float64)
    yy, xx = torch.meshgrid(s, s, indexing="ij")
    wall = torch.stack([xx.flatten(), yy.flatten(), torch.full((144,), 4.0, dtype=torch.float64)], dim=1)
    box = torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64)
    blobs = torch.rand(40, 3, generator=g, dtype=torch.float64) * box + torch.tensor([-1.0, -1.0, 2.0]).double()
    means = torch.cat([wall, blobs])
    rgb = torch.rand(means.shape[0], 3, generator=g, dtype=torch.float64)
    scales = torch.cat([torch.full((144,), 0.25), 0.08 + 0.1 * torch.rand(40, generator=g)]).double()
    return Gaussians.from_rgb(means, rgb, scales, 0.97)


def synthetic_cameras(h: int = 24, w: int = 24) -> Cameras:
    eyes = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.25, 0.1]], dtype=torch.float64)
    c2w = look_at(eyes, torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64).expand(3, 3))
    K = torch.tensor([[0.9 * w, 0, w / 2], [0, 0.9 * w, h / 2], [0, 0, 1]], dtype=torch.float64)
    return Cameras(c2w, K, h, w)


@pytest.fixture(scope="module")
def training_views() -> tuple[torch.Tensor, torch.Tensor, Cameras]:
    cams = synthetic_cameras()
    with torch.no_grad():
        out = rasterize(synthetic_scene(), cams)
    return out.rgb, out.depth, cams


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return -10 * ((a - b) ** 2).flatten(1).mean(dim=1).log10()


def test_fit_reduces_loss_and_reproduces_the_training_views(training_views) -> None:
    images, depths, cams = training_views
    cfg = CacheConfig(steps=100)
    init = init_gaussians(images, depths, cams, cfg)
    fit = fit_cache(images, depths, cams, cfg, progress=False)
    assert fit.num == init.num == 3 * 24 * 24 and not fit.means.requires_grad
    with torch.no_grad():
        loss0 = torch.stack([cache_loss(init, images[i], depths[i], cams[i], cfg) for i in range(3)])
        loss1 = torch.stack([cache_loss(fit, images[i], depths[i], cams[i], cfg) for i in range(3)])
        psnr0 = _psnr(rasterize(init, cams).rgb, images)
        psnr1 = _psnr(rasterize(fit, cams).rgb, images)
    # measured: loss 0.13-0.14 -> 0.024-0.047, PSNR 17.3-17.7 dB -> 22.5-28.0 dB (thresholds leave a margin)
    assert (loss1 < 0.5 * loss0).all(), (loss0, loss1)
    assert (psnr1 > psnr0 + 4).all() and psnr1.mean() > 22.0, (psnr0, psnr1)


def test_fit_is_deterministic_for_a_seed(training_views) -> None:
    images, depths, cams = training_views
    a = fit_cache(images, depths, cams, CacheConfig(steps=8), progress=False)
    b = fit_cache(images, depths, cams, CacheConfig(steps=8), progress=False)
    c = fit_cache(images, depths, cams, CacheConfig(steps=8, seed=1), progress=False)
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.means, c.means)
    zero = fit_cache(images, depths, cams, CacheConfig(steps=0), progress=False)
    assert torch.equal(zero.means, init_gaussians(images, depths, cams).means)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_fit_renders_through_rasterize(training_views, monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    # the cache renders with the public rasterize() like everyone else, one call per step, on both loss paths
    import worldwarp.splat.cache as cache

    calls = []

    def counted(*args, **kwargs):
        calls.append(kwargs["backend"])
        return rasterize(*args, **kwargs)

    monkeypatch.setattr(cache, "rasterize", counted)
    images, depths, cams = training_views
    fit_cache(images, depths, cams, CacheConfig(steps=3, backend=backend, max_points_per_frame=50), progress=False)
    assert calls == [backend] * 3


def test_fit_sh_degree_one_and_float32(training_views) -> None:
    images, depths, cams = training_views
    fit = fit_cache(images.float(), depths.float(), cams, CacheConfig(steps=5, sh_degree=1), progress=False)
    assert fit.dtype == torch.float32 and fit.sh.shape[1:] == (4, 3)
    assert fit.sh[:, 1:].abs().max() > 0  # higher-order coefficients are optimised too


@pytest.mark.parametrize("w_ssim, w_depth", [(0.2, 0.01), (0.0, 0.5)])
@pytest.mark.parametrize("fused", [False, True])
def test_fit_loss_with_precomputed_targets_matches_cache_loss(
    training_views, w_ssim: float, w_depth: float, fused: bool
) -> None:
    # fit_cache's fast losses (target inverse depth computed once per view; fused: compositing over the background,
    # depth division, L1, SSIM and depth terms in one C++ call on the renderer's raw outputs) against the public
    # cache_loss (plain-torch SSIM), value and gradient, with invalid ground-truth depths in the view
    from worldwarp.splat.cache import _fit_loss, _FitLossCPU, _view_target
    from worldwarp.splat.raster.cpu import render_cpu
    from worldwarp.splat.ssim import gaussian_window, ssim

    images, depths, cams = training_views
    depths = depths.clone()
    depths[1, :3] = 0.0
    depths[1, 5, 5] = math.inf
    cfg = CacheConfig(w_ssim=w_ssim, w_depth=w_depth, background=(0.2, 0.1, 0.0))
    init = init_gaussians(images, depths, cams, cfg)
    gen = torch.Generator().manual_seed(3)
    g0 = Gaussians(
        init.means + 0.01 * torch.randn(init.means.shape, generator=gen, dtype=torch.float64),
        init.quats + 0.2 * torch.randn(init.quats.shape, generator=gen, dtype=torch.float64),
        init.log_scales + 0.3 * torch.randn(init.log_scales.shape, generator=gen, dtype=torch.float64),  # anisotropic
        init.opacity_logits - 1.0,
        init.sh + 0.1 * torch.randn(init.sh.shape, generator=gen, dtype=torch.float64),
    )
    bg = torch.tensor(cfg.background, dtype=torch.float64)
    taps = gaussian_window(cfg.ssim_window, 1.5, dtype=torch.float64, device=torch.device("cpu"))
    for v in (0, 1):
        ref_g, fast_g = g0.clone().requires_grad_(), g0.clone().requires_grad_()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("worldwarp.splat.cache.ssim_fused", ssim)  # the reference: plain-torch SSIM
            ref = cache_loss(ref_g, images[v], depths[v], cams[v], cfg)
        ref.backward()
        target = _view_target(images[v], depths[v], cfg)
        if fused:
            color, alpha, depth_acc = render_cpu(fast_g, cams.c2w[v], cams.K[v], cams.height, cams.width, cfg.near)
            fast = _FitLossCPU.apply(color, alpha, depth_acc, target, cfg, bg, taps)
        else:
            out = rasterize(fast_g, cams[v], background=bg, near=cfg.near)
            fast = _fit_loss(out.rgb, out.depth, target, cfg)
        (2.5 * fast).backward()  # a scaled gradient reaches the parameters scaled
        assert float(ref.detach()) > 0.01
        torch.testing.assert_close(fast.detach(), ref.detach(), rtol=1e-12, atol=0)
        for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
            a, b = getattr(fast_g, name).grad, 2.5 * getattr(ref_g, name).grad
            assert b.abs().max() > 0, name
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12 * float(b.abs().max()), msg=name)
