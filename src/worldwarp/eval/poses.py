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
registered images, then the longest mean track, then the lowest mean reprojection error.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "PoseErrors",
    "PoseEstimate",
    "PoseEstimatorConfig",
    "camera_errors",
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


# ---------------------------------------------------------------------------------------------- estimation
@dataclass
class PoseEstimatorConfig:
    """Settings of :func:`estimate_poses` (defaults: the protocol of DESIGN.md section 2).

    Attributes:
        peak_threshold: SIFT peak threshold (COLMAP's default 0.0067 finds too few keypoints on generated
            frames; 0.002 works).
        max_num_features: SIFT keypoints per image at most.
        seeds: mapper seeds; the best-tracked model over all seeds is kept.
        min_num_matches: minimum verified matches for an image pair to count.
        init_min_tri_angle: triangulation angle (degrees) required of the initial pair; COLMAP's 16 fails on
            short, slow clips, so the default is lower.
        num_threads: COLMAP threads (-1 = all cores).
        max_image_size: frames larger than this (longest side, pixels) are downscaled for SIFT (-1 = never).
        verbose: keep COLMAP's progress log on stderr (by default only its warnings and errors are shown).
    """

    peak_threshold: float = 0.002
    max_num_features: int = 8192
    seeds: tuple[int, ...] = (0, 1, 2)
    min_num_matches: int = 15
    init_min_tri_angle: float = 4.0
    num_threads: int = -1
    max_image_size: int = -1
    verbose: bool = False


@dataclass
class PoseEstimate:
    """Result of :func:`estimate_poses` for N frames.

    Attributes:
        c2w: (N, 4, 4) float64 OpenCV c2w in the model's frame and scale; identity where not registered.
        registered: (N,) bool.
        mean_track_length, mean_reprojection_error, num_points: quality of the kept model.
        seed: mapper seed of the kept model; ``models`` lists (seed, registered, track, reprojection) of every
            candidate model.
    """

    c2w: Tensor
    registered: Tensor
    mean_track_length: float = 0.0
    mean_reprojection_error: float = float("nan")
    num_points: int = 0
    seed: int = -1
    models: list[tuple[int, int, float, float]] = field(default_factory=list)

    @property
    def unregistered(self) -> list[int]:
        return [int(i) for i in (~self.registered).nonzero().flatten()]


def _write_frames(frames: Tensor, folder: Path) -> list[str]:
    from PIL import Image

    names = []
    arr = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    for i, a in enumerate(arr):
        name = f"frame_{i:05d}.png"
        Image.fromarray(np.ascontiguousarray(a)).save(folder / name)
        names.append(name)
    return names


def estimate_poses(frames: Tensor, K: Tensor, config: PoseEstimatorConfig | None = None) -> PoseEstimate:
    """Estimate c2w poses of ``frames`` (N, 3, H, W) in [0, 1] with known, fixed intrinsics ``K`` (3, 3).

    Runs SIFT extraction, exhaustive matching and incremental mapping once per seed in a temporary folder;
    nothing is refined about the camera (focal, principal point, distortion stay fixed). Frames not in the
    kept model are reported in ``registered``.
    """
    import pycolmap

    config = config or PoseEstimatorConfig()
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (N, 3, H, W), got {tuple(frames.shape)}")
    n = frames.shape[0]
    K = torch.as_tensor(K, dtype=torch.float64).cpu()
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    previous_level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 0 if config.verbose else 1  # 1 = warnings and errors
    try:
        return _estimate(pycolmap, frames, n, fx, fy, cx, cy, config)
    finally:
        pycolmap.logging.minloglevel = previous_level


def _estimate(pycolmap, frames: Tensor, n: int, fx: float, fy: float, cx: float, cy: float, config) -> PoseEstimate:
    with tempfile.TemporaryDirectory(prefix="worldwarp-poses-") as tmp:
        root = Path(tmp)
        images = root / "images"
        images.mkdir()
        names = _write_frames(frames, images)
        db = root / "database.db"
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "PINHOLE"
        reader.camera_params = f"{fx},{fy},{cx},{cy}"
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.sift.peak_threshold = config.peak_threshold
        extraction.sift.max_num_features = config.max_num_features
        extraction.num_threads = config.num_threads
        extraction.max_image_size = config.max_image_size
        pycolmap.set_random_seed(0)
        pycolmap.extract_features(
            db,
            images,
            image_names=names,
            camera_mode=pycolmap.CameraMode.SINGLE,
            reader_options=reader,
            extraction_options=extraction,
            device=pycolmap.Device.cpu,
        )
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = config.num_threads
        pycolmap.match_exhaustive(db, matching_options=matching, device=pycolmap.Device.cpu)

        best_key: tuple[int, float, float] | None = None
        best = None
        best_seed = -1
        models: list[tuple[int, int, float, float]] = []
        for seed in config.seeds:
            opts = pycolmap.IncrementalPipelineOptions()
            opts.random_seed = seed
            opts.num_threads = config.num_threads
            opts.min_num_matches = config.min_num_matches
            opts.ba_refine_focal_length = False
            opts.ba_refine_principal_point = False
            opts.ba_refine_extra_params = False
            opts.mapper.abs_pose_refine_focal_length = False
            opts.mapper.abs_pose_refine_extra_params = False
            opts.mapper.init_min_tri_angle = config.init_min_tri_angle
            opts.mapper.random_seed = seed
            opts.triangulation.random_seed = seed
            out = root / f"sparse_{seed}"
            out.mkdir()
            pycolmap.set_random_seed(seed)
            recs = pycolmap.incremental_mapping(db, images, out, options=opts)
            for rec in recs.values():
                reg = rec.num_reg_images()
                track = float(rec.compute_mean_track_length()) if rec.num_points3D() else 0.0
                reproj = float(rec.compute_mean_reprojection_error()) if rec.num_points3D() else math.inf
                models.append((seed, reg, track, reproj))
                key = (reg, track, -reproj)
                if best_key is None or key > best_key:
                    best_key, best, best_seed = key, rec, seed
        c2w = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
        registered = torch.zeros(n, dtype=torch.bool)
        if best is None:
            return PoseEstimate(c2w, registered, models=models)
        index = {name: i for i, name in enumerate(names)}
        for image in best.images.values():
            if not image.has_pose:
                continue
            i = index[image.name]
            w2c = torch.eye(4, dtype=torch.float64)
            w2c[:3, :4] = torch.as_tensor(np.asarray(image.cam_from_world().matrix()), dtype=torch.float64)
            c2w[i] = torch.linalg.inv(w2c)
            registered[i] = True
        return PoseEstimate(
            c2w=c2w,
            registered=registered,
            mean_track_length=float(best.compute_mean_track_length()),
            mean_reprojection_error=float(best.compute_mean_reprojection_error()),
            num_points=int(best.num_points3D()),
            seed=best_seed,
            models=models,
        )
