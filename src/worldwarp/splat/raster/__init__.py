"""Differentiable 3D Gaussian splatting rasteriser with backends chosen by name.

``rasterize(gaussians, cameras)`` renders RGB, alpha and expected z-depth for a batch of cameras:

* ``"torch"``: the plain-torch reference (:mod:`.reference`), every pixel against every Gaussian;
* ``"cpu"``: multi-threaded C++ kernels doing projection, sorting, binning and compositing (:mod:`.cpu`, kernels in
  :mod:`worldwarp.splat.kernels`), compiled at first use, with a pure-torch fallback;
* ``"gsplat"``: gsplat's CUDA rasteriser (:mod:`.gsplat_backend`), CUDA tensors only;
* ``"auto"``: ``"gsplat"`` for CUDA tensors when gsplat imports, otherwise ``"cpu"``.

The CPU backends implement the preprocessing of :mod:`.projection` (EWA projection, 0.3 px low-pass dilation,
SH colours, culling) and its footprint rule (the ``"cpu"`` one in C++, tested against it forward and backward),
so they agree to rounding. Compositing is front to back by camera
depth, alpha clamped to 0.99, alphas below 1/255 skipped, a pixel stops once its transmittance is below 1e-5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.splat.gaussians import Gaussians

__all__ = ["BACKENDS", "RasterOutput", "rasterize", "resolve_backend"]

Backend = Literal["auto", "torch", "cpu", "gsplat"]
BACKENDS = ("auto", "torch", "cpu", "gsplat")
DEPTH_ALPHA_EPS = 1e-6


@dataclass
class RasterOutput:
    """Rendered views.

    Attributes:
        rgb: (N, 3, H, W) composited colour over the background.
        alpha: (N, H, W) accumulated opacity.
        depth: (N, H, W) expected z-depth ``sum_i w_i z_i / alpha`` where alpha > 1e-6, else 0.
        color_sum: (N, H, W, 3) the raw ``sum_i w_i c_i`` before the background (``rgb`` without it, channels last).
        depth_sum: (N, H, W) the raw ``sum_i w_i z_i`` before the division by alpha.

    ``color_sum``, ``alpha`` and ``depth_sum`` are what every backend produces; losses fused with the compositing
    (the 3DGS cache fit's, :mod:`worldwarp.splat.cache`) differentiate through them instead of ``rgb`` and ``depth``.
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    color_sum: Tensor
    depth_sum: Tensor


def _gsplat_usable(gaussians: Gaussians) -> bool:
    if gaussians.device.type != "cuda":
        return False
    try:
        import gsplat  # noqa: F401
    except Exception:
        return False
    return True


def resolve_backend(backend: str, gaussians: Gaussians) -> str:
    """The concrete backend ``"auto"`` stands for with these Gaussians (others are returned unchanged)."""
    if backend not in BACKENDS:
        raise InputError(f"unknown rasteriser backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "gsplat" if _gsplat_usable(gaussians) else "cpu"
    return backend


def rasterize(
    gaussians: Gaussians,
    cameras: Cameras,
    *,
    backend: Backend = "auto",
    background: Tensor | None = None,
    near: float = 0.01,
) -> RasterOutput:
    """Render ``gaussians`` from every camera of ``cameras``.

    Args:
        gaussians: the scene; its dtype and device are the working dtype and device.
        cameras: N cameras (converted to the Gaussians' dtype/device).
        backend: ``"auto"``, ``"torch"``, ``"cpu"`` or ``"gsplat"`` (see the module docstring).
        background: colour (3,) or (N, 3) behind the Gaussians; None means black.
        near: Gaussians with camera z <= near are culled.

    Returns:
        :class:`RasterOutput`; differentiable w.r.t. all Gaussian parameters (and ``background``).
    """
    if not isinstance(gaussians, Gaussians):
        raise InputError(f"rasterize expects Gaussians, got {type(gaussians).__name__}")
    if not isinstance(cameras, Cameras):
        raise InputError(f"rasterize expects Cameras, got {type(cameras).__name__}")
    if not near > 0:
        raise InputError(f"near must be > 0, got {near}")
    backend = resolve_backend(backend, gaussians)
    n, h, w = len(cameras), cameras.height, cameras.width
    dtype, device = gaussians.dtype, gaussians.device
    if background is None:
        bg = torch.zeros(n, 3, dtype=dtype, device=device)
    else:
        bg = torch.as_tensor(background).to(device=device, dtype=dtype)
        if bg.shape == (3,):
            bg = bg.expand(n, 3)
        if bg.shape != (n, 3):
            raise InputError(f"background must have shape (3,) or ({n}, 3), got {tuple(bg.shape)}")
    cams = cameras.to(device, dtype)

    if backend == "gsplat":
        from worldwarp.splat.raster.gsplat_backend import composite_gsplat

        color, alpha, depth_acc = composite_gsplat(gaussians, cams, near=near)
    elif backend == "cpu":
        from worldwarp.splat.raster.cpu import render_cpu

        outs = [render_cpu(gaussians, cams.c2w[i], cams.K[i], h, w, near) for i in range(n)]
    else:
        from worldwarp.splat.raster.projection import project_gaussians, sorted_visible
        from worldwarp.splat.raster.reference import composite_reference

        outs = []
        for i in range(n):
            proj = sorted_visible(project_gaussians(gaussians, cams.c2w[i], cams.K[i], h, w, near))
            outs.append(composite_reference(proj, h, w))
    if backend != "gsplat":  # (N, H, W, 3), (N, H, W), (N, H, W); one camera needs no copy
        parts = zip(*outs, strict=True)
        color, alpha, depth_acc = (o[None] for o in outs[0]) if n == 1 else (torch.stack(p) for p in parts)

    rgb = color + (1.0 - alpha)[..., None] * bg[:, None, None, :]
    has = alpha > DEPTH_ALPHA_EPS
    depth = torch.where(has, depth_acc / torch.where(has, alpha, torch.ones_like(alpha)), torch.zeros_like(alpha))
    return RasterOutput(
        rgb=rgb.permute(0, 3, 1, 2).contiguous(), alpha=alpha, depth=depth, color_sum=color, depth_sum=depth_acc
    )
