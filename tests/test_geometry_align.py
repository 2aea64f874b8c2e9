"""align_depth: exact recovery, robustness, degenerate frames."""

from __future__ import annotations

import pytest
import torch

from worldwarp.geometry.align import align_depth


def _pred(n: int = 2, h: int = 16, w: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.5 + 4.0 * torch.rand(n, h, w, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("robust", [False, True])
def test_scale_depth_exact(robust):
    pred = _pred()
    s = torch.tensor([2.5, 0.3], dtype=torch.float64)
    ref = pred * s[:, None, None]
    out = align_depth(pred, ref, torch.ones_like(pred, dtype=torch.bool), mode="scale", robust=robust)
    torch.testing.assert_close(out.scale, s, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(out.shift, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(out.depth, ref, atol=1e-9, rtol=1e-9)
    assert out.num_valid.tolist() == [320, 320]


@pytest.mark.parametrize("robust", [False, True])
def test_scale_shift_depth_exact(robust):
    pred = _pred()
    ref = 1.7 * pred + 0.4
    out = align_depth(pred, ref, None, mode="scale_shift", robust=robust)
    assert abs(float(out.scale[0]) - 1.7) < 1e-6 and abs(float(out.shift[0]) - 0.4) < 1e-6
    assert float((out.depth - ref).abs().max()) < 1e-6


@pytest.mark.parametrize("robust", [False, True])
def test_scale_shift_disparity_exact(robust):
    # relative model: disparity known up to an affine map -> depth = 1 / (s / pred + t)
    true_depth = _pred(1)
    pred = 1.0 / (0.2 / true_depth + 0.05)  # an affine function of true disparity
    out = align_depth(pred, true_depth, None, mode="scale_shift", space="disparity", robust=robust)
    # 1/true = s/pred + t  with  1/pred = 0.2/true + 0.05  ->  s = 5, t = -0.25
    assert abs(float(out.scale[0]) - 5.0) < 1e-6 and abs(float(out.shift[0]) + 0.25) < 1e-6
    assert float((out.depth - true_depth).abs().max()) < 1e-6


def test_outliers_ignored_when_robust():
    pred = _pred(1, 32, 32, seed=3)
    ref = 3.0 * pred - 0.5
    bad = torch.rand(pred.shape, generator=torch.Generator().manual_seed(4)) < 0.25
    ref_corrupt = torch.where(bad, ref * 4.0 + 7.0, ref)  # 25% gross outliers (e.g. wrong cache depth)
    robust = align_depth(pred, ref_corrupt, None, mode="scale_shift", robust=True)
    assert abs(float(robust.scale[0]) - 3.0) < 1e-6 and abs(float(robust.shift[0]) + 0.5) < 1e-6
    assert torch.equal(robust.inliers, ~bad)
    plain = align_depth(pred, ref_corrupt, None, mode="scale_shift", robust=False)
    assert abs(float(plain.scale[0]) - 3.0) > 0.5  # least squares alone is pulled away


def test_robust_with_noise_is_close():
    pred = _pred(1, 40, 40, seed=5)
    noise = 0.01 * torch.randn(pred.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    ref = 2.0 * pred + noise
    ref[0, :5] = 100.0  # a band of outliers
    out = align_depth(pred, ref, None, mode="scale", robust=True)
    assert abs(float(out.scale[0]) - 2.0) < 2e-3
    assert not out.inliers[0, :5].any()


def test_valid_mask_and_invalid_pixels():
    pred = _pred(1)
    ref = 2.0 * pred
    ref_bad = ref.clone()
    ref_bad[0, :8] = 50.0  # outside the valid mask: must not matter even without robustness
    ref_bad[0, 8, 0] = 0.0  # unknown reference
    ref_bad[0, 8, 1] = float("nan")
    valid = torch.ones_like(pred, dtype=torch.bool)
    valid[0, :8] = False
    out = align_depth(pred, ref_bad, valid, mode="scale", robust=False)
    torch.testing.assert_close(out.scale, torch.tensor([2.0], dtype=torch.float64))
    assert int(out.num_valid[0]) == 8 * 20 - 2
    # invalid predictions stay invalid in the output
    pred2 = pred.clone()
    pred2[0, 0, 0] = 0.0
    assert float(align_depth(pred2, ref, None).depth[0, 0, 0]) == 0.0


def test_too_few_points_keeps_identity():
    pred = _pred(2)
    ref = 2.0 * pred
    valid = torch.zeros_like(pred, dtype=torch.bool)
    valid[0] = True
    valid[1, 0, :3] = True  # only 3 points in frame 1
    out = align_depth(pred, ref, valid, mode="scale_shift")
    assert out.scale.tolist() == pytest.approx([2.0, 1.0]) and out.shift.tolist() == pytest.approx([0.0, 0.0])
    torch.testing.assert_close(out.depth[1], pred[1])
    assert not out.inliers[1].any()


def test_constant_prediction_falls_back_to_scale():
    pred = torch.full((1, 4, 4), 2.0, dtype=torch.float64)
    ref = torch.full((1, 4, 4), 6.0, dtype=torch.float64)
    out = align_depth(pred, ref, None, mode="scale_shift", robust=False)
    assert float(out.scale[0]) == pytest.approx(3.0) and float(out.shift[0]) == 0.0


def test_single_map_and_dtype():
    pred = _pred(1)[0].float()
    out = align_depth(pred, pred * 4, None)
    assert out.depth.shape == pred.shape and out.depth.dtype == torch.float32
    assert out.scale.shape == (1,)
    with pytest.raises(ValueError, match="shapes differ"):
        align_depth(pred, pred[:3])
    with pytest.raises(ValueError, match="mode"):
        align_depth(pred, pred, mode="affine")


def test_real_depth_disparity_alignment(shared_data):
    import warnings

    from worldwarp.io.depth import load_depth, resize_depth

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = load_depth(shared_data / "scenes" / "7scenes_redkitchen" / "depth" / "frame_00000.npy")
    d = resize_depth(d, 120, 160).double()[None]
    valid = d > 0
    safe = torch.where(valid, d, torch.ones_like(d))
    pred = torch.where(valid, 1.0 / (0.3 / safe + 0.1), torch.zeros_like(d))  # relative model output as depth
    ref = d.clone()
    bad = valid & (torch.rand(d.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64) < 0.1)
    ref[bad] *= 3.0  # 10% of the reference is wrong
    out = align_depth(pred, ref, valid, mode="scale_shift", space="disparity", robust=True)
    assert float(out.scale[0]) == pytest.approx(1 / 0.3, rel=1e-6) and float(out.shift[0]) == pytest.approx(
        -0.1 / 0.3, rel=1e-6
    )
    assert float((out.depth - d)[valid].abs().max()) < 1e-6
    assert torch.equal(out.inliers, valid & ~bad)
