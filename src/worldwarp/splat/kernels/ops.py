"""Every native kernel function, declared once, and its typed Python wrapper.

The wrappers are strict: inputs must already be C-contiguous CPU tensors of one float type (float32 or float64, the
type of the first input; masks are bool) with the documented shapes, otherwise :class:`~.guard.KernelArgumentError`
is raised before native code runs (callers convert explicitly). Outputs are allocated here. Each wrapper's
plain-torch twin is named in its docstring; the tests hold every wrapper to its twin.

Cameras reach the kernels as 16 numbers (:func:`pack_cameras`): a rotation (row-major), a translation and
``fx, fy, cx, cy``.
"""

from __future__ import annotations

import contextlib
import ctypes

import torch
from torch import Tensor

from worldwarp.splat.kernels.guard import (
    Array,
    Dim,
    Flag,
    Handle,
    Int,
    KernelArgumentError,
    NativeFunction,
    Num,
    Threads,
)

__all__ = [
    "RasterContext",
    "fit_loss",
    "pack_cameras",
    "raster_backward",
    "raster_forward",
    "reproject",
    "ssim_planes",
]

RASTER_FORWARD = NativeFunction(
    "raster",
    "ww_forward",
    (
        Dim("G", ctypes.c_int64),
        Array("means", ("G", 3)),
        Array("quats", ("G", 4)),
        Array("log_scales", ("G", 3)),
        Array("logits", ("G",)),
        Array("colors", ("G", 3)),
        Array("camera", (16,)),
        Dim("H"),
        Dim("W"),
        Num("near"),
        Num("t_stop"),
        Threads(),
        Flag("keep"),
        Array("color", ("H", "W", 3)),
        Array("alpha", ("H", "W")),
        Array("depth", ("H", "W")),
        Array("counts", (2,), torch.int64),
    ),
    returns_handle=True,
)
RASTER_BACKWARD = NativeFunction(
    "raster",
    "ww_backward",
    (
        Handle("context"),
        Array("quats", ("G", 4)),
        Array("g_color", ("H", "W", 3)),
        Array("g_alpha", ("H", "W")),
        Array("g_depth", ("H", "W")),
        Threads(),
        Array("d_means", ("G", 3)),
        Array("d_quats", ("G", 4)),
        Array("d_log_scales", ("G", 3)),
        Array("d_logits", ("G",)),
        Array("d_colors", ("G", 3)),
    ),
)
RASTER_FREE = NativeFunction("raster", "ww_free", (Handle("context"),))


def _fits_window(sizes: dict[str, int], _scalars: dict[str, object]) -> bool:
    return sizes["win"] >= 1 and min(sizes["H"], sizes["W"]) >= sizes["win"]


SSIM = NativeFunction(
    "losses",
    "ww_ssim",
    (
        Dim("P"),
        Dim("H"),
        Dim("W"),
        Array("a", ("P", "H", "W")),
        Array("b", ("P", "H", "W")),
        Array("taps", ("win",)),
        Dim("win"),
        Num("c1"),
        Num("c2"),
        Array("plane_sums", ("P",), torch.float64),
        Array("grad", ("P", "H", "W"), optional=True),
        Threads(),
    ),
    checks=(("the planes must be at least as large as the window (>= 1 tap)", _fits_window),),
)
FIT_LOSS = NativeFunction(
    "losses",
    "ww_fit_loss",
    (
        Dim("H"),
        Dim("W"),
        Array("color", ("H", "W", 3)),
        Array("alpha", ("H", "W")),
        Array("depth_acc", ("H", "W")),
        Array("background", (3,)),
        Array("target", (3, "H", "W")),
        Array("depth_ok", ("H", "W"), torch.bool),
        Array("inv_depth", ("H", "W")),
        Array("taps", ("win",)),
        Dim("win"),
        Num("w_l1"),
        Num("w_ssim"),
        Num("w_depth"),
        Num("near"),
        Num("alpha_eps"),
        Num("c1"),
        Num("c2"),
        Array("terms", (4,), torch.float64),
        Array("g_color", ("H", "W", 3)),
        Array("g_alpha", ("H", "W")),
        Array("g_depth_acc", ("H", "W")),
        Threads(),
    ),
    checks=(
        (
            "with an SSIM term the image must be at least as large as the window (>= 1 tap)",
            lambda sizes, scalars: scalars["w_ssim"] == 0 or _fits_window(sizes, scalars),
        ),
    ),
)
REPROJECT = NativeFunction(
    "reproject",
    "ww_reproject",
    (
        Dim("H"),
        Dim("W"),
        Array("depth", ("H", "W")),
        Array("valid", ("H", "W"), torch.bool),
        Array("target_camera", (16,)),
        Dim("V"),
        Array("history_cameras", ("V", 16)),
        Dim("Hh"),
        Dim("Wh"),
        Array("history_depths", ("V", "Hh", "Wh")),
        Num("rel_tol"),
        Num("near"),
        Flag("bilinear"),
        Int("window"),
        Threads(),
    ),
    checks=(("window must be >= 1", lambda _sizes, scalars: scalars["window"] >= 1),),
)


def _first(name: str, t: object) -> Tensor:
    """``t``, which must be a tensor (its dtype is the call's float type; the guard checks the rest)."""
    if not isinstance(t, Tensor):
        raise KernelArgumentError(f"native call: {name!r} must be a tensor, got {type(t).__name__}")
    return t


def pack_cameras(rotation: Tensor, translation: Tensor, K: Tensor, dtype: torch.dtype) -> Tensor:
    """Cameras in the layout every kernel reads: (..., 16) = rotation (row-major 9), translation (3), fx, fy, cx, cy.

    Args:
        rotation: (..., 3, 3) and translation (..., 3) of the pose the kernel expects (world-to-camera for the
            rasteriser and the history views of the reprojection check, camera-to-world for its target view).
        K: (..., 3, 3) intrinsics in pixels.
        dtype: the kernel call's float type; the result is a contiguous CPU tensor of it.
    """
    rotation, translation, K = (t.to("cpu", dtype) for t in (rotation, translation, K))
    intr = torch.stack([K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]], dim=-1)
    return torch.cat([rotation.reshape(*rotation.shape[:-2], 9), translation, intr], dim=-1).contiguous()


class RasterContext:
    """A native forward pass kept for its backward pass: the handle, its float type and sizes (G, H, W).

    Freed by :meth:`free` or when garbage-collected (the autograd graph that holds it goes away).
    """

    def __init__(self, handle: int, dtype: torch.dtype, sizes: dict[str, int]) -> None:
        self.handle: int | None = handle
        self.dtype = dtype
        self.sizes = sizes

    def free(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            RASTER_FREE(self.dtype, context=handle)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown the modules may already be gone
            self.free()


def raster_forward(
    means: Tensor,
    quats: Tensor,
    log_scales: Tensor,
    logits: Tensor,
    colors: Tensor,
    camera: Tensor,
    height: int,
    width: int,
    near: float,
    t_stop: float,
    keep: bool,
) -> tuple[Tensor, Tensor, Tensor, RasterContext | None]:
    """Render one camera: stages 1-4 of ``raster.cpp``.

    Twin: ``reference.composite_reference(projection.sorted_visible(projection.project_gaussians(...)))``.

    Args:
        means (G, 3), quats (G, 4), log_scales (G, 3), logits (G,), colors (G, 3): the Gaussians (colours already
            evaluated for this camera), float32 or float64.
        camera: (16,) world-to-camera pose and intrinsics (:func:`pack_cameras`).
        height, width: image size; near: Gaussians with camera z <= near are culled; t_stop: transmittance at which
            a pixel stops compositing.
        keep: keep the native state for :func:`raster_backward` (else it is freed at once).

    Returns:
        ``color`` (H, W, 3) = sum_i w_i c_i, ``alpha`` (H, W), ``depth`` (H, W) = sum_i w_i z_i and the kept
        :class:`RasterContext` (None unless ``keep``).
    """
    dtype = _first("means", means).dtype
    color = torch.empty(height, width, 3, dtype=dtype)
    alpha = torch.empty(height, width, dtype=dtype)
    depth = torch.empty(height, width, dtype=dtype)
    counts = torch.zeros(2, dtype=torch.int64)  # visible Gaussians, tile entries
    handle = RASTER_FORWARD(
        dtype, means=means, quats=quats, log_scales=log_scales, logits=logits, colors=colors, camera=camera,
        near=near, t_stop=t_stop, keep=keep, color=color, alpha=alpha, depth=depth, counts=counts,
    )  # fmt: skip
    assert handle is not None
    context = RasterContext(handle, dtype, {"G": means.shape[0], "H": height, "W": width})
    if not keep:
        context.free()
        return color, alpha, depth, None
    return color, alpha, depth, context


def raster_backward(
    context: RasterContext, quats: Tensor, g_color: Tensor, g_alpha: Tensor, g_depth: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of a kept forward pass w.r.t. means, quats, log_scales, logits and colors (backward stages 1-3).

    Args:
        context: from :func:`raster_forward` with ``keep``; quats: the (G, 4) quaternions it was given.
        g_color (H, W, 3), g_alpha (H, W), g_depth (H, W): gradients w.r.t. its outputs.
    """
    if context.handle is None:
        raise RuntimeError("the cpu rasteriser's saved state was already freed")
    dtype, g = context.dtype, context.sizes["G"]
    grads = tuple(torch.zeros(*shape, dtype=dtype) for shape in ((g, 3), (g, 4), (g, 3), (g,), (g, 3)))
    RASTER_BACKWARD(
        dtype, sizes=context.sizes, context=context.handle, quats=quats, g_color=g_color, g_alpha=g_alpha,
        g_depth=g_depth, d_means=grads[0], d_quats=grads[1], d_log_scales=grads[2], d_logits=grads[3],
        d_colors=grads[4],
    )  # fmt: skip
    return grads  # type: ignore[return-value]


def ssim_planes(
    a: Tensor, b: Tensor, taps: Tensor, c1: float, c2: float, need_grad: bool
) -> tuple[Tensor, Tensor | None]:
    """SSIM of image planes with its analytic gradient (twin: :func:`worldwarp.splat.ssim.ssim_map`).

    Args:
        a, b: (P, H, W) planes (float32 or float64), H and W at least ``taps.numel()``.
        taps: (window,) 1-D taps of the separable window, in the planes' dtype.
        c1, c2: the SSIM stabilising constants.
        need_grad: also return the gradient of every plane's map sum w.r.t. ``a``.

    Returns:
        ``sums`` (P,) float64: the sum of each plane's (H - window + 1, W - window + 1) SSIM map, and the gradient
        (P, H, W) of those sums w.r.t. ``a`` (None unless ``need_grad``).
    """
    sums = torch.empty(_first("a", a).shape[:1], dtype=torch.float64)
    grad = torch.empty_like(a) if need_grad else None
    SSIM(a.dtype, a=a, b=b, taps=taps, c1=c1, c2=c2, plane_sums=sums, grad=grad)
    return sums, grad


def fit_loss(
    color: Tensor,
    alpha: Tensor,
    depth_acc: Tensor,
    background: Tensor,
    target: Tensor,
    depth_ok: Tensor,
    inv_depth: Tensor,
    taps: Tensor,
    weights: tuple[float, float, float],
    near: float,
    alpha_eps: float,
    c1: float,
    c2: float,
) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
    """The 3DGS cache loss of one view from :func:`raster_forward`'s outputs (twin:
    :func:`worldwarp.splat.cache.cache_loss`).

    Args:
        color, alpha, depth_acc: (H, W, 3), (H, W), (H, W) raw sums of the rasteriser (float32 or float64).
        background: (3,) colour behind the Gaussians.
        target: (3, H, W) target frame; depth_ok: (H, W) bool, valid ground-truth depth; inv_depth: (H, W) its
            inverse (anything where not valid).
        taps: (window,) SSIM taps; H and W must be at least ``window`` when ``w_ssim`` > 0.
        weights: ``(w_l1, w_ssim, w_depth)``; near: rendered depths <= near get no depth loss.
        alpha_eps: the rendered depth is ``depth_acc / alpha`` where ``alpha > alpha_eps``, else 0.
        c1, c2: the SSIM stabilising constants.

    Returns:
        ``terms`` (4,) float64: mean L1, mean SSIM (1 when ``w_ssim`` is 0), mean inverse-depth error (0 without
        depth pixels) and the number of depth pixels; and the gradients of the weighted loss w.r.t. ``color``,
        ``alpha`` and ``depth_acc``.
    """
    for name, t in (("color", color), ("alpha", alpha), ("depth_acc", depth_acc)):
        _first(name, t)
    w_l1, w_ssim, w_depth = weights
    terms = torch.empty(4, dtype=torch.float64)
    grads = (torch.empty_like(color), torch.empty_like(alpha), torch.empty_like(depth_acc))
    FIT_LOSS(
        color.dtype, color=color, alpha=alpha, depth_acc=depth_acc, background=background, target=target,
        depth_ok=depth_ok, inv_depth=inv_depth, taps=taps, w_l1=w_l1, w_ssim=w_ssim, w_depth=w_depth, near=near,
        alpha_eps=alpha_eps, c1=c1, c2=c2, terms=terms, g_color=grads[0], g_alpha=grads[1], g_depth_acc=grads[2],
    )  # fmt: skip
    return terms, grads


def reproject(
    depth: Tensor,
    valid: Tensor,
    target_camera: Tensor,
    history_cameras: Tensor,
    history_depths: Tensor,
    rel_tol: float,
    near: float,
    bilinear: bool,
    window: int,
) -> Tensor:
    """The reprojection check of one rendered view (twin: :func:`worldwarp.warp.reprojection_mask`).

    Args:
        depth: (H, W) rendered z-depth (float32 or float64); valid: (H, W) bool, the pixels to check.
        target_camera: (16,) the view's camera-to-world pose and intrinsics (:func:`pack_cameras`).
        history_cameras: (V, 16) world-to-camera poses and intrinsics of the history views.
        history_depths: (V, Hh, Wh) their z-depth.
        rel_tol, near, bilinear, window: the rule (``window`` >= 1; see ``worldwarp.warp.WarpConfig``).

    Returns:
        (H, W) bool: ``valid`` and the pixel's 3D point agrees with at least one history depth.
    """
    dtype = _first("depth", depth).dtype
    out = _first("valid", valid).clone()  # the kernel clears the rejected pixels in place
    REPROJECT(
        dtype, depth=depth, valid=out, target_camera=target_camera, history_cameras=history_cameras,
        history_depths=history_depths, rel_tol=rel_tol, near=near, bilinear=bilinear, window=window,
    )  # fmt: skip
    return out
