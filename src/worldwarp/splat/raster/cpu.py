"""The fast CPU rasteriser backend: autograd around the C++ rasteriser (one native call per camera and pass).

The kernels (``worldwarp/splat/kernels/raster.cpp``) are compiled at first use (:mod:`worldwarp.splat.kernels.build`)
and called through their checked wrappers (:func:`worldwarp.splat.kernels.ops.raster_forward` /
:func:`~worldwarp.splat.kernels.ops.raster_backward`). When they cannot be built, :func:`render_cpu` warns and falls
back to the pure-torch reference.

The forward call does the whole per-camera pipeline of :mod:`.projection` + :mod:`.reference` (EWA projection,
culling, stable depth sort, tile binning, compositing); the backward call walks each tile's list back to front
(recovering transmittance by division) and then differentiates the projection, returning gradients w.r.t. the
means, quaternions, log-scales, opacity logits and colours directly. Spherical-harmonic colours are evaluated in
torch (:func:`view_colors`), so their autograd stays there. Threads: ``torch.get_num_threads()``.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from worldwarp.splat.gaussians import Gaussians
from worldwarp.splat.kernels import build, ops
from worldwarp.splat.raster.projection import T_STOP, eval_sh, world_to_camera

__all__ = ["camera_array", "render_cpu", "view_colors"]

SH_C0 = 0.28209479177387814


def camera_array(c2w: Tensor, K: Tensor, dtype: torch.dtype) -> Tensor:
    """One camera (``c2w`` (4, 4), ``K`` (3, 3)) packed for the rasteriser: (16,) world-to-camera ``R_wc``
    (row-major), ``t_wc``, fx, fy, cx, cy, computed in ``dtype`` on the CPU (:func:`~worldwarp.splat.kernels.ops.
    pack_cameras`).

    Same arithmetic as :func:`~worldwarp.splat.raster.projection.project_gaussians` (c2w converted first).
    """
    R_wc, t_wc = world_to_camera(c2w.to("cpu", dtype))
    return ops.pack_cameras(R_wc, t_wc, K, dtype)


def view_colors(gaussians: Gaussians, campos: Tensor) -> Tensor:
    """SH colours (G, 3) seen from the camera centre ``campos`` (3,), as in ``project_gaussians``.

    Degree 0 skips the view directions (the DC basis is a constant).
    """
    if gaussians.sh.shape[1] == 1:
        return (gaussians.sh[:, 0] * SH_C0 + 0.5).clamp_min(0.0)
    dirs = gaussians.means - campos.to(gaussians.means)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return eval_sh(gaussians.sh, dirs)


class _RenderCPU(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        means: Tensor,
        quats: Tensor,
        log_scales: Tensor,
        logits: Tensor,
        colors: Tensor,
        cam: Tensor,
        height: int,
        width: int,
        near: float,
        keep: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        ins = [t.detach().contiguous() for t in (means, quats, log_scales, logits, colors, cam)]
        color, alpha, depth, state = ops.raster_forward(*ins, height, width, near, T_STOP, keep)
        if keep:
            ctx.state = state
            ctx.save_for_backward(ins[1])
        return color, alpha, depth

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, g_color: Tensor, g_alpha: Tensor, g_depth: Tensor
    ) -> tuple[Tensor | None, ...]:
        (quats,) = ctx.saved_tensors
        grads = [gr.contiguous() for gr in (g_color, g_alpha, g_depth)]
        outs = ops.raster_backward(ctx.state, quats, *grads)
        return (*outs, None, None, None, None, None)


def _reference(
    gaussians: Gaussians, c2w: Tensor, K: Tensor, height: int, width: int, near: float
) -> tuple[Tensor, Tensor, Tensor]:
    from worldwarp.splat.raster.projection import project_gaussians, sorted_visible
    from worldwarp.splat.raster.reference import composite_reference

    return composite_reference(sorted_visible(project_gaussians(gaussians, c2w, K, height, width, near)), height, width)


def render_cpu(
    gaussians: Gaussians, c2w: Tensor, K: Tensor, height: int, width: int, near: float = 0.01
) -> tuple[Tensor, Tensor, Tensor]:
    """Render one camera (``c2w`` (4, 4) OpenCV, ``K`` (3, 3)) with the C++ kernels.

    Returns ``color`` (H, W, 3) = sum_i w_i c_i, ``alpha`` (H, W) and ``depth`` (H, W) = sum_i w_i z_i (not divided
    by alpha), like ``composite_reference(sorted_visible(project_gaussians(...)))`` and differentiable w.r.t. all
    Gaussian parameters. Inputs on another device are moved to the CPU and the outputs moved back; float32 and
    float64 run natively, other dtypes in float32. Falls back to the torch reference (with a warning) when the
    kernels cannot be built.
    """
    try:
        build.load_library("raster")
    except build.KernelBuildError as e:
        warnings.warn(f"fast CPU rasteriser unavailable ({e}); using the torch reference", stacklevel=2)
        return _reference(gaussians, c2w, K, height, width, near)
    device, dtype = gaussians.device, gaussians.dtype
    work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    g = gaussians if (device.type == "cpu" and dtype == work) else gaussians.to("cpu", work)
    c2w = c2w.to("cpu", work)
    colors = view_colors(g, c2w[:3, 3])
    params = (g.means, g.quats, g.log_scales, g.opacity_logits, colors)
    keep = torch.is_grad_enabled() and any(t.requires_grad for t in params)
    cam = camera_array(c2w, K, work)
    color, alpha, depth = _RenderCPU.apply(*params, cam, height, width, float(near), keep)
    if device.type != "cpu" or dtype != work:
        return color.to(device, dtype), alpha.to(device, dtype), depth.to(device, dtype)
    return color, alpha, depth
