"""Camera paths taken from a reference video by structure from motion ("make my photo move like this clip").

:func:`extract_video_path` samples frames of a clip, runs the SfM estimator of :mod:`worldwarp.geometry.sfm`
(fixed intrinsics from a field of view or K, or one estimated focal length; two-view poses from essential
matrices, a test for a camera that only rotates before any mapping, global SfM with the incremental mapper as a
fallback), refuses a model that fails :func:`~worldwarp.geometry.sfm.check_reconstruction` or
the checks below, and returns a :class:`VideoPath`: one camera per video frame from the first to the last
registered frame (frames SfM did not register, or did not see because of ``every``, are interpolated:
cubic Hermite through the camera centres, slerp between orientations), expressed relative to its first camera.

Scale. SfM recovers a path only up to scale. A :class:`VideoPath` stores it with its **extent** (the largest
distance of a camera from the first one) equal to 1, together with the **scene depth**: the median depth of
the 3D points the first camera sees, in the same units. :meth:`VideoPath.normalized` writes it with the
extent, the longest step, or the scene depth equal to 1; :func:`video_trajectory_for_scene` puts it into the
scene of a start image by making the video's scene depth equal to the image's median depth, so the camera
moves as far, relative to what it sees, as the video's camera did.

Checks (each a :class:`VideoPathError` with one line, never a made-up path): a camera that only rotates (a
rotation about its centre explains the matches of most frame pairs; found in seconds), no model, too few frames
registered, a high reprojection error; an implausible estimated focal length; a gap of unregistered frames
too long to interpolate; a camera that hardly moves compared with the scene depth (pure rotation). A model
whose points lie mostly on one plane (ground-dominated clips, where SfM is known to tilt the motion) is kept
with a warning.

Extracted paths (and failures) are cached by the video's content digest and the settings
(:func:`video_path_cache_dir`), so previews and generations reuse them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from worldwarp.cameras import Cameras, intrinsics_from_fov
from worldwarp.errors import InputError
from worldwarp.trajectory.rotations import slerp

__all__ = [
    "NORMALIZATIONS",
    "VIDEO_SUFFIXES",
    "Normalization",
    "VideoPath",
    "VideoPathConfig",
    "VideoPathError",
    "extract_video_path",
    "interpolate_poses",
    "is_video_file",
    "parse_intrinsics",
    "speed_note",
    "video_digest",
    "video_path_cache_dir",
    "video_path_from_frames",
    "video_trajectory_for_scene",
]

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif", ".mpg", ".mpeg")
Normalization = Literal["extent", "step", "depth"]
NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)
ProgressFn = Callable[[float, str], None]
CACHE_VERSION = 2


class VideoPathError(InputError):
    """A clip from which no trustworthy camera path can be taken (the message says why, in one line)."""


def is_video_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a video by its extension (the file need not exist)."""
    return os.fspath(path).lower().endswith(VIDEO_SUFFIXES)


def parse_intrinsics(text: str) -> tuple[float, float, float, float]:
    """``"fx,fy,cx,cy"`` (pixels of the video's frames) -> a tuple; anything else is an :class:`InputError`."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values) or values[0] <= 0 or values[1] <= 0:
        raise InputError(f"intrinsics must be 'fx,fy,cx,cy' in pixels with fx, fy > 0, got {text!r}")
    return values  # type: ignore[return-value]


@dataclass(frozen=True)
class VideoPathConfig:
    """How a camera path is taken from a video.

    Attributes:
        fov_x_deg: the video's horizontal field of view (degrees): K is fixed to it.
        intrinsics: the video's ``(fx, fy, cx, cy)`` in pixels of its frames: K is fixed to it.
            With neither, one focal length is estimated, starting from ``focal_guess_deg``.
        focal_guess_deg: starting horizontal field of view of the focal estimate.
        fov_range_deg: an estimated field of view outside this range is refused (pass ``fov_x_deg``).
        every: SfM sees every ``every``-th frame (and the last); None picks the smallest step that keeps it
            to at most ``max_sfm_frames`` frames.
        max_sfm_frames: frames given to SfM when ``every`` is None.
        seeds: mapper seeds (global SfM uses the first; the incremental mapper, a fallback, all of them).
        mapper: ``"global"`` (global SfM, with the incremental mapper as a fallback when it registers fewer than
            half the frames) or ``"incremental"`` (the incremental mapper with every seed, the best-tracked
            model kept); see :class:`~worldwarp.geometry.sfm.PoseEstimatorConfig`.
        max_h_inlier_ratio: two-view verification's homography preference (1.0: poses always from essential
            matrices; COLMAP's 0.8 picks the wrong homography decomposition on planar scenes).
        rotation_only_share: refuse the clip before mapping when a rotation about the camera centre explains
            the matches of at least this share of the frame pairs (None: no such test).
        max_image_size: frames with a longer side are downscaled for feature extraction.
        exhaustive_up_to: exhaustive matching up to this many frames, sequential matching (overlap
            ``sequential_overlap``) beyond.
        min_registered_fraction: share of the sampled frames SfM must register.
        max_reprojection_error: largest mean reprojection error (pixels) of an accepted model.
        max_gap: longest run of video frames without a registered one that is interpolated (None:
            ``3 * every``); a longer gap inside the registered range is refused, at the ends it is cut off.
        min_motion: the path's extent must be at least this share of the scene depth.
        low_motion_warning: warn when the extent is below this share of the scene depth (the direction of
            a short translation is uncertain).
        plane_warning: warn when at least this share of the 3D points lies on one plane.
        num_threads: COLMAP threads (-1 = all cores).
    """

    fov_x_deg: float | None = None
    intrinsics: tuple[float, float, float, float] | None = None
    focal_guess_deg: float = 60.0
    fov_range_deg: tuple[float, float] = (15.0, 130.0)
    every: int | None = None
    max_sfm_frames: int = 40
    seeds: tuple[int, ...] = (0, 1, 2)
    mapper: Literal["global", "incremental"] = "global"
    max_h_inlier_ratio: float = 1.0
    rotation_only_share: float | None = 0.7
    max_image_size: int = 1024
    exhaustive_up_to: int = 60
    sequential_overlap: int = 12
    min_registered_fraction: float = 0.5
    max_reprojection_error: float = 2.0
    max_gap: int | None = None
    min_motion: float = 0.02
    low_motion_warning: float = 0.1
    plane_warning: float = 0.8
    num_threads: int = -1

    def __post_init__(self) -> None:
        if self.fov_x_deg is not None and self.intrinsics is not None:
            raise InputError("give the video's field of view or its intrinsics, not both")
        if self.fov_x_deg is not None and not 0 < self.fov_x_deg < 180:
            raise InputError(f"field of view must lie in (0, 180) degrees, got {self.fov_x_deg}")
        if self.every is not None and self.every < 1:
            raise InputError(f"--every must be >= 1, got {self.every}")
        if self.max_sfm_frames < 3:
            raise InputError(f"max_sfm_frames must be >= 3, got {self.max_sfm_frames}")
        if not self.seeds:
            raise InputError("at least one mapper seed is needed")
        if self.mapper not in ("global", "incremental"):
            raise InputError(f"mapper must be 'global' or 'incremental', got {self.mapper!r}")

    def fingerprint(self) -> str:
        """Digest of every setting that changes the extracted path (``num_threads`` does not)."""
        d = asdict(self)
        d.pop("num_threads")
        d["version"] = CACHE_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class VideoPath:
    """A camera path taken from a video.

    Attributes:
        cameras: one camera per video frame ``first_frame .. last_frame``; c2w relative to the first (identity),
            translations scaled so the path's extent (largest distance from the first camera) is 1 (0 for a
            path that does not move); K in pixels of the video's frames.
        first_frame, last_frame: the video frames the path covers (frames before/after were not registered).
        video_frames: frames in the video.
        registered: video frames whose pose SfM estimated; every other covered frame is interpolated.
        sampled: video frames given to SfM.
        scene_depth: median depth of the 3D points the first camera sees, in the path's units.
        focal: ``"fixed"`` (given field of view or intrinsics) or ``"estimated"``.
        fov_x_deg: the horizontal field of view of K.
        seed, mean_track_length, mean_reprojection_error, num_points: the kept SfM model; ``mapper`` made it
            (``"global"`` or ``"incremental"``).
        warnings: things the user should know (cut ends, a dominant plane).
        digest: sha256 of the video file ("" when built from frames).
    """

    cameras: Cameras
    first_frame: int
    last_frame: int
    video_frames: int
    registered: list[int]
    sampled: list[int]
    scene_depth: float
    focal: str
    fov_x_deg: float
    seed: int = -1
    mean_track_length: float = 0.0
    mean_reprojection_error: float = float("nan")
    num_points: int = 0
    warnings: list[str] = field(default_factory=list)
    digest: str = ""
    mapper: str = ""

    def __len__(self) -> int:
        return len(self.cameras)

    @property
    def interpolated(self) -> int:
        """Number of covered frames whose pose is interpolated."""
        return len(self.cameras) - len(self.registered)

    @property
    def extent(self) -> float:
        """Largest distance of a camera from the first one (1, or 0 for a still path)."""
        return float(self.cameras.centers.sub(self.cameras.centers[:1]).norm(dim=-1).max())

    def normalized(self, mode: Normalization = "extent") -> tuple[Cameras, float]:
        """The cameras with translations scaled so that the extent, the longest step or the scene depth is 1;
        returns them and the factor applied to the stored path."""
        if mode not in NORMALIZATIONS:
            raise InputError(f"unknown normalisation {mode!r}; use one of {', '.join(NORMALIZATIONS)}")
        c = self.cameras.centers
        if mode == "extent":
            unit = self.extent
        elif mode == "step":
            unit = float((c[1:] - c[:-1]).norm(dim=-1).max()) if len(c) > 1 else 0.0
        else:
            unit = self.scene_depth
        factor = 1.0 / unit if unit > 1e-12 else 1.0
        return scale_translations(self.cameras, factor), factor

    def summary(self, mode: Normalization = "extent") -> str:
        """One line: what was registered, what was interpolated and how the scale was chosen."""
        n = len(self.cameras)
        unit = {
            "extent": "the path's extent (largest distance from the first camera) is 1",
            "step": "the longest step between frames is 1",
            "depth": "the median scene depth seen from the first camera is 1",
        }[mode]
        span = "" if (self.first_frame, self.last_frame) == (0, self.video_frames - 1) else (
            f" (video frames {self.first_frame}-{self.last_frame} of {self.video_frames})"
        )  # fmt: skip
        return (
            f"{n} cameras{span}: {len(self.registered)} registered by SfM, {self.interpolated} interpolated; "
            f"relative to the first camera; scale: {unit}; focal {self.focal} "
            f"(horizontal field of view {self.fov_x_deg:.1f} deg); mean reprojection error "
            f"{self.mean_reprojection_error:.2f} px"
        )

    # ------------------------------------------------------------------ cache documents
    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "cameras"}
        d["c2w"] = self.cameras.c2w.tolist()
        d["K"] = self.cameras.K[0].tolist()
        d["height"], d["width"] = self.cameras.height, self.cameras.width
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VideoPath:
        d = dict(d)
        c2w = torch.tensor(d.pop("c2w"), dtype=torch.float64)
        K = torch.tensor(d.pop("K"), dtype=torch.float64)
        cams = Cameras(c2w, K, int(d.pop("height")), int(d.pop("width")))
        return cls(cameras=cams, **d)


def scale_translations(cameras: Cameras, factor: float) -> Cameras:
    """``cameras`` with every camera centre's offset from the first one multiplied by ``factor``."""
    c2w = cameras.c2w.clone()
    c2w[:, :3, 3] = c2w[:1, :3, 3] + (c2w[:, :3, 3] - c2w[:1, :3, 3]) * factor
    return Cameras(c2w, cameras.K, cameras.height, cameras.width)


# ---------------------------------------------------------------------------------------------- interpolation
def interpolate_poses(times: Tensor, c2w: Tensor, query: Tensor) -> Tensor:
    """c2w (Q, 4, 4) at ``query`` times from poses ``c2w`` (K, 4, 4) known at increasing ``times`` (K,).

    Centres follow a cubic Hermite spline with finite-difference tangents (Catmull-Rom for uneven knots:
    one-sided at the ends), orientations a slerp between the two neighbouring poses; known poses are
    reproduced exactly. ``query`` must lie within ``[times[0], times[-1]]``.
    """
    times = torch.as_tensor(times, dtype=torch.float64)
    c2w = torch.as_tensor(c2w, dtype=torch.float64)
    query = torch.as_tensor(query, dtype=torch.float64)
    k = times.numel()
    if k == 0 or c2w.shape != (k, 4, 4):
        raise ValueError(f"need K >= 1 poses (K, 4, 4) with K times, got {tuple(c2w.shape)} and {k} times")
    if k > 1 and not bool((times[1:] > times[:-1]).all()):
        raise ValueError("times must increase")
    if bool((query < times[0]).any() or (query > times[-1]).any()):
        raise ValueError("query times must lie within the known times")
    if k == 1:
        return c2w.expand(query.numel(), 4, 4).clone()
    p = c2w[:, :3, 3]
    m = torch.empty_like(p)
    m[1:-1] = (p[2:] - p[:-2]) / (times[2:] - times[:-2])[:, None]
    m[0] = (p[1] - p[0]) / (times[1] - times[0])
    m[-1] = (p[-1] - p[-2]) / (times[-1] - times[-2])
    i = (torch.searchsorted(times, query, right=True) - 1).clamp(0, k - 2)
    h = times[i + 1] - times[i]
    s = ((query - times[i]) / h)[:, None]
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    centres = h00 * p[i] + h10 * h[:, None] * m[i] + h01 * p[i + 1] + h11 * h[:, None] * m[i + 1]
    out = torch.zeros(query.numel(), 4, 4, dtype=torch.float64)
    out[:, :3, :3] = slerp(c2w[i, :3, :3], c2w[i + 1, :3, :3], s[:, 0])
    out[:, :3, 3] = centres
    out[:, 3, 3] = 1.0
    exact = times[i] == query
    out[exact] = c2w[i[exact]]
    exact = times[i + 1] == query
    out[exact] = c2w[i[exact] + 1]
    return out


def _dominant_plane_share(points: Tensor, tolerance: float, seed: int = 0, trials: int = 200) -> float:
    """Largest share of ``points`` (M, 3) within ``tolerance`` of one plane (RANSAC, seeded)."""
    m = points.shape[0]
    if m < 3:
        return 0.0
    gen = torch.Generator().manual_seed(seed)
    pts = points.to(torch.float64)
    if m > 20000:
        pts = pts[torch.randperm(m, generator=gen)[:20000]]
    tri = torch.randint(0, pts.shape[0], (trials, 3), generator=gen)
    a, b, c = pts[tri[:, 0]], pts[tri[:, 1]], pts[tri[:, 2]]
    n = torch.linalg.cross(b - a, c - a)
    norm = n.norm(dim=-1)
    ok = norm > 1e-12
    if not bool(ok.any()):
        return 0.0
    n, a = n[ok] / norm[ok, None], a[ok]
    dist = ((pts[None] - a[:, None]) * n[:, None]).sum(-1).abs()  # (T, M)
    return float((dist < tolerance).double().mean(1).max())


# ---------------------------------------------------------------------------------------------- extraction
def _sfm_intrinsics(config: VideoPathConfig, height: int, width: int) -> tuple[Tensor, bool]:
    """K (3, 3) in pixels of the video frames and whether the focal length is to be estimated."""
    if config.intrinsics is not None:
        fx, fy, cx, cy = config.intrinsics
        if not (0 <= cx <= width and 0 <= cy <= height):
            raise InputError(f"principal point ({cx}, {cy}) lies outside the {width}x{height} video frames")
        return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64), False
    if config.fov_x_deg is not None:
        return intrinsics_from_fov(height, width, fov_x_deg=config.fov_x_deg), False
    return intrinsics_from_fov(height, width, fov_x_deg=config.focal_guess_deg), True


def video_path_from_frames(
    frames: Tensor,
    indices: Sequence[int],
    total: int,
    config: VideoPathConfig | None = None,
    *,
    name: str = "video",
    progress: ProgressFn | None = None,
) -> VideoPath:
    """The camera path of a clip from its sampled frames.

    Args:
        frames: (M, 3, H, W) uint8 or float in [0, 1]: video frames ``indices``.
        indices: increasing video frame numbers of ``frames`` (M).
        total: frames in the video.
        config: settings (intrinsics, seeds, checks).
        name: what error messages call the clip.
        progress: ``progress(fraction, message)`` during SfM.

    Raises:
        VideoPathError: SfM cannot reconstruct the clip or the result fails a check (module docstring).
    """
    from worldwarp.geometry.sfm import PoseEstimatorConfig, ReconstructionChecks, check_reconstruction, estimate_poses

    config = config or VideoPathConfig()
    idx = [int(i) for i in indices]
    if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] != len(idx):
        raise ValueError(f"frames must be (M, 3, H, W) with M = len(indices), got {tuple(frames.shape)}")
    if len(idx) < 3:
        raise VideoPathError(f"{name}: {total} frame(s) are too few to take a camera path from (at least 3)")
    H, W = int(frames.shape[-2]), int(frames.shape[-1])
    K, estimate_focal = _sfm_intrinsics(config, H, W)
    sfm = PoseEstimatorConfig(
        seeds=tuple(config.seeds),
        num_threads=config.num_threads,
        max_image_size=config.max_image_size,
        matching="exhaustive" if len(idx) <= config.exhaustive_up_to else "sequential",
        sequential_overlap=config.sequential_overlap,
        refine_focal=estimate_focal,
        max_h_inlier_ratio=config.max_h_inlier_ratio,
        mapper=config.mapper,
        rotation_only_share=config.rotation_only_share,
    )
    est = estimate_poses(frames, K, sfm, progress=progress)
    checks = ReconstructionChecks(
        min_registered_fraction=config.min_registered_fraction, max_reprojection_error=config.max_reprojection_error
    )
    failure = check_reconstruction(est, checks)
    if failure is not None:
        raise VideoPathError(f"{name}: no camera path: {failure}")
    assert est.K is not None and est.median_depth is not None and est.points is not None
    fov = math.degrees(2 * math.atan(0.5 * W / float(est.K[0, 0])))
    lo, hi = config.fov_range_deg
    if estimate_focal and not lo <= fov <= hi:
        raise VideoPathError(
            f"{name}: no camera path: the estimated horizontal field of view ({fov:.0f} deg) is implausible; "
            "give the video's field of view (--fov) or intrinsics"
        )
    reg = est.registered.nonzero().flatten()
    times = torch.tensor([idx[int(i)] for i in reg], dtype=torch.float64)
    poses = est.c2w[reg]
    every = max(b - a for a, b in zip(idx[:-1], idx[1:], strict=True))
    max_gap = config.max_gap if config.max_gap is not None else 3 * every
    gaps = (times[1:] - times[:-1]).long()
    if len(gaps) and int(gaps.max()) > max_gap:
        j = int(gaps.argmax())
        a, b = int(times[j]), int(times[j + 1])
        raise VideoPathError(
            f"{name}: no camera path: video frames {a + 1}-{b - 1} could not be registered (a gap of "
            f"{b - a - 1} frames; at most {max_gap} are interpolated)"
        )
    warnings: list[str] = []
    first, last = int(times[0]), int(times[-1])
    if first > 0:
        warnings.append(f"video frames 0-{first - 1} could not be registered: the path starts at video frame {first}")
    if last < total - 1:
        warnings.append(f"video frames {last + 1}-{total - 1} could not be registered: the path ends at frame {last}")
    if last - first + 1 < 0.5 * total:
        raise VideoPathError(f"{name}: no camera path: only video frames {first}-{last} of {total} could be registered")
    query = torch.arange(first, last + 1, dtype=torch.float64)
    c2w = interpolate_poses(times, poses, query)
    inv0 = torch.linalg.inv(poses[0])
    rel = inv0[None] @ c2w
    rel[0] = torch.eye(4, dtype=torch.float64)  # exactly, not up to rounding
    depth0 = float(est.median_depth[reg[0]])
    extent = float(rel[:, :3, 3].norm(dim=-1).max())
    if not (math.isfinite(depth0) and depth0 > 0):
        raise VideoPathError(f"{name}: no camera path: the first registered frame sees no 3D points")
    if extent < config.min_motion * depth0:
        raise VideoPathError(
            f"{name}: no camera path: the camera hardly moves (it travels {100 * extent / depth0:.1f}% of the "
            "scene depth): a camera that only rotates gives no usable translation"
        )
    if extent < config.low_motion_warning * depth0:
        warnings.append(
            f"the camera travels only {100 * extent / depth0:.0f}% of the scene depth: the direction of its "
            "translation is uncertain; check the preview"
        )
    rel[:, :3, 3] /= extent
    pts = (est.points @ inv0[:3, :3].T + inv0[:3, 3]) / extent
    share = _dominant_plane_share(pts, 0.02 * depth0 / extent)
    if share >= config.plane_warning:
        warnings.append(
            f"{100 * share:.0f}% of the 3D points lie on one plane (the ground?): SfM can tilt the motion of such "
            "clips; check the preview"
        )
    cams = Cameras(rel, est.K, H, W)
    return VideoPath(
        cameras=cams,
        first_frame=first,
        last_frame=last,
        video_frames=total,
        registered=[int(t) for t in times],
        sampled=idx,
        scene_depth=depth0 / extent,
        focal="estimated" if estimate_focal else "fixed",
        fov_x_deg=fov,
        seed=est.seed,
        mapper=est.mapper,
        mean_track_length=est.mean_track_length,
        mean_reprojection_error=est.mean_reprojection_error,
        num_points=est.num_points,
        warnings=warnings,
    )


def video_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of the file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def video_path_cache_dir() -> Path:
    """Where extracted paths are cached: ``$WORLDWARP_CACHE_DIR/video_paths``, else
    ``$XDG_CACHE_HOME/worldwarp/video_paths``, else ``~/.cache/worldwarp/video_paths``."""
    if os.environ.get("WORLDWARP_CACHE_DIR"):
        return Path(os.environ["WORLDWARP_CACHE_DIR"]) / "video_paths"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "worldwarp" / "video_paths"


def extract_video_path(
    video: str | os.PathLike[str],
    config: VideoPathConfig | None = None,
    *,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
) -> VideoPath:
    """The camera path of the video file ``video`` (see :func:`video_path_from_frames`).

    With ``cache`` (the default) the result, or the failure, is stored under ``cache_dir`` (default
    :func:`video_path_cache_dir`) keyed by the file's sha256 and the settings, and read back on later calls.

    Raises:
        InputError: the file is missing or cannot be decoded.
        VideoPathError: no trustworthy path (also when a cached attempt failed).
    """
    from worldwarp.io.atomic import atomic_write_json
    from worldwarp.io.video import count_video_frames, sample_video

    config = config or VideoPathConfig()
    path = Path(video)
    if not path.is_file():
        raise InputError(f"video not found: {path}")
    report = progress or (lambda f, m: None)
    digest = video_digest(path)
    entry = Path(cache_dir) if cache_dir is not None else video_path_cache_dir()
    entry = entry / f"{digest[:32]}-{config.fingerprint()}.json"
    if cache and entry.is_file():
        try:
            doc = json.loads(entry.read_text())
            if doc.get("failure"):
                raise VideoPathError(f"{path.name}: {doc['failure']} (cached)")
            vp = VideoPath.from_dict(doc["path"])
            report(1.0, "camera path read from the cache")
            return vp
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            if isinstance(e, InputError):
                raise
            # an unreadable cache entry is recomputed
    report(0.0, "reading the video")
    every = config.every
    if every is None:
        every = max(1, math.ceil((count_video_frames(path) - 1) / (config.max_sfm_frames - 1)))
    sample = sample_video(path, every)

    def sfm_progress(f: float, msg: str) -> None:
        report(0.05 + 0.95 * f, msg)

    try:
        vp = video_path_from_frames(
            sample.frames, sample.indices, sample.total, config, name=path.name, progress=sfm_progress
        )
    except VideoPathError as e:
        if cache:
            failure = str(e).split(": ", 1)[1] if str(e).startswith(f"{path.name}: ") else str(e)
            atomic_write_json(entry, {"digest": digest, "failure": failure})
        raise
    vp.digest = digest
    if cache:
        atomic_write_json(entry, {"digest": digest, "path": vp.to_dict()})
    return vp


# ---------------------------------------------------------------------------------------------- use
def speed_note(path: VideoPath, frames: int, speed: float) -> str:
    """How ``frames`` generated frames at ``speed`` map onto the clip's path (one line)."""
    span = len(path) - 1
    need = (frames - 1) * speed
    if need > span + 1e-9:
        return (
            f"frame k follows video frame {path.first_frame} + {speed:g} k: the clip's path covers "
            f"{span / speed + 1:.0f} of {frames} frames; the rest continue at constant velocity"
        )
    return (
        f"frame k follows video frame {path.first_frame} + {speed:g} k: {frames} frames use "
        f"{100 * need / max(span, 1):.0f}% of the clip's path"
    )


def video_trajectory_for_scene(
    video: str | os.PathLike[str] | VideoPath,
    frames: int,
    height: int,
    width: int,
    median_depth: float,
    *,
    fov_x_deg: float = 60.0,
    speed: float = 1.0,
    scale: float = 1.0,
    config: VideoPathConfig | None = None,
) -> Cameras:
    """``frames`` cameras for a start image (``height`` x ``width``, horizontal field of view ``fov_x_deg``,
    median depth ``median_depth``) that move like the video's camera.

    The path (extracted, or read from the cache) is scaled so the video's scene depth equals
    ``median_depth`` (times ``scale``); generated frame k follows video frame ``first + speed * k``
    (interpolated), and past the clip's end the camera continues at constant velocity.
    """
    from worldwarp.trajectory.extend import extrapolate

    if frames < 1:
        raise InputError(f"frames must be >= 1, got {frames}")
    for label, value in (("speed", speed), ("scale", scale), ("median depth", median_depth)):
        if not value > 0:
            raise InputError(f"{label} must be > 0, got {value}")
    vp = video if isinstance(video, VideoPath) else extract_video_path(video, config)
    cams, _ = vp.normalized("depth")
    cams = scale_translations(cams, median_depth * scale)
    span = len(cams) - 1
    inside = min(frames, math.floor(span / speed + 1e-9) + 1)
    times = torch.arange(len(cams), dtype=torch.float64)
    c2w = interpolate_poses(times, cams.c2w, (speed * torch.arange(inside, dtype=torch.float64)).clamp(max=span))
    K = intrinsics_from_fov(height, width, fov_x_deg=fov_x_deg)
    return extrapolate(Cameras(c2w, K, height, width), frames)
