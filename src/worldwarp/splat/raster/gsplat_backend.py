"""gsplat's CUDA rasteriser behind our contract (CUDA tensors only; gsplat imported lazily).

Mapping: means as is; quats wxyz (gsplat normalises them too); scales = exp(log_scales); opacities =
sigmoid(logits); colors = the SH coefficients (G, K, 3) with ``sh_degree`` so gsplat evaluates them with view
directions (and adds 0.5, clamps at 0, as we do); viewmats = world-to-camera; ``eps2d = 0.3`` is the same
low-pass dilation; ``render_mode="RGB+D"`` gives the accumulated depth sum_i w_i z_i. gsplat's footprint
(3-sigma / opacity-aware radii, transmittance stop at 1e-4) differs slightly from the CPU backends' rule, so
results agree to a small tolerance, not to rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.splat.gaussians import Gaussians
from worldwarp.splat.raster.projection import LOWPASS

__all__ = ["composite_gsplat"]


def composite_gsplat(gaussians: Gaussians, cameras: Cameras, near: float = 0.01) -> tuple[Tensor, Tensor, Tensor]:
    """Render with gsplat; returns ``color`` (N, H, W, 3) without background, ``alpha`` (N, H, W) and the
    accumulated depth (N, H, W) (not divided by alpha)."""
    if gaussians.device.type != "cuda":
        raise InputError("the gsplat backend needs Gaussians on a CUDA device; use backend='cpu' or 'auto'")
    try:
        from gsplat import rasterization
    except ImportError as e:
        raise InputError(f"the gsplat backend needs the gsplat package ({e}); use backend='cpu' or 'auto'") from None
    dtype = gaussians.dtype
    gaussians = gaussians.to(dtype=torch.float32)  # gsplat's kernels are float32 only (differentiable cast)
    cams = cameras.to(gaussians.device, torch.float32)
    render, alphas, _meta = rasterization(
        means=gaussians.means,
        quats=gaussians.quats,
        scales=gaussians.log_scales.exp(),
        opacities=gaussians.opacity_logits.sigmoid(),
        colors=gaussians.sh,
        viewmats=cams.w2c,
        Ks=cams.K,
        width=cams.width,
        height=cams.height,
        near_plane=near,
        eps2d=LOWPASS,
        sh_degree=gaussians.sh_degree,
        packed=False,
        render_mode="RGB+D",
        rasterize_mode="classic",
    )
    return render[..., :3].to(dtype), alphas[..., 0].to(dtype), render[..., 3].to(dtype)
