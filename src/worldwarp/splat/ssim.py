"""Structural similarity (SSIM) with a Gaussian window, as a stateless differentiable function.

Used as a training loss by the 3DGS cache (:mod:`worldwarp.splat.cache`) and as an image metric by the
evaluation code. The definition follows Wang et al. (2004) with the common settings: a Gaussian window of
``window`` taps and standard deviation ``sigma`` (11 and 1.5), ``K1 = 0.01``, ``K2 = 0.03`` and population
(biased) local statistics. Only windows that lie fully inside the image are scored ("valid" filtering), so the
result equals ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=...)`` for a single image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_window", "ssim", "ssim_map"]


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


def ssim_map(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> Tensor:
    """Local SSIM of two image batches.

    Args:
        a, b: (N, C, H, W) images on the same scale (``data_range`` = max - min, 1 for [0, 1] images).
        window: odd number of Gaussian taps; H and W must be at least this large.
        sigma: standard deviation of the Gaussian window in pixels.

    Returns:
        (N, C, H - window + 1, W - window + 1) SSIM of every fully-inside window, differentiable in both inputs.
    """
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(
            f"ssim expects two (N, C, H, W) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if min(a.shape[-2:]) < window:
        raise ValueError(f"images of size {tuple(a.shape[-2:])} are smaller than the SSIM window {window}")
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
