"""Image metrics: PSNR, masked PSNR, SSIM, high-frequency energy and mean-colour error on float RGB in [0, 1].

All functions take batches ``(N, 3, H, W)`` and return one value per image ``(N,)``, computed in float64 on
the inputs' device. SSIM follows Wang et al. (2004) as ``skimage.metrics.structural_similarity`` computes it
with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1``: an 11x11 Gaussian
window (sigma 1.5), K1 = 0.01, K2 = 0.03, the mean of the SSIM map over the pixels whose window lies inside
the image, averaged over the three channels.

Two diagnostics catch what PSNR averages away: :func:`hf_ratio` (grain or blur: the generated image's mean squared
Laplacian over the real image's; 1 = the same amount of fine detail, > 1 grain or noise, < 1 blur) and
:func:`color_error` (a colour cast: the largest absolute difference of the per-channel mean over the image).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from worldwarp.splat.ssim import K1, K2, gaussian_window, ssim_map

__all__ = ["color_error", "gaussian_kernel1d", "hf_energy", "hf_ratio", "masked_psnr", "mse", "psnr", "ssim"]


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


def hf_energy(images: Tensor) -> Tensor:
    """Mean squared Laplacian per image (N,) of (N, C, H, W): the 4-neighbour stencil ``[[0, 1, 0], [1, -4, 1],
    [0, 1, 0]]`` on every channel, over the pixels whose stencil lies inside the image, averaged over channels."""
    if images.ndim != 4 or images.shape[-1] < 3 or images.shape[-2] < 3:
        raise ValueError(f"images must be (N, C, H, W) with H, W >= 3, got {tuple(images.shape)}")
    x = images.double()
    lap = (
        x[..., :-2, 1:-1] + x[..., 2:, 1:-1] + x[..., 1:-1, :-2] + x[..., 1:-1, 2:] - 4 * x[..., 1:-1, 1:-1]
    )  # (N, C, H - 2, W - 2)
    return lap.square().flatten(1).mean(1)


def hf_ratio(pred: Tensor, target: Tensor) -> Tensor:
    """High-frequency energy ratio (N,): ``hf_energy(pred) / hf_energy(target)`` (1 ideal; NaN if target is flat)."""
    _check_pair(pred, target)
    ref = hf_energy(target)
    out = hf_energy(pred) / ref.clamp_min(1e-300)
    return torch.where(ref > 0, out, torch.full_like(out, math.nan))


def color_error(pred: Tensor, target: Tensor) -> Tensor:
    """Colour cast per image (N,): ``max_c |mean(pred_c) - mean(target_c)|`` over the channels, in [0, 1] units."""
    _check_pair(pred, target)
    return (pred.double().mean(dim=(2, 3)) - target.double().mean(dim=(2, 3))).abs().amax(dim=1)
