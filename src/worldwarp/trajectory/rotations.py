"""Rotation helpers shared by the trajectory code: quaternions (wxyz), rotation vectors, slerp.

All functions are stateless, batched over leading dimensions and keep the input's dtype and device.
Quaternions are **wxyz** (scalar first, as in COLMAP); a rotation vector is axis * angle (radians).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "matrix_to_quaternion",
    "quaternion_to_matrix",
    "rotvec_to_matrix",
    "matrix_to_rotvec",
    "slerp",
    "rotation_angle",
]


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrices (..., 3, 3) from quaternions (..., 4) wxyz (normalised here)."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """Unit quaternions (..., 4) wxyz with w >= 0 from rotation matrices (..., 3, 3).

    Uses the numerically stable branch (largest of w, x, y, z) per matrix.
    """
    m = R
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # 4 * squared components (each >= 0 up to rounding); pick the largest to divide by.
    cand = torch.stack(
        [1 + trace, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
         1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]],
        dim=-1,
    )  # fmt: skip
    best = cand.argmax(dim=-1, keepdim=True)
    s = 2 * torch.sqrt(cand.gather(-1, best).squeeze(-1).clamp_min(1e-300))  # 4 * |largest component|
    r21, r12 = m[..., 2, 1], m[..., 1, 2]
    r02, r20 = m[..., 0, 2], m[..., 2, 0]
    r10, r01 = m[..., 1, 0], m[..., 0, 1]
    qs = torch.stack(
        [
            torch.stack([s / 4, (r21 - r12) / s, (r02 - r20) / s, (r10 - r01) / s], -1),
            torch.stack([(r21 - r12) / s, s / 4, (r01 + r10) / s, (r02 + r20) / s], -1),
            torch.stack([(r02 - r20) / s, (r01 + r10) / s, s / 4, (r12 + r21) / s], -1),
            torch.stack([(r10 - r01) / s, (r02 + r20) / s, (r12 + r21) / s, s / 4], -1),
        ],
        dim=-2,
    )  # (..., 4 branches, 4)
    q = qs.gather(-2, best[..., None].expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def _skew(v: Tensor) -> Tensor:
    """Cross-product matrices (..., 3, 3) of vectors (..., 3)."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def rotvec_to_matrix(v: Tensor) -> Tensor:
    """Rotation matrices (..., 3, 3) from rotation vectors (..., 3) (Rodrigues; exact near zero)."""
    theta2 = (v * v).sum(-1)[..., None, None]
    theta = theta2.sqrt()
    small = theta < 1e-4
    safe = torch.where(small, torch.ones_like(theta), theta)
    a = torch.where(small, 1 - theta2 / 6 + theta2 * theta2 / 120, torch.sin(safe) / safe)
    b = torch.where(small, 0.5 - theta2 / 24 + theta2 * theta2 / 720, (1 - torch.cos(safe)) / (safe * safe))
    S = _skew(v)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand_as(S)
    return eye + a * S + b * (S @ S)


def matrix_to_rotvec(R: Tensor) -> Tensor:
    """Rotation vectors (..., 3) (angle in [0, pi]) of rotation matrices (..., 3, 3), via quaternions."""
    q = matrix_to_quaternion(R)
    w, xyz = q[..., 0], q[..., 1:]
    n = xyz.norm(dim=-1)
    angle = 2 * torch.atan2(n, w)  # in [0, pi] since w >= 0
    small = n < 1e-8
    factor = torch.where(small, 2 / w.clamp_min(1e-300), angle / torch.where(small, torch.ones_like(n), n))
    return xyz * factor[..., None]


def rotation_angle(R: Tensor) -> Tensor:
    """Geodesic angle (...,) in radians of rotation matrices (..., 3, 3)."""
    return matrix_to_rotvec(R).norm(dim=-1)


def slerp(R0: Tensor, R1: Tensor, t: Tensor | float) -> Tensor:
    """Geodesic interpolation R0 exp(t log(R0^T R1)) between rotations (..., 3, 3); ``t`` broadcasts over (...)."""
    t = torch.as_tensor(t, dtype=R0.dtype, device=R0.device)
    rel = matrix_to_rotvec(R0.transpose(-1, -2) @ R1)
    return R0 @ rotvec_to_matrix(rel * t[..., None])
