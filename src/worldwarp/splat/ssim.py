"""Structural similarity (SSIM) with a Gaussian window: the library's one SSIM, for losses and for metrics.

Used as a training loss by the 3DGS cache (:mod:`worldwarp.splat.cache`) and as an image metric by the evaluation
code (:func:`worldwarp.eval.metrics.ssim`). The definition follows Wang et al. (2004) with the common settings: a
Gaussian window of ``window`` taps and standard deviation ``sigma`` (11 and 1.5), ``K1 = 0.01``, ``K2 = 0.03`` and
population (biased) local statistics. Only windows that lie fully inside the image are scored ("valid" filtering),
so the result equals ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=...)`` for a single image.

:func:`ssim_map` is the plain-torch definition (separable filtering by shifted in-place sums, autograd).
:func:`ssim_fused` computes the mean with one fused C++ pass per image and its gradient analytically
(``worldwarp/splat/kernels/losses.cpp``), an order of magnitude faster on the CPU; it falls back to :func:`ssim`
elsewhere.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["K1", "K2", "gaussian_window", "ssim", "ssim_fused", "ssim_map", "stabilisers"]

K1, K2 = 0.01, 0.03  # the stabilising constants are (K1 * data_range)^2 and (K2 * data_range)^2
_FUSED_DTYPES = (torch.float32, torch.float64)


def gaussian_window(window: int, sigma: float, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalised 1-D Gaussian taps (window,) centred on the middle tap."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"SSIM window must be a positive odd number, got {window}")
    x = torch.arange(window, dtype=torch.float64, device=device) - (window - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).to(dtype)


def stabilisers(data_range: float = 1.0, k1: float = K1, k2: float = K2) -> tuple[float, float]:
    """The SSIM constants ``c1 = (k1 * data_range)^2`` and ``c2 = (k2 * data_range)^2``."""
    return (k1 * data_range) ** 2, (k2 * data_range) ** 2


def _blur(x: Tensor, taps: list[float]) -> Tensor:
    """Separable valid filtering of (..., H, W) with 1-D ``taps`` -> (..., H - k + 1, W - k + 1).

    Shifted, in-place sums (``taps[0] x[i] + taps[1] x[i + 1] + ...`` along rows, then along columns): exact in
    float64 and light on memory.
    """
    k = len(taps)
    hv, wv = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    rows = x[..., 0:hv, :] * taps[0]
    for i in range(1, k):
        rows.add_(x[..., i : i + hv, :], alpha=taps[i])
    out = rows[..., :, 0:wv] * taps[0]
    for i in range(1, k):
        out.add_(rows[..., :, i : i + wv], alpha=taps[i])
    return out


def _check(a: Tensor, b: Tensor, window: int) -> None:
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(
            f"ssim expects two (N, C, H, W) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if min(a.shape[-2:]) < window:
        raise ValueError(f"images of size {tuple(a.shape[-2:])} are smaller than the SSIM window {window}")


def ssim_map(
    a: Tensor,
    b: Tensor,
    window: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = K1,
    k2: float = K2,
) -> Tensor:
    """Local SSIM of two image batches, computed in their dtype on their device.

    Args:
        a, b: (N, C, H, W) images on the same scale (``data_range`` = max - min, 1 for [0, 1] images).
        window: odd number of Gaussian taps; H and W must be at least this large.
        sigma: standard deviation of the Gaussian window in pixels.
        k1, k2: the stabilising constants' factors (:func:`stabilisers`).

    Returns:
        (N, C, H - window + 1, W - window + 1) SSIM of every fully-inside window, differentiable in both inputs.
    """
    _check(a, b, window)
    n, c, h, w = a.shape
    taps = gaussian_window(window, sigma, dtype=torch.float64, device=torch.device("cpu")).tolist()
    c1, c2 = stabilisers(data_range, k1, k2)
    x, y = a.reshape(n * c, 1, h, w), b.reshape(n * c, 1, h, w)
    stats = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=0), taps)  # (5 N C, 1, H - window + 1, W - window + 1)
    mu_a, mu_b, e_aa, e_bb, e_ab = stats.chunk(5, dim=0)
    var_a, var_b, cov = e_aa - mu_a * mu_a, e_bb - mu_b * mu_b, e_ab - mu_a * mu_b
    smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    return smap.reshape(n, c, h - window + 1, w - window + 1)


def ssim(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> Tensor:
    """Mean SSIM per image: (N, C, H, W) x 2 -> (N,). See :func:`ssim_map` for the arguments."""
    return ssim_map(a, b, window, sigma, data_range).flatten(1).mean(dim=1)


class _FusedSSIM(torch.autograd.Function):
    """Mean SSIM per image by the C++ kernel; the gradients are computed in the forward pass (when needed)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, a: Tensor, b: Tensor, taps: Tensor, c1: float, c2: float
    ) -> Tensor:
        from worldwarp.splat.kernels.ops import ssim_planes

        n, c, h, w = a.shape
        k = taps.numel()
        scale = 1.0 / (c * (h - k + 1) * (w - k + 1))
        pa, pb = (t.detach().reshape(n * c, h, w).contiguous() for t in (a, b))
        taps = taps.contiguous()
        need_a, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1]  # type: ignore[attr-defined]
        sums, grad_a = ssim_planes(pa, pb, taps, c1, c2, need_a)
        grad_b = ssim_planes(pb, pa, taps, c1, c2, True)[1] if need_b else None  # SSIM is symmetric in a and b
        ctx.grads = [None if gr is None else (gr * scale).view(n, c, h, w) for gr in (grad_a, grad_b)]
        return (sums.view(n, c).sum(dim=1) * scale).to(a.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, g: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        g = g.view(-1, 1, 1, 1)
        grad_a, grad_b = ctx.grads  # type: ignore[attr-defined]
        return (
            None if grad_a is None else grad_a * g,
            None if grad_b is None else grad_b * g,
            None,
            None,
            None,
        )


def ssim_fused(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> Tensor:
    """:func:`ssim` (mean SSIM per image, (N, C, H, W) x 2 -> (N,)) by the fused C++ kernel.

    Equal to :func:`ssim` up to float rounding and differentiable in both inputs, with an analytic gradient. Used
    for float32 / float64 CPU tensors of one dtype; other inputs, or a machine where the kernels cannot be built,
    get :func:`ssim` itself.
    """
    _check(a, b, window)
    if a.device.type != "cpu" or b.device != a.device or a.dtype != b.dtype or a.dtype not in _FUSED_DTYPES:
        return ssim(a, b, window, sigma, data_range)
    from worldwarp.splat.kernels import kernels_available

    if not kernels_available("losses"):
        return ssim(a, b, window, sigma, data_range)
    taps = gaussian_window(window, sigma, dtype=a.dtype, device=a.device)
    return _FusedSSIM.apply(a, b, taps, *stabilisers(data_range))
