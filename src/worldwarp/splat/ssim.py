"""Structural similarity (SSIM) with a Gaussian window, as a stateless differentiable function.

Used as a training loss by the 3DGS cache (:mod:`worldwarp.splat.cache`) and as an image metric by the
evaluation code. The definition follows Wang et al. (2004) with the common settings: a Gaussian window of
``window`` taps and standard deviation ``sigma`` (11 and 1.5), ``K1 = 0.01``, ``K2 = 0.03`` and population
(biased) local statistics. Only windows that lie fully inside the image are scored ("valid" filtering), so the
result equals ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=...)`` for a single image.

:func:`ssim` is the plain-torch definition (grouped convolutions, autograd). :func:`ssim_fused` computes the same
value with one fused C++ pass per image and its gradient analytically (the rasteriser's kernel library,
:mod:`worldwarp.splat.raster.cpu`), an order of magnitude faster on the CPU; it falls back to :func:`ssim` elsewhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_window", "ssim", "ssim_fused", "ssim_map"]

_FUSED_DTYPES = (torch.float32, torch.float64)


def gaussian_window(window: int, sigma: float, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalised 1-D Gaussian taps (window,) centred on the middle tap."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"SSIM window must be a positive odd number, got {window}")
    x = torch.arange(window, dtype=torch.float64, device=device) - (window - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).to(dtype)


def _filter(x: Tensor, taps: Tensor) -> Tensor:
    """Separable valid filtering of (N, C, H, W) with 1-D ``taps`` -> (N, C, H-w+1, W-w+1)."""
    c = x.shape[1]
    w = taps.numel()
    kh = taps.view(1, 1, w, 1).expand(c, 1, w, 1)
    kw = taps.view(1, 1, 1, w).expand(c, 1, 1, w)
    return F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)


def _check(a: Tensor, b: Tensor, window: int) -> None:
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(
            f"ssim expects two (N, C, H, W) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if min(a.shape[-2:]) < window:
        raise ValueError(f"images of size {tuple(a.shape[-2:])} are smaller than the SSIM window {window}")


def ssim_map(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> Tensor:
    """Local SSIM of two image batches.

    Args:
        a, b: (N, C, H, W) images on the same scale (``data_range`` = max - min, 1 for [0, 1] images).
        window: odd number of Gaussian taps; H and W must be at least this large.
        sigma: standard deviation of the Gaussian window in pixels.

    Returns:
        (N, C, H - window + 1, W - window + 1) SSIM of every fully-inside window, differentiable in both inputs.
    """
    _check(a, b, window)
    taps = gaussian_window(window, sigma, dtype=a.dtype, device=a.device)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_a = _filter(a, taps)
    mu_b = _filter(b, taps)
    var_a = _filter(a * a, taps) - mu_a * mu_a
    var_b = _filter(b * b, taps) - mu_b * mu_b
    cov = _filter(a * b, taps) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return num / den


def ssim(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> Tensor:
    """Mean SSIM per image: (N, C, H, W) x 2 -> (N,). See :func:`ssim_map` for the arguments."""
    return ssim_map(a, b, window, sigma, data_range).flatten(1).mean(dim=1)


class _FusedSSIM(torch.autograd.Function):
    """Mean SSIM per image by the C++ kernel; the gradients are computed in the forward pass (when needed)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, a: Tensor, b: Tensor, taps: Tensor, c1: float, c2: float
    ) -> Tensor:
        from worldwarp.splat.raster.cpu import ssim_cpu

        n, c, h, w = a.shape
        k = taps.numel()
        scale = 1.0 / (c * (h - k + 1) * (w - k + 1))
        pa, pb = a.detach().reshape(n * c, h, w), b.detach().reshape(n * c, h, w)
        need_a, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1]  # type: ignore[attr-defined]
        sums, grad_a = ssim_cpu(pa, pb, taps, c1, c2, need_a)
        grad_b = ssim_cpu(pb, pa, taps, c1, c2, True)[1] if need_b else None  # SSIM is symmetric in a and b
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
    from worldwarp.splat.raster.cpu import kernels_available

    if not kernels_available():
        return ssim(a, b, window, sigma, data_range)
    taps = gaussian_window(window, sigma, dtype=a.dtype, device=a.device)
    return _FusedSSIM.apply(a, b, taps, (0.01 * data_range) ** 2, (0.03 * data_range) ** 2)
