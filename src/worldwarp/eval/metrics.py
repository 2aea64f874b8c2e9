"""Image metrics: PSNR, masked PSNR and SSIM on float RGB in [0, 1].

All functions take batches ``(N, 3, H, W)`` and return one value per image ``(N,)``, computed in float64 on
the inputs' device. SSIM follows Wang et al. (2004) as ``skimage.metrics.structural_similarity`` computes it
with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1``: an 11x11 Gaussian
window (sigma 1.5), K1 = 0.01, K2 = 0.03, the mean of the SSIM map over the pixels whose window lies inside
the image, averaged over the three channels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from worldwarp.splat.ssim import K1, K2, gaussian_window, ssim_map

__all__ = ["gaussian_kernel1d", "masked_psnr", "mse", "psnr", "ssim"]


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"image shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(pred.shape)}")


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per image (N,) of (N, C, H, W) batches."""
    _check_pair(pred, target)
    return ((pred.double() - target.double()) ** 2).flatten(1).mean(1)


def _psnr_from_mse(err: Tensor, data_range: float) -> Tensor:
    return 10 * torch.log10(data_range**2 / err)  # err = 0 -> +inf


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image (N,); identical images give +inf."""
    return _psnr_from_mse(mse(pred, target), data_range)


def masked_psnr(pred: Tensor, target: Tensor, mask: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR (N,) over the pixels where ``mask`` (N, H, W) is True (all channels); NaN for an empty mask."""
    _check_pair(pred, target)
    if mask.shape != (pred.shape[0], *pred.shape[2:]):
        raise ValueError(f"mask must be (N, H, W) = {(pred.shape[0], *pred.shape[2:])}, got {tuple(mask.shape)}")
    m = mask.to(torch.float64)[:, None]  # (N, 1, H, W)
    sq = (pred.double() - target.double()) ** 2 * m
    count = m.flatten(1).sum(1) * pred.shape[1]
    err = sq.flatten(1).sum(1) / count.clamp_min(1)
    out = _psnr_from_mse(err, data_range)
    return torch.where(count > 0, out, torch.full_like(out, math.nan))


def gaussian_kernel1d(sigma: float = 1.5, radius: int | None = None, dtype: torch.dtype = torch.float64) -> Tensor:
    """Normalised 1-D Gaussian (2r+1,) with r = int(3.5 sigma + 0.5) by default (11 taps for sigma 1.5)."""
    r = int(3.5 * sigma + 0.5) if radius is None else radius
    return gaussian_window(2 * r + 1, sigma, dtype=dtype, device=torch.device("cpu"))


def ssim(
    pred: Tensor, target: Tensor, data_range: float = 1.0, sigma: float = 1.5, k1: float = K1, k2: float = K2
) -> Tensor:
    """Structural similarity per image (N,) of (N, C, H, W) batches (images at least 11x11), in float64.

    The map is :func:`worldwarp.splat.ssim.ssim_map` (the library's one SSIM) with skimage's window of
    ``2 int(3.5 sigma + 0.5) + 1`` taps; the mean is taken per channel, then over the channels.
    """
    _check_pair(pred, target)
    n, c, h, w = pred.shape
    window = 2 * int(3.5 * sigma + 0.5) + 1
    if h < window or w < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window}, got {h}x{w}")
    smap = ssim_map(pred.double(), target.double(), window, sigma, data_range, k1, k2)
    return smap.reshape(n, c, -1).mean(dim=2).mean(dim=1)
