"""A weight-free depth guess: a ground plane below the horizon and a fronto-parallel backdrop.

Used only when neither a depth file nor a depth model is available; it warns that quality will be poor.

Geometry (OpenCV camera axes, pixel centres at ``v = i + 0.5``). The camera stands ``h`` above a horizontal
ground plane and is pitched so that the horizon lies on image row ``v_h``: with ``tan(theta) = (c_y - v_h) /
f_y`` the world's down direction in camera coordinates is ``n = (0, cos(theta), sin(theta))`` and the ground is
``n . X = h``. The ray through pixel ``(u, v)`` is ``X = z ((u - c_x) / f_x, (v - c_y) / f_y, 1)``, so the
ground's z-depth is

    z_ground(v) = h f_y / (cos(theta) (v - v_h))        (v > v_h; no ground at or above the horizon)

i.e. ground *disparity* ``1 / z`` is linear in the row. A fronto-parallel backdrop at z-depth ``D`` stands on
the ground; it hides the ground beyond ``D`` (rows between the horizon and the contact row
``v_c = v_h + h f_y / (cos(theta) D)``) and fills the sky. The two are joined by a smooth maximum of the
disparities over ``blend`` image heights around the contact row (quadratic, C1); outside that band the depth
is exactly the plane's or exactly ``D``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from worldwarp.errors import InputError
from worldwarp.geometry.base import DepthPrediction, check_images

if TYPE_CHECKING:  # pragma: no cover
    from worldwarp.cameras import Cameras

__all__ = ["PriorDepth", "PriorDepthConfig", "PriorDepthWarning", "ground_backdrop_depth"]


class PriorDepthWarning(UserWarning):
    """Depth comes from the ground-plane prior: the geometry is a rough guess."""


@dataclass
class PriorDepthConfig:
    """Parameters of the ground-plane-and-backdrop prior (scene units are those of ``camera_height``).

    Attributes:
        camera_height: camera height above the ground plane (> 0).
        horizon: horizon row as a fraction of the image height from the top (0.5 = level camera with a centred
            principal point; values outside [0, 1] put the horizon outside the image).
        backdrop_distance: z-depth of the backdrop (> 0).
        blend: height of the smooth join between ground and backdrop, as a fraction of the image height (>= 0).
        fov_x_deg: horizontal field of view used when no cameras are given.
    """

    camera_height: float = 1.0
    horizon: float = 0.45
    backdrop_distance: float = 8.0
    blend: float = 0.04
    fov_x_deg: float = 60.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.camera_height) and self.camera_height > 0):
            raise InputError(f"prior camera_height must be > 0, got {self.camera_height}")
        if not (math.isfinite(self.backdrop_distance) and self.backdrop_distance > 0):
            raise InputError(f"prior backdrop_distance must be > 0, got {self.backdrop_distance}")
        if not (math.isfinite(self.blend) and self.blend >= 0):
            raise InputError(f"prior blend must be >= 0, got {self.blend}")
        if not math.isfinite(self.horizon):
            raise InputError(f"prior horizon must be finite, got {self.horizon}")
        if not 0 < self.fov_x_deg < 180:
            raise InputError(f"prior fov_x_deg must lie in (0, 180), got {self.fov_x_deg}")


def ground_backdrop_depth(
    K: Tensor,
    height: int,
    width: int,
    *,
    camera_height: float,
    horizon_row: float,
    backdrop_distance: float,
    blend_rows: float = 0.0,
) -> Tensor:
    """Z-depth (N, H, W) of the ground-plane-and-backdrop scene (see module doc) for intrinsics K (N, 3, 3).

    Args:
        K: (N, 3, 3) or (3, 3) intrinsics in pixels; the output has K's dtype and device.
        height, width: image size.
        camera_height: h > 0.
        horizon_row: v_h in pixels (pixel centres at i + 0.5).
        backdrop_distance: D > 0.
        blend_rows: width of the smooth join in rows (0 = hard minimum of the two depths).
    """
    if K.ndim == 2:
        K = K[None]
    if not K.is_floating_point():
        K = K.double()
    fy, cy = K[:, 1, 1, None, None], K[:, 1, 2, None, None]  # (N, 1, 1)
    theta = torch.atan((cy - horizon_row) / fy)
    v = torch.arange(height, dtype=K.dtype, device=K.device)[None, :, None] + 0.5  # (1, H, 1)
    rate = torch.cos(theta) / (fy * camera_height)  # ground disparity per row
    disp_ground = rate * (v - horizon_row)  # (N, H, 1); <= 0 at and above the horizon
    disp_wall = 1.0 / backdrop_distance
    if blend_rows > 0:
        k = rate * blend_rows  # band width in disparity
        gap = (disp_ground - disp_wall).abs()
        hh = (k - gap).clamp_min(0.0) / k
        disp = torch.maximum(disp_ground, torch.full_like(disp_ground, disp_wall)) + hh * hh * k / 4
    else:
        disp = disp_ground.clamp_min(disp_wall)
    return (1.0 / disp).expand(-1, height, width).contiguous()


class PriorDepth:
    """:class:`~worldwarp.geometry.base.DepthEstimator` for the ground-plane prior (warns on every use).

    The depth is in the units of ``camera_height`` and does not look at the pixels; ``metric`` is True in the
    sense that the scale is fixed by the config.
    """

    name = "prior"

    def __init__(self, config: PriorDepthConfig | None = None) -> None:
        self.config = config or PriorDepthConfig()

    def estimate(self, images: Tensor, cameras: Cameras | None = None) -> DepthPrediction:
        """Prior depth (N, H, W) in the images' dtype and device; intrinsics from ``cameras`` or ``fov_x_deg``."""
        from worldwarp.cameras import intrinsics_from_fov

        check_images(images)
        n, _, h, w = images.shape
        warnings.warn(
            "no depth given and no depth model available: using a ground-plane-and-backdrop depth guess; "
            "quality will be poor (pass --depth FILE or --depth-model PATH)",
            PriorDepthWarning,
            stacklevel=2,
        )
        if cameras is not None:
            if (cameras.height, cameras.width) != (h, w) or len(cameras) not in (1, n):
                raise InputError(
                    f"{len(cameras)} camera(s) of {cameras.width}x{cameras.height} do not fit {n} image(s) of {w}x{h}"
                )
            K = cameras.K.to(torch.float64).cpu().expand(n, 3, 3)
        else:
            K = intrinsics_from_fov(h, w, fov_x_deg=self.config.fov_x_deg)[None].expand(n, 3, 3)
        c = self.config
        depth = ground_backdrop_depth(
            K,
            h,
            w,
            camera_height=c.camera_height,
            horizon_row=c.horizon * h,
            backdrop_distance=c.backdrop_distance,
            blend_rows=c.blend * h,
        ).to(device=images.device, dtype=images.dtype)
        return DepthPrediction(depth=depth, valid=torch.ones_like(depth, dtype=torch.bool), metric=True)
