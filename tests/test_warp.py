"""Forward warp, point-cloud warp, reprojection check and erosion rule."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from worldwarp.cameras import Cameras, look_at
from worldwarp.errors import InputError
from worldwarp.splat.cache import CacheConfig, fit_cache
from worldwarp.splat.gaussians import Gaussians
from worldwarp.splat.raster import rasterize
from worldwarp.warp import (
    WarpConfig,
    erode_mask,
    erosion_kernel_size,
    forward_warp,
    point_cloud_warp,
    reprojection_mask,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # small workloads: one thread (tests/conftest.py)


def _camera(h: int, w: int, f: float, tx: float = 0.0, ty: float = 0.0, tz: float = 0.0) -> Cameras:
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 3] = torch.tensor([tx, ty, tz], dtype=torch.float64)
    K = torch.tensor([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], dtype=torch.float64)
    return Cameras(c2w, K, h, w)


# ---------------------------------------------------------------------------------------------- erosion
def test_erosion_kernel_size_rule() -> None:
    cfg = WarpConfig()
    assert erosion_kernel_size(480, 720, cfg) == 15
    assert erosion_kernel_size(720, 480, cfg) == 15
    assert erosion_kernel_size(240, 360, cfg) == 7  # 7.5 -> nearest odd 7
    assert erosion_kernel_size(960, 1440, cfg) == 31  # 30 -> tie goes up
    assert erosion_kernel_size(160, 240, cfg) == 5
    assert erosion_kernel_size(16, 16, cfg) == 1
    assert erosion_kernel_size(480, 720, WarpConfig(erosion=0)) == 1
    assert erosion_kernel_size(480, 720, WarpConfig(erosion=9, erosion_reference=240)) == 19  # 18 -> 19
    for h in range(1, 2000, 37):
        k = erosion_kernel_size(h, 2 * h, cfg)
        assert k % 2 == 1 and abs(k - 15 * h / 480) <= 1


def test_erode_mask_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(2, 13, 17, generator=g) > 0.08
    for k in (1, 3, 5):
        out = erode_mask(mask, k)
        r = k // 2
        ref = torch.zeros_like(mask)
        for n in range(2):
            for i in range(13):
                for j in range(17):
                    win = mask[n, max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1]
                    ref[n, i, j] = bool(win.all())
        assert torch.equal(out, ref), k
    # a single hole grows to exactly a k x k square
    m = torch.ones(1, 20, 20, dtype=torch.bool)
    m[0, 10, 10] = False
    assert int((~erode_mask(m, 7)).sum()) == 49


def test_erode_mask_large_kernels_match_max_pool() -> None:
    # kernels that are not 2^k - 1 and kernels larger than the image (the doubling window test's edge cases)
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(2)
    mask = torch.rand(3, 21, 34, generator=g) > 0.02
    for k in (7, 9, 11, 15, 17, 31, 45, 71):
        r = k // 2
        hole = (~mask)[:, None].float()
        hole = F.max_pool2d(hole, (1, k), stride=1, padding=(0, r))
        hole = F.max_pool2d(hole, (k, 1), stride=1, padding=(r, 0))
        assert torch.equal(erode_mask(mask, k), hole[:, 0] == 0), k


# ---------------------------------------------------------------------------------------------- reprojection
def test_reprojection_mask_accepts_consistent_and_rejects_outside_or_occluded() -> None:
    h, w, f = 12, 16, 16.0
    cam = _camera(h, w, f)
    depth = torch.full((1, h, w), 2.0, dtype=torch.float64)
    depth[0, :, :4] = 0.0  # unknown depth on the left columns
    pts = cam.unproject(torch.full((1, h, w), 2.0, dtype=torch.float64))[0].reshape(-1, 3)
    ok = reprojection_mask(pts, cam, depth).view(h, w)
    assert not ok[:, :4].any() and ok[:, 4:].all()
    # 9 % deeper is accepted, 11 % is rejected (relative to the history depth)
    assert reprojection_mask(pts * 1.09, cam, depth).view(h, w)[:, 4:].all()
    assert not reprojection_mask(pts * 1.11, cam, depth).any()
    # points projecting outside the history image, or behind it, are rejected
    outside = torch.tensor([[5.0, 0.0, 2.0], [0.0, 0.0, -2.0]], dtype=torch.float64)
    assert not reprojection_mask(outside, cam, depth).any()
    # accepted when at least one of two history views agrees
    cam2 = Cameras.cat([cam, _camera(h, w, f, tx=0.5)])
    depth2 = torch.cat([torch.zeros_like(depth), torch.full_like(depth, 2.0)])
    ok2 = reprojection_mask(pts, cam2, depth2).view(h, w)
    shift = int(f * 0.5 / 2.0)  # 4 pixels
    assert ok2[:, shift:].all() and not ok2[:, :shift].any()
    okb = reprojection_mask(pts, cam2, depth2, sampling="bilinear").view(h, w)
    assert okb[:, shift + 1 :].all() and not okb[:, :shift].any()


# ---------------------------------------------------------------------------------------------- point cloud warp
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_point_cloud_warp_exact_on_a_plane(dtype: torch.dtype) -> None:
    h, w, f, z = 10, 14, 20.0, 2.0
    src = _camera(h, w, f)
    g = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, h, w, generator=g, dtype=torch.float64).to(dtype)
    depth = torch.full((1, h, w), z, dtype=dtype)
    tx = 2 * z / f  # moves the plane's image 2 pixels left
    tgt = Cameras.cat([src, _camera(h, w, f, tx=tx)])
    cfg = WarpConfig(point_radius=0.0, erosion=0)
    out = point_cloud_warp(img, depth, src, tgt, cfg)
    assert out.rgb.dtype == dtype and out.rgb.shape == (2, 3, h, w)
    assert torch.equal(out.rgb[0], img[0]) and out.mask[0].all()
    assert torch.equal(out.rgb[1, :, :, : w - 2], img[0, :, :, 2:])
    assert out.mask[1, :, : w - 2].all() and not out.mask[1, :, w - 2 :].any()
    assert torch.allclose(out.depth[1, :, : w - 2], torch.full((h, w - 2), z, dtype=dtype), rtol=1e-6)
    assert (out.depth[1, :, w - 2 :] == 0).all() and (out.rgb[1, :, :, w - 2 :] == 0).all()
    # a 3x3 footprint keeps the exact colours (centre hits win ties) and spreads one more column
    out = point_cloud_warp(img, depth, src, tgt, WarpConfig(point_radius=1.5, erosion=0))
    assert torch.equal(out.rgb[1, :, :, : w - 2], img[0, :, :, 2:])
    assert torch.equal(out.rgb[1, :, :, w - 2], img[0, :, :, w - 1])
    assert out.mask[1, :, : w - 1].all() and not out.mask[1, :, w - 1].any()
    # erosion of 15 at 480 -> kernel 1 at this size; erosion at reference 10 -> 15 px kernel hides everything
    out = point_cloud_warp(img, depth, src, tgt, WarpConfig(point_radius=0.0, erosion=3, erosion_reference=10))
    assert out.mask[0].all()  # the image border does not erode
    assert out.mask[1, :, : w - 3].all() and not out.mask[1, :, w - 3 :].any()


def test_point_cloud_warp_nearest_depth_wins() -> None:
    h, w, f = 8, 8, 8.0
    src = _camera(h, w, f)
    img = torch.zeros(2, 3, h, w, dtype=torch.float64)
    img[0, 0] = 1.0  # red plane at z = 4 seen by view 0
    img[1, 2] = 1.0  # blue plane at z = 2 seen by view 1 (same pose)
    depth = torch.stack([torch.full((h, w), 4.0), torch.full((h, w), 2.0)]).double()
    depth[1, :, 4:] = 0.0  # the near plane only covers the left half
    cams = Cameras.cat([src, src])
    out = point_cloud_warp(img, depth, cams, src, WarpConfig(point_radius=0.0, erosion=0))
    assert (out.rgb[0, 2, :, :4] == 1).all() and (out.rgb[0, 0, :, :4] == 0).all()
    assert (out.rgb[0, 0, :, 4:] == 1).all()
    assert torch.allclose(out.depth[0, :, :4], torch.tensor(2.0, dtype=torch.float64))


def test_point_cloud_warp_pixel_seen_by_no_view_is_invalid() -> None:
    h, w, f = 8, 10, 10.0
    src = _camera(h, w, f)
    img = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    depth = torch.full((1, h, w), 1.0, dtype=torch.float64)
    far_left = _camera(h, w, f, tx=-50.0)  # looks at a part of the world no history pixel lies in
    out = point_cloud_warp(img, depth, src, far_left, WarpConfig(erosion=0))
    assert not out.mask.any() and (out.alpha == 0).all()
    empty = point_cloud_warp(img, torch.zeros_like(depth), src, src, WarpConfig(erosion=0))
    assert not empty.mask.any()


def test_warp_config_validation() -> None:
    with pytest.raises(InputError):
        WarpConfig(alpha_threshold=1.5)
    with pytest.raises(InputError):
        WarpConfig(depth_sampling="cubic")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        WarpConfig(batch_size=0)
    assert math.isclose(WarpConfig().depth_rel_tol, 0.1)


# ---------------------------------------------------------------------------------------------- forward warp
@pytest.fixture(scope="module")
def history() -> tuple[torch.Tensor, torch.Tensor, Cameras, Gaussians]:
    """One 24x24 history view (a wall at z = 4 with a square at z = 2.5 in front, smooth random colours), its
    depth, its camera (identity pose) and a 60-step cache fitted to it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, 6, 6, generator=g, dtype=torch.float64)
    image = torch.nn.functional.interpolate(coarse, size=(24, 24), mode="bilinear", align_corners=False)
    depth = torch.full((1, 24, 24), 4.0, dtype=torch.float64)
    depth[0, 8:16, 6:14] = 2.5
    cam = _camera(24, 24, 21.6)
    cache = fit_cache(image, depth, cam, CacheConfig(steps=60), progress=False)
    torch.set_num_threads(n)
    return image, depth, cam, cache


def test_forward_warp_identity_reproduces_the_history_view(history) -> None:
    image, depth, cam, cache = history
    res = forward_warp(cache, cam, cam, depth, WarpConfig(erosion=0))
    assert res.rgb.shape == (1, 3, 24, 24) and res.mask.dtype == torch.bool
    with torch.no_grad():
        ref = rasterize(cache, cam)
    assert torch.equal(res.rgb, ref.rgb) and torch.equal(res.alpha, ref.alpha) and torch.equal(res.depth, ref.depth)
    m = res.mask[0]
    # the history view confirms itself everywhere but near the square's depth edge (blended depth there)
    flat = erode_mask(depth[0] == 4.0, 5) | erode_mask(depth[0] == 2.5, 5)
    assert m[flat].all() and m.float().mean() > 0.85
    assert torch.equal(m, (ref.alpha[0] > 0.5) & ((ref.depth[0] - depth[0]).abs() < 0.1 * depth[0]))
    err = (res.rgb[0] - image[0]).abs().mean(dim=0)[m]
    mse = ((res.rgb[0] - image[0]) ** 2).mean(dim=0)[m].mean()
    # measured on this scene: PSNR 30.0 dB on the valid pixels, mean error 0.021
    assert -10 * torch.log10(mse) > 27.0 and err.mean() < 0.03


def test_forward_warp_rejects_pixels_no_history_view_confirms(history) -> None:
    image, depth, cam, cache = history
    # history depth unknown on the left half: those pixels have no view to confirm them
    holes = depth.clone()
    holes[..., :12] = 0.0
    res = forward_warp(cache, cam, cam, holes, WarpConfig(erosion=0))
    assert not res.mask[0, :, :12].any() and res.mask[0, :, 12:].float().mean() > 0.85
    # a history camera that looks elsewhere sees none of the rendered points: nothing is valid ...
    away = Cameras(look_at(torch.zeros(3), torch.tensor([0.0, 0.0, -3.0])), cam.K, 24, 24)
    res = forward_warp(cache, cam, away, depth, WarpConfig(erosion=0))
    assert not res.mask.any()
    # ... unless the reprojection check is off (alpha alone); adding the real view back restores validity
    assert forward_warp(cache, cam, None, None, WarpConfig(erosion=0, reprojection=False)).mask.all()
    both = forward_warp(cache, cam, Cameras.cat([away, cam]), torch.cat([depth, depth]), WarpConfig(erosion=0))
    assert torch.equal(both.mask, forward_warp(cache, cam, cam, depth, WarpConfig(erosion=0)).mask)
    with pytest.raises(InputError):
        forward_warp(cache, cam, None, None, WarpConfig())


def test_forward_warp_erosion_batches_and_new_views(history) -> None:
    image, depth, cam, cache = history
    moved = Cameras(
        look_at(torch.tensor([[0.0, 0, 0], [0.4, 0, 0], [0, 0.3, 0], [-0.8, 0, 0.2]]), torch.tensor([0.0, 0.0, 3.0])),
        cam.K.expand(4, 3, 3),
        24,
        24,
    )
    raw = forward_warp(cache, moved, cam, depth, WarpConfig(erosion=0, batch_size=3))
    ero = forward_warp(cache, moved, cam, depth, WarpConfig(erosion=15, erosion_reference=72, batch_size=1))
    assert erosion_kernel_size(24, 24, WarpConfig(erosion=15, erosion_reference=72)) == 5
    assert torch.equal(ero.rgb, raw.rgb) and torch.equal(ero.depth, raw.depth)
    assert torch.equal(ero.mask, erode_mask(raw.mask, 5))
    # moving the camera sideways uncovers pixels the history never saw: the valid share drops, monotonically
    share = raw.mask.flatten(1).float().mean(dim=1)
    assert share[0] > 0.85 and share[3] < share[1] < share[0]
    # the mask implies alpha > 0.5 and depth agreement with the history view
    pts = moved.unproject(raw.depth)
    for k in range(4):
        ok = reprojection_mask(pts[k].reshape(-1, 3), cam, depth[:1].expand(1, 24, 24)).view(24, 24)
        assert torch.equal(raw.mask[k], ok & (raw.alpha[k] > 0.5) & (raw.depth[k] > 0.01))


def _shifted_history() -> tuple[Cameras, torch.Tensor]:
    """Three 18x26 history cameras (focal 20) translated by ``shifts`` (3, 3) from the origin, looking down +z."""
    h, w, f = 18, 26, 20.0
    K = torch.tensor([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], dtype=torch.float64)
    shifts = torch.tensor([[0.4, 0.0, 0.0], [-0.5, 0.3, 0.2], [0.0, -0.6, -0.3]], dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64).repeat(3, 1, 1)
    c2w[:, :3, 3] = shifts
    return Cameras(c2w, K.expand(3, 3, 3), h, w), shifts


@pytest.mark.parametrize("sampling", ["nearest", "bilinear"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_cpu_reprojection_matches_reprojection_mask(sampling: str, dtype: torch.dtype) -> None:
    # the C++ check forward_warp uses on CPU against the torch reprojection_mask, pixel for pixel: a plane at z = 3
    # seen by shifted history cameras (so some pixels fall outside), holes in the history depth, noisy target depth
    from worldwarp.warp import reprojection_mask_cpu

    gen = torch.Generator().manual_seed(5)
    hist, shifts = _shifted_history()
    h, w, f = hist.height, hist.width, float(hist.K[0, 0, 0])
    hdepth = (3.0 - shifts[:, 2]).view(3, 1, 1).expand(3, h, w).clone()
    hdepth[torch.rand(3, h, w, generator=gen) < 0.15] = 0.0  # holes
    target = _cam_at([0.1, -0.05, 0.0], h, w, f)
    depth = torch.full((h, w), 3.0, dtype=torch.float64) * (1 + 0.2 * (torch.rand(h, w, generator=gen) - 0.5))
    valid = torch.rand(h, w, generator=gen) < 0.9
    depth, hdepth = depth.to(dtype), hdepth.to(dtype)
    pts = target.to(dtype=dtype).unproject(depth[None])[0]  # (H, W, 3)
    expect = valid.clone()
    expect[valid] = reprojection_mask(pts[valid], hist, hdepth, rel_tol=0.05, near=0.01, sampling=sampling)
    got = reprojection_mask_cpu(
        depth, valid, target.c2w[0], target.K[0], hist.w2c, hist.K, hdepth, rel_tol=0.05, near=0.01, sampling=sampling
    )
    assert 0.2 < float(expect.float().mean()) < 0.8  # both outcomes occur
    mismatch = int((got != expect).sum())
    assert mismatch == 0 if dtype == torch.float64 else mismatch <= 2, mismatch  # float32: rounding at the tolerance


def _cam_at(pos: list[float], h: int, w: int, f: float) -> Cameras:
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 3] = torch.tensor(pos, dtype=torch.float64)
    K = torch.tensor([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], dtype=torch.float64)
    return Cameras(c2w, K, h, w)


# ---------------------------------------------------------------------------------------------- reprojection window
def _reprojection_cpu_or_skip() -> Callable[..., torch.Tensor]:
    """reprojection_mask_cpu, or skip the test when the C++ kernels cannot be built."""
    from worldwarp.splat.kernels import KernelBuildError, load_library
    from worldwarp.warp import reprojection_mask_cpu

    try:
        load_library("reproject")
    except KernelBuildError as e:
        pytest.skip(f"C++ kernels unavailable: {e}")
    return reprojection_mask_cpu


def _window_reference(
    pts: torch.Tensor, hist: Cameras, hdepth: torch.Tensor, rel_tol: float, near: float, window: int
) -> torch.Tensor:
    """Brute-force statement of the window rule, one point and one block pixel at a time."""
    uv, z = hist.project(pts)
    r = window // 2
    ok = torch.zeros(pts.shape[0], dtype=torch.bool)
    for p in range(pts.shape[0]):
        for v in range(len(hist)):
            u, vv, zz = float(uv[v, p, 0]), float(uv[v, p, 1]), z[v, p]
            if not (0 <= u < hist.width and 0 <= vv < hist.height and zz > near):
                continue
            i0, j0 = math.floor(vv), math.floor(u)
            for i in range(max(i0 - r, 0), min(i0 + r, hist.height - 1) + 1):
                for j in range(max(j0 - r, 0), min(j0 + r, hist.width - 1) + 1):
                    d = hdepth[v, i, j]
                    if d > near and (zz - d).abs() < rel_tol * d:
                        ok[p] = True
    return ok


def _old_nearest_rule(
    pts: torch.Tensor, hist: Cameras, hdepth: torch.Tensor, rel_tol: float, near: float
) -> torch.Tensor:
    """The single-pixel rule as it stood before the window option (nearest history pixel only)."""
    uv, z = hist.project(pts)
    ok = torch.zeros(pts.shape[0], dtype=torch.bool)
    for v in range(len(hist)):
        u, vv = uv[v, :, 0], uv[v, :, 1]
        inside = (u >= 0) & (u < hist.width) & (vv >= 0) & (vv < hist.height)
        j = u.floor().long().clamp(0, hist.width - 1)
        i = vv.floor().long().clamp(0, hist.height - 1)
        d = hdepth[v, i, j]
        ok |= inside & (d > near) & (z[v] > near) & ((z[v] - d).abs() < rel_tol * d)
    return ok


def _window_masks(
    impl: str, target: Cameras, tdepth: torch.Tensor, hist: Cameras, hdepth: torch.Tensor, window: int, **kw: float
) -> torch.Tensor:
    """(H, W) mask of every target pixel (lifted with tdepth) by the torch or the C++ check."""
    valid = torch.ones(tdepth.shape, dtype=torch.bool)
    if impl == "torch":
        pts = target.to(dtype=tdepth.dtype).unproject(tdepth[None])[0].reshape(-1, 3)
        return reprojection_mask(pts, hist, hdepth, window=window, **kw).view(tdepth.shape)  # type: ignore[arg-type]
    cpu = _reprojection_cpu_or_skip()
    return cpu(
        tdepth, valid, target.c2w[0], target.K[0], hist.w2c, hist.K, hdepth, rel_tol=kw.get("rel_tol", 0.1),
        near=kw.get("near", 0.01), sampling="nearest", window=window,
    )  # fmt: skip


@pytest.mark.parametrize("impl", ["torch", "cpu"])
def test_reprojection_window_exact_cases(impl: str) -> None:
    # 8x8 history view at identity; the target is the same camera, so pixel (i, j) lifted at depth z projects back
    # onto the centre of history pixel (i, j) at depth z
    h, w, f = 8, 8, 8.0
    cam = _camera(h, w, f)
    tdepth = torch.full((h, w), 2.0, dtype=torch.float64)
    hdepth = torch.full((1, h, w), 3.0, dtype=torch.float64)  # disagrees with every point (50 % off)
    hdepth[0, 3, 5] = 2.05  # agrees with the point at (3, 4) (and its neighbours), not its own pixel
    hdepth[0, 6, 1] = 1.95  # two pixels from (6, 3): reached by a 5x5 block only
    hdepth[0, 0, 7] = 2.0  # end of row 0 is no neighbour of (1, 0) (no wrap-around through memory)
    hdepth[0, 2, 7] = 2.0
    hdepth[0, 7, 0] = 0.0  # corner block of (7, 0) for window 3: {(6, 0), (6, 1), (7, 1)} are all that remain
    hdepth[0, 7, 1] = 2.0
    m1, m3, m5 = (_window_masks(impl, cam, tdepth, cam, hdepth, k) for k in (1, 3, 5))
    # window 1: only the pixels holding an agreeing depth themselves
    expect1 = torch.zeros(h, w, dtype=torch.bool)
    for i, j in [(3, 5), (6, 1), (0, 7), (2, 7), (7, 1)]:
        expect1[i, j] = True
    assert torch.equal(m1, expect1)
    # window 3: every pixel within one pixel (Chebyshev) of an agreeing history depth, the block clipped
    expect3 = torch.zeros(h, w, dtype=torch.bool)
    for i, j in [(3, 5), (6, 1), (0, 7), (2, 7), (7, 1)]:
        expect3[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2] = True
    assert torch.equal(m3, expect3)
    assert m3[3, 4] and not m1[3, 4]  # nearest pixel disagrees, its neighbour agrees
    assert not m3[1, 0] and not m3[6, 3] and m5[6, 3]  # no wrap-around; two pixels away needs window 5
    assert m3[7, 0] and m3[0, 6]  # corner and border blocks, clipped to the image
    expect5 = torch.zeros(h, w, dtype=torch.bool)
    for i, j in [(3, 5), (6, 1), (0, 7), (2, 7), (7, 1)]:
        expect5[max(i - 2, 0) : i + 3, max(j - 2, 0) : j + 3] = True
    assert torch.equal(m5, expect5)
    # no neighbour agrees anywhere: rejected at every window
    far = torch.full((1, h, w), 3.0, dtype=torch.float64)
    for k in (1, 3, 5, 15):
        assert not _window_masks(impl, cam, tdepth, cam, far, k).any()
    # history depths at or below near never confirm, however close the point is
    low = torch.full((1, h, w), 0.45, dtype=torch.float64)
    assert not _window_masks(impl, cam, torch.full((h, w), 0.46, dtype=torch.float64), cam, low, 3, near=0.5).any()
    # a target camera one pixel to the left: its column 0 projects just outside the history image (u = -0.5) and
    # stays rejected although the history pixels next to it agree; the window never extends the image itself
    shifted = _camera(h, w, f, tx=-0.25)
    same = torch.full((1, h, w), 2.0, dtype=torch.float64)
    ms = _window_masks(impl, shifted, tdepth, cam, same, 3)
    assert not ms[:, 0].any() and ms[:, 1:].all()


def test_reprojection_window_points_behind_or_outside_are_rejected() -> None:
    h, w, f = 8, 8, 8.0
    cam = _camera(h, w, f)
    hdepth = torch.full((1, h, w), 2.0, dtype=torch.float64)
    # just left of the image (u = -0.04), just below it (v = 8.04), behind the camera: all rejected at window 5
    pts = torch.tensor([[-1.01, 0.0, 2.0], [0.0, 1.01, 2.0], [0.0, 0.0, -2.0]], dtype=torch.float64)
    assert not reprojection_mask(pts, cam, hdepth, window=5).any()
    inside = torch.tensor([[-0.99, 0.0, 2.0], [0.0, 0.99, 2.0]], dtype=torch.float64)
    assert reprojection_mask(inside, cam, hdepth, window=5).all()


def _random_window_scene(dtype: torch.dtype) -> tuple[Cameras, torch.Tensor, Cameras, torch.Tensor, torch.Tensor]:
    """Three shifted history views of a stepped surface (depth edges, a slanted part, holes) and a noisy target."""
    gen = torch.Generator().manual_seed(11)
    hist, shifts = _shifted_history()
    h, w, f = hist.height, hist.width, float(hist.K[0, 0, 0])
    cols = torch.arange(w, dtype=torch.float64)
    base = (3.0 + 0.04 * cols).expand(h, w)  # slanted
    hdepth = base.expand(3, h, w).clone() - shifts[:, 2].view(3, 1, 1)
    hdepth += 0.6 * (torch.rand(3, h, w, generator=gen, dtype=torch.float64) < 0.3)  # scattered far pixels
    hdepth[torch.rand(3, h, w, generator=gen) < 0.15] = 0.0  # holes
    target = _cam_at([0.1, -0.05, 0.0], h, w, f)
    tdepth = (3.0 + 0.04 * cols).expand(h, w) * (1 + 0.16 * (torch.rand(h, w, generator=gen) - 0.5))
    valid = torch.rand(h, w, generator=gen) < 0.9
    return target, tdepth.to(dtype), hist, hdepth.to(dtype), valid


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_reprojection_window_torch_matches_cpu_and_reference(dtype: torch.dtype) -> None:
    target, tdepth, hist, hdepth, valid = _random_window_scene(dtype)
    pts = target.to(dtype=dtype).unproject(tdepth[None])[0]  # (H, W, 3)
    shares = []
    prev = None
    for k in (1, 3, 5):
        expect = valid.clone()
        expect[valid] = reprojection_mask(pts[valid], hist, hdepth, rel_tol=0.05, near=0.01, window=k)
        if dtype == torch.float64:  # the torch implementation states the rule exactly
            ref = _window_reference(pts[valid], hist.to(dtype=dtype), hdepth, 0.05, 0.01, k)
            assert torch.equal(expect[valid], ref), k
        if prev is not None:
            assert not (prev & ~expect).any()  # a larger block only adds pixels
        prev = expect
        shares.append(float(expect[valid].float().mean()))
        cpu = _reprojection_cpu_or_skip()
        got = cpu(
            tdepth, valid, target.c2w[0], target.K[0], hist.w2c, hist.K, hdepth, rel_tol=0.05, near=0.01,
            sampling="nearest", window=k,
        )  # fmt: skip
        assert torch.equal(got, expect), (k, int((got != expect).sum()))
    assert 0.2 < shares[0] < shares[1] < shares[2] < 1.0, shares  # the scene exercises every window


def test_reprojection_window_one_is_the_single_pixel_rule() -> None:
    target, tdepth, hist, hdepth, valid = _random_window_scene(torch.float64)
    pts = target.unproject(tdepth[None])[0].reshape(-1, 3)
    old = _old_nearest_rule(pts, hist, hdepth, 0.05, 0.01)
    assert 0.2 < float(old.float().mean()) < 0.8
    assert torch.equal(reprojection_mask(pts, hist, hdepth, rel_tol=0.05), old)
    assert torch.equal(reprojection_mask(pts, hist, hdepth, rel_tol=0.05, window=1), old)
    assert WarpConfig().reprojection_window == 1


def test_reprojection_window_validation() -> None:
    for bad in (0, -1, 2, 4, 1.0, 3.0, True, "3"):
        with pytest.raises(InputError):
            WarpConfig(reprojection_window=bad)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        WarpConfig(depth_sampling="bilinear", reprojection_window=3)
    assert WarpConfig(depth_sampling="bilinear", reprojection_window=1).reprojection_window == 1
    assert WarpConfig(reprojection_window=7).reprojection_window == 7
    cam = _camera(4, 4, 4.0)
    pts = torch.zeros(1, 3, dtype=torch.float64)
    depth = torch.ones(1, 4, 4, dtype=torch.float64)
    for bad in (0, 2, -3):
        with pytest.raises(InputError):
            reprojection_mask(pts, cam, depth, window=bad)
    with pytest.raises(InputError):
        reprojection_mask(pts, cam, depth, sampling="bilinear", window=3)
    cpu = _reprojection_cpu_or_skip()
    args = (depth[0], torch.ones(4, 4, dtype=torch.bool), cam.c2w[0], cam.K[0], cam.w2c, cam.K, depth)
    for bad in (0, 2):
        with pytest.raises(InputError):
            cpu(*args, rel_tol=0.1, near=0.01, sampling="nearest", window=bad)
    with pytest.raises(InputError):
        cpu(*args, rel_tol=0.1, near=0.01, sampling="bilinear", window=3)


def test_forward_warp_reprojection_window_fused_and_torch_paths(history, monkeypatch) -> None:
    import worldwarp.warp as warp_module

    image, depth, cam, cache = history
    moved = Cameras(
        look_at(torch.tensor([[0.5, 0.1, 0], [-0.8, 0, 0.2]]), torch.tensor([0.0, 0.0, 3.0])), cam.K.expand(2, 3, 3),
        24, 24,
    )  # fmt: skip
    cfg1 = WarpConfig(erosion=0, depth_rel_tol=0.03)
    cfg3 = WarpConfig(erosion=0, depth_rel_tol=0.03, reprojection_window=3)
    fused1, fused3 = forward_warp(cache, moved, cam, depth, cfg1), forward_warp(cache, moved, cam, depth, cfg3)
    monkeypatch.setattr(warp_module, "_fused_reprojection", lambda *a, **k: None)  # force the torch check
    torch3 = forward_warp(cache, moved, cam, depth, cfg3)
    assert torch.equal(torch3.depth, fused3.depth) and torch.equal(torch3.mask, fused3.mask)
    assert torch.equal(forward_warp(cache, moved, cam, depth, cfg1).mask, fused1.mask)
    assert not (fused1.mask & ~fused3.mask).any() and int(fused3.mask.sum()) > int(fused1.mask.sum())
    pts = moved.unproject(fused3.depth)
    for k in range(2):
        ok = reprojection_mask(pts[k].reshape(-1, 3), cam, depth, rel_tol=0.03, window=3).view(24, 24)
        assert torch.equal(fused3.mask[k], ok & (fused3.alpha[k] > 0.5) & (fused3.depth[k] > 0.01))
