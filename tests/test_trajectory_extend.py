import math

import pytest
import torch

from worldwarp.cameras import Cameras, intrinsics_from_fov
from worldwarp.errors import InputError
from worldwarp.trajectory.extend import change_speed, extrapolate, fit_length, loop, pingpong, resample
from worldwarp.trajectory.presets import trajectory_from_spec
from worldwarp.trajectory.rotations import (
    matrix_to_quaternion,
    matrix_to_rotvec,
    quaternion_to_matrix,
    rotation_angle,
    rotvec_to_matrix,
    slerp,
)


def _line(n: int) -> Cameras:
    c2w = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    c2w[:, :3, 3] = torch.arange(n, dtype=torch.float64)[:, None] * torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    return Cameras(c2w, intrinsics_from_fov(24, 32, fov_x_deg=60), 24, 32)


def test_rotation_helpers_golden() -> None:
    v = torch.tensor([[0.0, 0.0, math.pi / 2], [1e-9, 0, 0], [0.3, -2.0, 1.1]], dtype=torch.float64)
    R = rotvec_to_matrix(v)
    assert torch.allclose(R[0], torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64), atol=1e-15)
    assert torch.allclose(matrix_to_rotvec(R), v, atol=1e-12)
    q = matrix_to_quaternion(R)
    assert torch.allclose(q[0], torch.tensor([math.sqrt(0.5), 0, 0, math.sqrt(0.5)], dtype=torch.float64))
    assert torch.allclose(quaternion_to_matrix(q), R, atol=1e-14)
    # near-180-degree rotations take the stable branch
    R180 = rotvec_to_matrix(torch.tensor([0.0, math.pi - 1e-7, 0.0], dtype=torch.float64))
    assert torch.allclose(quaternion_to_matrix(matrix_to_quaternion(R180)), R180, atol=1e-12)
    mid = slerp(R[0], torch.eye(3, dtype=torch.float64), 0.5)
    assert math.isclose(float(rotation_angle(mid)), math.pi / 4, rel_tol=1e-12)


def test_resample_identity_endpoints_and_lines() -> None:
    cams = trajectory_from_spec("orbit+zoom_in,pan_left", 13)
    same = resample(cams, 13)
    assert (same.c2w - cams.c2w).abs().max() < 1e-12 and (same.K - cams.K).abs().max() < 1e-12
    for m in (2, 7, 40):
        r = resample(cams, m)
        assert torch.equal(r.c2w[0], cams.c2w[0]) and torch.equal(r.c2w[-1], cams.c2w[-1])
        assert torch.equal(r.K[-1], cams.K[-1])
    # a straight constant-speed path stays exactly straight and evenly spaced
    r = resample(_line(5), 17)
    expect = torch.linspace(0, 4, 17, dtype=torch.float64)[:, None] * torch.tensor(
        [0.1, -0.2, 0.3], dtype=torch.float64
    )
    assert torch.allclose(r.centers, expect, atol=1e-12)


def test_resample_rotations_by_slerp() -> None:
    pan = trajectory_from_spec("pan_left*3", 7, ease=0.0)  # constant angular velocity, 15 deg per step
    r = resample(pan, 13)
    assert (r.c2w[::2] - pan.c2w).abs().max() < 1e-12
    ang = rotation_angle(r.c2w[:-1, :3, :3].transpose(1, 2) @ r.c2w[1:, :3, :3])
    assert torch.allclose(ang, torch.full_like(ang, math.radians(7.5)), atol=1e-12)


def test_change_speed() -> None:
    cams = trajectory_from_spec("move_forward", 21)
    fast = change_speed(cams, 2.0)
    assert len(fast) == 11 and torch.allclose(fast.c2w[-1], cams.c2w[-1])
    assert len(change_speed(cams, 0.5)) == 41
    with pytest.raises(InputError):
        change_speed(cams, 0.0)


def test_extrapolate_continues_motion() -> None:
    orbit = trajectory_from_spec("orbit*2", 25, ease=0.0)
    ext = extrapolate(orbit[:13], 25)
    assert (ext.c2w - orbit.c2w).abs().max() < 1e-9  # keeps circling at the same rate
    line = extrapolate(_line(4), 9, window=3)
    assert torch.allclose(line.centers, _line(9).centers, atol=1e-12)
    held = extrapolate(_line(1), 4)
    assert torch.allclose(held.c2w, _line(1).c2w.expand(4, 4, 4))
    assert len(extrapolate(_line(6), 3)) == 3


def test_loop_pingpong_fit() -> None:
    cams = _line(4)
    x = lambda c: (c.centers[:, 0] / 0.1).round().long().tolist()  # noqa: E731
    assert x(loop(cams, 9)) == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert x(pingpong(cams, 10)) == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert x(fit_length(cams, 6, "pingpong")) == [0, 1, 2, 3, 2, 1]
    assert len(fit_length(cams, 6, "extrapolate")) == 6
    with pytest.raises(InputError, match="unknown mode"):
        fit_length(cams, 6, "bounce")  # type: ignore[arg-type]
