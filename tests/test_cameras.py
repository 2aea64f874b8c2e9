import math

import pytest
import torch

from worldwarp.cameras import CameraError, Cameras, intrinsics_from_fov, look_at


def make(n: int = 3) -> Cameras:
    eye = torch.tensor([[0.0, 0.0, -float(i)] for i in range(n)])
    c2w = look_at(eye, torch.zeros(n, 3) + torch.tensor([0.0, 0.0, 5.0]))
    return Cameras(c2w, intrinsics_from_fov(48, 64, fov_x_deg=60), 48, 64)


def test_look_at_axes() -> None:
    c2w = look_at(torch.tensor([0.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(c2w, torch.eye(4, dtype=torch.float64))


def test_unproject_project_roundtrip() -> None:
    cams = make()
    depth = torch.rand(3, 48, 64, dtype=torch.float64) + 1
    pts = cams.unproject(depth)
    uv, z = cams.project(pts.reshape(3, -1, 3))
    assert torch.allclose(z.reshape(3, 48, 64), depth, atol=1e-9)
    assert torch.allclose(uv.reshape(3, 48, 64, 2), cams.pixel_grid().expand(3, -1, -1, -1), atol=1e-9)


def test_validation_errors() -> None:
    K = intrinsics_from_fov(10, 10, fov_x_deg=60)
    bad = torch.eye(4, dtype=torch.float64)
    bad[0, 0] = float("nan")
    with pytest.raises(CameraError, match="NaN"):
        Cameras(bad, K, 10, 10)
    skew = torch.eye(4, dtype=torch.float64)
    skew[0, 1] = 0.5
    with pytest.raises(CameraError, match="orthonormal"):
        Cameras(skew, K, 10, 10)
    with pytest.raises(CameraError, match="principal point"):
        Cameras(torch.eye(4), torch.tensor([[5.0, 0, 50], [0, 5, 5], [0, 0, 1]]), 10, 10)
    with pytest.raises(CameraError, match="focal"):
        Cameras(torch.eye(4), torch.tensor([[-5.0, 0, 5], [0, 5, 5], [0, 0, 1]]), 10, 10)


def test_small_drift_reorthonormalised() -> None:
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[0, 1] = 1e-4
    cams = Cameras(c2w, intrinsics_from_fov(10, 10, fov_x_deg=60), 10, 10)
    R = cams.c2w[0, :3, :3]
    assert torch.allclose(R.T @ R, torch.eye(3, dtype=torch.float64), atol=1e-12)


def test_relative_and_normalize() -> None:
    cams = make(4)
    rel = cams.relative_to_first()
    assert torch.allclose(rel.c2w[0], torch.eye(4, dtype=torch.float64), atol=1e-12)
    norm, factor = rel.normalize_scale()
    assert math.isclose(norm.scene_scale(), 1.0, rel_tol=1e-9)
    assert math.isclose(factor, 1 / 3, rel_tol=1e-9)


def test_resize_and_crop_keep_projection() -> None:
    cams = make(2)
    pts = torch.tensor([[0.3, -0.2, 4.0]], dtype=torch.float64)
    uv, _ = cams.project(pts)
    uv2, _ = cams.resize(96, 128).project(pts)
    assert torch.allclose(uv2, uv * 2)
    uv3, _ = cams.crop(4, 6, 30, 40).project(pts)
    assert torch.allclose(uv3, uv - torch.tensor([6.0, 4.0], dtype=torch.float64))
