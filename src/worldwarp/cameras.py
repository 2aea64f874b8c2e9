"""Pinhole cameras in worldwarp's one convention.

Convention (see docs/conventions.md):

* poses are **camera-to-world** 4x4 matrices (``c2w``) with **OpenCV axes**: x right, y down, z forward;
* intrinsics ``K`` are 3x3 in **pixels** for an image of ``(height, width)``; pixel ``(u, v)`` = ``(0, 0)`` is
  the top-left corner of the top-left pixel, so the centre of pixel ``(i, j)`` is ``(i + 0.5, j + 0.5)``;
* depth is **z-depth** (distance along the optical axis), not ray length;
* quaternions are **wxyz**.

Every other convention (OpenGL, world-to-camera, normalised intrinsics) is handled by the converters in
:mod:`worldwarp.trajectory.io` and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "CameraError",
    "Cameras",
    "intrinsics_from_fov",
    "look_at",
    "orthonormalize",
]

# A rotation whose ||R^T R - I|| exceeds this is an error; below it, it is silently re-orthonormalised.
ORTHO_TOLERANCE = 1e-2


class CameraError(ValueError):
    """Raised for invalid camera parameters (the message says which camera and why)."""


def orthonormalize(R: Tensor) -> Tensor:
    """Nearest proper rotation to each matrix of ``R`` (..., 3, 3), via SVD."""
    U, _, Vh = torch.linalg.svd(R)
    d = torch.sign(torch.det(U @ Vh))
    D = torch.ones_like(R[..., 0])
    D[..., -1] = d
    return U @ torch.diag_embed(D) @ Vh


def intrinsics_from_fov(
    height: int, width: int, fov_x_deg: float | None = None, fov_y_deg: float | None = None
) -> Tensor:
    """K (3, 3) float64 for a centred principal point and a horizontal or vertical field of view."""
    if (fov_x_deg is None) == (fov_y_deg is None):
        raise CameraError("give exactly one of fov_x_deg and fov_y_deg")
    if fov_x_deg is not None:
        if not 0 < fov_x_deg < 180:
            raise CameraError(f"fov_x_deg must lie in (0, 180), got {fov_x_deg}")
        f = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
    else:
        assert fov_y_deg is not None
        if not 0 < fov_y_deg < 180:
            raise CameraError(f"fov_y_deg must lie in (0, 180), got {fov_y_deg}")
        f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
    return torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float64)


def look_at(eye: Tensor, target: Tensor, up: Tensor | None = None) -> Tensor:
    """c2w (..., 4, 4) of cameras at ``eye`` looking at ``target`` (OpenCV axes; ``up`` defaults to -y).

    ``up`` is the world direction that should appear up in the image; with OpenCV axes the image's up is the
    camera's -y, so the default world up is (0, -1, 0).
    """
    eye = torch.as_tensor(eye, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=eye.dtype)
    if up is None:
        up = torch.tensor([0.0, -1.0, 0.0], dtype=eye.dtype)
    up = torch.as_tensor(up, dtype=eye.dtype).expand_as(eye)
    z = target - eye
    z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x = torch.cross(-up, z, dim=-1)  # image right = down x forward
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    y = torch.cross(z, x, dim=-1)
    c2w = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype)
    c2w[..., :3, 0] = x
    c2w[..., :3, 1] = y
    c2w[..., :3, 2] = z
    c2w[..., :3, 3] = eye
    c2w[..., 3, 3] = 1.0
    return c2w


@dataclass
class Cameras:
    """N pinhole cameras sharing one image size.

    Attributes:
        c2w: (N, 4, 4) camera-to-world, OpenCV axes.
        K: (N, 3, 3) intrinsics in pixels for an image of ``(height, width)``.
        height, width: image size in pixels.

    Construction validates: finite values, orthonormal rotations (drift up to ``ORTHO_TOLERANCE`` is
    re-orthonormalised, more is an error), last row (0, 0, 0, 1), focal lengths > 0, principal point inside
    the image, K upper triangular with last row (0, 0, 1). A single (4, 4) / (3, 3) is promoted to N = 1, and one
    K is broadcast to all poses.
    """

    c2w: Tensor
    K: Tensor
    height: int
    width: int

    def __post_init__(self) -> None:
        c2w = torch.as_tensor(self.c2w)
        if not c2w.is_floating_point():
            c2w = c2w.to(torch.float64)
        K = torch.as_tensor(self.K).to(device=c2w.device, dtype=c2w.dtype)
        if c2w.ndim == 2:
            c2w = c2w[None]
        if K.ndim == 2:
            K = K[None].expand(c2w.shape[0], 3, 3).clone()
        if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
            raise CameraError(f"c2w must have shape (N, 4, 4), got {tuple(c2w.shape)}")
        if K.ndim != 3 or K.shape[1:] != (3, 3) or K.shape[0] != c2w.shape[0]:
            raise CameraError(f"K must have shape ({c2w.shape[0]}, 3, 3), got {tuple(K.shape)}")
        self.height, self.width = int(self.height), int(self.width)
        if self.height <= 0 or self.width <= 0:
            raise CameraError(f"image size must be positive, got {self.height}x{self.width}")
        for name, t in (("c2w", c2w), ("K", K)):
            bad = ~torch.isfinite(t).flatten(1).all(dim=1)
            if bad.any():
                raise CameraError(f"camera {int(bad.nonzero()[0])}: {name} has a NaN or infinite value")
        last = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=c2w.dtype, device=c2w.device)
        bad = (c2w[:, 3] - last).abs().amax(dim=1) > 1e-6
        if bad.any():
            raise CameraError(f"camera {int(bad.nonzero()[0])}: last row of c2w must be 0 0 0 1")
        R = c2w[:, :3, :3]
        eye = torch.eye(3, dtype=R.dtype, device=R.device)
        err = (R.transpose(1, 2) @ R - eye).abs().amax(dim=(1, 2))
        det = torch.det(R)
        bad = (err > ORTHO_TOLERANCE) | (det <= 0)
        if bad.any():
            i = int(bad.nonzero()[0])
            raise CameraError(
                f"camera {i}: rotation is not orthonormal (max |R^T R - I| = {float(err[i]):.3g}, "
                f"det = {float(det[i]):.3g})"
            )
        if (err > 1e-12).any():
            c2w = c2w.clone()
            c2w[:, :3, :3] = orthonormalize(R)
        row = torch.tensor([0.0, 0.0, 1.0], dtype=K.dtype, device=K.device)
        bad = ((K[:, 2] - row).abs().amax(dim=1) > 1e-6) | (K[:, 1, 0].abs() > 1e-6)
        if bad.any():
            raise CameraError(f"camera {int(bad.nonzero()[0])}: K must be upper triangular with last row 0 0 1")
        fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
        bad = (fx <= 0) | (fy <= 0)
        if bad.any():
            raise CameraError(f"camera {int(bad.nonzero()[0])}: focal length must be > 0")
        bad = (cx < 0) | (cx > self.width) | (cy < 0) | (cy > self.height)
        if bad.any():
            i = int(bad.nonzero()[0])
            raise CameraError(
                f"camera {i}: principal point ({float(cx[i]):.3f}, {float(cy[i]):.3f}) lies outside the "
                f"{self.width}x{self.height} image"
            )
        self.c2w, self.K = c2w, K

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, idx: int | slice | Tensor | list[int]) -> Cameras:
        if isinstance(idx, int):
            idx = slice(idx, idx + 1 if idx != -1 else None)
        return Cameras(self.c2w[idx], self.K[idx], self.height, self.width)

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    @property
    def dtype(self) -> torch.dtype:
        return self.c2w.dtype

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Cameras:
        return Cameras(self.c2w.to(device, dtype), self.K.to(device, dtype), self.height, self.width)

    @staticmethod
    def cat(cams: list[Cameras]) -> Cameras:
        if not cams:
            raise CameraError("cannot concatenate an empty list of cameras")
        h, w = cams[0].height, cams[0].width
        if any((c.height, c.width) != (h, w) for c in cams):
            raise CameraError("cannot concatenate cameras of different image sizes")
        return Cameras(torch.cat([c.c2w for c in cams]), torch.cat([c.K for c in cams]), h, w)

    @property
    def w2c(self) -> Tensor:
        """(N, 4, 4) world-to-camera (exact rigid inverse)."""
        R = self.c2w[:, :3, :3]
        t = self.c2w[:, :3, 3:]
        out = torch.zeros_like(self.c2w)
        out[:, :3, :3] = R.transpose(1, 2)
        out[:, :3, 3:] = -R.transpose(1, 2) @ t
        out[:, 3, 3] = 1.0
        return out

    @property
    def centers(self) -> Tensor:
        """(N, 3) camera centres in world coordinates."""
        return self.c2w[:, :3, 3]

    @property
    def forward(self) -> Tensor:
        """(N, 3) viewing directions (camera +z) in world coordinates."""
        return self.c2w[:, :3, 2]

    def fov_x(self) -> Tensor:
        """(N,) horizontal field of view in degrees."""
        return torch.rad2deg(2 * torch.atan(0.5 * self.width / self.K[:, 0, 0]))

    def fov_y(self) -> Tensor:
        """(N,) vertical field of view in degrees."""
        return torch.rad2deg(2 * torch.atan(0.5 * self.height / self.K[:, 1, 1]))

    # ------------------------------------------------------------------ image-space edits
    def resize(self, height: int, width: int) -> Cameras:
        """Cameras for the same views rendered at ``(height, width)`` (K scaled per axis)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.clone()
        K[:, 0] *= sx
        K[:, 1] *= sy
        K[:, 2] = torch.tensor([0.0, 0.0, 1.0], dtype=K.dtype, device=K.device)
        return Cameras(self.c2w, K, height, width)

    def crop(self, top: int, left: int, height: int, width: int) -> Cameras:
        """Cameras for the crop ``[top:top+height, left:left+width]`` of the image."""
        K = self.K.clone()
        K[:, 0, 2] -= left
        K[:, 1, 2] -= top
        return Cameras(self.c2w, K, height, width)

    # ------------------------------------------------------------------ pose edits
    def transform(self, T: Tensor) -> Cameras:
        """Apply a world transform ``T`` (4, 4, rigid) to every pose: c2w <- T @ c2w."""
        T = torch.as_tensor(T, dtype=self.dtype, device=self.device)
        return Cameras(T @ self.c2w, self.K, self.height, self.width)

    def relative_to_first(self) -> Cameras:
        """Poses expressed in the first camera's frame (camera 0 becomes the identity)."""
        return self.transform(self.w2c[0])

    def scene_scale(self) -> float:
        """Largest distance of a camera centre from the first one (0 for a static path)."""
        return float((self.centers - self.centers[:1]).norm(dim=-1).max())

    def normalize_scale(self, target: float = 1.0) -> tuple[Cameras, float]:
        """Scale translations so the furthest centre lies ``target`` from the first.

        Returns the new cameras and the factor applied (1.0 when the path does not move).
        """
        scale = self.scene_scale()
        factor = target / scale if scale > 0 else 1.0
        c2w = self.c2w.clone()
        origin = c2w[:1, :3, 3]
        c2w[:, :3, 3] = origin + (c2w[:, :3, 3] - origin) * factor
        return Cameras(c2w, self.K, self.height, self.width), factor

    # ------------------------------------------------------------------ geometry
    def pixel_grid(self, dtype: torch.dtype | None = None) -> Tensor:
        """(H, W, 2) pixel centres (u, v) = (j + 0.5, i + 0.5)."""
        dtype = dtype or self.dtype
        v, u = torch.meshgrid(
            torch.arange(self.height, dtype=dtype, device=self.device) + 0.5,
            torch.arange(self.width, dtype=dtype, device=self.device) + 0.5,
            indexing="ij",
        )
        return torch.stack([u, v], dim=-1)

    def unproject(self, depth: Tensor) -> Tensor:
        """World points (N, H, W, 3) of every pixel centre with z-depth ``depth`` (N, H, W)."""
        if depth.shape[-2:] != (self.height, self.width):
            raise CameraError(
                f"depth of size {tuple(depth.shape[-2:])} does not match cameras {self.height}x{self.width}"
            )
        uv = self.pixel_grid(depth.dtype)
        K = self.K.to(depth.dtype)
        x = (uv[..., 0] - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None]
        y = (uv[..., 1] - K[:, 1, 2, None, None]) / K[:, 1, 1, None, None]
        pts_cam = torch.stack([x * depth, y * depth, depth], dim=-1)  # (N, H, W, 3)
        c2w = self.c2w.to(depth.dtype)
        return torch.einsum("nij,nhwj->nhwi", c2w[:, :3, :3], pts_cam) + c2w[:, None, None, :3, 3]

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Project world points (N, P, 3) (or (P, 3), shared) into every camera.

        Returns ``uv`` (N, P, 2) in pixels and z-depth ``z`` (N, P); points behind the camera have z <= 0.
        """
        if points.ndim == 2:
            points = points[None].expand(len(self), -1, -1)
        w2c = self.w2c.to(points.dtype)
        cam = torch.einsum("nij,npj->npi", w2c[:, :3, :3], points) + w2c[:, None, :3, 3]
        z = cam[..., 2]
        K = self.K.to(points.dtype)
        zs = torch.where(z.abs() < 1e-12, torch.full_like(z, 1e-12), z)
        u = K[:, None, 0, 0] * cam[..., 0] / zs + K[:, None, 0, 2]
        v = K[:, None, 1, 1] * cam[..., 1] / zs + K[:, None, 1, 2]
        return torch.stack([u, v], dim=-1), z
