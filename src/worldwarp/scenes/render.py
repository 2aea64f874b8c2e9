"""Exact rendering of a :class:`~worldwarp.scenes.scene.Scene` by vectorised ray casting.

One ray through every pixel centre gives the z-depth (exact: rays are ``d = R K^-1 (u, v, 1)``, so the hit
parameter is the distance along the optical axis) and a first colour. Pixels on an object boundary or with local
contrast are then re-shaded with ``supersample x supersample`` stratified sub-pixel rays and averaged
(adaptive anti-aliasing; ``adaptive=False`` supersamples every pixel). Shading is ambient + Lambert from
shadow-free lights, so colours do not depend on the viewpoint: a surface point has the same colour in every
frame (up to anti-aliasing), which is what the multi-view tests rely on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.scenes.geometry import BOX_EDGES, PackedGeometry, intersect, primitive_corners
from worldwarp.scenes.scene import Scene
from worldwarp.scenes.textures import evaluate_texture

__all__ = ["RenderConfig", "RenderOutput", "render", "screen_rects", "shade_rays"]


@dataclass(frozen=True)
class RenderConfig:
    """How to render.

    Attributes:
        supersample: sub-pixel grid per refined pixel (1 = no anti-aliasing; odd values include the centre).
        adaptive: refine only pixels on primitive boundaries or with contrast above ``contrast``.
        contrast: max |RGB difference| to a 4-neighbour above which a pixel is refined.
        chunk_rays: rays cast at once.
        cull: test each ray only against primitives whose screen rectangle contains it (exact; off = every
            ray against every primitive, the slow reference).
        dtype: working dtype of the ray caster.
    """

    supersample: int = 3
    adaptive: bool = True
    contrast: float = 0.04
    chunk_rays: int = 32768
    cull: bool = True
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        if self.supersample < 1:
            raise InputError(f"supersample must be >= 1, got {self.supersample}")
        if self.chunk_rays < 1:
            raise InputError(f"chunk_rays must be >= 1, got {self.chunk_rays}")


@dataclass
class RenderOutput:
    """Rendered frames: ``rgb`` (N, 3, H, W) in [0, 1], ``depth`` (N, H, W) z-depth (0 where no surface),
    ``prim`` (N, H, W) long id of the primitive seen at the pixel centre (-1 for none)."""

    rgb: Tensor
    depth: Tensor
    prim: Tensor


def shade_rays(
    scene: Scene,
    geom: PackedGeometry,
    origins: Tensor,
    dirs: Tensor,
    footprint_per_depth: float,
    pairs: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Colour (R, 3), hit parameter t (R,) (inf for none) and primitive id (R,) of rays (R, 3).

    ``footprint_per_depth``: size of one sample on a fronto-parallel surface at depth 1 (i.e. 1 / (f * ss)).
    ``pairs``: optional (ray, primitive) candidates, see :func:`~worldwarp.scenes.geometry.intersect`.
    """
    hit = intersect(geom, origins, dirs, pairs)
    rgb = origins.new_zeros(len(origins), 3)
    valid = hit.prim >= 0
    if not valid.any():
        return rgb, hit.t, hit.prim
    dn = dirs / dirs.norm(dim=-1, keepdim=True)
    n = hit.normal
    cos = (n * dn).sum(-1)
    n = torch.where((cos > 0)[:, None], -n, n)  # face the viewer
    t_safe = torch.where(valid, hit.t, torch.zeros_like(hit.t))
    footprint = t_safe * footprint_per_depth / cos.abs().clamp_min(0.2)
    light = origins.new_full((len(origins), 3), scene.ambient)
    for L in scene.lights:
        col = origins.new_tensor(L.color) * L.intensity
        if L.kind == "directional":
            ldir = origins.new_tensor(L.vector)
            ldir = ldir / ldir.norm()
            lam = (n @ ldir).clamp_min(0)
        else:
            to = origins.new_tensor(L.vector)[None] - hit.point
            dist = to.norm(dim=-1).clamp_min(1e-6)
            lam = ((n * to).sum(-1) / dist).clamp_min(0) / (1 + (dist / L.falloff) ** 2)
        light = light + lam[:, None] * col[None]
    for m in hit.material[valid].unique().tolist():
        sel = (hit.material == m).nonzero().squeeze(1)
        mat = scene.materials[m]
        albedo = evaluate_texture(mat.texture, hit.uv[sel], footprint[sel])
        rgb[sel] = albedo if mat.emissive else albedo * light[sel]
    return rgb.clamp(0, 1), hit.t, hit.prim


def _camera_rays(cameras: Cameras, i: int, uv: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """World rays (origins (R, 3), dirs (R, 3) with unit camera-z) through pixel positions ``uv`` (R, 2)."""
    K = cameras.K[i].to(dtype)
    c2w = cameras.c2w[i].to(dtype)
    x = (uv[:, 0] - K[0, 2]) / K[0, 0]
    y = (uv[:, 1] - K[1, 2]) / K[1, 1]
    d_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    dirs = d_cam @ c2w[:3, :3].T
    return c2w[:3, 3].expand_as(dirs), dirs


def screen_rects(corners: Tensor, unbounded: Tensor, cameras: Cameras, i: int, near: float = 1e-4) -> Tensor:
    """(num, 4) pixel rectangles (u0, v0, u1, v1) that contain the image of each primitive in camera ``i``.

    Conservative: the image of a primitive's enclosing box, clipped at the near plane (corners in front of it
    plus the points where box edges cross it). Invisible primitives get an empty rectangle; unbounded ones the
    whole image.
    """
    dt = corners.dtype
    w2c = cameras.w2c[i].to(dt)
    K = cameras.K[i].to(dt)
    cam = corners @ w2c[:3, :3].T + w2c[:3, 3]  # (num, 8, 3)
    a, b = cam[:, BOX_EDGES[:, 0]], cam[:, BOX_EDGES[:, 1]]  # (num, 12, 3)
    za, zb = a[..., 2:], b[..., 2:]
    s = ((near - za) / torch.where((zb - za).abs() < 1e-12, torch.full_like(za, 1e-12), zb - za)).clamp(0, 1)
    cross = a + s * (b - a)
    cross_ok = ((za > near) != (zb > near)).squeeze(-1)
    pts = torch.cat([cam, cross], dim=1)  # (num, 20, 3)
    ok = torch.cat([cam[..., 2] > near, cross_ok], dim=1)
    z = pts[..., 2].clamp_min(near)
    u = K[0, 0] * pts[..., 0] / z + K[0, 2]
    v = K[1, 1] * pts[..., 1] / z + K[1, 2]
    big = 1e9
    u0 = torch.where(ok, u, torch.full_like(u, big)).amin(1)
    u1 = torch.where(ok, u, torch.full_like(u, -big)).amax(1)
    v0 = torch.where(ok, v, torch.full_like(v, big)).amin(1)
    v1 = torch.where(ok, v, torch.full_like(v, -big)).amax(1)
    rect = torch.stack([u0, v0, u1, v1], dim=-1)
    margin = 0.5
    rect = rect + torch.tensor([-margin, -margin, margin, margin], dtype=dt, device=rect.device)
    full = torch.tensor([-big, -big, big, big], dtype=dt, device=rect.device)
    return torch.where(unbounded[:, None], full, rect)


_TILE = 16  # pixels per side of a culling tile


def _tile_candidates(rects: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """CSR lists of the primitives whose rectangle overlaps each 16 x 16 tile.

    Returns ``prims`` (Q,) sorted by tile, ``counts`` (T,) and ``offsets`` (T,) with T = tiles_y * tiles_x.
    """
    ty, tx = -(-height // _TILE), -(-width // _TILE)
    dt, dev = rects.dtype, rects.device
    x0 = torch.arange(tx, dtype=dt, device=dev) * _TILE
    y0 = torch.arange(ty, dtype=dt, device=dev) * _TILE
    ox = (rects[None, :, 0] <= x0[:, None] + _TILE) & (rects[None, :, 2] >= x0[:, None])  # (tx, P)
    oy = (rects[None, :, 1] <= y0[:, None] + _TILE) & (rects[None, :, 3] >= y0[:, None])  # (ty, P)
    overlap = (oy[:, None, :] & ox[None, :, :]).reshape(ty * tx, -1)
    tile, prim = overlap.nonzero(as_tuple=True)
    counts = torch.bincount(tile, minlength=ty * tx)
    offsets = torch.cumsum(counts, 0) - counts
    return prim, counts, offsets


def _pairs_for(uv: Tensor, width: int, cand: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """(ray, primitive) candidate pairs of rays through image points ``uv`` (R, 2)."""
    prims, counts, offsets = cand
    tx = -(-width // _TILE)
    col = (uv[:, 0] / _TILE).floor().to(torch.int64).clamp(0, tx - 1)
    row = (uv[:, 1] / _TILE).floor().to(torch.int64).clamp_min(0)
    tile = (row * tx + col).clamp_max(len(counts) - 1)
    n = counts[tile]
    ray_idx = torch.repeat_interleave(torch.arange(len(uv), device=uv.device), n)
    start = torch.cumsum(n, 0) - n
    within = torch.arange(len(ray_idx), device=uv.device) - start[ray_idx]
    return ray_idx, prims[offsets[tile][ray_idx] + within]


def _cast(
    scene: Scene,
    geom: PackedGeometry,
    cameras: Cameras,
    i: int,
    uv: Tensor,
    fpd: float,
    chunk: int,
    cand: tuple[Tensor, Tensor, Tensor] | None,
) -> tuple[Tensor, Tensor, Tensor]:
    outs = []
    for s in range(0, len(uv), chunk):
        q = uv[s : s + chunk]
        o, d = _camera_rays(cameras, i, q, uv.dtype)
        pairs = None if cand is None else _pairs_for(q, cameras.width, cand)
        outs.append(shade_rays(scene, geom, o, d, fpd, pairs))
    return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs]), torch.cat([o[2] for o in outs])


def _refine_mask(rgb: Tensor, prim: Tensor, contrast: float) -> Tensor:
    """(H, W) bool: pixels whose primitive differs from a 4-neighbour or whose colour does by > contrast."""
    H, W = prim.shape
    mask = torch.zeros(H, W, dtype=torch.bool, device=prim.device)
    dp_v = prim[1:] != prim[:-1]
    dp_h = prim[:, 1:] != prim[:, :-1]
    dc_v = (rgb[:, 1:] - rgb[:, :-1]).abs().amax(0) > contrast
    dc_h = (rgb[:, :, 1:] - rgb[:, :, :-1]).abs().amax(0) > contrast
    ev, eh = dp_v | dc_v, dp_h | dc_h
    mask[1:] |= ev
    mask[:-1] |= ev
    mask[:, 1:] |= eh
    mask[:, :-1] |= eh
    return mask


def render(scene: Scene, cameras: Cameras, config: RenderConfig | None = None) -> RenderOutput:
    """Render every camera of ``cameras`` on their device in ``config.dtype``.

    Returns rgb (N, 3, H, W), z-depth (N, H, W) (0 where a ray hits nothing) and primitive ids (N, H, W).
    """
    cfg = config or RenderConfig()
    dev, dt = cameras.device, cfg.dtype
    geom = scene.pack(dev, dt)
    H, W, ss = cameras.height, cameras.width, cfg.supersample
    grid = cameras.pixel_grid(dt).reshape(-1, 2)  # (H*W, 2) pixel centres
    corners, unbounded = primitive_corners(geom)
    offs = (torch.arange(ss, dtype=dt, device=dev) + 0.5) / ss - 0.5
    oy, ox = torch.meshgrid(offs, offs, indexing="ij")
    sub = torch.stack([ox.reshape(-1), oy.reshape(-1)], dim=-1)  # (ss*ss, 2)
    rgbs, depths, prims = [], [], []
    for i in range(len(cameras)):
        f = float(cameras.K[i, :2, :2].diagonal().mean())
        cand = None
        if cfg.cull:
            cand = _tile_candidates(screen_rects(corners, unbounded, cameras, i), H, W)
        rgb, t, prim = _cast(scene, geom, cameras, i, grid, 1.0 / f, cfg.chunk_rays, cand)
        rgb = rgb.T.reshape(3, H, W)
        prim = prim.reshape(H, W)
        depth = torch.where(torch.isfinite(t), t, torch.zeros_like(t)).reshape(H, W)
        if ss > 1:
            if cfg.adaptive:
                idx = _refine_mask(rgb, prim, cfg.contrast).reshape(-1).nonzero().squeeze(1)
            else:
                idx = torch.arange(H * W, device=dev)
            if len(idx):
                pts = (grid[idx][:, None, :] + sub[None]).reshape(-1, 2)
                srgb, _, _ = _cast(scene, geom, cameras, i, pts, 1.0 / (f * ss), cfg.chunk_rays, cand)
                flat = rgb.reshape(3, -1)
                flat[:, idx] = srgb.reshape(len(idx), ss * ss, 3).mean(1).T
        rgbs.append(rgb)
        depths.append(depth)
        prims.append(prim)
    return RenderOutput(rgb=torch.stack(rgbs), depth=torch.stack(depths), prim=torch.stack(prims))
