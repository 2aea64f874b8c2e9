"""Plane-sweep multi-view stereo with known cameras: metric depth from posed views, without learned weights.

For a reference view and a few source views (known poses and intrinsics, :class:`~worldwarp.cameras.Cameras`
convention: c2w with OpenCV axes, K in pixels, pixel centres at ``i + 0.5``):

1. **Planes.** ``D`` fronto-parallel planes ``z = const`` in the reference camera, uniform in *inverse* depth
   over ``[near, far]`` (uniform inverse depth is uniform disparity, so every plane step moves a source pixel by
   about the same amount whatever the depth).
2. **Warp.** For every plane each reference pixel is lifted to that depth, projected into each source view
   (its K and pose) and the source is sampled bilinearly there (``grid_sample``, ``align_corners=False``, which
   is exactly the corner-origin pixel convention). A source whose projection of the pixel lies behind it or
   outside its image does not see that pixel at that plane ("unusable").
3. **Cost.** ``1 - ZNCC``: zero-mean normalised cross-correlation between the reference window and the warped
   source window, with the three colour channels pooled into one correlation (per-channel means are removed,
   covariances and variances are summed over channels). ZNCC is invariant to a gain and an offset of the
   intensities, so exposure and white-balance differences between frames (auto-exposure in real captures) do
   not bias the match, and it has a fixed scale (cost in [0, 2], a perfect match is 0) that makes absolute
   validity thresholds meaningful; pooling the channels keeps colour-only texture usable and is more stable
   than averaging three separate correlations in windows where one channel is flat. Window means are separable
   box sums (of shifted copies) over the in-image part of the window at the borders; source samples outside the
   source image repeat its border (``padding_mode="border"``).
4. **Views.** At every pixel and plane the costs of the usable sources are sorted and the mean of the best half
   (``ceil(n / 2)`` of ``n`` usable views) is kept, so a surface occluded in some sources still matches; a
   plane that no source sees costs 2 (the worst).
5. **Winner-take-all** over the planes, refined by a parabola through the best plane and its two neighbours
   (in inverse depth, where the planes are uniform).
6. **Validity.** A pixel is valid when at least ``min_views`` sources saw it at the chosen plane, the best plane
   is not the first or last one (a minimum at the end of the range is not a verified minimum), the cost is at
   most ``max_cost``, the best cost is at most ``max_ratio`` times the best *other* local minimum of the cost
   curve (ratio test against repetitive texture and flat, ambiguous curves), and the reference window's
   intensity standard deviation is at least ``min_texture`` (untextured areas have no reliable depth).
   Confidence is ``(1 - cost) * (1 - cost / second_cost)`` clipped to [0, 1], 0 where invalid.

Geometric consistency (:class:`StereoDepth` only, which has every view's depth): a pixel stays valid when its
3-D point, projected into at least ``consistent_views`` of its source views, lands on a pixel whose own depth
agrees within ``consistency`` (relative); this removes pixels whose true surface no source sees (image borders,
occlusions), where the sweep can only return a chance match (:func:`count_consistent_views`).

Automatic range (``depth_range=None``): a coarse pass on images downsampled to ``coarse_size`` (shorter
side) sweeps ``coarse_depths`` planes from ``search_range[0]`` to ``search_range[1]`` times the median
baseline to the sources (a coarse pixel needs two agreeing views when there are two), then the shortest
inverse-depth interval holding ``1 - 2 range_quantile`` of the coarse pixels with confidence >=
``range_confidence``, widened by ``range_margin`` of its span plus one coarse plane step on each side, gives the
range of the fine pass at full resolution.

Everything is plain torch on the images' device (float32 or float64; other float types are computed in
float32 and cast back) and deterministic: no random numbers and only deterministic kernels (grid_sample
forward, sums of shifted slices, sort, cumsum, gather, min). Planes are warped in chunks of at most
``chunk_budget`` source-pixel-planes, so memory stays bounded whatever the number of planes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from worldwarp.errors import InputError
from worldwarp.geometry.base import DepthPrediction, check_images

if TYPE_CHECKING:  # pragma: no cover
    from worldwarp.cameras import Cameras

__all__ = [
    "StereoDepth",
    "StereoDepthConfig",
    "StereoDepthWarning",
    "auto_depth_range",
    "count_consistent_views",
    "effective_window",
    "plane_sweep_depth",
    "select_neighbours",
]

# ``window`` is the window side at this shorter image side; other resolutions scale it.
WINDOW_REFERENCE_SIZE = 240
# Sum over the three channels of the variance added to both variances in the ZNCC denominator: damps the
# correlation of nearly flat windows, whose NCC is dominated by noise (about a 0.003 standard deviation each).
_NCC_EPS = 3e-5
# The worst cost: a plane no source sees, or a view where the pixel is not visible.
_WORST = 2.0


class StereoDepthWarning(UserWarning):
    """The stereo estimator fell back to a guess (e.g. no confident pixels to set the depth range)."""


@dataclass
class StereoDepthConfig:
    """Parameters of the plane-sweep stereo estimator (depths are in the cameras' units).

    Attributes:
        num_depths: planes of the (fine) sweep, >= 4.
        window: side of the matching window in pixels at a shorter image side of 240 (odd, >= 3); with
            ``scale_window`` it scales with the resolution (rounded to odd, at least 3).
        scale_window: scale ``window`` with the image resolution (see :func:`effective_window`).
        neighbours: source views per reference image in :class:`StereoDepth` (the nearest camera centres among
            those with a usable baseline), >= 1.
        depth_range: ``(near, far)`` z-depths of the sweep, ``0 < near < far``; None = automatic (module doc).
        min_views: a valid pixel was seen by at least this many sources at its depth, >= 1.
        max_cost: largest matching cost ``1 - ZNCC`` of a valid pixel, in (0, 2].
        max_ratio: ratio test: best cost <= ``max_ratio`` x the best other local minimum, in (0, 1].
        min_texture: smallest intensity standard deviation in the reference window of a valid pixel, >= 0.
        min_baseline_ratio: a source whose centre lies closer to the reference than this fraction of the
            distance of the farthest other camera (:class:`StereoDepth`) or source (:func:`plane_sweep_depth`)
            is not used, in [0, 1): near-coincident views carry no depth, and in a dense video the adjacent
            frames' baselines are too short for a precise depth (on the instant-ngp fox, 0.03 instead of 0.01
            picks frames 0.24 to 1.3 units away instead of 0.08 to 0.24 at a depth of about 5, and turns a
            noisy map into a clean one).
        coarse_depths: planes of the automatic-range coarse pass, >= 4.
        coarse_size: shorter image side of the coarse pass (images are downsampled to it when larger), >= 8.
        search_range: ``(near, far)`` of the coarse pass in units of the median baseline to the sources.
        range_confidence: coarse pixels with at least this confidence set the automatic range, in [0, 1).
        range_quantile: the automatic range is the shortest inverse-depth interval holding ``1 - 2 x`` this
            fraction of those pixels, in [0, 0.5).
        range_margin: widening of that interval on each side, as a fraction of its width (plus one coarse
            plane step), >= 0.
        consistent_views: :class:`StereoDepth` keeps a pixel only when its 3-D point agrees with the depth of at
            least this many of its source views (module doc); 0 turns the check off, <= ``neighbours``.
        consistency: relative z-depth tolerance of that check, > 0.
        chunk_budget: source-pixel-planes warped at once (bounds memory: about 100 bytes each), >= 1.
    """

    num_depths: int = 64
    window: int = 5
    scale_window: bool = True
    neighbours: int = 4
    depth_range: tuple[float, float] | None = None
    min_views: int = 1
    max_cost: float = 0.5
    max_ratio: float = 0.85
    min_texture: float = 0.01
    min_baseline_ratio: float = 0.03
    coarse_depths: int = 96
    coarse_size: int = 64
    search_range: tuple[float, float] = (0.5, 500.0)
    range_confidence: float = 0.5
    range_quantile: float = 0.02
    range_margin: float = 0.15
    consistent_views: int = 1
    consistency: float = 0.03
    chunk_budget: int = 2**16

    def __post_init__(self) -> None:
        for name, low in (
            ("num_depths", 4),
            ("window", 3),
            ("neighbours", 1),
            ("min_views", 1),
            ("coarse_depths", 4),
            ("coarse_size", 8),
            ("chunk_budget", 1),
            ("consistent_views", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"stereo {name} must be an integer >= {low}, got {value!r}")
        if self.window % 2 == 0:
            raise InputError(f"stereo window must be odd, got {self.window}")
        for name in ("min_views", "consistent_views"):
            if getattr(self, name) > self.neighbours:
                raise InputError(f"stereo {name} ({getattr(self, name)}) cannot exceed neighbours ({self.neighbours})")
        self.depth_range = _check_pair("depth_range", self.depth_range) if self.depth_range is not None else None
        self.search_range = _check_pair("search_range", self.search_range)
        checks = (
            ("max_cost", self.max_cost, lambda v: 0 < v <= 2, "in (0, 2]"),
            ("max_ratio", self.max_ratio, lambda v: 0 < v <= 1, "in (0, 1]"),
            ("min_texture", self.min_texture, lambda v: v >= 0, ">= 0"),
            ("min_baseline_ratio", self.min_baseline_ratio, lambda v: 0 <= v < 1, "in [0, 1)"),
            ("range_confidence", self.range_confidence, lambda v: 0 <= v < 1, "in [0, 1)"),
            ("range_quantile", self.range_quantile, lambda v: 0 <= v < 0.5, "in [0, 0.5)"),
            ("range_margin", self.range_margin, lambda v: v >= 0, ">= 0"),
            ("consistency", self.consistency, lambda v: v > 0, "> 0"),
        )
        for name, value, ok, what in checks:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"stereo {name} must be a finite number {what}, got {value!r}")
            if not ok(value):
                raise InputError(f"stereo {name} must be {what}, got {value}")


def _check_pair(name: str, value: object) -> tuple[float, float]:
    """``(near, far)`` as floats with ``0 < near < far < inf``, else InputError."""
    try:
        near, far = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InputError(f"stereo {name} must be two numbers (near, far), got {value!r}") from None
    if not (math.isfinite(near) and math.isfinite(far) and 0 < near < far):
        raise InputError(f"stereo {name} must satisfy 0 < near < far (finite), got ({near}, {far})")
    return near, far


def effective_window(config: StereoDepthConfig, height: int, width: int) -> int:
    """Window side used at ``height x width``: ``config.window`` scaled by ``min(H, W) / 240``, odd, >= 3."""
    if not config.scale_window:
        return config.window
    w = max(3, int(round(config.window * min(height, width) / WINDOW_REFERENCE_SIZE)))
    return w if w % 2 else w + 1


def _no_baseline_tolerance(centres: Tensor) -> float:
    return 1e-9 * max(1.0, float(centres.abs().max()))


def select_neighbours(centres: Tensor, count: int, min_baseline_ratio: float = 0.03) -> list[list[int]]:
    """Source views of each camera: the ``count`` nearest centres among those with a usable baseline.

    A view is usable for reference ``i`` when its centre lies at least ``min_baseline_ratio`` times the
    distance of the farthest centre from ``i``; ties are broken by index (deterministic).

    Args:
        centres: (N, 3) camera centres, N >= 2.
        count: neighbours per view (fewer when fewer are usable).
        min_baseline_ratio: see :class:`StereoDepthConfig`.

    Raises:
        InputError: fewer than 2 cameras, or all centres coincide (no baseline).
    """
    n = centres.shape[0]
    if n < 2:
        raise InputError(f"stereo depth needs at least 2 cameras, got {n}")
    c = centres.detach().to("cpu", torch.float64)
    dist = torch.cdist(c, c)
    if float(dist.max()) <= _no_baseline_tolerance(c):
        raise InputError(
            f"the {n} cameras share one centre (no baseline): stereo depth needs views from different positions"
        )
    out = []
    for i in range(n):
        d = dist[i]
        usable = [j for j in range(n) if j != i and float(d[j]) >= min_baseline_ratio * float(d.max())]
        usable.sort(key=lambda j: (float(d[j]), j))
        out.append(usable[:count])
    return out


# ---------------------------------------------------------------------------------------------- sweep
def _box(x: Tensor, w: int) -> Tensor:
    """Mean over the in-image part of the w x w window centred on each pixel; x (..., H, W).

    Separable sums of shifted copies of the zero-padded input (much faster than ``avg_pool2d`` on CPU for small
    windows, and exact in the order of its additions), divided by the number of in-image pixels.
    """
    r = w // 2
    h, wd = x.shape[-2:]
    p = F.pad(x, (0, 0, r, r))
    rows = p[..., 0:h, :].clone()
    for i in range(1, w):
        rows += p[..., i : i + h, :]
    p = F.pad(rows, (r, r))
    out = p[..., 0:wd].clone()
    for i in range(1, w):
        out += p[..., i : i + wd]

    def count(n: int) -> Tensor:
        idx = torch.arange(n, device=x.device)
        return ((idx + r).clamp_max(n - 1) - (idx - r).clamp_min(0) + 1).to(x.dtype)

    return out * (1.0 / (count(h)[:, None] * count(wd)[None, :]))


def _check_views(ref_image: Tensor, src_images: Tensor, ref_camera: Cameras, src_cameras: Cameras) -> None:
    if ref_image.ndim != 3 or ref_image.shape[0] != 3 or not ref_image.is_floating_point():
        raise InputError(f"reference image must be float (3, H, W), got shape {tuple(ref_image.shape)}")
    h, w = ref_image.shape[-2:]
    if src_images.ndim != 4 or src_images.shape[1:] != ref_image.shape or not src_images.is_floating_point():
        raise InputError(f"source images must be float (M, 3, {h}, {w}), got shape {tuple(src_images.shape)}")
    if src_images.shape[0] < 1:
        raise InputError("stereo depth needs at least one source image besides the reference")
    if len(ref_camera) != 1:
        raise InputError(f"the reference camera must be one view, got {len(ref_camera)}")
    if len(src_cameras) != src_images.shape[0]:
        raise InputError(f"got {len(src_cameras)} source camera(s) for {src_images.shape[0]} source image(s)")
    for name, cam in (("reference", ref_camera), ("source", src_cameras)):
        if (cam.height, cam.width) != (h, w):
            raise InputError(f"{name} cameras are {cam.width}x{cam.height}, images are {w}x{h}")


def _usable_sources(ref_camera: Cameras, src_cameras: Cameras, min_baseline_ratio: float) -> Tensor:
    """Indices of the sources with a usable baseline (InputError when none has a baseline)."""
    centres = torch.cat([ref_camera.centers, src_cameras.centers]).detach().to("cpu", torch.float64)
    base = (centres[1:] - centres[:1]).norm(dim=-1)
    if float(base.max()) <= _no_baseline_tolerance(centres):
        raise InputError(
            "the source cameras share the reference camera's centre (no baseline): stereo depth needs views "
            "from different positions"
        )
    return (base >= min_baseline_ratio * base.max()).nonzero()[:, 0]


def _warp_setup(ref_camera: Cameras, src_cameras: Cameras, dtype: torch.dtype, device: torch.device):
    """Per-source ``B`` (M, H*W, 3) and ``c`` (M, 3): source pixel ~ B + c / z for reference depth z.

    With the reference ray ``r = K_r^-1 (u, v, 1)`` and the reference-to-source transform ``(R, t)``, the
    point at z-depth z is ``z r`` and projects to ``K_s (z R r + t) = z (B + c / z)`` with ``B = K_s R r`` and
    ``c = K_s t``; the source z-depth has the sign of ``B_z + c_z / z``. Computed in float64 on the CPU (some
    accelerators have no float64), then moved.
    """
    ref = ref_camera.to("cpu", torch.float64)
    src = src_cameras.to("cpu", torch.float64)
    rel = src.w2c @ ref.c2w  # (M, 4, 4) reference camera -> source camera
    uv = ref.pixel_grid(torch.float64).reshape(-1, 2)
    pix = torch.cat([uv, torch.ones_like(uv[:, :1])], dim=1)  # (HW, 3)
    rays = pix @ torch.linalg.inv(ref.K[0]).T  # (HW, 3), z = 1
    KR = src.K @ rel[:, :3, :3]  # (M, 3, 3)
    B = torch.einsum("mij,pj->mpi", KR, rays)
    c = torch.einsum("mij,mj->mi", src.K, rel[:, :3, 3])
    return B.to(device=device, dtype=dtype), c.to(device=device, dtype=dtype)


def _sweep(
    ref: Tensor, srcs: Tensor, ref_camera: Cameras, src_cameras: Cameras, inv_planes: Tensor, window: int, budget: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Cost volume (D, H, W), usable-view counts (D, H, W) and the reference window's std (H, W)."""
    m, _, h, w = srcs.shape
    dtype, device = ref.dtype, ref.device
    B, c = _warp_setup(ref_camera, src_cameras, dtype, device)
    bx, by, bz = (B[None, :, :, i].transpose(0, 1).contiguous() for i in range(3))  # (M, 1, HW)
    cx, cy, cz = (c[:, i, None, None] for i in range(3))  # (M, 1, 1)
    tiny = 1e-9 * float(bz.abs().max())
    R = ref[None]
    stats_r = _box(torch.cat([R, R * R], dim=1), window)[0]
    mean_r = stats_r[:3, None]  # (3, 1, H, W)
    var_r = (stats_r[3:] - stats_r[:3] ** 2).clamp_min(0).sum(0)  # (H, W)
    texture = (var_r / 3).sqrt()
    R = R[:, :, None]  # (1, 3, 1, H, W)
    D = inv_planes.shape[0]
    cost = torch.empty(D, h, w, dtype=dtype, device=device)
    views = torch.empty(D, h, w, dtype=torch.int16, device=device)
    chunk = max(1, budget // (m * h * w))
    for start in range(0, D, chunk):
        inv = inv_planes[None, start : start + chunk, None]  # (1, Dc, 1)
        dc = inv.shape[1]
        z = bz + cz * inv  # (M, Dc, HW): source depth / reference depth
        ahead = z > tiny
        z = torch.where(ahead, z, torch.ones_like(z))
        u = (bx + cx * inv) / z
        v = (by + cy * inv) / z
        seen = (ahead & (u >= 0) & (u <= w) & (v >= 0) & (v <= h)).reshape(m, dc, h, w)
        grid = torch.stack([u * (2.0 / w) - 1, v * (2.0 / h) - 1], dim=-1).clamp_(-2, 2)
        S = F.grid_sample(
            srcs, grid.reshape(m, dc * h, w, 2), mode="bilinear", padding_mode="border", align_corners=False
        ).reshape(m, 3, dc, h, w)
        stats = _box(torch.cat([S, S * S, S * R], dim=1).reshape(m, 9 * dc, h, w), window).reshape(m, 9, dc, h, w)
        mean_s = stats[:, :3]
        var_s = (stats[:, 3:6] - mean_s.square()).clamp_min_(0).sum(1)  # (M, Dc, H, W)
        cov = (stats[:, 6:] - mean_s * mean_r).sum(1)
        view_cost = (1 - cov / ((var_s + _NCC_EPS) * (var_r + _NCC_EPS)).sqrt()).clamp_(0, _WORST)
        n = seen.sum(0)  # (Dc, H, W)
        if m == 1:
            best = view_cost[0]
        else:
            ordered = torch.where(seen, view_cost, torch.full_like(view_cost, 2 * _WORST)).sort(dim=0).values
            k = (n + 1) // 2  # the best half, at least one view
            best = ordered.cumsum(0).gather(0, (k - 1).clamp_min(0)[None].long())[0] / k.clamp_min(1)
        cost[start : start + dc] = torch.where(n > 0, best, torch.full_like(best, _WORST))
        views[start : start + dc] = n.to(torch.int16)
    return cost, views, texture


def _decide(
    cost: Tensor, views: Tensor, inv_planes: Tensor, texture: Tensor, config: StereoDepthConfig, min_views: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Winner-take-all + parabolic refinement + validity tests: inverse depth, valid, confidence (H, W)."""
    D = cost.shape[0]
    c1, idx = cost.min(dim=0)
    cm = cost.gather(0, (idx - 1).clamp_min(0)[None])[0]
    cp = cost.gather(0, (idx + 1).clamp_max(D - 1)[None])[0]
    interior = (idx > 0) & (idx < D - 1)
    curv = cm - 2 * c1 + cp
    offset = torch.where(curv > 1e-12, 0.5 * (cm - cp) / curv.clamp_min(1e-12), torch.zeros_like(c1))
    offset = torch.where(interior, offset.clamp(-0.5, 0.5), torch.zeros_like(offset))
    step = inv_planes[1] - inv_planes[0]
    inv = inv_planes[idx] + offset * step
    # second-best: the lowest other local minimum of the cost curve (none: the worst cost)
    pad = torch.full_like(cost[:1], math.inf)
    padded = torch.cat([pad, cost, pad])
    local_min = (cost <= padded[:-2]) & (cost <= padded[2:])
    planes = torch.arange(D, device=cost.device)[:, None, None]
    other = local_min & ((planes - idx[None]).abs() > 1)
    c2 = torch.where(other, cost, torch.full_like(cost, _WORST)).amin(0)
    n = views.gather(0, idx[None])[0]
    valid = (
        interior
        & (n >= min_views)
        & (c1 <= config.max_cost)
        & (c1 <= config.max_ratio * c2)
        & (texture >= config.min_texture)
        & (inv > 0)
        & torch.isfinite(inv)
    )
    conf = (1 - c1).clamp(0, 1) * (1 - c1 / c2.clamp_min(1e-12)).clamp(0, 1)
    conf = torch.where(valid, conf, torch.zeros_like(conf))
    return inv, valid, conf


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _sweep_range(
    ref_image: Tensor,
    src_images: Tensor,
    ref_camera: Cameras,
    src_cameras: Cameras,
    inv_planes: Tensor,
    config: StereoDepthConfig,
    min_views: int,
) -> tuple[Tensor, Tensor, Tensor]:
    h, w = ref_image.shape[-2:]
    window = effective_window(config, h, w)
    cost, views, texture = _sweep(
        ref_image, src_images, ref_camera, src_cameras, inv_planes, window, config.chunk_budget
    )
    return _decide(cost, views, inv_planes, texture, config, min_views)


def _inverse_planes(near: float, far: float, count: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``count`` inverse depths from 1/near down to 1/far (uniform), in float64 then cast."""
    return torch.linspace(1.0 / near, 1.0 / far, count, dtype=torch.float64).to(device=device, dtype=dtype)


def _prepare(
    ref_image: Tensor, src_images: Tensor, ref_camera: Cameras, src_cameras: Cameras, config: StereoDepthConfig
) -> tuple[Tensor, Tensor, Cameras, Cameras]:
    """Validate, drop near-coincident sources, move everything to the compute dtype and the images' device."""
    _check_views(ref_image, src_images, ref_camera, src_cameras)
    keep = _usable_sources(ref_camera, src_cameras, config.min_baseline_ratio)
    dtype = _compute_dtype(ref_image.dtype)
    src_cameras = src_cameras[keep.tolist()]
    src_images = src_images[keep.to(src_images.device)]
    return ref_image.to(dtype), src_images.to(ref_image.device, dtype), ref_camera, src_cameras


def _auto_range(
    ref: Tensor, srcs: Tensor, ref_camera: Cameras, src_cameras: Cameras, config: StereoDepthConfig
) -> tuple[float, float]:
    h, w = ref.shape[-2:]
    centres = torch.cat([ref_camera.centers, src_cameras.centers]).detach().to("cpu", torch.float64)
    baseline = float((centres[1:] - centres[:1]).norm(dim=-1).median())
    near_c, far_c = config.search_range[0] * baseline, config.search_range[1] * baseline
    if min(h, w) > config.coarse_size:
        s = config.coarse_size / min(h, w)
        hc, wc = max(1, round(h * s)), max(1, round(w * s))
        ref = F.interpolate(ref[None], size=(hc, wc), mode="area")[0]
        srcs = F.interpolate(srcs, size=(hc, wc), mode="area")
        ref_camera, src_cameras = ref_camera.resize(hc, wc), src_cameras.resize(hc, wc)
    planes = _inverse_planes(near_c, far_c, config.coarse_depths, ref.dtype, ref.device)
    # a pixel matched in a single view is often a chance match of the wide sweep: ask for two when there are two
    min_views = max(config.min_views, min(2, srcs.shape[0]))
    inv, valid, conf = _sweep_range(ref, srcs, ref_camera, src_cameras, planes, config, min_views)
    good = inv[valid & (conf >= config.range_confidence)].double().sort().values
    if good.numel() < max(8, 0.005 * inv.numel()):
        warnings.warn(
            f"stereo: only {good.numel()} confident pixels in the coarse pass; sweeping the whole search range "
            f"({near_c:.4g} to {far_c:.4g}), expect a poor depth",
            StereoDepthWarning,
            stacklevel=3,
        )
        return near_c, far_c
    # the shortest interval holding 1 - 2 q of them: scattered chance matches fall outside it
    n = good.numel()
    k = min(n, max(2, math.ceil((1 - 2 * config.range_quantile) * n)))
    first = int((good[k - 1 :] - good[: n - k + 1]).argmin())
    lo, hi = float(good[first]), float(good[first + k - 1])
    step = (1.0 / near_c - 1.0 / far_c) / (config.coarse_depths - 1)
    margin = config.range_margin * (hi - lo) + step
    inv_far, inv_near = max(lo - margin, 1.0 / far_c), min(hi + margin, 1.0 / near_c)
    return 1.0 / inv_near, 1.0 / inv_far


def auto_depth_range(
    ref_image: Tensor,
    src_images: Tensor,
    ref_camera: Cameras,
    src_cameras: Cameras,
    config: StereoDepthConfig | None = None,
) -> tuple[float, float]:
    """The ``(near, far)`` sweep range the automatic mode picks for this reference (module doc).

    Args: as :func:`plane_sweep_depth` (``config.depth_range`` is ignored).

    Raises:
        InputError: bad shapes, mismatched cameras or no baseline.
    """
    config = config or StereoDepthConfig()
    ref, srcs, ref_camera, src_cameras = _prepare(ref_image, src_images, ref_camera, src_cameras, config)
    return _auto_range(ref, srcs, ref_camera, src_cameras, config)


def plane_sweep_depth(
    ref_image: Tensor,
    src_images: Tensor,
    ref_camera: Cameras,
    src_cameras: Cameras,
    config: StereoDepthConfig | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Plane-sweep z-depth of one reference image from source images with known cameras (module doc).

    Args:
        ref_image: (3, H, W) in [0, 1].
        src_images: (M, 3, H, W) in [0, 1], M >= 1.
        ref_camera: the reference's camera (1 view, H x W).
        src_cameras: the sources' cameras (M views, H x W).
        config: parameters (defaults: :class:`StereoDepthConfig`); ``depth_range`` None = automatic range.

    Returns:
        ``depth`` (H, W) z-depth in the cameras' units (0 where invalid), ``valid`` (H, W) bool and
        ``confidence`` (H, W) in [0, 1] (0 where invalid), in the reference image's dtype and device.

    Raises:
        InputError: bad shapes, mismatched cameras, or no source with a baseline to the reference.
    """
    config = config or StereoDepthConfig()
    out_dtype = ref_image.dtype
    ref, srcs, ref_camera, src_cameras = _prepare(ref_image, src_images, ref_camera, src_cameras, config)
    if config.depth_range is None:
        near, far = _auto_range(ref, srcs, ref_camera, src_cameras, config)
    else:
        near, far = config.depth_range
    planes = _inverse_planes(near, far, config.num_depths, ref.dtype, ref.device)
    inv, valid, conf = _sweep_range(ref, srcs, ref_camera, src_cameras, planes, config, config.min_views)
    depth = torch.where(valid, 1.0 / torch.where(valid, inv, torch.ones_like(inv)), torch.zeros_like(inv))
    return depth.to(out_dtype), valid, conf.to(out_dtype)


def count_consistent_views(
    depth: Tensor, ref_camera: Cameras, src_cameras: Cameras, src_depths: Tensor, tolerance: float = 0.03
) -> Tensor:
    """How many source views agree with each reference pixel's depth (a geometric consistency check).

    The pixel's 3-D point (z-depth ``depth``) is projected into each source; the source agrees when the point
    lands inside its image, in front of it, on a pixel with a depth (> 0, nearest pixel) whose z-depth is
    within ``tolerance`` (relative) of the point's z-depth in that source. A wrong match (a point the sources
    do not see, an occluded region, a chance match) lands where the sources measured another surface.

    Args:
        depth: (H, W) reference z-depth, 0 = none.
        ref_camera: the reference camera (1 view).
        src_cameras: M source cameras.
        src_depths: (M, H, W) their z-depths, 0 = none.
        tolerance: relative z-depth tolerance.

    Returns:
        (H, W) int64 counts in [0, M] (0 where ``depth`` is 0).
    """
    h, w = depth.shape
    m = src_depths.shape[0]
    B, c = _warp_setup(ref_camera, src_cameras, depth.dtype, depth.device)  # (M, HW, 3), (M, 3)
    z = depth.reshape(1, -1)
    inv = torch.where(z > 0, 1.0 / torch.where(z > 0, z, torch.ones_like(z)), torch.zeros_like(z))
    q = B + c[:, None] * inv[..., None]  # (M, HW, 3): source pixel (homogeneous) / reference depth
    ahead = (q[..., 2] > 1e-9 * float(q[..., 2].abs().max())) & (z > 0)
    qz = torch.where(ahead, q[..., 2], torch.ones_like(q[..., 2]))
    col = (q[..., 0] / qz).floor().clamp(-1, w).long()
    row = (q[..., 1] / qz).floor().clamp(-1, h).long()
    inside = ahead & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    flat = (row.clamp(0, h - 1) * w + col.clamp(0, w - 1)).reshape(m, -1)
    measured = src_depths.reshape(m, -1).gather(1, flat)
    expected = qz * z  # z-depth of the point in each source
    ok = inside & (measured > 0) & ((measured - expected).abs() <= tolerance * expected)
    return ok.sum(0).reshape(h, w)


class StereoDepth:
    """:class:`~worldwarp.geometry.base.DepthEstimator` by plane-sweep stereo between posed images.

    Every image is a reference in turn, with its ``neighbours`` nearest cameras (with a usable baseline) as
    sources. The depth is metric in the cameras' units.
    """

    name = "stereo"

    def __init__(self, config: StereoDepthConfig | None = None) -> None:
        self.config = config or StereoDepthConfig()

    def estimate(self, images: Tensor, cameras: Cameras | None = None) -> DepthPrediction:
        """Depth (N, H, W) of every image, 0 where invalid, on the images' device and dtype.

        Raises:
            InputError: no cameras, fewer than 2 images, cameras that do not fit the images, or no baseline.
        """
        check_images(images)
        n, _, h, w = images.shape
        if cameras is None:
            raise InputError("stereo depth needs the cameras (poses and intrinsics) of the images")
        if n < 2:
            raise InputError(f"stereo depth needs at least 2 images of the scene from different positions, got {n}")
        if len(cameras) != n or (cameras.height, cameras.width) != (h, w):
            raise InputError(
                f"{len(cameras)} camera(s) of {cameras.width}x{cameras.height} do not fit {n} image(s) of {w}x{h}"
            )
        cfg = self.config
        sources = select_neighbours(cameras.centers, cfg.neighbours, cfg.min_baseline_ratio)
        depths, valids, confs = [], [], []
        for i in range(n):
            d, v, c = plane_sweep_depth(images[i], images[sources[i]], cameras[i], cameras[sources[i]], cfg)
            depths.append(d)
            valids.append(v)
            confs.append(c)
        depth, valid, conf = torch.stack(depths), torch.stack(valids), torch.stack(confs)
        if cfg.consistent_views > 0:
            agree = torch.stack(
                [
                    count_consistent_views(d, cameras[i], cameras[src], depth[src], cfg.consistency)
                    for i, (d, src) in enumerate(zip(depth, sources, strict=True))
                ]
            )
            valid = valid & (agree >= cfg.consistent_views)
            depth = torch.where(valid, depth, torch.zeros_like(depth))
            conf = torch.where(valid, conf, torch.zeros_like(conf))
        return DepthPrediction(depth=depth, valid=valid, metric=True, confidence=conf)
