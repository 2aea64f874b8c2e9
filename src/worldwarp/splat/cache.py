"""The online 3DGS cache: initialise Gaussians from the history frames and fit them (step 3 of the chunk loop).

Every chunk rebuilds the cache from the history frames (RGB + z-depth + cameras):

* :func:`init_gaussians` places one Gaussian per sampled pixel (unprojected with its depth; at most
  ``max_points_per_frame`` per frame; depth <= ``near`` dropped) with identity rotation, isotropic scale from
  the mean distance to the 3 nearest neighbours (or the pixel footprint), opacity ``init_opacity`` and the
  pixel's colour as the DC spherical-harmonic term;
* :func:`fit_cache` optimises all parameters with Adam for ``steps`` steps, one random history view per step,
  on ``0.8 L1 + 0.2 (1 - SSIM) + 0.01 L1(inverse depth)``. No densification or pruning. Every step renders with
  :func:`~worldwarp.splat.raster.rasterize`. With the C++ kernels (``backend`` ``"cpu"``, or ``"auto"`` on the
  CPU) the loss is one fused native call on the render's raw sums (``color_sum``, ``alpha``, ``depth_sum``:
  compositing over the background, depth division, L1, SSIM and depth terms with their gradients); elsewhere the
  same loss is taken with torch ops on its ``rgb`` and ``depth``.

Learning rate of the means: as in 3DGS, ``lr_means`` is relative to the scene extent; here the extent is the
median valid history depth (a single view has no camera baseline to measure, and the depth is what sets the
scale of every other quantity), so a scene at a median depth of 3 m moves its means with ``3 * 1.6e-3``.
``lr_means_scale="none"`` uses ``lr_means`` as an absolute value. Learning rates are constant (500 steps are
too few for 3DGS's decay schedule to matter); higher SH coefficients use ``lr_color / 20`` as in 3DGS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError, check_finite
from worldwarp.splat.gaussians import Gaussians, num_sh_coeffs, rgb_to_sh
from worldwarp.splat.raster import DEPTH_ALPHA_EPS, rasterize
from worldwarp.splat.ssim import gaussian_window, ssim_fused, stabilisers

__all__ = ["CacheConfig", "cache_loss", "fit_cache", "init_gaussians", "sample_pixels", "scene_extent"]


@dataclass
class CacheConfig:
    """Settings of the 3DGS cache (paper defaults).

    Attributes:
        steps: Adam steps of :func:`fit_cache` (0 returns the initialisation).
        max_points_per_frame: cap on the Gaussians initialised from one history frame.
        near: pixels with depth <= near (or non-finite) get no Gaussian and no depth loss; also the
            rasteriser's near plane.
        sampling: which pixels to keep when a frame has more valid pixels than the cap: ``"stride"`` (evenly
            spaced in row-major order, deterministic) or ``"random"`` (drawn from the generator).
        init_scale: ``"knn"`` (mean distance to the ``knn`` nearest other points, at least a tenth of the pixel
            footprint), ``"knn_rms"`` (root mean square of those distances, as the authors' release initialises
            its cache) or ``"footprint"`` (the world size of the sampled pixel spacing: ``depth / f *
            sqrt(valid / kept)``).
        knn: number of neighbours for ``init_scale="knn"`` / ``"knn_rms"``.
        lr_means: Adam learning rate of the means (relative to the scene extent, see ``lr_means_scale``).
        lr_means_scale: ``"extent"`` multiplies ``lr_means`` by :func:`scene_extent`; ``"none"`` does not.
        lr_scales, lr_quats, lr_opacity: Adam learning rates of log-scales, quaternions, opacity logits.
        lr_color: Adam learning rate of the DC SH coefficients (higher orders use ``lr_color / 20``).
        w_l1, w_ssim, w_depth: loss weights of L1, (1 - SSIM) and L1 on inverse depth.
        ssim_window: Gaussian window of the SSIM term.
        sh_degree: SH degree of the cache's colour (0 = view-independent colour).
        init_opacity: initial opacity (stored as its logit).
        seed: seeds the generator that picks the view of each step (and ``"random"`` sampling).
        backend: rasteriser backend (``"auto"``, ``"torch"``, ``"cpu"``, ``"gsplat"``).
        background: RGB in [0, 1] behind the Gaussians when rendering.
    """

    steps: int = 500
    max_points_per_frame: int = 50_000
    near: float = 1e-3
    sampling: Literal["stride", "random"] = "stride"
    init_scale: Literal["knn", "knn_rms", "footprint"] = "knn"
    knn: int = 3
    lr_means: float = 1.6e-3
    lr_means_scale: Literal["extent", "none"] = "extent"
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacity: float = 5e-2
    lr_color: float = 2.5e-3
    w_l1: float = 0.8
    w_ssim: float = 0.2
    w_depth: float = 0.01
    ssim_window: int = 11
    sh_degree: int = 0
    init_opacity: float = 0.9
    seed: int = 0
    backend: str = "auto"
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        check_finite(self)
        if self.steps < 0:
            raise InputError(f"CacheConfig.steps must be >= 0, got {self.steps}")
        if self.max_points_per_frame < 1:
            raise InputError(f"CacheConfig.max_points_per_frame must be >= 1, got {self.max_points_per_frame}")
        if self.near < 0:
            raise InputError(f"CacheConfig.near must be >= 0, got {self.near}")
        if self.sampling not in ("stride", "random"):
            raise InputError(f"CacheConfig.sampling must be 'stride' or 'random', got {self.sampling!r}")
        if self.init_scale not in ("knn", "knn_rms", "footprint"):
            raise InputError(f"CacheConfig.init_scale must be 'knn', 'knn_rms' or 'footprint', got {self.init_scale!r}")
        if self.lr_means_scale not in ("extent", "none"):
            raise InputError(f"CacheConfig.lr_means_scale must be 'extent' or 'none', got {self.lr_means_scale!r}")
        if self.knn < 1:
            raise InputError(f"CacheConfig.knn must be >= 1, got {self.knn}")
        if not 0 < self.init_opacity < 1:
            raise InputError(f"CacheConfig.init_opacity must lie in (0, 1), got {self.init_opacity}")
        if not 0 <= self.sh_degree <= 3:
            raise InputError(f"CacheConfig.sh_degree must be 0..3, got {self.sh_degree}")
        if self.ssim_window < 1 or self.ssim_window % 2 == 0:
            raise InputError(f"CacheConfig.ssim_window must be a positive odd number, got {self.ssim_window}")
        lrs = (self.lr_means, self.lr_scales, self.lr_quats, self.lr_opacity, self.lr_color)
        if any(lr < 0 for lr in lrs) or min(self.w_l1, self.w_ssim, self.w_depth) < 0:
            raise InputError("CacheConfig learning rates and loss weights must be >= 0")


def _check_inputs(images: Tensor, depths: Tensor, cameras: Cameras) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"history images must have shape (N, 3, H, W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    if depths.shape != (n, h, w):
        raise InputError(f"history depths must have shape ({n}, {h}, {w}), got {tuple(depths.shape)}")
    if len(cameras) != n or (cameras.height, cameras.width) != (h, w):
        raise InputError(
            f"{len(cameras)} cameras of {cameras.height}x{cameras.width} do not match {n} history frames of {h}x{w}"
        )


def scene_extent(depths: Tensor, near: float = 1e-3) -> float:
    """Median of the valid (finite, > near) history depths; 1.0 when there is none."""
    d = depths[torch.isfinite(depths) & (depths > near)]
    return float(d.median()) if d.numel() else 1.0


def sample_pixels(valid: Tensor, cap: int, mode: str = "stride", generator: torch.Generator | None = None) -> Tensor:
    """Flat indices (M,) of at most ``cap`` True pixels of ``valid`` (H, W), in increasing order.

    ``"stride"`` keeps the valid pixels of rank ``floor(k * n / cap)`` (k = 0..cap-1) in row-major order;
    ``"random"`` keeps a uniformly random subset drawn from ``generator`` (a CPU generator).
    """
    idx = valid.flatten().nonzero()[:, 0]
    n = idx.numel()
    if n <= cap:
        return idx
    if mode == "stride":
        rank = torch.div(torch.arange(cap, device=idx.device) * n, cap, rounding_mode="floor")
    else:
        rank = torch.randperm(n, generator=generator)[:cap].sort().values.to(idx.device)
    return idx[rank]


def _knn_scale(points: Tensor, k: int, rms: bool = False) -> Tensor:
    """Mean (or root-mean-square) distance (G,) of every point to its ``k`` nearest other points (scipy cKDTree)."""
    from scipy.spatial import cKDTree

    g = points.shape[0]
    if g < 2:
        return torch.ones(g, dtype=points.dtype, device=points.device)
    p = points.detach().cpu().double().numpy()
    kk = min(k, g - 1) + 1
    dist, _ = cKDTree(p).query(p, k=kk, workers=-1)
    d = np.asarray(dist)[:, 1:]
    mean = np.sqrt(np.maximum((d * d).mean(axis=1), 1e-7)) if rms else d.mean(axis=1)
    return torch.from_numpy(mean).to(device=points.device, dtype=points.dtype)


def init_gaussians(
    images: Tensor,
    depths: Tensor,
    cameras: Cameras,
    config: CacheConfig | None = None,
    generator: torch.Generator | None = None,
) -> Gaussians:
    """One Gaussian per sampled valid pixel of the history frames.

    Args:
        images: (N, 3, H, W) history frames in [0, 1]; the result has their dtype and device.
        depths: (N, H, W) z-depth (0 or non-finite = unknown).
        cameras: N history cameras of size (H, W).
        config: cache settings (paper defaults when None).
        generator: CPU generator for ``sampling="random"`` (a fresh one seeded with ``config.seed`` when None).

    Returns:
        Gaussians (G, ...) in frame order, pixels of one frame in row-major order: means on the unprojected
        pixel centres, identity rotations, isotropic scales, opacity ``init_opacity``, DC colour = pixel RGB.
        Raises :class:`InputError` when no pixel has valid depth.
    """
    config = config or CacheConfig()
    _check_inputs(images, depths, cameras)
    if generator is None:
        generator = torch.Generator().manual_seed(config.seed)
    dtype, device = images.dtype, images.device
    depths = depths.to(device, dtype)
    cams = cameras.to(device, dtype)
    valid = torch.isfinite(depths) & (depths > config.near)
    safe = torch.where(valid, depths, torch.zeros_like(depths))
    world = cams.unproject(safe)  # (N, H, W, 3)
    focal = 0.5 * (cams.K[:, 0, 0] + cams.K[:, 1, 1])  # (N,)
    means, colours, footprints = [], [], []
    for v in range(len(cams)):
        idx = sample_pixels(valid[v], config.max_points_per_frame, config.sampling, generator)
        if idx.numel() == 0:
            continue
        means.append(world[v].reshape(-1, 3)[idx])
        colours.append(images[v].reshape(3, -1)[:, idx].T)
        spacing = math.sqrt(int(valid[v].sum()) / idx.numel())
        footprints.append(safe[v].flatten()[idx] / focal[v] * spacing)
    if not means:
        raise InputError(f"no history pixel has a valid depth (> {config.near}); cannot build the 3DGS cache")
    xyz = torch.cat(means)  # (G, 3)
    rgb = torch.cat(colours).clamp(0, 1)  # (G, 3)
    footprint = torch.cat(footprints)  # (G,)
    if config.init_scale == "knn":
        scale = torch.maximum(_knn_scale(xyz, config.knn), 0.1 * footprint)
    elif config.init_scale == "knn_rms":
        scale = _knn_scale(xyz, config.knn, rms=True)
    else:
        scale = footprint
    g = xyz.shape[0]
    quats = torch.zeros(g, 4, dtype=dtype, device=device)
    quats[:, 0] = 1.0
    sh = torch.zeros(g, num_sh_coeffs(config.sh_degree), 3, dtype=dtype, device=device)
    sh[:, 0] = rgb_to_sh(rgb)
    logit = math.log(config.init_opacity / (1 - config.init_opacity))
    return Gaussians(
        means=xyz.contiguous(),
        quats=quats,
        log_scales=scale.clamp_min(1e-12).log()[:, None].expand(g, 3).contiguous(),
        opacity_logits=torch.full((g,), logit, dtype=dtype, device=device),
        sh=sh,
    )


def cache_loss(
    gaussians: Gaussians, image: Tensor, depth: Tensor, camera: Cameras, config: CacheConfig | None = None
) -> Tensor:
    """Photometric + depth loss of the cache on one view (differentiable scalar).

    ``w_l1 * L1(rgb) + w_ssim * (1 - SSIM(rgb)) + w_depth * L1(1 / depth)``; the depth term averages over the
    pixels whose ground-truth depth is valid (> near) and whose rendered depth is > near (0 when none).

    Args:
        gaussians: the cache.
        image: (3, H, W) target frame; depth: (H, W) its z-depth; camera: one camera of size (H, W).
    """
    config = config or CacheConfig()
    dtype, device = gaussians.dtype, gaussians.device
    background = torch.tensor(config.background, dtype=dtype, device=device)
    out = rasterize(gaussians, camera, backend=config.backend, background=background, near=max(config.near, 1e-6))
    target = _view_target(image.to(device, dtype), depth.to(device, dtype), config)
    return _fit_loss(out.rgb, out.depth, target, config)


@dataclass
class _ViewTarget:
    """What the loss needs of one history view that does not change during the fit (computed once per view).

    Attributes:
        image: (1, 3, H, W) target frame.
        depth_ok: (H, W) bool, valid ground-truth depth (finite, > near).
        inv_depth: (H, W) 1 / depth where valid, else 0.
    """

    image: Tensor
    depth_ok: Tensor
    inv_depth: Tensor


def _view_target(image: Tensor, depth: Tensor, config: CacheConfig) -> _ViewTarget:
    ok = torch.isfinite(depth) & (depth > config.near)
    inv = torch.where(ok, 1.0 / torch.where(ok, depth, torch.ones_like(depth)), torch.zeros_like(depth))
    return _ViewTarget(image[None].contiguous(), ok, inv)


def _fit_loss(out_rgb: Tensor, out_depth: Tensor, t: _ViewTarget, config: CacheConfig) -> Tensor:
    """:func:`cache_loss` on a rendered view (rgb (1, 3, H, W), depth (1, H, W)) with the target's constant terms
    precomputed (:func:`fit_cache` computes them once per view)."""
    pred = out_rgb
    loss = config.w_l1 * (pred - t.image).abs().mean()
    if config.w_ssim > 0:
        loss = loss + config.w_ssim * (1 - ssim_fused(pred, t.image, window=config.ssim_window)[0])
    if config.w_depth > 0:
        rd = out_depth[0]
        ok = t.depth_ok & (rd > config.near)
        n = int(ok.sum())
        if n > 0:
            inv_pred = 1.0 / torch.where(ok, rd, torch.ones_like(rd))
            err = torch.where(ok, (inv_pred - t.inv_depth).abs(), torch.zeros_like(rd))
            loss = loss + config.w_depth * (err.sum() / n)
    return loss


class _FitLossCPU(torch.autograd.Function):
    """:func:`_fit_loss` fused with the compositing over the background and the depth division: one C++ call
    (:func:`~worldwarp.splat.kernels.ops.fit_loss`) on one view's raw sums (``color_sum[0]``, ``alpha[0]``,
    ``depth_sum[0]`` of :class:`~worldwarp.splat.raster.RasterOutput`); the gradients are computed in the forward
    pass."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        color: Tensor,
        alpha: Tensor,
        depth_acc: Tensor,
        target: _ViewTarget,
        config: CacheConfig,
        background: Tensor,
        taps: Tensor,
    ) -> Tensor:
        from worldwarp.splat.kernels.ops import fit_loss

        dtype = color.dtype
        ins = [t.detach().to(dtype).contiguous() for t in (color, alpha, depth_acc, background, target.image[0])]
        inv_depth, taps = (t.to(dtype).contiguous() for t in (target.inv_depth, taps))
        weights = (config.w_l1, config.w_ssim, config.w_depth)
        terms, grads = fit_loss(
            *ins, target.depth_ok.to(torch.bool).contiguous(), inv_depth, taps, weights, config.near, DEPTH_ALPHA_EPS,
            *stabilisers(),
        )  # fmt: skip
        l1, sim, depth_err, n_depth = terms.tolist()
        loss = config.w_l1 * l1
        if config.w_ssim > 0:
            loss += config.w_ssim * (1 - sim)
        if config.w_depth > 0 and n_depth > 0:
            loss += config.w_depth * depth_err
        ctx.grads = grads
        return torch.tensor(loss, dtype=color.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, g: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        grads = ctx.grads  # type: ignore[attr-defined]
        if float(g) != 1.0:
            grads = tuple(gr * g for gr in grads)
        return (*grads, None, None, None, None)


def _fast_cpu_loss(gaussians: Gaussians, height: int, width: int, config: CacheConfig) -> bool:
    """Whether :func:`fit_cache` renders with the ``"cpu"`` backend and can take the loss with :class:`_FitLossCPU`."""
    from worldwarp.splat.kernels import kernels_available
    from worldwarp.splat.raster import resolve_backend

    return (
        resolve_backend(config.backend, gaussians) == "cpu"
        and gaussians.device.type == "cpu"
        and gaussians.dtype in (torch.float32, torch.float64)
        and (config.w_ssim == 0 or min(height, width) >= config.ssim_window)
        and kernels_available("losses")
    )


def fit_cache(
    images: Tensor,
    depths: Tensor,
    cameras: Cameras,
    config: CacheConfig | None = None,
    progress: bool = True,
) -> Gaussians:
    """Build the 3DGS cache of the history frames: :func:`init_gaussians`, then ``config.steps`` Adam steps.

    Each step renders one history view drawn uniformly from a generator seeded with ``config.seed`` and
    minimises :func:`cache_loss` on it; the same inputs and seed give the same result. Runs in the images'
    dtype and on their device.

    Args:
        images: (N, 3, H, W) history frames in [0, 1].
        depths: (N, H, W) their z-depth (0 = unknown).
        cameras: N history cameras of size (H, W).
        config: cache settings (paper defaults when None).
        progress: show a tqdm progress bar.

    Returns:
        The fitted Gaussians, detached from autograd.
    """
    from tqdm.auto import tqdm

    config = config or CacheConfig()
    _check_inputs(images, depths, cameras)
    generator = torch.Generator().manual_seed(config.seed)
    init = init_gaussians(images, depths, cameras, config, generator)
    if config.steps == 0:
        return init
    dtype, device = images.dtype, images.device
    cams = cameras.to(device, dtype)
    views = [cams[v] for v in range(len(cams))]
    depths = depths.to(device, dtype)
    means = init.means.clone().requires_grad_(True)
    quats = init.quats.clone().requires_grad_(True)
    log_scales = init.log_scales.clone().requires_grad_(True)
    opacity_logits = init.opacity_logits.clone().requires_grad_(True)
    sh_dc = init.sh[:, :1].clone().requires_grad_(True)
    sh_rest = init.sh[:, 1:].clone().requires_grad_(True)
    lr_means = config.lr_means * (scene_extent(depths, config.near) if config.lr_means_scale == "extent" else 1.0)
    groups = [
        {"params": [means], "lr": lr_means},
        {"params": [log_scales], "lr": config.lr_scales},
        {"params": [quats], "lr": config.lr_quats},
        {"params": [opacity_logits], "lr": config.lr_opacity},
        {"params": [sh_dc], "lr": config.lr_color},
    ]
    if sh_rest.shape[1] > 0:
        groups.append({"params": [sh_rest], "lr": config.lr_color / 20})
    # the fused kernel does the whole update in one pass per tensor (about 3x faster than the default on CPU)
    optimizer = torch.optim.Adam(groups, lr=config.lr_color, eps=1e-15, fused=device.type in ("cpu", "cuda"))
    # per-view constants of the loss (target image, depth mask, inverse depth), computed on first use
    images = images.to(device, dtype)
    targets: dict[int, _ViewTarget] = {}
    background = torch.tensor(config.background, dtype=dtype, device=device)
    near = max(config.near, 1e-6)
    # one container for the whole fit (its checks run once); Adam updates the leaf tensors in place
    gaussians = Gaussians(means, quats, log_scales, opacity_logits, init.sh.clone())
    h, w = cams.height, cams.width
    fast = _fast_cpu_loss(gaussians, h, w, config)
    if fast:
        # rasterize() converts each view from the caller's cameras, as the fused path always did; building a
        # Cameras re-orthonormalises a float32 rotation every time, so converting the views twice (cams[v], then
        # rasterize's own conversion) would change the fused fits by rounding
        views = [cameras[v] for v in range(len(cameras))]
    taps = gaussian_window(config.ssim_window, 1.5, dtype=dtype, device=device)
    bar = tqdm(range(config.steps), desc="3DGS cache", disable=not progress, leave=False)
    for _ in bar:
        v = int(torch.randint(len(views), (1,), generator=generator))
        if v not in targets:
            targets[v] = _view_target(images[v], depths[v], config)
        gaussians.sh = sh_dc if sh_rest.shape[1] == 0 else torch.cat([sh_dc, sh_rest], dim=1)
        out = rasterize(gaussians, views[v], backend=config.backend, background=background, near=near)
        if fast:  # the same loss from the raw sums in one fused call
            raw = (out.color_sum[0], out.alpha[0], out.depth_sum[0])
            loss = _FitLossCPU.apply(*raw, targets[v], config, background, taps)
        else:
            loss = _fit_loss(out.rgb, out.depth, targets[v], config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if progress:
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
    bar.close()
    sh = torch.cat([sh_dc, sh_rest], dim=1)
    return Gaussians(means, quats, log_scales, opacity_logits, sh).detach()
