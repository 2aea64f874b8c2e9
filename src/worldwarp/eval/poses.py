"""Camera accuracy of a generated video: pose errors and pose estimation (pycolmap, known intrinsics).

Protocol (DESIGN.md section 2): express the estimated and the reference poses relative to frame 0, normalise
translations so that the furthest camera lies at distance 1 from frame 0, then per frame

* ``Rdist = arccos((tr(R_gen R_gt^T) - 1) / 2)`` (radians) and
* ``Tdist = ||t_gt - t_gen||`` (unit-free, after normalisation),

reported as mean and sum over frames. A Sim(3)-aligned error (Umeyama on the camera centres) is reported
beside it: it forgives a global rotation/scale of the estimate, which hides estimator failures such as a
tilted ground plane, so it never replaces the plain numbers.

Pose estimation runs COLMAP (pycolmap >= 3.10, checked with 4.2) with the intrinsics fixed, SIFT peak
threshold 0.002, exhaustive matching and several mapper seeds, keeping the best-tracked model: most
registered images, then the longest mean track, then the lowest mean reprojection error. The estimator lives
in :mod:`worldwarp.geometry.sfm` (camera paths from reference videos use it too) and is re-exported here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from worldwarp.geometry.sfm import (
    PoseEstimate,
    PoseEstimatorConfig,
    ReconstructionChecks,
    check_reconstruction,
    estimate_poses,
)

__all__ = [
    "PoseErrors",
    "PoseEstimate",
    "PoseEstimatorConfig",
    "ReconstructionChecks",
    "camera_errors",
    "check_reconstruction",
    "estimate_poses",
    "normalized_relative_poses",
    "rotation_distance",
    "translation_distance",
    "umeyama",
]


# ---------------------------------------------------------------------------------------------- errors
def normalized_relative_poses(c2w: Tensor) -> Tensor:
    """Poses (N, 4, 4) c2w re-expressed relative to frame 0, translations scaled so max ||t|| = 1.

    A path that does not move keeps its (zero) translations.
    """
    c2w = torch.as_tensor(c2w, dtype=torch.float64)
    inv0 = torch.linalg.inv(c2w[0])
    rel = inv0[None] @ c2w  # (N, 4, 4), frame 0 = identity
    scale = rel[:, :3, 3].norm(dim=-1).max()
    if scale > 1e-12:
        rel = rel.clone()
        rel[:, :3, 3] = rel[:, :3, 3] / scale
    return rel


def rotation_distance(R_gen: Tensor, R_gt: Tensor) -> Tensor:
    """Geodesic angle (radians) between rotations (..., 3, 3): arccos((tr(R_gen R_gt^T) - 1) / 2)."""
    tr = torch.einsum("...ij,...ij->...", R_gen, R_gt)  # tr(A B^T) = sum_ij A_ij B_ij
    return torch.arccos(((tr - 1) / 2).clamp(-1.0, 1.0))


def translation_distance(t_gen: Tensor, t_gt: Tensor) -> Tensor:
    """Euclidean distance ||t_gt - t_gen|| over the last axis."""
    return (t_gt - t_gen).norm(dim=-1)


def umeyama(
    src: Tensor,
    dst: Tensor,
    with_scale: bool = True,
    rot_src: Tensor | None = None,
    rot_dst: Tensor | None = None,
    rotation_weight: float = 1.0,
) -> tuple[float, Tensor, Tensor]:
    """Least-squares similarity (s, R (3, 3), t (3,)) with ``dst ~ s R src + t`` for points (N, 3).

    Umeyama (1991). Camera centres on a nearly straight path leave the rotation about that line undetermined;
    passing the cameras' orientations ``rot_src``/``rot_dst`` (N, 3, 3) adds the term
    ``rotation_weight * mean_i tr(R^T rot_dst_i rot_src_i^T)`` to the rotation objective (the centres' term is
    their cross-covariance, so with normalised paths of extent 1 a weight of 1 favours the orientations),
    pinning the rotation by the orientations too. Scale and translation still come from the centres only.
    An exact similarity between the inputs is recovered exactly either way.
    """
    src = torch.as_tensor(src, dtype=torch.float64)
    dst = torch.as_tensor(dst, dtype=torch.float64)
    n = src.shape[0]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / n  # (3, 3)
    if rot_src is not None and rot_dst is not None:
        cov = cov + rotation_weight * (rot_dst.to(cov) @ rot_src.to(cov).transpose(1, 2)).mean(0)
    U, _, Vh = torch.linalg.svd(cov)
    D = torch.ones(3, dtype=src.dtype)
    if torch.det(U) * torch.det(Vh) < 0:
        D[-1] = -1.0
    R = U @ torch.diag(D) @ Vh
    var_s = (xs**2).sum() / n
    s = float((xd * (xs @ R.T)).sum() / n / var_s) if with_scale and var_s > 1e-24 else 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t


@dataclass
class PoseErrors:
    """Per-frame and summary camera errors of one estimated path against the reference.

    ``rdist``/``tdist`` have one entry per frame of the path (NaN where a frame was not registered);
    ``*_mean`` and ``*_sum`` run over registered frames only.
    """

    rdist: list[float]
    tdist: list[float]
    rdist_mean: float
    rdist_sum: float
    tdist_mean: float
    tdist_sum: float
    rdist_sim3_mean: float
    tdist_sim3_mean: float
    registered: int
    total: int
    reference_frame: int

    def to_dict(self) -> dict:
        return asdict(self)


def camera_errors(gen_c2w: Tensor, gt_c2w: Tensor, valid: Tensor | None = None) -> PoseErrors:
    """Rdist/Tdist of the estimated poses ``gen_c2w`` (N, 4, 4) against ``gt_c2w`` (N, 4, 4), both c2w.

    ``valid`` (N,) bool marks frames with an estimate (default: all). Both paths are made relative to the
    first valid frame (frame 0 when it is registered) and normalised by their own furthest valid frame, so
    the estimate's unknown scale drops out. The Sim(3) numbers align the normalised estimated centres to the
    reference centres (Umeyama, with the orientations pinning the rotation, see :func:`umeyama`) and
    rotate the estimated orientations by the same rotation.
    """
    gen = torch.as_tensor(gen_c2w, dtype=torch.float64)
    gt = torch.as_tensor(gt_c2w, dtype=torch.float64)
    if gen.shape != gt.shape or gen.ndim != 3 or gen.shape[1:] != (4, 4):
        raise ValueError(f"pose shapes differ or are not (N, 4, 4): {tuple(gen.shape)} vs {tuple(gt.shape)}")
    n = gen.shape[0]
    valid = torch.ones(n, dtype=torch.bool) if valid is None else torch.as_tensor(valid, dtype=torch.bool)
    idx = valid.nonzero().flatten()
    nan = float("nan")
    rd = torch.full((n,), nan, dtype=torch.float64)
    td = torch.full((n,), nan, dtype=torch.float64)
    if len(idx) == 0:
        return PoseErrors(rd.tolist(), td.tolist(), nan, nan, nan, nan, nan, nan, 0, n, -1)
    g = normalized_relative_poses(gen[idx])
    r = normalized_relative_poses(gt[idx])
    rd_v = rotation_distance(g[:, :3, :3], r[:, :3, :3])
    td_v = translation_distance(g[:, :3, 3], r[:, :3, 3])
    rd[idx], td[idx] = rd_v, td_v
    if len(idx) >= 2:
        s, R, t = umeyama(g[:, :3, 3], r[:, :3, 3], rot_src=g[:, :3, :3], rot_dst=r[:, :3, :3])
        centres = s * g[:, :3, 3] @ R.T + t
        rots = R[None] @ g[:, :3, :3]
        rd_s = float(rotation_distance(rots, r[:, :3, :3]).mean())
        td_s = float(translation_distance(centres, r[:, :3, 3]).mean())
    else:
        rd_s, td_s = 0.0, 0.0
    return PoseErrors(
        rdist=rd.tolist(),
        tdist=td.tolist(),
        rdist_mean=float(rd_v.mean()),
        rdist_sum=float(rd_v.sum()),
        tdist_mean=float(td_v.mean()),
        tdist_sum=float(td_v.sum()),
        rdist_sim3_mean=rd_s,
        tdist_sim3_mean=td_s,
        registered=len(idx),
        total=n,
        reference_frame=int(idx[0]),
    )
