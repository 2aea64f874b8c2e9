"""Image metrics: PSNR/masked PSNR analytic values, SSIM golden values against scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from worldwarp.eval.metrics import gaussian_kernel1d, masked_psnr, mse, psnr, ssim


def _skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(
        structural_similarity(
            a.double().numpy(),
            b.double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=0,
        )
    )


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    h, w = 37, 53
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    smooth = torch.stack([x, y, 0.5 * (x + y)])  # gradient image
    stripes = (torch.sin(20 * x + 5 * y) * 0.5 + 0.5).expand(3, h, w)
    noise = torch.rand(3, h, w, generator=g)
    a = torch.stack([smooth, stripes, noise])
    b = torch.stack(
        [
            (smooth * 0.8 + 0.1),  # contrast/brightness change
            torch.roll(stripes, 2, dims=-1),  # shift
            (noise + 0.3 * torch.randn(3, h, w, generator=g)).clamp(0, 1),
        ]
    )
    return a, b


def test_ssim_matches_skimage_golden():
    a, b = _images()
    ours = ssim(a, b)
    for i in range(a.shape[0]):
        assert abs(float(ours[i]) - _skimage_ssim(a[i], b[i])) < 1e-6
    # float32 inputs give the same numbers (the metric computes in float64)
    assert torch.allclose(ssim(a.float(), b.float()), ours, atol=1e-6)


def test_ssim_identity_and_symmetry():
    a, b = _images()
    assert torch.allclose(ssim(a, a), torch.ones(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(ssim(a, b), ssim(b, a), atol=1e-12)


def test_ssim_rejects_small_images():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 10, 20), torch.zeros(1, 3, 10, 20))


def test_gaussian_window_is_11_taps():
    k = gaussian_kernel1d(1.5)
    assert k.numel() == 11 and abs(float(k.sum()) - 1) < 1e-15
    assert float(k[5] / k[6]) == pytest.approx(math.exp(0.5 / 1.5**2))


def test_psnr_analytic():
    a = torch.full((2, 3, 8, 8), 0.5)
    b = a.clone()
    b[0] += 0.1  # mse 0.01 -> 20 dB
    out = psnr(b, a)
    assert float(out[0]) == pytest.approx(20.0, abs=1e-5)
    assert math.isinf(float(out[1]))
    assert float(mse(b, a)[0]) == pytest.approx(0.01, rel=1e-6)


def test_masked_psnr_inside_holes_only():
    a = torch.zeros(1, 3, 4, 4)
    b = a.clone()
    b[..., :2, :] = 0.1  # error 0.1 in the top half, exact elsewhere
    top = torch.zeros(1, 4, 4, dtype=torch.bool)
    top[:, :2] = True
    assert float(masked_psnr(b, a, top)[0]) == pytest.approx(20.0, abs=1e-5)
    assert math.isinf(float(masked_psnr(b, a, ~top)[0]))
    assert math.isnan(float(masked_psnr(b, a, torch.zeros_like(top))[0]))
    # the whole-image PSNR averages in the exact half: mse 0.005
    assert float(psnr(b, a)[0]) == pytest.approx(10 * np.log10(1 / 0.005), abs=1e-5)


def test_hf_energy_of_a_checkerboard_is_exact():
    from worldwarp.eval.metrics import hf_energy

    y, x = torch.meshgrid(torch.arange(6), torch.arange(7), indexing="ij")
    board = ((x + y) % 2).double()[None, None].expand(1, 3, 6, 7)  # Laplacian is +-4 * 1 ... at every inner pixel
    # inner pixel value v in {0, 1}: 4 neighbours are 1 - v, so lap = 4 (1 - v) - 4 v = 4 - 8 v = +-4
    assert hf_energy(board).item() == 16.0
    assert hf_energy(torch.full((2, 3, 5, 5), 0.3)).tolist() == [0.0, 0.0]


def test_hf_ratio_flags_grain_and_blur():
    from worldwarp.eval.metrics import hf_ratio

    g = torch.Generator().manual_seed(0)
    real = torch.rand(1, 3, 32, 32, generator=g) * 0.2 + 0.4
    assert hf_ratio(real, real).item() == 1.0
    grainy = (real + 0.1 * torch.randn(real.shape, generator=g)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(real, 3, stride=1, padding=1, count_include_pad=False)
    assert hf_ratio(grainy, real).item() > 1.3
    assert hf_ratio(blurred, real).item() < 0.7
    assert torch.isnan(hf_ratio(real, torch.full_like(real, 0.5))).all()


def test_color_error_is_the_largest_channel_mean_difference():
    from worldwarp.eval.metrics import color_error

    a = torch.zeros(1, 3, 4, 4)
    b = a.clone()
    b[:, 0] = 0.25
    b[:, 2, :2] = 0.5  # channel mean 0.25 as well, but half the pixels
    b[:, 1] = -0.5
    assert color_error(a, b).tolist() == [0.5]
    assert color_error(b, b).tolist() == [0.0]
