"""Stateless, differentiable per-camera preprocessing shared by every CPU backend.

EWA splatting (Zwicker et al. 2001, as in 3D Gaussian Splatting): the 3D covariance ``R S S^T R^T`` is moved
into the camera frame and projected with the Jacobian of the perspective projection at the Gaussian's centre,
``cov2d = J W cov3d W^T J^T``. The Jacobian's ``x/z`` and ``y/z`` are clamped to 1.3x the field of view
(see :func:`project_gaussians`) so Gaussians far off-screen do not blow up. A low-pass dilation of
``LOWPASS = 0.3`` px^2 is added to the diagonal of every 2D covariance (3DGS's anti-aliasing filter, without
opacity compensation).

Footprint rule shared by all backends (tiling-independent, so backends agree exactly): a Gaussian contributes
to pixel ``p`` iff ``alpha = min(ALPHA_MAX, o * exp(-0.5 d^T conic d)) >= ALPHA_MIN`` (``d`` = pixel centre -
projected mean); compositing of a pixel stops once its transmittance falls below ``T_STOP`` (the Gaussian that
crosses it still counts). The region where ``alpha >= ALPHA_MIN`` is the ellipse ``d^T conic d <= 2 ln(255 o)``
whose half-extents are returned in :attr:`Projected.extents`; fast backends bin by it (plus a pixel of slack).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from worldwarp.splat.gaussians import Gaussians

__all__ = [
    "ALPHA_MAX",
    "ALPHA_MIN",
    "LOWPASS",
    "T_STOP",
    "Projected",
    "eval_sh",
    "project_gaussians",
    "quat_to_rotmat",
    "sorted_visible",
    "world_to_camera",
]

LOWPASS = 0.3  # px^2 added to the 2D covariance diagonal
ALPHA_MAX = 0.99  # per-Gaussian alpha clamp
ALPHA_MIN = 1.0 / 255.0  # smaller alphas are skipped
T_STOP = 1e-5  # a pixel stops compositing once its transmittance drops below this
FOV_CLAMP = 1.3  # the Jacobian sees x/z, y/z clamped to this multiple of the image's half-extent

# real spherical-harmonic constants (degree 1..3), in the basis order used by 3DGS
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices (G, 3, 3) of quaternions (G, 4) wxyz (normalised here)."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def sh_basis(dirs: Tensor, degree: int) -> Tensor:
    """Real SH basis (G, (degree+1)^2) evaluated at unit directions (G, 3)."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, 0.28209479177387814)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            SH_C2[0] * x * y,
            SH_C2[1] * y * z,
            SH_C2[2] * (2 * zz - xx - yy),
            SH_C2[3] * x * z,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3 * xx - yy),
            SH_C3[1] * x * y * z,
            SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            SH_C3[4] * x * (4 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(sh: Tensor, dirs: Tensor) -> Tensor:
    """Colour (G, 3) = max(0, 0.5 + sum_k Y_k(dir) sh[:, k]) for coefficients (G, K, 3), unit dirs (G, 3)."""
    degree = math.isqrt(sh.shape[1]) - 1
    basis = sh_basis(dirs, degree)  # (G, K)
    return (torch.einsum("gk,gkc->gc", basis, sh) + 0.5).clamp_min(0.0)


@dataclass
class Projected:
    """One camera's view of G Gaussians (all (G, ...) in the Gaussians' dtype).

    Attributes:
        means2d: (G, 2) projected centres (u, v) in pixels.
        conics: (G, 3) upper triangle (a, b, c) of the inverse 2D covariance.
        depths: (G,) camera z of the centres.
        opacities: (G,) sigmoid of the logits.
        colors: (G, 3) SH colour seen from this camera.
        extents: (G, 2) half-width and half-height in pixels of the region where alpha >= ALPHA_MIN
            (no gradient).
        visible: (G,) bool: in front of ``near``, non-degenerate, opacity >= ALPHA_MIN and overlapping the image.
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    opacities: Tensor
    colors: Tensor
    extents: Tensor
    visible: Tensor


def world_to_camera(c2w: Tensor) -> tuple[Tensor, Tensor]:
    """Rotation ``R_wc`` (3, 3) and translation ``t_wc`` (3,) of the world-to-camera transform of ``c2w`` (4, 4)."""
    R_wc = c2w[:3, :3].T
    return R_wc, -R_wc @ c2w[:3, 3]


def project_gaussians(
    gaussians: Gaussians, c2w: Tensor, K: Tensor, height: int, width: int, near: float = 0.01
) -> Projected:
    """EWA-project ``gaussians`` into one camera (``c2w`` (4, 4) OpenCV, ``K`` (3, 3) pixels).

    The Jacobian uses ``x/z`` clamped to ``[-(cx/fx + 0.3 W/(2 fx)), (W-cx)/fx + 0.3 W/(2 fx)]`` (and likewise
    for y), i.e. 1.3x the half field of view for a centred principal point; the projected mean is not clamped.
    Differentiable w.r.t. every Gaussian parameter.
    """
    dtype = gaussians.dtype
    c2w = c2w.to(gaussians.device, dtype)
    K = K.to(gaussians.device, dtype)
    R_wc, t_wc = world_to_camera(c2w)
    p = gaussians.means @ R_wc.T + t_wc  # (G, 3) camera coordinates
    z = p[:, 2]
    in_front = z > near
    z_safe = torch.where(in_front, z, torch.ones_like(z))  # keeps gradients of culled Gaussians finite
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    u = fx * p[:, 0] / z_safe + cx
    v = fy * p[:, 1] / z_safe + cy

    # 3D covariance in the camera frame: (W R S)(W R S)^T
    M = R_wc @ quat_to_rotmat(gaussians.quats) * gaussians.log_scales.exp()[:, None, :]  # (G, 3, 3)
    cov_cam = M @ M.transpose(1, 2)
    slack_x = (FOV_CLAMP - 1.0) * 0.5 * width / fx
    slack_y = (FOV_CLAMP - 1.0) * 0.5 * height / fy
    tx = (p[:, 0] / z_safe).clamp(-(cx / fx + slack_x), (width - cx) / fx + slack_x)
    ty = (p[:, 1] / z_safe).clamp(-(cy / fy + slack_y), (height - cy) / fy + slack_y)
    zero = torch.zeros_like(z)
    # Jacobian of (fx x/z + cx, fy y/z + cy) w.r.t. (x, y, z), with tx = x/z and ty = y/z clamped
    J_entries = [fx / z_safe, zero, -fx * tx / z_safe, zero, fy / z_safe, -fy * ty / z_safe]
    J = torch.stack(J_entries, dim=-1).reshape(-1, 2, 3)  # (G, 2, 3)
    cov2d = J @ cov_cam @ J.transpose(1, 2)  # (G, 2, 2)
    a = cov2d[:, 0, 0] + LOWPASS
    b = cov2d[:, 0, 1]
    c = cov2d[:, 1, 1] + LOWPASS
    det = a * c - b * b
    ok = in_front & (det > 0)
    det_safe = torch.where(ok, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)

    opacities = torch.sigmoid(gaussians.opacity_logits)
    dirs = gaussians.means - c2w[:3, 3]
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    colors = eval_sh(gaussians.sh, dirs)

    with torch.no_grad():
        # alpha >= ALPHA_MIN  <=>  d^T conic d <= 2 ln(o / ALPHA_MIN); the ellipse's half-extents per axis
        r2 = 2.0 * torch.log(opacities / ALPHA_MIN).clamp_min(0.0)
        extents = torch.stack([(r2 * a).clamp_min(0).sqrt(), (r2 * c).clamp_min(0).sqrt()], dim=-1)
        extents = torch.where(ok[:, None], extents, torch.zeros_like(extents))
        on_image = (u + extents[:, 0] >= 0) & (u - extents[:, 0] <= width)
        on_image &= (v + extents[:, 1] >= 0) & (v - extents[:, 1] <= height)
        visible = ok & (opacities >= ALPHA_MIN) & on_image
    return Projected(
        means2d=torch.stack([u, v], dim=-1),
        conics=conics,
        depths=z,
        opacities=opacities,
        colors=colors,
        extents=extents,
        visible=visible,
    )


def sorted_visible(proj: Projected) -> Projected:
    """The visible Gaussians of ``proj``, front to back (stable sort by depth); differentiable gather."""
    idx = proj.visible.nonzero()[:, 0]
    order = torch.sort(proj.depths.detach()[idx], stable=True).indices
    idx = idx[order]
    return Projected(
        means2d=proj.means2d[idx],
        conics=proj.conics[idx],
        depths=proj.depths[idx],
        opacities=proj.opacities[idx],
        colors=proj.colors[idx],
        extents=proj.extents[idx],
        visible=proj.visible[idx],
    )
