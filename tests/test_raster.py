"""Rasteriser: analytic/golden checks, the fast CPU backend against the torch reference, gsplat on CUDA."""

import math
from pathlib import Path

import pytest
import torch

from worldwarp.cameras import Cameras, intrinsics_from_fov, look_at
from worldwarp.errors import InputError
from worldwarp.splat.gaussians import Gaussians
from worldwarp.splat.raster import rasterize, resolve_backend
from worldwarp.splat.raster.projection import ALPHA_MIN, LOWPASS, sh_basis

FIELDS = ("means", "quats", "log_scales", "opacity_logits", "sh")


def axis_camera(h: int, w: int, f: float, cx: float | None = None, cy: float | None = None) -> Cameras:
    K = torch.tensor([[f, 0, w / 2 if cx is None else cx], [0, f, h / 2 if cy is None else cy], [0, 0, 1.0]])
    return Cameras(torch.eye(4, dtype=torch.float64), K.double(), h, w)


def one_gaussian(pos: list[float], scale: float, logit: float, rgb: list[float], dtype=torch.float64) -> Gaussians:
    g = Gaussians.from_rgb(torch.tensor([pos], dtype=dtype), torch.tensor([rgb], dtype=dtype), scale, 0.5)
    return Gaussians(g.means, g.quats, g.log_scales, torch.tensor([logit], dtype=dtype), g.sh)


def random_scene(g: int, seed: int, degree: int = 2, dtype=torch.float32) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    means = torch.randn(g, 3, generator=gen) * torch.tensor([1.0, 0.7, 1.0]) + torch.tensor([0.0, 0.0, 3.0])
    means[: g // 20, 2] = torch.rand(g // 20, generator=gen) * 0.2 - 0.1  # some at / behind the near plane
    return Gaussians(
        means=means.to(dtype),
        quats=torch.randn(g, 4, generator=gen).to(dtype),
        log_scales=(torch.randn(g, 3, generator=gen) * 0.5 - 2.7).to(dtype),
        opacity_logits=(torch.randn(g, generator=gen) * 2 + 1).to(dtype),
        sh=(torch.randn(g, k, 3, generator=gen) * 0.4).to(dtype),
    )


def two_cameras(h: int, w: int) -> Cameras:
    eye = torch.tensor([[0.0, 0.0, 0.0], [0.6, -0.3, 0.4]])
    c2w = look_at(eye, torch.tensor([[0.0, 0.0, 3.0], [0.2, 0.1, 3.0]]))
    return Cameras(c2w, intrinsics_from_fov(h, w, fov_x_deg=70), h, w)


def render_and_grad(g: Gaussians, cams: Cameras, backend: str, seed: int = 1):
    g = g.clone().requires_grad_()
    bg = torch.tensor([0.1, 0.5, 0.9])
    out = rasterize(g, cams, backend=backend, background=bg)
    gen = torch.Generator().manual_seed(seed)
    w_rgb = torch.rand(out.rgb.shape, generator=gen).to(g.dtype)
    w_a = torch.rand(out.alpha.shape, generator=gen).to(g.dtype)
    w_d = torch.rand(out.depth.shape, generator=gen).to(g.dtype)
    ((out.rgb * w_rgb).sum() + (out.alpha * w_a).sum() + 0.3 * (out.depth * w_d).sum()).backward()
    return out, {n: getattr(g, n).grad for n in FIELDS}


def assert_backends_agree(g: Gaussians, cams: Cameras, rtol: float, rel_atol: float) -> None:
    ref, ref_grads = render_and_grad(g, cams, "torch")
    fast, fast_grads = render_and_grad(g, cams, "cpu")
    assert ref.alpha.detach().max() > 0.5  # the scene is actually visible
    for name in ("rgb", "alpha", "depth"):
        a, b = getattr(fast, name).detach(), getattr(ref, name).detach()
        torch.testing.assert_close(a, b, rtol=rtol, atol=rel_atol * float(b.abs().max()), msg=name)
    for name in FIELDS:
        a, b = fast_grads[name], ref_grads[name]
        assert b.abs().max() > 0, name
        torch.testing.assert_close(a, b, rtol=rtol, atol=rel_atol * float(b.abs().max()), msg=f"grad {name}")


# ---------------------------------------------------------------- analytic / golden
@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_isotropic_footprint_is_analytic_gaussian(backend: str) -> None:
    h, w, f, z, s, logit = 24, 32, 40.0, 2.0, 0.1, 0.4
    cam = axis_camera(h, w, f, cx=16.5, cy=12.5)  # mean lands on the centre of pixel (12, 16)
    out = rasterize(one_gaussian([0, 0, z], s, logit, [1, 0, 0]), cam, backend=backend)
    o = 1 / (1 + math.exp(-logit))
    var = (s * f / z) ** 2 + LOWPASS  # EWA: (s f / z)^2 plus the 0.3 px^2 low-pass
    uv = cam.pixel_grid()
    d2 = (uv[..., 0] - 16.5) ** 2 + (uv[..., 1] - 12.5) ** 2
    expect = o * torch.exp(-0.5 * d2 / var)
    expect = torch.where(expect >= ALPHA_MIN, expect, torch.zeros_like(expect))
    torch.testing.assert_close(out.alpha[0], expect, rtol=1e-12, atol=1e-12)
    assert out.alpha[0, 12, 16] == pytest.approx(o, abs=1e-12)  # peak alpha = sigmoid(logit)
    torch.testing.assert_close(out.rgb[0, 0], expect)  # red channel = alpha over black
    assert float(out.rgb[0, 1:].abs().max()) == 0.0


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_off_axis_footprint_uses_perspective_jacobian(backend: str) -> None:
    h, w, f, z, x0, s = 24, 64, 30.0, 2.0, 1.2, 0.15
    cam = axis_camera(h, w, f, cx=10.5, cy=12.5)
    out = rasterize(one_gaussian([x0, 0, z], s, 3.0, [1, 1, 1]), cam, backend=backend)
    u0 = f * x0 / z + 10.5  # = 28.5, a pixel centre
    var_u = s**2 * (f**2 / z**2 + f**2 * x0**2 / z**4) + LOWPASS  # J J^T s^2 for an isotropic Gaussian
    var_v = s**2 * f**2 / z**2 + LOWPASS
    o = 1 / (1 + math.exp(-3.0))
    du = torch.arange(w, dtype=torch.float64) + 0.5 - u0
    row = (o * torch.exp(-0.5 * du**2 / var_u)).clamp(max=0.99)
    row = torch.where(row >= ALPHA_MIN, row, torch.zeros_like(row))
    torch.testing.assert_close(out.alpha[0, 12], row, rtol=1e-12, atol=1e-12)
    dv = torch.arange(h, dtype=torch.float64) + 0.5 - 12.5
    col = (o * torch.exp(-0.5 * dv**2 / var_v)).clamp(max=0.99)
    col = torch.where(col >= ALPHA_MIN, col, torch.zeros_like(col))
    torch.testing.assert_close(out.alpha[0, :, 28], col, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_rotation_swaps_anisotropic_footprint(backend: str) -> None:
    h, w, f, z = 32, 32, 40.0, 2.0
    cam = axis_camera(h, w, f, cx=16.5, cy=16.5)
    g = one_gaussian([0, 0, z], 0.1, 0.0, [1, 1, 1])
    g.log_scales[0] = torch.tensor([0.2, 0.05, 0.01], dtype=torch.float64).log()
    c = math.cos(math.pi / 4)
    g.quats[0] = torch.tensor([c, 0, 0, c], dtype=torch.float64)  # 90 degrees about z
    a = rasterize(g, cam, backend=backend).alpha[0]
    # after the rotation the long axis (0.2) lies along image y: alpha along the column decays slower
    for k in (1, 2, 3):
        var_x = (0.05 * f / z) ** 2 + LOWPASS
        var_y = (0.2 * f / z) ** 2 + LOWPASS
        assert float(a[16, 16 + k]) == pytest.approx(0.5 * math.exp(-0.5 * k**2 / var_x), rel=1e-9, abs=1e-12)
        assert float(a[16 + k, 16]) == pytest.approx(0.5 * math.exp(-0.5 * k**2 / var_y), rel=1e-9)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_opaque_depth_ordering_and_background(backend: str) -> None:
    h, w, f = 20, 20, 30.0
    cam = axis_camera(h, w, f, cx=10.5, cy=10.5)
    near = one_gaussian([0, 0, 2.0], 0.2, 12.0, [1, 0, 0])
    far = one_gaussian([0, 0, 5.0], 0.6, 1.0, [0, 1, 0])
    bg = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
    for scene in (Gaussians.cat([near, far]), Gaussians.cat([far, near])):  # input order must not matter
        out = rasterize(scene, cam, backend=backend, background=bg)
        a1 = 0.99  # clamped
        a2 = 1 / (1 + math.exp(-1.0))  # the far one's peak is on the same pixel centre
        rgb = torch.tensor([a1, (1 - a1) * a2, 0.0], dtype=torch.float64) + (1 - a1) * (1 - a2) * bg
        torch.testing.assert_close(out.rgb[0, :, 10, 10], rgb, rtol=1e-12, atol=1e-12)
        assert float(out.alpha[0, 10, 10]) == pytest.approx(a1 + (1 - a1) * a2, abs=1e-12)
        depth = (a1 * 2.0 + (1 - a1) * a2 * 5.0) / (a1 + (1 - a1) * a2)
        assert float(out.depth[0, 10, 10]) == pytest.approx(depth, abs=1e-12)
        # a corner pixel sees nothing: background colour, zero alpha and depth
        assert float(out.alpha[0, 0, 0]) == 0.0 and float(out.depth[0, 0, 0]) == 0.0
        torch.testing.assert_close(out.rgb[0, :, 0, 0], bg)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_depth_of_single_gaussian_is_its_z(backend: str) -> None:
    cam = axis_camera(16, 16, 20.0)
    out = rasterize(one_gaussian([0.1, -0.05, 3.7], 0.3, 2.0, [0.5, 0.5, 0.5]), cam, backend=backend)
    seen = out.alpha[0] > 0
    assert seen.sum() > 20
    torch.testing.assert_close(out.depth[0][seen], torch.full((int(seen.sum()),), 3.7, dtype=torch.float64))


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_culling_behind_near_plane(backend: str) -> None:
    cam = axis_camera(16, 16, 20.0)
    g = Gaussians.cat(
        [one_gaussian([0, 0, -1.0], 0.5, 5.0, [1, 1, 1]), one_gaussian([0, 0, 0.005], 0.5, 5.0, [1, 1, 1])]
    ).requires_grad_()
    out = rasterize(g, cam, backend=backend, near=0.01)
    assert float(out.alpha.detach().abs().max()) == 0.0
    out.rgb.sum().backward()
    for name in FIELDS:
        grad = getattr(g, name).grad
        assert grad is None or (torch.isfinite(grad).all() and grad.abs().max() == 0)


def test_sh_basis_is_orthonormal() -> None:
    n = 40_000  # Fibonacci sphere quadrature
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5**0.5) * i
    r = (1 - z * z).sqrt()
    dirs = torch.stack([r * phi.cos(), r * phi.sin(), z], dim=-1)
    Y = sh_basis(dirs, 3)  # (n, 16)
    gram = Y.T @ Y * (4 * math.pi / n)
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=2e-3, rtol=0)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_sh_colour_depends_on_view_direction(backend: str) -> None:
    # a degree-1 Gaussian on the optical axis is seen along +z: colour = 0.5 + C0 dc + sqrt(3/(4 pi)) * c_z
    cam = axis_camera(9, 9, 10.0, cx=4.5, cy=4.5)
    g = one_gaussian([0, 0, 2.0], 0.3, 20.0, [0.2, 0.2, 0.2])
    sh = torch.zeros(1, 4, 3, dtype=torch.float64)
    sh[0, 0] = g.sh[0, 0]
    sh[0, 2] = torch.tensor([0.3, -0.2, 0.0], dtype=torch.float64)  # the z-coefficient
    sh[0, 1] = 5.0  # the y-coefficient: zero along the axis
    g = Gaussians(g.means, g.quats, g.log_scales, g.opacity_logits, sh)
    out = rasterize(g, cam, backend=backend)
    c1 = math.sqrt(3 / (4 * math.pi))
    expect = torch.tensor([0.2 + 0.3 * c1, 0.2 - 0.2 * c1, 0.2], dtype=torch.float64) * 0.99
    torch.testing.assert_close(out.rgb[0, :, 4, 4], expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_raw_sums_are_what_rgb_and_depth_are_made_of(backend: str) -> None:
    # color_sum / depth_sum (what fused losses consume) composite to rgb and depth exactly as rasterize states
    g = random_scene(300, seed=4, degree=1)
    bg = torch.tensor([0.2, 0.4, 0.6])
    for cams in (two_cameras(12, 20), two_cameras(12, 20)[1]):
        out = rasterize(g, cams, backend=backend, background=bg)
        n = len(cams)
        assert out.color_sum.shape == (n, 12, 20, 3) and out.depth_sum.shape == out.alpha.shape == (n, 12, 20)
        rgb = out.color_sum + (1 - out.alpha)[..., None] * bg
        assert torch.equal(out.rgb, rgb.permute(0, 3, 1, 2))
        has = out.alpha > 1e-6
        assert torch.equal(out.depth[has], out.depth_sum[has] / out.alpha[has]) and (out.depth[~has] == 0).all()


def test_batch_matches_single_cameras() -> None:
    g = random_scene(300, seed=3, degree=1)
    cams = two_cameras(16, 24)
    both = rasterize(g, cams, backend="cpu")
    for i in range(2):
        one = rasterize(g, cams[i], backend="cpu")
        assert torch.equal(both.rgb[i], one.rgb[0]) and torch.equal(both.depth[i], one.depth[0])


def test_backend_selection_and_errors() -> None:
    g = random_scene(10, seed=0)
    assert resolve_backend("auto", g) == "cpu"
    with pytest.raises(InputError, match="unknown rasteriser backend"):
        rasterize(g, two_cameras(8, 8), backend="opengl")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="background"):
        rasterize(g, two_cameras(8, 8), background=torch.zeros(4))
    with pytest.raises(InputError, match="CUDA"):
        rasterize(g, two_cameras(8, 8), backend="gsplat")
    out = rasterize(g.to(dtype=torch.float64), two_cameras(8, 12))
    assert out.rgb.shape == (2, 3, 8, 12) and out.rgb.dtype == torch.float64
    assert out.alpha.shape == out.depth.shape == (2, 8, 12)


def test_cpu_backend_falls_back_to_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    from worldwarp.splat.kernels import KernelBuildError, build

    def broken(name: str) -> None:
        raise KernelBuildError("no compiler in this test")

    g = random_scene(200, seed=5)
    cams = two_cameras(12, 16)
    expect = rasterize(g, cams, backend="torch")
    monkeypatch.setattr(build, "load_library", broken)
    with pytest.warns(UserWarning, match="no compiler in this test"):
        out = rasterize(g, cams, backend="cpu")
    assert torch.equal(out.rgb, expect.rgb)


# ---------------------------------------------------------------- fast backend vs reference
def test_cpu_matches_reference_float64_random() -> None:
    g = random_scene(600, seed=11, degree=3, dtype=torch.float64)
    assert_backends_agree(g, two_cameras(24, 32), rtol=1e-9, rel_atol=1e-11)


@pytest.mark.parametrize("seed", [0, 1])
def test_cpu_matches_reference_float32_random(seed: int) -> None:
    g = random_scene(1000, seed=seed, degree=2)
    assert_backends_agree(g, two_cameras(28, 40), rtol=1e-4, rel_atol=1e-5)


def _object_cameras(g: Gaussians, h: int, w: int, n: int = 2) -> Cameras:
    centre = g.means.median(dim=0).values.double()
    extent = float((g.means.quantile(0.98, dim=0) - g.means.quantile(0.02, dim=0)).max())
    angles = torch.linspace(0.3, 1.9, n, dtype=torch.float64)
    # .splat scenes are y-down ("up_axis": "-y"), which matches look_at's default world up (0, -1, 0)
    eye = centre + 1.6 * extent * torch.stack([angles.sin(), -0.3 * torch.ones(n), -angles.cos()], dim=-1)
    return Cameras(look_at(eye, centre.expand(n, 3)), intrinsics_from_fov(h, w, fov_x_deg=50), h, w)


@pytest.mark.parametrize("rel, subsample", [("teapot/teapot_10k.splat", 1), ("plant/plant.splat", 25)])
def test_cpu_matches_reference_on_real_splats(shared_data: Path, rel: str, subsample: int) -> None:
    g = Gaussians.load_splat(shared_data / "splats" / rel)
    g = g[torch.randperm(g.num, generator=torch.Generator().manual_seed(0))[: g.num // subsample]]
    assert_backends_agree(g, _object_cameras(g, 24, 32, n=1), rtol=1e-4, rel_atol=1e-5)


# ---------------------------------------------------------------- gsplat (CUDA only)
@pytest.mark.gpu
def test_gsplat_agrees_with_cpu() -> None:
    pytest.importorskip("gsplat")
    g = random_scene(2000, seed=2, degree=1)
    cams = two_cameras(48, 64)
    ref = rasterize(g, cams, backend="cpu")
    out = rasterize(g.to("cuda"), cams, backend="gsplat")
    assert resolve_backend("auto", g.to("cuda")) == "gsplat"
    assert float((out.rgb.cpu() - ref.rgb).abs().mean()) < 5e-3
    assert float((out.alpha.cpu() - ref.alpha).abs().mean()) < 5e-3
    seen = (ref.alpha > 0.5) & (out.alpha.cpu() > 0.5)
    assert float((out.depth.cpu() - ref.depth)[seen].abs().median()) < 1e-2


# ---------------------------------------------------------------- fast backend: robustness of the C++ pipeline
def test_cpu_off_screen_gaussians_use_clamped_jacobian_like_reference() -> None:
    # Large Gaussians centred outside 1.3x the field of view reach into the image: the Jacobian's x/z, y/z are
    # clamped there (no gradient through the clamp); the image size is not a multiple of the 8x8 tiles.
    gen = torch.Generator().manual_seed(4)
    g_in = random_scene(200, seed=8, degree=1, dtype=torch.float64)
    n = 40
    z = 2.0 + torch.rand(n, generator=gen, dtype=torch.float64)
    side = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).to(torch.float64)
    x = side * z * (1.0 + 0.3 * torch.rand(n, generator=gen, dtype=torch.float64))  # x/z in [1, 1.3]: off-screen
    y = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * z
    big = Gaussians(
        means=torch.stack([x, y, z], dim=-1),
        quats=torch.randn(n, 4, generator=gen, dtype=torch.float64),
        log_scales=torch.full((n, 3), math.log(0.6), dtype=torch.float64)
        + 0.2 * torch.randn(n, 3, generator=gen, dtype=torch.float64),
        opacity_logits=torch.full((n,), 2.0, dtype=torch.float64),
        sh=torch.randn(n, 4, 3, generator=gen, dtype=torch.float64) * 0.3,
    )
    g = Gaussians.cat([g_in, big])
    cam = axis_camera(21, 30, 18.0)  # half fov: x/z up to 15 / 18 = 0.83, clamp at 0.83 + 0.25
    assert_backends_agree(g, cam, rtol=1e-9, rel_atol=1e-11)
    _, grads = render_and_grad(g, cam, "cpu")
    assert grads["means"][-n:].abs().max() > 0  # the off-screen Gaussians are seen and get gradients


def test_cpu_interleaved_calls_and_context_reuse_are_deterministic() -> None:
    # Several forward passes alive at once, backward in another order, then again: the recycled C++ contexts must
    # not leak state between calls.
    g = random_scene(800, seed=6, degree=0)
    cams = two_cameras(20, 28)

    def run(order: tuple[int, ...]) -> dict[int, dict[str, torch.Tensor]]:
        gs = {i: g.clone().requires_grad_() for i in order}
        outs = {i: rasterize(gs[i], cams[i], backend="cpu") for i in order}
        grads = {}
        for i in reversed(order):
            (outs[i].rgb.sum() + outs[i].alpha.sum() + outs[i].depth.sum()).backward()
            grads[i] = {n: getattr(gs[i], n).grad.clone() for n in FIELDS}
            grads[i]["rgb"] = outs[i].rgb.detach()
        return grads

    first, second = run((0, 1)), run((1, 0))
    for i in (0, 1):
        for name, value in first[i].items():
            assert torch.equal(value, second[i][name]), (i, name)
    with torch.no_grad():  # no-grad forward passes free their context at once and agree too
        assert torch.equal(rasterize(g, cams[0], backend="cpu").rgb[0], first[0]["rgb"][0])


def test_cpu_results_do_not_depend_on_the_thread_count() -> None:
    g = random_scene(3000, seed=9, degree=1)
    cams = two_cameras(40, 56)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, one_g = render_and_grad(g, cams, "cpu")
        torch.set_num_threads(3)
        many, many_g = render_and_grad(g, cams, "cpu")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one.rgb, many.rgb) and torch.equal(one.depth, many.depth)
    for name in FIELDS:  # gradients are summed per tile entry, then per Gaussian in a fixed order: bitwise equal
        assert torch.equal(many_g[name], one_g[name]), name


def test_cpu_nothing_visible_gives_background_and_zero_gradients() -> None:
    g = random_scene(100, seed=2)
    g = Gaussians(g.means * torch.tensor([1.0, 1.0, -1.0]), g.quats, g.log_scales, g.opacity_logits, g.sh)
    cam = axis_camera(9, 13, 10.0)  # every Gaussian is behind the camera
    out, grads = render_and_grad(g, cam, "cpu")
    assert torch.equal(out.alpha, torch.zeros(1, 9, 13))
    assert torch.equal(out.rgb, torch.tensor([0.1, 0.5, 0.9]).view(1, 3, 1, 1).expand(1, 3, 9, 13))
    assert all(float(grads[n].abs().max()) == 0 for n in FIELDS)
