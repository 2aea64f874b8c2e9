"""Forward warping: render the 3DGS cache at the target cameras and decide which pixels to trust.

Step 4 of the chunk loop (docs: DESIGN.md section 1). :func:`forward_warp` renders the Gaussian cache at every
target camera (RGB, alpha, expected z-depth) and marks a pixel valid when

1. its accumulated opacity exceeds ``alpha_threshold`` (0.5), and
2. (optional) its rendered depth agrees with at least one history view: the pixel is lifted to 3D with its
   rendered depth, projected into every history camera, and accepted when the history depth sampled there
   differs from the projected z-depth by less than ``depth_rel_tol`` (10 %) of the history depth; a pixel that
   falls outside every history image (or onto no valid history depth) is rejected; ``reprojection_window`` k > 1
   lets any history pixel of the k x k block around the projected one confirm it (1, the default, is the paper), and
3. the mask survives an erosion with a square kernel of ``erosion`` pixels at a ``min(H, W)`` of
   ``erosion_reference`` (15 at 480x720), scaled with the resolution (see :func:`erosion_kernel_size`).

:func:`point_cloud_warp` is the ablation baseline ("point-cloud cache"): history pixels are unprojected and
z-buffer splatted into the targets with a fixed pixel radius; a pixel is valid when some point covers it (then
eroded the same way). The warp works in pixels only: :mod:`worldwarp.diffusion.latent_grid` puts its mask on the
diffusion model's latent grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError, check_finite
from worldwarp.splat.gaussians import Gaussians
from worldwarp.splat.raster import rasterize

__all__ = [
    "WarpConfig",
    "WarpResult",
    "erode_mask",
    "erosion_kernel_size",
    "forward_warp",
    "point_cloud_warp",
    "reprojection_mask",
    "reprojection_mask_cpu",
]


@dataclass
class WarpConfig:
    """Settings of the forward warp (paper defaults).

    Attributes:
        alpha_threshold: a rendered pixel needs accumulated opacity above this to be valid.
        reprojection: run the reprojection (depth agreement) check against the history views.
        depth_rel_tol: accepted relative depth error ``|z - d_hist| / d_hist`` in the reprojection check.
        depth_sampling: how the history depth is read at a projected point: ``"nearest"`` pixel, or
            ``"bilinear"`` (then all four neighbours must hold valid depth).
        reprojection_window: odd side ``k >= 1`` of the history-pixel block searched by the reprojection check.
            1 (default) is the paper's rule: only the history pixel the point projects into is compared. With
            ``k > 1`` (``"nearest"`` sampling only; ``"bilinear"`` with ``k > 1`` is rejected) a point is accepted
            by a history view when ANY valid history depth in the ``k x k`` block centred on that pixel (clipped
            to the image) agrees within ``depth_rel_tol``; the point itself must still project inside the image
            and in front of the camera. Why: at grazing surfaces and depth edges the nearest history pixel often
            holds the depth of a neighbouring surface or a steep slope while an adjacent pixel confirms the point,
            so the single-pixel rule rejects many correct pixels there. Measured on real scenes
            (benchmarks/experiments/warp_quality.py, numbers in docs/benchmarks/warp_quality.md): window 3 adds
            pixels to the mask but lowers the PSNR on valid pixels, so the pixels it adds are worse than the ones
            kept; no preset uses it.
        erosion: side of the square erosion kernel at ``min(H, W) == erosion_reference``; 0 or 1 disables it.
        erosion_reference: the ``min(H, W)`` at which ``erosion`` applies (480 for the paper's 480x720).
        erosion_border: ``"keep"``: pixels outside the image count as valid, so the border does not erode;
            ``"zero"``: they count as invalid (zero padding, as the authors' release erodes), so a band of half the
            kernel along the image border is always regenerated.
        batch_size: number of target cameras rendered at once (bounds memory).
        backend: rasteriser backend (``"auto"``, ``"torch"``, ``"cpu"``, ``"gsplat"``).
        near: near plane of the rasteriser; also the smallest history depth treated as valid.
        background: RGB in [0, 1] written where nothing is rendered.
        point_radius: :func:`point_cloud_warp` only: a point covers the pixel it falls in plus every pixel
            whose integer offset (dx, dy) from it has ``dx^2 + dy^2 <= point_radius^2``.
    """

    alpha_threshold: float = 0.5
    reprojection: bool = True
    depth_rel_tol: float = 0.1
    depth_sampling: Literal["nearest", "bilinear"] = "nearest"
    reprojection_window: int = 1
    erosion: int = 15
    erosion_reference: int = 480
    erosion_border: Literal["keep", "zero"] = "keep"
    batch_size: int = 8
    backend: str = "auto"
    near: float = 0.01
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    point_radius: float = 1.0

    def __post_init__(self) -> None:
        check_finite(self)
        if not 0.0 <= self.alpha_threshold < 1.0:
            raise InputError(f"WarpConfig.alpha_threshold must lie in [0, 1), got {self.alpha_threshold}")
        if self.depth_rel_tol <= 0:
            raise InputError(f"WarpConfig.depth_rel_tol must be > 0, got {self.depth_rel_tol}")
        if self.depth_sampling not in ("nearest", "bilinear"):
            raise InputError(f"WarpConfig.depth_sampling must be 'nearest' or 'bilinear', got {self.depth_sampling!r}")
        _check_window(self.reprojection_window, self.depth_sampling, "WarpConfig.reprojection_window")
        if self.erosion < 0 or self.erosion_reference <= 0:
            raise InputError(
                f"WarpConfig.erosion must be >= 0 and erosion_reference > 0, got {self.erosion}, "
                f"{self.erosion_reference}"
            )
        if self.erosion_border not in ("keep", "zero"):
            raise InputError(f"WarpConfig.erosion_border must be 'keep' or 'zero', got {self.erosion_border!r}")
        if self.batch_size < 1:
            raise InputError(f"WarpConfig.batch_size must be >= 1, got {self.batch_size}")
        if self.near <= 0:
            raise InputError(f"WarpConfig.near must be > 0, got {self.near}")
        if len(self.background) != 3:
            raise InputError(f"WarpConfig.background must be three numbers, got {self.background}")
        if self.point_radius < 0:
            raise InputError(f"WarpConfig.point_radius must be >= 0, got {self.point_radius}")


def _check_window(window: int, sampling: str, name: str) -> None:
    """Raise :class:`InputError` unless ``window`` is an odd int >= 1 (and 1 when ``sampling`` is bilinear)."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise InputError(f"{name} must be an odd integer >= 1, got {window!r}")
    if window > 1 and sampling != "nearest":
        raise InputError(f"{name} > 1 needs depth_sampling 'nearest', got {window} with {sampling!r}")


@dataclass
class WarpResult:
    """Warped prior at N target cameras.

    Attributes:
        rgb: (N, 3, H, W) rendered colour in [0, 1] (raw render everywhere; trust it only where ``mask``).
        depth: (N, H, W) rendered z-depth (0 where nothing was rendered).
        alpha: (N, H, W) accumulated opacity (coverage for the point-cloud warp).
        mask: (N, H, W) bool, True where the warp is trusted.
    """

    rgb: Tensor
    depth: Tensor
    alpha: Tensor
    mask: Tensor


# ---------------------------------------------------------------------------------------------- mask helpers
def erosion_kernel_size(height: int, width: int, config: WarpConfig) -> int:
    """Side of the erosion kernel at ``(height, width)``.

    ``k = odd(config.erosion * min(H, W) / config.erosion_reference)``: the nearest odd integer (ties go up),
    at least 1; ``erosion`` of 0 or 1 gives 1 (no erosion). 15 at 480x720, 7 at 240x360, 31 at 960x1440.
    """
    if config.erosion <= 1:
        return 1
    x = config.erosion * min(height, width) / config.erosion_reference
    return max(1, 2 * math.floor(x / 2) + 1)


def erode_mask(mask: Tensor, kernel: int, border: Literal["keep", "zero"] = "keep") -> Tensor:
    """Erode a boolean mask (..., H, W) with a ``kernel`` x ``kernel`` square (odd).

    A pixel stays True only if every pixel of its kernel neighbourhood is True. ``border="keep"``: pixels outside
    the image count as True (the image border itself does not erode); ``"zero"``: they count as False (zero
    padding). Separable: a hole anywhere in the row window, then in the column window; each window test is
    O(log kernel) boolean ORs per pixel.
    """
    if border not in ("keep", "zero"):
        raise ValueError(f"erosion border must be 'keep' or 'zero', got {border!r}")
    if kernel <= 1:
        return mask.clone()
    if kernel % 2 == 0:
        raise ValueError(f"erosion kernel must be odd, got {kernel}")
    hole = ~mask.bool()
    for dim in (-1, -2):
        hole = _window_any(hole, kernel // 2, dim, outside=border == "zero")
    return ~hole


def _window_any(x: Tensor, r: int, dim: int, outside: bool = False) -> Tensor:
    """True where ``x`` (bool) is True anywhere within +-r along ``dim`` (outside the image counts as ``outside``).

    Doubling: after the loop ``s[i]`` is the OR of the ``span`` values from i (span the largest power of two
    <= 2r + 1), so the window [i - r, i + r] is ``s[i] | s[i + 2r + 1 - span]`` in padded coordinates.
    """
    n = x.shape[dim]
    pad = [0, 0] * (-dim - 1) + [r, r]
    s = F.pad(x, pad, value=outside) if outside else F.pad(x, pad)  # (..., n + 2r)
    span = 1
    while 2 * span <= 2 * r + 1:
        m = s.shape[dim] - span
        s = s.narrow(dim, 0, m) | s.narrow(dim, span, m)
        span *= 2
    return s.narrow(dim, 0, n) | s.narrow(dim, 2 * r + 1 - span, n)


# ---------------------------------------------------------------------------------------------- reprojection
def _sample_bilinear(depth: Tensor, uv: Tensor, near: float) -> tuple[Tensor, Tensor]:
    """History depth (H, W) read bilinearly between pixel centres at pixel positions uv (P, 2) -> (values (P,),
    ok (P,) bool); ok needs uv inside the image and valid depth (> near) at every contributing neighbour."""
    h, w = depth.shape
    u, v = uv[:, 0], uv[:, 1]
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    x = (u - 0.5).clamp(0, w - 1)
    y = (v - 0.5).clamp(0, h - 1)
    x0 = x.floor().long().clamp(0, w - 1)
    y0 = y.floor().long().clamp(0, h - 1)
    x1 = (x0 + 1).clamp(max=w - 1)
    y1 = (y0 + 1).clamp(max=h - 1)
    fx = x - x0.to(x.dtype)
    fy = y - y0.to(y.dtype)
    d00, d01, d10, d11 = depth[y0, x0], depth[y0, x1], depth[y1, x0], depth[y1, x1]
    ok = inside & (d00 > near) & (d01 > near) & (d10 > near) & (d11 > near)
    d = (d00 * (1 - fx) + d01 * fx) * (1 - fy) + (d10 * (1 - fx) + d11 * fx) * fy
    return d, ok


def _window_agrees(depth: Tensor, uv: Tensor, z: Tensor, near: float, rel_tol: float, window: int) -> Tensor:
    """Nearest-pixel check over a block: (P,) bool, True where uv (P, 2) lies inside the history depth (H, W) and
    some valid depth d (> near) in the ``window`` x ``window`` block centred on the pixel uv falls in (clipped to
    the image) has ``|z - d| < rel_tol * d``. ``window`` 1 reads only that pixel (the paper's rule)."""
    h, w = depth.shape
    u, v = uv[:, 0], uv[:, 1]
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    j = u.floor().long().clamp(0, w - 1)
    i = v.floor().long().clamp(0, h - 1)
    r = window // 2
    hit = torch.zeros_like(inside)
    # clamping a neighbour index onto the border reads a pixel that is inside the clipped block anyway
    for di in range(-r, r + 1):
        ii = (i + di).clamp(0, h - 1)
        for dj in range(-r, r + 1):
            d = depth[ii, (j + dj).clamp(0, w - 1)]
            hit |= (d > near) & ((z - d).abs() < rel_tol * d)
    return hit & inside


def reprojection_mask(
    points: Tensor,
    history_cameras: Cameras,
    history_depths: Tensor,
    *,
    rel_tol: float = 0.1,
    near: float = 0.01,
    sampling: str = "nearest",
    window: int = 1,
) -> Tensor:
    """True for world points (P, 3) whose depth agrees with at least one history view.

    A point is accepted by history view v when it projects inside view v's image in front of the camera, the
    history depth there is valid (> ``near``) and ``|z_v - d_v| < rel_tol * d_v``. With ``window`` k > 1
    (nearest sampling only) any valid history depth in the k x k block centred on the pixel the point falls in
    (clipped to the image) may confirm it (see :class:`WarpConfig`). Depth maps are (V, Hh, Wh) in
    ``history_cameras``' image size. Returns (P,) bool.
    """
    _check_window(window, sampling, "reprojection window")
    if history_depths.shape != (len(history_cameras), history_cameras.height, history_cameras.width):
        raise InputError(
            f"history depths of shape {tuple(history_depths.shape)} do not match {len(history_cameras)} cameras "
            f"of {history_cameras.height}x{history_cameras.width}"
        )
    cams = history_cameras.to(points.device, points.dtype)
    depths = history_depths.to(points.device, points.dtype)
    ok = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
    todo = torch.arange(points.shape[0], device=points.device)  # points no view has accepted yet
    for v in range(len(cams)):
        if todo.numel() == 0:
            break
        uv, z = cams[v].project(points[todo])  # (1, P', 2), (1, P')
        if sampling == "nearest":
            hit = (z[0] > near) & _window_agrees(depths[v], uv[0], z[0], near, rel_tol, window)
        else:
            d, valid = _sample_bilinear(depths[v], uv[0], near)
            hit = valid & (z[0] > near) & ((z[0] - d).abs() < rel_tol * d)
        ok[todo[hit]] = True
        todo = todo[~hit]
    return ok


def reprojection_mask_cpu(
    depth: Tensor,
    valid: Tensor,
    c2w: Tensor,
    K: Tensor,
    history_w2c: Tensor,
    history_K: Tensor,
    history_depths: Tensor,
    *,
    rel_tol: float,
    near: float,
    sampling: str,
    window: int = 1,
) -> Tensor:
    """:func:`reprojection_mask` of every pixel of one rendered view, fused in one C++ pass.

    Args:
        depth: (H, W) rendered z-depth of the target view (float32 or float64, CPU); the check runs in its dtype.
        valid: (H, W) bool, the pixels to check (others stay False).
        c2w, K: the target camera (4, 4) and (3, 3).
        history_w2c, history_K: (V, 4, 4) world-to-camera and (V, 3, 3) intrinsics of the history views.
        history_depths: (V, Hh, Wh) their z-depth.
        rel_tol, near, sampling, window: as in :func:`reprojection_mask`.

    Returns:
        (H, W) bool: ``valid`` and the pixel's 3D point agrees with at least one history depth.
        Raises :class:`~worldwarp.splat.kernels.KernelBuildError` when the kernels cannot be built (callers fall
        back to torch) and :class:`~worldwarp.errors.InputError` for an invalid ``window``.
    """
    from worldwarp.splat.kernels.ops import pack_cameras, reproject

    _check_window(window, sampling, "reprojection window")
    dtype = depth.dtype
    c2w = c2w.to("cpu", dtype)
    history_w2c = history_w2c.to("cpu", dtype)
    return reproject(
        depth.to("cpu").contiguous(),
        valid.to("cpu", torch.bool).contiguous(),
        pack_cameras(c2w[:3, :3], c2w[:3, 3], K, dtype),
        pack_cameras(history_w2c[:, :3, :3], history_w2c[:, :3, 3], history_K, dtype),
        history_depths.to("cpu", dtype).contiguous(),
        rel_tol=float(rel_tol),
        near=float(near),
        bilinear=sampling == "bilinear",
        window=window,
    )


def _fused_reprojection(
    history_cameras: Cameras | None,
    history_depths: Tensor | None,
    config: WarpConfig,
    dtype: torch.dtype,
    device: torch.device,
) -> Callable[[Tensor, Tensor, Tensor, Tensor], Tensor] | None:
    """:func:`reprojection_mask_cpu` bound to the history views, or None when it does not apply (backend "torch",
    non-CPU tensors, other dtypes, no compiler); None means torch."""
    if history_cameras is None or history_depths is None or config.backend == "torch" or device.type != "cpu":
        return None
    if dtype not in (torch.float32, torch.float64):
        return None
    if history_depths.shape != (len(history_cameras), history_cameras.height, history_cameras.width):
        return None  # reprojection_mask raises the error
    from worldwarp.splat.kernels import kernels_available

    if not kernels_available("reproject"):
        return None
    hist = history_cameras.to("cpu", dtype)
    w2c, K, depths = hist.w2c, hist.K, history_depths.to("cpu", dtype)

    def check(depth: Tensor, valid: Tensor, c2w: Tensor, k: Tensor) -> Tensor:
        return reprojection_mask_cpu(
            depth, valid, c2w, k, w2c, K, depths, rel_tol=config.depth_rel_tol, near=config.near,
            sampling=config.depth_sampling, window=config.reprojection_window,
        )  # fmt: skip

    return check


# ---------------------------------------------------------------------------------------------- warps
def forward_warp(
    gaussians: Gaussians,
    targets: Cameras,
    history_cameras: Cameras | None,
    history_depths: Tensor | None,
    config: WarpConfig | None = None,
) -> WarpResult:
    """Render the Gaussian cache at ``targets`` and compute the validity mask (see the module docstring).

    Args:
        gaussians: the fitted cache; rendering runs in its dtype and on its device.
        targets: N target cameras (any size).
        history_cameras: V cameras of the history frames (needed when ``config.reprojection``).
        history_depths: (V, Hh, Wh) z-depth of the history frames (0 = unknown), in the history cameras' size.
        config: warp settings (paper defaults when None).

    Returns:
        :class:`WarpResult` with rgb (N, 3, H, W), depth/alpha (N, H, W) and mask (N, H, W) bool.
    """
    config = config or WarpConfig()
    if config.reprojection and (history_cameras is None or history_depths is None):
        raise InputError("forward_warp: the reprojection check needs history_cameras and history_depths")
    dtype, device = gaussians.means.dtype, gaussians.means.device
    cams = targets.to(device, dtype)
    background = torch.tensor(config.background, dtype=dtype, device=device)
    n, h, w = len(cams), cams.height, cams.width
    rgb_all = torch.empty(n, 3, h, w, dtype=dtype, device=device)  # filled batch by batch (no final cat)
    depth_all = torch.empty(n, h, w, dtype=dtype, device=device)
    alpha_all = torch.empty(n, h, w, dtype=dtype, device=device)
    mask = torch.empty(n, h, w, dtype=torch.bool, device=device)
    fused = _fused_reprojection(history_cameras, history_depths, config, dtype, device) if config.reprojection else None
    for s in range(0, n, config.batch_size):
        batch = cams[s : s + config.batch_size]
        with torch.no_grad():
            out = rasterize(gaussians, batch, backend=config.backend, background=background, near=config.near)
        depth = out.depth  # (n, H, W)
        valid = out.alpha > config.alpha_threshold
        if config.reprojection:
            assert history_cameras is not None and history_depths is not None
            valid &= depth > config.near
            if fused is not None:  # one C++ pass per view: lift, project into every history view, compare
                for k in range(len(batch)):
                    valid[k] = fused(depth[k], valid[k], batch.c2w[k], batch.K[k])
                fused_done = True
            else:
                fused_done = False
        if config.reprojection and not fused_done:
            assert history_cameras is not None and history_depths is not None
            pts = batch.unproject(depth)  # (n, H, W, 3)
            for k in range(len(batch)):
                cand = valid[k].clone()  # only pixels that pass the alpha test need the check
                valid[k][cand] = reprojection_mask(
                    pts[k][cand],
                    history_cameras,
                    history_depths,
                    rel_tol=config.depth_rel_tol,
                    near=config.near,
                    sampling=config.depth_sampling,
                    window=config.reprojection_window,
                )
        rgb_all[s : s + len(batch)] = out.rgb
        depth_all[s : s + len(batch)] = depth
        alpha_all[s : s + len(batch)] = out.alpha
        mask[s : s + len(batch)] = valid
    mask = erode_mask(mask, erosion_kernel_size(h, w, config), config.erosion_border)
    return WarpResult(rgb=rgb_all, depth=depth_all, alpha=alpha_all, mask=mask)


_TIE = 1e-6


def _disk_offsets(radius: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """Integer pixel offsets (dx, dy) with dx^2 + dy^2 <= radius^2 (always including (0, 0))."""
    r = int(math.floor(radius))
    d = torch.arange(-r, r + 1, device=device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    keep = (dx * dx + dy * dy) <= radius * radius
    return dx[keep], dy[keep]


def point_cloud_warp(
    images: Tensor,
    depths: Tensor,
    cameras: Cameras,
    targets: Cameras,
    config: WarpConfig | None = None,
) -> WarpResult:
    """Baseline warp: z-buffer splat the unprojected history pixels into the targets.

    Every history pixel with depth > ``config.near`` becomes a coloured 3D point; in each target it covers the
    pixel it falls in (pixel j spans [j, j + 1)) and its ``point_radius`` disk of neighbours; the nearest point
    wins each pixel (``scatter_reduce`` amin on depth, then the winning point's colour). Depths within a relative
    1e-6 of the nearest count as a tie, won by the point that lands closest to the pixel centre (then by the
    larger index), so a fronto-parallel plane seen at the same scale is reproduced exactly.
    mask = covered, eroded like :func:`forward_warp`; alpha = coverage (0/1).

    Args:
        images: (V, 3, Hh, Wh) history frames in [0, 1]; the computation runs in their dtype and device.
        depths: (V, Hh, Wh) z-depth (0 = unknown).
        cameras: V history cameras of size (Hh, Wh).
        targets: N target cameras (any size).
        config: warp settings (``point_radius``, ``near``, ``background``, erosion).

    Returns:
        :class:`WarpResult` (rgb, depth = winning point's z, alpha, mask).
    """
    config = config or WarpConfig()
    v, _, hh, wh = images.shape
    if depths.shape != (v, hh, wh) or (cameras.height, cameras.width) != (hh, wh) or len(cameras) != v:
        raise InputError(
            f"point_cloud_warp: images {tuple(images.shape)}, depths {tuple(depths.shape)} and {len(cameras)} "
            f"cameras of {cameras.height}x{cameras.width} do not match"
        )
    dtype, device = images.dtype, images.device
    depths = depths.to(device, dtype)
    src = cameras.to(device, dtype)
    valid = torch.isfinite(depths) & (depths > config.near)
    pts = src.unproject(torch.where(valid, depths, torch.zeros_like(depths)))[valid]  # (P, 3)
    cols = images.permute(0, 2, 3, 1)[valid]  # (P, 3)
    cols = torch.cat([cols, cols.new_zeros(1, 3)])  # a spare row keeps the gather valid when P = 0
    n_pts = pts.shape[0]
    h, w = targets.height, targets.width
    dx, dy = _disk_offsets(config.point_radius, device)  # (O,)
    tgt = targets.to(device, dtype)
    background = torch.tensor(config.background, dtype=dtype, device=device)
    point_index = torch.arange(n_pts, device=device)[:, None].expand(n_pts, dx.numel())  # (P, O)
    rgbs, zs, covers = [], [], []
    z_pad = torch.zeros(1, dtype=dtype, device=device)
    for t in range(len(tgt)):
        uv, z = tgt[t].project(pts)  # (1, P, 2), (1, P)
        uv, z = uv[0], z[0]
        front = z > config.near
        px = uv[:, 0].floor().clamp(-(2**30), 2**30).long()[:, None] + dx  # (P, O)
        py = uv[:, 1].floor().clamp(-(2**30), 2**30).long()[:, None] + dy
        ok = front[:, None] & (px >= 0) & (px < w) & (py >= 0) & (py < h)
        key = (py * w + px)[ok]
        zk = z[:, None].expand_as(px)[ok]
        idx = point_index[ok]
        zbuf = torch.full((h * w,), math.inf, dtype=dtype, device=device)
        zbuf.scatter_reduce_(0, key, zk, reduce="amin")
        # ties (depth within a relative _TIE of the nearest): the point landing closest to the pixel centre
        win = zk <= zbuf[key] * (1 + _TIE)
        key, idx = key[win], idx[win]
        du = (px + 0.5 - uv[:, :1])[ok][win]
        dv = (py + 0.5 - uv[:, 1:])[ok][win]
        dist = du * du + dv * dv
        dbuf = torch.full((h * w,), math.inf, dtype=dtype, device=device)
        dbuf.scatter_reduce_(0, key, dist, reduce="amin")
        best = dist == dbuf[key]
        owner = torch.full((h * w,), -1, dtype=torch.long, device=device)
        owner.scatter_reduce_(0, key[best], idx[best], reduce="amax")
        zbuf = torch.cat([z, z_pad])[owner.clamp_min(0)]
        covered = owner >= 0
        rgb = torch.where(covered[:, None], cols[owner.clamp_min(0)], background)  # (H*W, 3)
        rgbs.append(rgb.T.reshape(3, h, w))
        zs.append(torch.where(covered, zbuf, torch.zeros_like(zbuf)).view(h, w))
        covers.append(covered.view(h, w))
    cover = torch.stack(covers)
    mask = erode_mask(cover, erosion_kernel_size(h, w, config), config.erosion_border)
    return WarpResult(rgb=torch.stack(rgbs), depth=torch.stack(zs), alpha=cover.to(dtype), mask=mask)
