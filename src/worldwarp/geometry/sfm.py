"""Camera poses of an image sequence by structure from motion (COLMAP through pycolmap, on CPU).

One estimator shared by the evaluator's camera-accuracy metric (:mod:`worldwarp.eval.poses`) and camera paths
taken from a reference video (:mod:`worldwarp.trajectory.from_video`). Protocol (DESIGN.md section 2):

* a PINHOLE camera with the given intrinsics, kept fixed everywhere (bundle adjustment and absolute pose), or,
  with ``refine_focal=True``, a SIMPLE_PINHOLE camera whose one focal length starts from the given K and is
  refined (the principal point stays fixed);
* SIFT with peak threshold 0.002 (COLMAP's 0.0067 finds too few keypoints on generated frames), exhaustive
  matching (or sequential matching with an overlap, for long clips);
* the incremental mapper once per seed, keeping the best-tracked model: most registered images, then the
  longest mean track, then the lowest mean reprojection error;
* :func:`check_reconstruction` names what makes a kept model unusable (no model, too few frames registered, a
  high reprojection error); the evaluator records it, the video path extractor refuses such a model.

pycolmap is imported when a function runs, never at import time.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "PoseEstimate",
    "PoseEstimatorConfig",
    "ReconstructionChecks",
    "check_reconstruction",
    "estimate_poses",
]

ProgressFn = Callable[[float, str], None]


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
        matching: ``"exhaustive"`` (every pair; the evaluator's choice) or ``"sequential"`` (each frame with
            the next ``sequential_overlap`` frames; linear in the number of frames).
        sequential_overlap: neighbours matched per frame in sequential matching.
        refine_focal: refine one focal length (SIMPLE_PINHOLE) starting from the given K instead of keeping K
            fixed; the principal point and distortion are never refined.
        verbose: keep COLMAP's log on stderr (by default it is silent; :func:`check_reconstruction` says what
            went wrong).
    """

    peak_threshold: float = 0.002
    max_num_features: int = 8192
    seeds: tuple[int, ...] = (0, 1, 2)
    min_num_matches: int = 15
    init_min_tri_angle: float = 4.0
    num_threads: int = -1
    max_image_size: int = -1
    matching: Literal["exhaustive", "sequential"] = "exhaustive"
    sequential_overlap: int = 10
    refine_focal: bool = False
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.matching not in ("exhaustive", "sequential"):
            raise ValueError(f"matching must be 'exhaustive' or 'sequential', got {self.matching!r}")
        if not self.seeds:
            raise ValueError("seeds must name at least one mapper seed")


@dataclass
class PoseEstimate:
    """Result of :func:`estimate_poses` for N frames.

    Attributes:
        c2w: (N, 4, 4) float64 OpenCV c2w in the model's frame and scale; identity where not registered.
        registered: (N,) bool.
        mean_track_length, mean_reprojection_error, num_points: quality of the kept model.
        seed: mapper seed of the kept model; ``models`` lists (seed, registered, track, reprojection) of every
            candidate model.
        K: (3, 3) float64 intrinsics of the kept model (the given K unless ``refine_focal``); None without one.
        median_depth: (N,) float64 median z-depth of the 3D points each registered frame observes, in the
            model's scale (NaN where not registered or without points).
        points: (M, 3) float64 3D points of the kept model (world frame of ``c2w``).
    """

    c2w: Tensor
    registered: Tensor
    mean_track_length: float = 0.0
    mean_reprojection_error: float = float("nan")
    num_points: int = 0
    seed: int = -1
    models: list[tuple[int, int, float, float]] = field(default_factory=list)
    K: Tensor | None = None
    median_depth: Tensor | None = None
    points: Tensor | None = None

    @property
    def unregistered(self) -> list[int]:
        return [int(i) for i in (~self.registered).nonzero().flatten()]


@dataclass(frozen=True)
class ReconstructionChecks:
    """Limits of :func:`check_reconstruction`.

    Attributes:
        min_registered: fewest registered frames a usable model has.
        min_registered_fraction: smallest share of the input frames a usable model registers.
        max_reprojection_error: largest mean reprojection error (pixels) of a usable model.
    """

    min_registered: int = 3
    min_registered_fraction: float = 0.5
    max_reprojection_error: float = 2.0


def check_reconstruction(estimate: PoseEstimate, checks: ReconstructionChecks | None = None) -> str | None:
    """What makes ``estimate`` unusable, as one line, or None when it passes ``checks``."""
    checks = checks or ReconstructionChecks()
    n = int(estimate.registered.numel())
    k = int(estimate.registered.sum())
    if k == 0:
        return (
            "structure from motion found no 3D model: too few features match between frames (a textureless or "
            "blurred clip) or the camera does not move enough to triangulate (a camera that only rotates)"
        )
    if k < checks.min_registered or k < checks.min_registered_fraction * n:
        return (
            f"structure from motion registered only {k} of {n} frames (at least "
            f"{max(checks.min_registered, math.ceil(checks.min_registered_fraction * n))} needed): the clip "
            "breaks apart (fast motion, cuts, textureless stretches) or the camera only rotates"
        )
    if not estimate.mean_reprojection_error <= checks.max_reprojection_error:
        return (
            f"the 3D model does not fit its frames (mean reprojection error "
            f"{estimate.mean_reprojection_error:.2f} px > {checks.max_reprojection_error:g} px)"
        )
    return None


def _write_frames(frames: Tensor, folder: Path) -> list[str]:
    from PIL import Image

    names = []
    if frames.dtype == torch.uint8:
        arr = frames.permute(0, 2, 3, 1).cpu().numpy()
    else:
        arr = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    for i, a in enumerate(arr):
        name = f"frame_{i:05d}.png"
        Image.fromarray(np.ascontiguousarray(a)).save(folder / name)
        names.append(name)
    return names


def estimate_poses(
    frames: Tensor,
    K: Tensor,
    config: PoseEstimatorConfig | None = None,
    *,
    progress: ProgressFn | None = None,
) -> PoseEstimate:
    """Estimate c2w poses of ``frames`` (N, 3, H, W) with intrinsics ``K`` (3, 3) in pixels of those frames.

    ``frames`` are float in [0, 1] or uint8. Runs SIFT extraction, matching and incremental mapping once per
    seed in a temporary folder. K is fixed unless ``config.refine_focal`` (then it is the starting focal
    length). Frames not in the kept model are reported in ``registered``. ``progress(fraction, message)`` is
    called between stages.
    """
    import pycolmap

    config = config or PoseEstimatorConfig()
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (N, 3, H, W), got {tuple(frames.shape)}")
    K = torch.as_tensor(K, dtype=torch.float64).cpu()
    previous_level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 0 if config.verbose else 3  # 3 = fatal only: failures are reported by us
    try:
        return _estimate(pycolmap, frames, K, config, progress or (lambda f, m: None))
    finally:
        pycolmap.logging.minloglevel = previous_level


def _median_depths(rec, index: dict[str, int], n: int) -> Tensor:
    """(N,) median z-depth of the points each registered image observes (NaN without any)."""
    out = torch.full((n,), float("nan"), dtype=torch.float64)
    xyz = {pid: np.asarray(p.xyz) for pid, p in rec.points3D.items()}
    for image in rec.images.values():
        if not image.has_pose:
            continue
        ids = [p.point3D_id for p in image.points2D if p.has_point3D()]
        if not ids:
            continue
        pts = np.stack([xyz[i] for i in ids if i in xyz])
        m = np.asarray(image.cam_from_world().matrix())
        z = pts @ m[2, :3] + m[2, 3]
        out[index[image.name]] = float(np.median(z))
    return out


def _estimate(pycolmap, frames: Tensor, K: Tensor, config: PoseEstimatorConfig, progress: ProgressFn) -> PoseEstimate:
    n = frames.shape[0]
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    with tempfile.TemporaryDirectory(prefix="worldwarp-poses-") as tmp:
        root = Path(tmp)
        images = root / "images"
        images.mkdir()
        names = _write_frames(frames, images)
        db = root / "database.db"
        reader = pycolmap.ImageReaderOptions()
        if config.refine_focal:
            reader.camera_model = "SIMPLE_PINHOLE"
            reader.camera_params = f"{0.5 * (fx + fy)},{cx},{cy}"
        else:
            reader.camera_model = "PINHOLE"
            reader.camera_params = f"{fx},{fy},{cx},{cy}"
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.sift.peak_threshold = config.peak_threshold
        extraction.sift.max_num_features = config.max_num_features
        extraction.num_threads = config.num_threads
        extraction.max_image_size = config.max_image_size
        pycolmap.set_random_seed(0)
        progress(0.0, f"finding features in {n} frames")
        pycolmap.extract_features(
            db,
            images,
            image_names=names,
            camera_mode=pycolmap.CameraMode.SINGLE,
            reader_options=reader,
            extraction_options=extraction,
            device=pycolmap.Device.cpu,
        )
        progress(0.2, "matching frames")
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = config.num_threads
        if config.matching == "sequential":
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = config.sequential_overlap
            pairing.quadratic_overlap = False
            pycolmap.match_sequential(
                db, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu
            )
        else:
            pycolmap.match_exhaustive(db, matching_options=matching, device=pycolmap.Device.cpu)

        best_key: tuple[int, float, float] | None = None
        best = None
        best_seed = -1
        models: list[tuple[int, int, float, float]] = []
        for k, seed in enumerate(config.seeds):
            progress(0.4 + 0.6 * k / len(config.seeds), f"reconstructing (seed {k + 1} of {len(config.seeds)})")
            opts = pycolmap.IncrementalPipelineOptions()
            opts.random_seed = seed
            opts.num_threads = config.num_threads
            opts.min_num_matches = config.min_num_matches
            opts.ba_refine_focal_length = config.refine_focal
            opts.ba_refine_principal_point = False
            opts.ba_refine_extra_params = False
            opts.mapper.abs_pose_refine_focal_length = config.refine_focal
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
        progress(1.0, "reconstruction done")
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
        camera = next(iter(best.cameras.values()))
        K_out = torch.as_tensor(np.asarray(camera.calibration_matrix()), dtype=torch.float64)
        points = (
            torch.as_tensor(np.stack([np.asarray(p.xyz) for p in best.points3D.values()]), dtype=torch.float64)
            if best.num_points3D()
            else torch.zeros(0, 3, dtype=torch.float64)
        )
        return PoseEstimate(
            c2w=c2w,
            registered=registered,
            mean_track_length=float(best.compute_mean_track_length()),
            mean_reprojection_error=float(best.compute_mean_reprojection_error()),
            num_points=int(best.num_points3D()),
            seed=best_seed,
            models=models,
            K=K_out,
            median_depth=_median_depths(best, index, n),
            points=points,
        )
