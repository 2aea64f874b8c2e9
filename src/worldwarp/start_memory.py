"""Start-frame memory: put the start image's real pixels back into a warp wherever the start view sees the surface.

Each chunk's cache is fitted to its history frames, which after the first chunk are the pipeline's own renders,
so every chunk re-fits renders of renders and the fine detail of what the start image showed fades chunk by
chunk. The start image is the one real observation (with its depth, given or estimated), so when the camera looks
again at a surface the start view saw, its pixels can be taken from there directly.

:func:`recall_start_frame` does that with an occlusion model, so that the start view's content never shows through
a surface in front of it:

1. **Where the start surface lies in the target.** The start pixels are z-buffer splatted into the target
   (:func:`worldwarp.warp.point_cloud_warp`, radius ``point_radius``): where some start point covers a target
   pixel, that pixel's depth is the splat's (exact start geometry); elsewhere it is the warp's rendered depth.
2. **Colour.** The target pixel is lifted to 3D with that depth and projected into the start camera; the start
   view sees it when the start depth at that pixel agrees within ``visible_tol`` of the point's z-depth there. Its
   colour is the bilinear sample of the start image at the projection (no blocky splat colours).
3. **Occlusion.** A pixel seen by the start view is taken when
   a. the warp is valid there and the splat depth agrees with the warp's rendered depth within
      ``same_surface_tol`` (the cache shows the same surface), or the splat has a gap there and the warp's own 3D
      point is seen by the start view; or
   b. (``free_space``) elsewhere (a hole of the warp, or a start surface nearer or farther than the cache's):
      every one of ``ray_samples`` points on the ray from the target camera to it (from ``ray_start`` to
      ``1 - 2 free_tol`` of the way) is observed empty by the start view or a history view: it projects into that
      view in front of its depth by more than ``free_tol`` of it. A ray through space no view saw is rejected,
      since an unseen wall may stand there; a cache surface in front hides the start one unless some view saw
      through it.

Recalled pixels become valid warp pixels (their depth is the one used above), so the fill keeps them like the
rest of the warp.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError, check_finite
from worldwarp.warp import WarpConfig, WarpResult, point_cloud_warp

__all__ = ["StartMemoryConfig", "recall_start_frame"]

_NEAR = 1e-2  # z-depth below which a point counts as behind (or at) a camera


@dataclass
class StartMemoryConfig:
    """Settings of the start-frame memory (:func:`recall_start_frame`); off unless ``enabled``.

    Attributes:
        enabled: recall the start image into every chunk's warp (the pipeline ignores it with
            ``cache_mode="none"``, the ablation without any geometry).
        same_surface_tol: relative depth difference within which the start splat and the warp show the same surface.
        visible_tol: relative difference between a point's z-depth in the start view and the start depth there
            within which the start view sees the point.
        free_space: also recall where the warp has a hole (or a farther surface), when the ray is observed empty.
        free_tol: a ray sample is observed empty by a view when it lies in front of that view's depth by more than
            this fraction of it.
        ray_samples: samples on each ray of the free-space test.
        ray_start: first sample, as a fraction of the distance to the point (the camera's own spot is empty); the
            last lies at ``1 - 2 free_tol`` (clear of the surface by more than the tolerance).
        point_radius: pixel radius of the start splat (see :func:`worldwarp.warp.point_cloud_warp`); 1.5 covers the
            3 x 3 block, so a surface seen up to about 3x closer than in the start view leaves no gaps in it.
    """

    enabled: bool = False
    same_surface_tol: float = 0.1
    visible_tol: float = 0.05
    free_space: bool = True
    free_tol: float = 0.03
    ray_samples: int = 12
    ray_start: float = 0.1
    point_radius: float = 1.5

    def __post_init__(self) -> None:
        check_finite(self)
        for name in ("same_surface_tol", "visible_tol", "free_tol"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise InputError(f"StartMemoryConfig.{name} must lie in (0, 1), got {getattr(self, name)}")
        if self.ray_samples < 1:
            raise InputError(f"StartMemoryConfig.ray_samples must be >= 1, got {self.ray_samples}")
        if not 0.0 < self.ray_start < 1 - 2 * self.free_tol:
            raise InputError(
                f"StartMemoryConfig.ray_start must lie in (0, 1 - 2 free_tol), got {self.ray_start} (free_tol "
                f"{self.free_tol})"
            )
        if self.point_radius < 0:
            raise InputError(f"StartMemoryConfig.point_radius must be >= 0, got {self.point_radius}")


def _nearest(depth: Tensor, uv: Tensor) -> tuple[Tensor, Tensor]:
    """Depth (P,) of the pixel each uv (P, 2) falls in (pixel j spans [j, j + 1)), and whether it is inside."""
    h, w = depth.shape
    px, py = uv[:, 0].floor(), uv[:, 1].floor()
    inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    d = depth[py.clamp(0, h - 1).long(), px.clamp(0, w - 1).long()]
    return torch.where(inside, d, torch.zeros_like(d)), inside


def _bilinear(image: Tensor, uv: Tensor) -> Tensor:
    """(C, P) bilinear samples of image (C, H, W) at pixel coordinates uv (P, 2) (centres at j + 0.5)."""
    _, h, w = image.shape
    grid = torch.stack([2 * uv[:, 0] / w - 1, 2 * uv[:, 1] / h - 1], -1)[None, None]  # (1, 1, P, 2)
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0]


def _observed_empty(points: Tensor, views: list[tuple[Tensor, Cameras]], free_tol: float) -> Tensor:
    """(P,) bool: each world point (P, 3) lies in front of the depth of at least one view (depth, camera)."""
    empty = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
    for depth, cam in views:
        uv, z = cam.project(points)
        d, inside = _nearest(depth, uv[0])
        z = z[0]
        empty |= inside & (z > _NEAR) & (d > 0) & (z < d * (1 - free_tol))
    return empty


def recall_start_frame(
    warp: WarpResult,
    image: Tensor,
    depth: Tensor,
    camera: Cameras,
    targets: Cameras,
    views: tuple[Tensor, Cameras] | None = None,
    config: StartMemoryConfig | None = None,
) -> WarpResult:
    """The warp with the start image's pixels recalled wherever the start view sees the target's surface.

    Args:
        warp: the warp into ``targets`` (N target cameras of size (H, W)).
        image: (3, Hs, Ws) start image in [0, 1].
        depth: (Hs, Ws) its z-depth (0 = unknown).
        camera: the start camera (one camera of size (Hs, Ws)).
        targets: the N target cameras.
        views: more views whose depth tells empty space for the free-space test: ``(depths (V, Hv, Wv), V
            cameras)`` (the history frames); the start view is always one.
        config: memory settings (``enabled`` is not looked at: calling this function recalls).

    Returns:
        A new :class:`WarpResult`: recalled pixels hold the start image's colour and the depth used, with alpha 1
        and mask True; every other pixel is the warp's.
    """
    config = config or StartMemoryConfig()
    n, h, w = warp.mask.shape
    if warp.rgb.shape != (n, 3, h, w) or warp.depth.shape != (n, h, w) or (targets.height, targets.width) != (h, w):
        raise InputError(
            f"recall_start_frame: warp rgb {tuple(warp.rgb.shape)}, depth {tuple(warp.depth.shape)}, mask "
            f"{tuple(warp.mask.shape)} and targets of {targets.height}x{targets.width} do not match"
        )
    if len(targets) != n or len(camera) != 1:
        raise InputError(
            f"recall_start_frame: need {n} targets and one start camera, got {len(targets)}, {len(camera)}"
        )
    if image.ndim != 3 or image.shape[0] != 3 or depth.shape != image.shape[1:]:
        raise InputError(
            f"recall_start_frame: start image {tuple(image.shape)} and depth {tuple(depth.shape)} do not match"
        )
    if (camera.height, camera.width) != tuple(depth.shape):
        raise InputError(
            f"recall_start_frame: start camera {camera.height}x{camera.width} does not match depth {tuple(depth.shape)}"
        )
    dtype, device = warp.rgb.dtype, warp.rgb.device
    image, depth = image.to(device, dtype), depth.to(device, dtype)
    camera, targets = camera.to(device, dtype), targets.to(device, dtype)
    empty_views = [(depth, camera)]
    if views is not None:
        vd, vc = views
        if vd.ndim != 3 or len(vc) != vd.shape[0] or (vc.height, vc.width) != tuple(vd.shape[1:]):
            raise InputError(f"recall_start_frame: view depths {tuple(vd.shape)} do not match {len(vc)} cameras")
        vd, vc = vd.to(device, dtype), vc.to(device, dtype)
        empty_views += [(vd[i], vc[i : i + 1]) for i in range(len(vc))]

    # 1. The start surface in the targets: a z-buffered splat of the start pixels (no erosion).
    splat = point_cloud_warp(
        image[None], depth[None], camera, targets, WarpConfig(point_radius=config.point_radius, erosion=0)
    )
    ts = torch.linspace(config.ray_start, 1 - 2 * config.free_tol, config.ray_samples, dtype=dtype, device=device)
    rgb, out_depth, alpha, mask = warp.rgb.clone(), warp.depth.clone(), warp.alpha.clone(), warp.mask.clone()
    for t in range(n):
        covered = splat.alpha[t] > 0  # (H, W)
        valid = warp.mask[t] & (warp.depth[t] > 0)
        z = torch.where(covered, splat.depth[t], warp.depth[t])
        known = covered | valid
        pts = targets[t].unproject(torch.where(known, z, torch.ones_like(z))[None])[0].reshape(-1, 3)  # (H*W, 3)

        # 2. Seen by the start view: its depth agrees with the point's z-depth there.
        uv, z0 = camera.project(pts)
        uv, z0 = uv[0], z0[0]
        d0, inside = _nearest(depth, uv)
        seen = (
            known.reshape(-1) & inside & (z0 > _NEAR) & (d0 > 0) & ((d0 - z0).abs() <= config.visible_tol * z0)
        ).view(h, w)

        # 3a. The same surface as the warp shows (or a splat gap on the warp's surface).
        same = covered & valid & ((splat.depth[t] - warp.depth[t]).abs() <= config.same_surface_tol * warp.depth[t])
        take = seen & (same | (valid & ~covered))
        # 3b. Elsewhere: only along rays that some view saw to be empty.
        if config.free_space:
            ask = (seen & covered & ~take).reshape(-1).nonzero()[:, 0]
            if ask.numel():
                origin = targets.c2w[t, :3, 3]
                ray = origin + (pts[ask] - origin)[:, None, :] * ts[None, :, None]  # (A, S, 3)
                ok = _observed_empty(ray.reshape(-1, 3), empty_views, config.free_tol).view(-1, len(ts)).all(1)
                extra = torch.zeros(h * w, dtype=torch.bool, device=device)
                extra[ask[ok]] = True
                take |= extra.view(h, w)
        if not bool(take.any()):
            continue
        colour = _bilinear(image, uv).view(3, h, w)
        rgb[t] = torch.where(take[None], colour, rgb[t])
        out_depth[t] = torch.where(take, z, out_depth[t])
        alpha[t] = torch.where(take, torch.ones_like(alpha[t]), alpha[t])
        mask[t] |= take
    return WarpResult(rgb=rgb, depth=out_depth, alpha=alpha, mask=mask)
