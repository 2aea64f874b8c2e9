"""Camera poses of an image sequence by structure from motion (COLMAP through pycolmap, on CPU).

One estimator shared by the evaluator's camera-accuracy metric (:mod:`worldwarp.eval.poses`) and camera paths
taken from a reference video (:mod:`worldwarp.trajectory.from_video`). Protocol (DESIGN.md section 2):

* a PINHOLE camera with the given intrinsics, kept fixed everywhere (bundle adjustment and absolute pose), or,
  with ``refine_focal=True``, a SIMPLE_PINHOLE camera whose one focal length starts from the given K and is
  refined (the principal point stays fixed);
* SIFT with peak threshold 0.002 (COLMAP's 0.0067 finds too few keypoints on generated frames), exhaustive
  matching (or sequential matching with an overlap, for long clips);
* two-view verification with COLMAP's preference for homographies (``max_h_inlier_ratio`` 0.8), or without it
  (1.0: every pair gets an essential matrix; camera paths from videos use this, see below);
* optionally (``rotation_only_share``) a test before mapping whether a rotation about the camera centre explains
  the matches of (almost) every frame pair (:func:`pure_rotation_fit`); then no model is built and
  :func:`check_reconstruction` says the camera only rotates;
* ``mapper="incremental"``: the incremental mapper once per seed, keeping the best-tracked model (most registered
  images, then the longest mean track, then the lowest mean reprojection error); ``mapper="global"``: global
  SfM (rotation averaging, global positioning, bundle adjustment; pycolmap's GLOMAP) once, with the incremental
  mapper as a fallback when the global model registers too few frames;
* :func:`check_reconstruction` names what makes a kept model unusable (no model, too few frames registered, a
  high reprojection error); the evaluator records it, the video path extractor refuses such a model.

pycolmap is imported when a function runs, never at import time.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
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
    "fit_rotation",
    "pure_rotation_fit",
    "rotation_residual",
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
        max_h_inlier_ratio: two-view verification treats a pair as planar (pose from the homography) when the
            homography explains more than this share of the essential matrix's inliers; COLMAP's 0.8 by
            default, 1.0 = never (the pose always comes from the essential matrix). On a dolly towards a wall
            the homography's two decompositions make about half of the planar pairs' rotations wrong.
        mapper: ``"incremental"`` (the mapper once per seed) or ``"global"`` (global SfM once, seeded with the
            first seed; the incremental mapper with every seed only when the global model registers fewer
            than ``global_min_registered`` of the frames, keeping whichever registers more).
        global_max_reprojection_error: global SfM's limit on an observation's reprojection error, in units of
            the focal length (pycolmap's 0.01 is 5 px on 500-px focal lengths; 0.004 drops more outliers).
        global_min_registered: share of the frames below which a global model is followed by the incremental
            mapper.
        rotation_only_share: when set, test before mapping whether a rotation about the camera centre
            explains the matches of the frame pairs (:func:`pure_rotation_fit`); if it explains at least this
            share of the pairs, no model is built (``PoseEstimate.rotation_only``).
        rotation_residual: largest median reprojection error of such a rotation, as a share of the frames'
            longer side (2 px on 360-px frames, never under 2 px: keypoint noise does not shrink with the
            frames), for a pair to count as explained by it.
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
    max_h_inlier_ratio: float = 0.8
    mapper: Literal["incremental", "global"] = "incremental"
    global_max_reprojection_error: float = 0.004
    global_min_registered: float = 0.5
    rotation_only_share: float | None = None
    rotation_residual: float = 2.0 / 360
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.matching not in ("exhaustive", "sequential"):
            raise ValueError(f"matching must be 'exhaustive' or 'sequential', got {self.matching!r}")
        if self.mapper not in ("incremental", "global"):
            raise ValueError(f"mapper must be 'incremental' or 'global', got {self.mapper!r}")
        if not 0 < self.max_h_inlier_ratio <= 1:
            raise ValueError(f"max_h_inlier_ratio must lie in (0, 1], got {self.max_h_inlier_ratio}")
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
        mapper: ``"incremental"`` or ``"global"``: what made the kept model ("" without one).
        K: (3, 3) float64 intrinsics of the kept model (the given K unless ``refine_focal``); None without one.
        median_depth: (N,) float64 median z-depth of the 3D points each registered frame observes, in the
            model's scale (NaN where not registered or without points).
        points: (M, 3) float64 3D points of the kept model (world frame of ``c2w``).
        rotation_share: share of the tested frame pairs a rotation about the camera centre explains (None when
            not tested); ``rotation_only``: the test stopped the estimate before mapping (no model).
        rotation_pairs: frame pairs the rotation test looked at.
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
    mapper: str = ""
    rotation_share: float | None = None
    rotation_only: bool = False
    rotation_pairs: int = 0

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
    if estimate.rotation_only:
        return (
            f"the camera only rotates: a rotation about the camera centre explains the matches of "
            f"{100 * (estimate.rotation_share or 0.0):.0f}% of {estimate.rotation_pairs} frame pairs (no parallax, "
            "so no camera path can be triangulated)"
        )
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


# ---------------------------------------------------------------------------------------------- pure rotation
def _rays(x: np.ndarray, focal: tuple[float, float], principal: tuple[float, float]) -> np.ndarray:
    r = np.ones((len(x), 3))
    r[:, 0] = (x[:, 0] - principal[0]) / focal[0]
    r[:, 1] = (x[:, 1] - principal[1]) / focal[1]
    return r / np.linalg.norm(r, axis=1, keepdims=True)


def _focal_pair(focal: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(focal, tuple):
        return float(focal[0]), float(focal[1])
    return float(focal), float(focal)


def fit_rotation(
    x1: np.ndarray, x2: np.ndarray, focal: float | tuple[float, float], principal: tuple[float, float]
) -> np.ndarray:
    """The rotation R (3, 3) that best turns the viewing rays of pixels ``x1`` (N, 2) into those of ``x2`` (N, 2).

    Both views share the pinhole intrinsics ``focal`` (f or (fx, fy)) and ``principal`` (cx, cy); a camera
    that only rotates maps x1 to x2 ~ K R K^-1 x1. Least squares on the unit rays (Wahba's problem, solved
    by an SVD), so outliers must already be removed.
    """
    f = _focal_pair(focal)
    r1, r2 = _rays(np.asarray(x1, np.float64), f, principal), _rays(np.asarray(x2, np.float64), f, principal)
    u, _, vt = np.linalg.svd(r2.T @ r1)
    d = np.diag([1.0, 1.0, float(np.sign(np.linalg.det(u @ vt)))])
    return u @ d @ vt


def rotation_residual(
    x1: np.ndarray, x2: np.ndarray, focal: float | tuple[float, float], principal: tuple[float, float]
) -> tuple[float, np.ndarray]:
    """(median reprojection error in pixels, R) of the best pure rotation (:func:`fit_rotation`) from ``x1`` to
    ``x2``; points that the rotation turns behind the camera count as infinitely far off."""
    f = _focal_pair(focal)
    x1, x2 = np.asarray(x1, np.float64), np.asarray(x2, np.float64)
    R = fit_rotation(x1, x2, f, principal)
    p = _rays(x1, f, principal) @ R.T
    with np.errstate(divide="ignore", invalid="ignore"):
        u = p[:, 0] / p[:, 2] * f[0] + principal[0]
        v = p[:, 1] / p[:, 2] * f[1] + principal[1]
        err = np.hypot(u - x2[:, 0], v - x2[:, 1])
    err[~(p[:, 2] > 1e-6)] = np.inf
    return float(np.median(err)), R


def pure_rotation_fit(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    principal: tuple[float, float],
    focals: Sequence[float | tuple[float, float]],
) -> tuple[float | tuple[float, float], list[float]]:
    """How well one camera that only rotates explains matched pixels of several view pairs.

    Args:
        pairs: (x1, x2) matched pixels (N, 2) of each pair (inliers of the two-view verification).
        principal: the principal point.
        focals: candidate focal lengths (f or (fx, fy)); one value when the intrinsics are known.

    Returns:
        the candidate focal length with the smallest median over pairs of :func:`rotation_residual`, and each
        pair's residual (pixels) at that focal length.
    """
    if not pairs or not focals:
        raise ValueError("need at least one pair and one focal length")
    best: tuple[float, float | tuple[float, float], list[float]] | None = None
    for f in focals:
        res = [rotation_residual(x1, x2, f, principal)[0] for x1, x2 in pairs]
        key = float(np.median(res))
        if best is None or key < best[0]:
            best = (key, f, res)
    assert best is not None
    return best[1], best[2]


def _rotation_share(pycolmap, db_path: Path, K: Tensor, config: PoseEstimatorConfig, size: int) -> tuple[float, int]:
    """(share of the verified frame pairs a pure rotation explains, pairs tested); (nan, 0) without pairs."""
    db = pycolmap.Database.open(str(db_path))
    try:
        pair_ids, geometries = db.read_two_view_geometries()
        keypoints: dict[int, np.ndarray] = {}
        pairs = []
        for pair_id, geometry in zip(pair_ids, geometries, strict=True):
            m = np.asarray(geometry.inlier_matches)
            if len(m) < max(30, config.min_num_matches):
                continue
            i1, i2 = pycolmap.pair_id_to_image_pair(pair_id)
            for i in (i1, i2):
                if i not in keypoints:
                    keypoints[i] = np.asarray(db.read_keypoints(i))[:, :2].astype(np.float64)
            if len(m) > 200:  # evenly spaced, deterministic
                m = m[np.linspace(0, len(m) - 1, 200).round().astype(int)]
            pairs.append((keypoints[i1][m[:, 0]], keypoints[i2][m[:, 1]]))
    finally:
        db.close()
    if not pairs:
        return math.nan, 0
    principal = (float(K[0, 2]), float(K[1, 2]))
    if config.refine_focal:  # the focal length is unknown: the one that explains the pairs best
        width = 2.0 * principal[0]
        grid = np.arange(15.0, 130.01, 2.5)
        sub = pairs[:: max(1, len(pairs) // 60)]
        f0, _ = pure_rotation_fit(sub, principal, [0.5 * width / math.tan(math.radians(a) / 2) for a in grid])
        fov0 = 2 * math.degrees(math.atan(0.5 * width / float(f0)))  # type: ignore[arg-type]
        fine = np.arange(max(5.0, fov0 - 2.5), min(170.0, fov0 + 2.5) + 1e-9, 0.25)
        focals: list[float | tuple[float, float]] = [0.5 * width / math.tan(math.radians(a) / 2) for a in fine]
    else:
        focals = [(float(K[0, 0]), float(K[1, 1]))]
    focal, res = pure_rotation_fit(pairs, principal, focals)
    if config.refine_focal:
        _, res = pure_rotation_fit(pairs, principal, [focal])
    limit = max(2.0, config.rotation_residual * size)
    return float(np.mean(np.asarray(res) <= limit)), len(pairs)


# ---------------------------------------------------------------------------------------------- mapping
def _model_key(rec) -> tuple[int, float, float]:
    reg = rec.num_reg_images()
    track = float(rec.compute_mean_track_length()) if rec.num_points3D() else 0.0
    reproj = float(rec.compute_mean_reprojection_error()) if rec.num_points3D() else math.inf
    return reg, track, -reproj


def _incremental(pycolmap, db: Path, images: Path, out: Path, seed: int, config: PoseEstimatorConfig) -> list:
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
    out.mkdir()
    pycolmap.set_random_seed(seed)
    return list(pycolmap.incremental_mapping(db, images, out, options=opts).values())


def _global(pycolmap, db: Path, images: Path, out: Path, seed: int, config: PoseEstimatorConfig) -> list:
    opts = pycolmap.GlobalPipelineOptions()
    opts.random_seed = seed
    opts.num_threads = config.num_threads
    opts.min_num_matches = config.min_num_matches
    m = opts.mapper
    m.num_threads = config.num_threads
    m.random_seed = seed
    m.rotation_averaging.random_seed = seed
    m.global_positioning.random_seed = seed
    m.global_positioning.use_gpu = False
    m.retriangulation.random_seed = seed
    m.max_normalized_reproj_error = config.global_max_reprojection_error
    ba = m.bundle_adjustment
    ba.refine_focal_length = config.refine_focal
    ba.refine_principal_point = False
    ba.refine_extra_params = False
    ba.ceres.use_gpu = False
    out.mkdir()
    pycolmap.set_random_seed(seed)
    return list(pycolmap.global_mapping(db, images, out, options=opts).values())


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
        verification = pycolmap.TwoViewGeometryOptions()
        verification.max_H_inlier_ratio = config.max_h_inlier_ratio
        verification.ransac.random_seed = 0
        if config.matching == "sequential":
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = config.sequential_overlap
            pairing.quadratic_overlap = False
            pycolmap.match_sequential(
                db,
                matching_options=matching,
                pairing_options=pairing,
                verification_options=verification,
                device=pycolmap.Device.cpu,
            )
        else:
            pycolmap.match_exhaustive(
                db, matching_options=matching, verification_options=verification, device=pycolmap.Device.cpu
            )
        c2w = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
        registered = torch.zeros(n, dtype=torch.bool)
        share: float | None = None
        tested = 0
        if config.rotation_only_share is not None:
            progress(0.35, "testing for a camera that only rotates")
            share, tested = _rotation_share(pycolmap, db, K, config, max(frames.shape[-2:]))
            if tested and share >= config.rotation_only_share:
                return PoseEstimate(c2w, registered, rotation_share=share, rotation_only=True, rotation_pairs=tested)
            if not tested:
                share = None

        best_key: tuple[int, float, float] | None = None
        best = None
        best_seed, best_mapper = -1, ""
        models: list[tuple[int, int, float, float]] = []

        def consider(recs: list, seed: int, mapper: str) -> None:
            nonlocal best_key, best, best_seed, best_mapper
            for rec in recs:
                key = _model_key(rec)
                models.append((seed, key[0], key[1], -key[2]))
                if best_key is None or key > best_key:
                    best_key, best, best_seed, best_mapper = key, rec, seed, mapper

        incremental_seeds: tuple[int, ...] = config.seeds
        if config.mapper == "global":
            progress(0.4, "reconstructing (global SfM)")
            consider(_global(pycolmap, db, images, root / "global", config.seeds[0], config), config.seeds[0], "global")
            if best_key is not None and best_key[0] >= config.global_min_registered * n:
                incremental_seeds = ()
        for k, seed in enumerate(incremental_seeds):
            progress(
                0.4 + 0.6 * k / len(incremental_seeds), f"reconstructing (seed {k + 1} of {len(incremental_seeds)})"
            )
            before = best_key
            recs = _incremental(pycolmap, db, images, root / f"sparse_{seed}", seed, config)
            if config.mapper == "global" and before is not None:  # replaces the global model only with more frames
                recs = [r for r in recs if r.num_reg_images() > before[0]]
            consider(recs, seed, "incremental")
        progress(1.0, "reconstruction done")
        if best is None:
            return PoseEstimate(c2w, registered, models=models, rotation_share=share, rotation_pairs=tested)
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
            mapper=best_mapper,
            rotation_share=share,
            rotation_pairs=tested,
        )
