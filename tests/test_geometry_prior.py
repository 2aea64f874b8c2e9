"""Ground-plane-and-backdrop prior: analytic ground depth, backdrop, blend, warning."""

from __future__ import annotations

import math

import pytest
import torch

from worldwarp.cameras import Cameras, intrinsics_from_fov
from worldwarp.errors import InputError
from worldwarp.geometry.prior import PriorDepth, PriorDepthConfig, PriorDepthWarning, ground_backdrop_depth


def test_level_camera_ground_depth_is_analytic():
    # level camera (horizon at the principal point row): z = h f / (v - c_y)
    H, W, h, D = 40, 60, 1.5, 1e6
    K = intrinsics_from_fov(H, W, fov_x_deg=70)
    depth = ground_backdrop_depth(K, H, W, camera_height=h, horizon_row=H / 2, backdrop_distance=D)
    f = float(K[1, 1])
    for i in (21, 25, 39):
        v = i + 0.5
        assert float(depth[0, i, 7]) == pytest.approx(h * f / (v - H / 2), rel=1e-12)
    assert torch.equal(depth[0, :20], torch.full((20, W), D, dtype=torch.float64))  # sky -> backdrop


def test_ground_points_lie_on_the_plane_for_a_pitched_camera():
    # unproject the ground pixels and check they are exactly h below the camera along world down
    H, W, h = 48, 64, 2.0
    K = intrinsics_from_fov(H, W, fov_x_deg=60)
    v_h = 0.3 * H  # horizon above centre: camera looks down
    depth = ground_backdrop_depth(K, H, W, camera_height=h, horizon_row=v_h, backdrop_distance=1e9)
    cams = Cameras(torch.eye(4, dtype=torch.float64), K, H, W)
    pts = cams.unproject(depth)[0]  # (H, W, 3) in camera frame
    theta = math.atan((float(K[1, 2]) - v_h) / float(K[1, 1]))
    down = torch.tensor([0.0, math.cos(theta), math.sin(theta)], dtype=torch.float64)
    rows = torch.arange(H) + 0.5 > v_h
    height_above = pts[rows] @ down
    torch.testing.assert_close(height_above, torch.full_like(height_above, h), atol=1e-9, rtol=1e-12)
    # the horizon row: rays through it are parallel to the ground (down . ray = 0)
    ray = torch.tensor([0.0, (v_h - float(K[1, 2])) / float(K[1, 1]), 1.0], dtype=torch.float64)
    assert abs(float(ray @ down)) < 1e-12


def test_backdrop_hides_far_ground_and_blend_is_local():
    H, W, h, D = 100, 30, 1.0, 5.0
    K = intrinsics_from_fov(H, W, fov_y_deg=60)
    hard = ground_backdrop_depth(K, H, W, camera_height=h, horizon_row=50, backdrop_distance=D)
    f = float(K[1, 1])
    v = torch.arange(H, dtype=torch.float64) + 0.5
    ground = torch.where(v > 50, h * f / (v - 50).clamp_min(1e-9), torch.full_like(v, math.inf))
    torch.testing.assert_close(hard[0, :, 0], torch.minimum(ground, torch.full_like(v, D)))
    blend_rows = 6.0
    soft = ground_backdrop_depth(K, H, W, camera_height=h, horizon_row=50, backdrop_distance=D, blend_rows=blend_rows)
    v_contact = 50 + h * f / D
    far_from_contact = (v - v_contact).abs() >= blend_rows
    torch.testing.assert_close(soft[0, far_from_contact, 0], hard[0, far_from_contact, 0], rtol=1e-12, atol=0)
    near = ~far_from_contact
    assert near.any() and (soft[0, near, 0] <= hard[0, near, 0] + 1e-12).all()  # smooth max of disparity
    assert (soft[0, :, 0] > 0).all() and torch.isfinite(soft).all()
    # continuity: no jump between neighbouring rows bigger than the hard version's
    assert float(soft[0, 1:, 0].diff().abs().max()) <= float(hard[0, 1:, 0].diff().abs().max()) + 1e-9


def test_estimator_warns_and_uses_cameras():
    images = torch.rand(2, 3, 20, 30)
    cfg = PriorDepthConfig(camera_height=1.2, horizon=0.5, backdrop_distance=1e6, blend=0.0)
    with pytest.warns(PriorDepthWarning, match="quality will be poor"):
        pred = PriorDepth(cfg).estimate(images)
    assert pred.depth.shape == (2, 20, 30) and pred.depth.dtype == torch.float32 and pred.valid.all()
    f = 0.5 * 30 / math.tan(math.radians(30))
    assert float(pred.depth[1, 15, 3]) == pytest.approx(1.2 * f / 5.5, rel=1e-6)
    K = intrinsics_from_fov(20, 30, fov_x_deg=90)
    cams = Cameras(torch.eye(4).expand(2, 4, 4), K, 20, 30)
    with pytest.warns(PriorDepthWarning):
        pred2 = PriorDepth(cfg).estimate(images, cams)
    assert float(pred2.depth[0, 15, 3]) == pytest.approx(1.2 * 15 / 5.5, rel=1e-6)
    with pytest.raises(InputError, match="do not fit"), pytest.warns(PriorDepthWarning):
        PriorDepth(cfg).estimate(images, cams.resize(10, 15))


def test_config_validation():
    with pytest.raises(InputError, match="camera_height"):
        PriorDepthConfig(camera_height=0)
    with pytest.raises(InputError, match="backdrop_distance"):
        PriorDepthConfig(backdrop_distance=-1)
