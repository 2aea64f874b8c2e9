"""Exact rendering of a :class:`~worldwarp.scenes.scene.Scene` by vectorised ray casting.

One ray through every pixel centre gives the z-depth (exact: rays are ``d = R K^-1 (u, v, 1)``, so the hit
parameter is the distance along the optical axis) and a first colour. Pixels on an object boundary or with local
contrast are then re-shaded with ``supersample x supersample`` stratified sub-pixel rays and averaged
(adaptive anti-aliasing; ``adaptive=False`` supersamples every pixel). Shading is ambient + Lambert from
shadow-free lights, so colours do not depend on the viewpoint: a surface point has the same colour in every
frame (up to anti-aliasing), which is what the multi-view tests rely on.

Speed (CPU): each frame bins primitives into 16 x 16 pixel tiles by their conservative screen rectangles; a ray
is tested against its tile's list (grouped by primitive kind) and against the primitives seen in every tile
(sky dome, ground: without lists). Sub-pixel samples of a pixel share its lists. Hits are shaded per primitive
kind and then per material, on the rays that need each step (lighting only for lit materials, footprints only
for filtered textures). Rays travel as contiguous x, y, z components and big batches (``chunk_rays``) keep both
cores busy. All of this is exact: culled and reference renders agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.scenes.geometry import (
    BOX_EDGES,
    V3,
    Candidates,
    PackedGeometry,
    components,
    first_hits,
    kind_subsets,
    primitive_corners,
    ray_first_hits,
    surface,
)
from worldwarp.scenes.scene import Scene
from worldwarp.scenes.textures import needs_footprint, texture_colors

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
    chunk_rays: int = 131072
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


def _shade(
    scene: Scene, geom: PackedGeometry, o: V3, d: V3, dnorm: Tensor, t: Tensor, prim: Tensor, fpd: float
) -> Tensor:
    """Colours (R, 3) of rays o + t d with first hits (t, prim) from :func:`first_hits`.

    ``o``: origin components (0-d for a shared origin, else (R,)); ``d``: direction components (R,); ``dnorm``
    (R,): ``|d|``. Work is done per primitive kind and then per material on the rays that need it (lighting
    only for lit materials, footprints only for filtered textures).
    """
    n_rays = len(t)
    rgb = t.new_zeros(n_rays, 3)
    n_mat = len(scene.materials)
    lights = _prepare_lights(scene, t)
    point_lights = not all(directional for directional, *_ in lights)
    for kind, sel, k in kind_subsets(geom, prim):
        whole = len(sel) == n_rays

        def pick(x: Tensor, sel: Tensor = sel, whole: bool = whole) -> Tensor:
            return x if whole or x.dim() == 0 else x.index_select(0, sel)

        ts = pick(t)
        ds = (pick(d[0]), pick(d[1]), pick(d[2]))
        point = (pick(o[0]) + ts * ds[0], pick(o[1]) + ts * ds[1], pick(o[2]) + ts * ds[2])
        surf = surface(geom, kind, point, k)
        present = torch.bincount(surf.material, minlength=n_mat).nonzero().squeeze(1).tolist()
        for m in present:
            if len(present) == 1:
                idx, msel = sel, None
            else:
                msel = (surf.material == m).nonzero().squeeze(1)
                idx = sel.index_select(0, msel)

            def sub(x: Tensor, msel: Tensor | None = msel) -> Tensor:
                return x if msel is None or x.dim() == 0 else x.index_select(0, msel)

            mat = scene.materials[m]
            tex = mat.texture
            u, v = sub(surf.uv[0]), sub(surf.uv[1])
            if mat.emissive and not needs_footprint(tex):
                out = texture_colors(tex, u, v, None)
            else:
                n = tuple(sub(x).expand(len(u)) for x in surf.normal)
                dn_norm = sub(pick(dnorm))
                dn = (sub(ds[0]) / dn_norm, sub(ds[1]) / dn_norm, sub(ds[2]) / dn_norm)
                cos = n[0] * dn[0] + n[1] * dn[1] + n[2] * dn[2]
                footprint = sub(ts) * fpd / cos.abs().clamp_min(0.2)
                out = texture_colors(tex, u, v, footprint)
                if not mat.emissive:
                    facing = (cos > 0).to(cos.dtype).mul_(-2.0).add_(1.0)  # -1 where the normal faces away
                    normal = (n[0] * facing, n[1] * facing, n[2] * facing)
                    pts = (sub(point[0]), sub(point[1]), sub(point[2])) if point_lights else normal
                    out = out * _light(scene.ambient, lights, normal, pts)
            if msel is None and whole:
                rgb = out
            else:
                rgb.index_copy_(0, idx, out)
    return rgb.clamp(0, 1)


# directional?, unit direction towards the light or position (in the working dtype), colour (3,), falloff
_Light = tuple[bool, tuple[float, float, float], Tensor, float]


def _prepare_lights(scene: Scene, like: Tensor) -> list[_Light]:
    """The scene's lights, with vectors rounded to ``like``'s dtype and colours as tensors on its device."""
    out = []
    for L in scene.lights:
        col = like.new_tensor(L.color) * L.intensity
        vec = like.new_tensor(L.vector)
        directional = L.kind == "directional"
        x, y, z = (vec / vec.norm() if directional else vec).tolist()
        out.append((directional, (x, y, z), col, L.falloff))
    return out


def _light(ambient: float, lights: list[_Light], normal: V3, point: V3) -> Tensor:
    """Ambient + Lambert light (n, 3) at points with viewer-facing unit normals (component triples (n,))."""
    light: Tensor | None = None
    for directional, (x, y, z), col, falloff in lights:
        if directional:
            lam = (normal[0] * x + normal[1] * y + normal[2] * z).clamp_min(0)
        else:
            to = (torch.rsub(point[0], x), torch.rsub(point[1], y), torch.rsub(point[2], z))
            dist = (to[0] * to[0] + to[1] * to[1] + to[2] * to[2]).sqrt_().clamp_min(1e-6)
            lam = ((normal[0] * to[0] + normal[1] * to[1] + normal[2] * to[2]) / dist).clamp_min(0)
            lam = lam / (1 + (dist / falloff) ** 2)
        term = lam[:, None] * col[None]
        light = term + ambient if light is None else light + term
    if light is None:
        return normal[0].new_full((len(normal[0]), 3), ambient)
    return light


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
    o, d, t, prim = ray_first_hits(geom, origins, dirs, pairs)
    return _shade(scene, geom, o, d, dirs.norm(dim=-1), t, prim, footprint_per_depth), t, prim


def _camera_rays(cameras: Cameras, i: int, uv: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """World rays (origin (3,), dirs (R, 3) with unit camera-z) through pixel positions ``uv`` (R, 2)."""
    K = cameras.K[i].to(dtype)
    c2w = cameras.c2w[i].to(dtype)
    x = (uv[:, 0] - K[0, 2]) / K[0, 0]
    y = (uv[:, 1] - K[1, 2]) / K[1, 1]
    d_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    dirs = d_cam @ c2w[:3, :3].T
    return c2w[:3, 3], dirs


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
_CSR = tuple[Tensor, Tensor, Tensor]


@dataclass
class _Tiles:
    """Per-frame culling lists: for each primitive kind, CSR lists (local primitive ids sorted by tile, counts
    (T,), offsets (T,)) of the primitives whose screen rectangle overlaps each 16 x 16 tile, or None when no
    primitive of the kind needs them; ``dense``: global ids of primitives seen in every tile (tested against
    every ray without lists)."""

    kinds: list[_CSR | None]
    dense: list[int]
    tiles_x: int
    num_tiles: int


def _tile_candidates(rects: Tensor, height: int, width: int, starts: list[int]) -> _Tiles:
    """Culling lists of primitives with screen rectangles ``rects`` (num, 4), ``starts``: first global id of
    each kind (and the total)."""
    ty, tx = -(-height // _TILE), -(-width // _TILE)
    dt, dev = rects.dtype, rects.device
    x0 = torch.arange(tx, dtype=dt, device=dev) * _TILE
    y0 = torch.arange(ty, dtype=dt, device=dev) * _TILE
    ox = (rects[None, :, 0] <= x0[:, None] + _TILE) & (rects[None, :, 2] >= x0[:, None])  # (tx, P)
    oy = (rects[None, :, 1] <= y0[:, None] + _TILE) & (rects[None, :, 3] >= y0[:, None])  # (ty, P)
    overlap = (oy[:, None, :] & ox[None, :, :]).reshape(ty * tx, -1)
    everywhere = overlap.all(0)
    kinds: list[_CSR | None] = []
    for kind in range(4):
        cols = overlap[:, starts[kind] : starts[kind + 1]] & ~everywhere[None, starts[kind] : starts[kind + 1]]
        tile, prim = cols.nonzero(as_tuple=True)
        if len(tile) == 0:
            kinds.append(None)
            continue
        counts = torch.bincount(tile, minlength=ty * tx)
        kinds.append((prim, counts, torch.cumsum(counts, 0) - counts))
    return _Tiles(kinds, everywhere.nonzero().squeeze(1).tolist(), tx, ty * tx)


def _candidates(uv: Tensor, tiles: _Tiles, group: int = 1) -> Candidates:
    """Culled candidates of rays through image points ``uv`` (R, 2): the lists of each ray's tile.

    ``group`` > 1: ``uv`` holds one point per group of ``group`` consecutive rays in one pixel (sub-pixel
    samples, which share its tile); the lists are made once per group.
    """
    col = (uv[:, 0] / _TILE).floor().to(torch.int64).clamp(0, tiles.tiles_x - 1)
    row = (uv[:, 1] / _TILE).floor().to(torch.int64).clamp_min(0)
    tile = (row * tiles.tiles_x + col).clamp_max(tiles.num_tiles - 1)
    pairs: list[tuple[Tensor, Tensor] | None] = []
    for csr in tiles.kinds:
        if csr is None:
            pairs.append(None)
            continue
        prims, counts, offsets = csr
        n = counts.index_select(0, tile)
        ray = torch.repeat_interleave(n)
        base = offsets.index_select(0, tile) - (torch.cumsum(n, 0) - n)  # list start minus pair start, per ray
        k = prims.index_select(0, base.index_select(0, ray) + torch.arange(len(ray), device=uv.device))
        if group > 1:
            ray = (ray[:, None] * group + torch.arange(group, device=uv.device)).reshape(-1)
            k = k[:, None].expand(-1, group).reshape(-1)
        pairs.append((ray, k))
    return Candidates(pairs, tiles.dense)


def _cast(
    scene: Scene,
    geom: PackedGeometry,
    cameras: Cameras,
    i: int,
    uv: Tensor,
    fpd: float,
    chunk: int,
    tiles: _Tiles | None,
    group: int = 1,
) -> tuple[Tensor, Tensor, Tensor]:
    """Colour (R, 3), t (R,) and primitive id (R,) of camera ``i``'s rays through image points ``uv`` (R, 2)
    (``group``: see :func:`_candidates`)."""
    outs = []
    step = max(group, chunk - chunk % group)
    for s in range(0, len(uv), step):
        q = uv[s : s + step]
        origin, dirs = _camera_rays(cameras, i, q, uv.dtype)
        o: V3 = (origin[0], origin[1], origin[2])
        d = components(dirs)
        cand = Candidates.everything(geom) if tiles is None else _candidates(q[::group], tiles, group)
        t, prim = first_hits(geom, o, d, cand)
        outs.append((_shade(scene, geom, o, d, dirs.norm(dim=-1), t, prim, fpd), t, prim))
    if len(outs) == 1:
        return outs[0]
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
    nb, ns, nc, _ = geom.counts
    starts = [0, nb, nb + ns, nb + ns + nc, geom.num]
    offs = (torch.arange(ss, dtype=dt, device=dev) + 0.5) / ss - 0.5
    oy, ox = torch.meshgrid(offs, offs, indexing="ij")
    sub = torch.stack([ox.reshape(-1), oy.reshape(-1)], dim=-1)  # (ss*ss, 2)
    rgbs, depths, prims = [], [], []
    for i in range(len(cameras)):
        f = float(cameras.K[i, :2, :2].diagonal().mean())
        tiles = None
        if cfg.cull:
            tiles = _tile_candidates(screen_rects(corners, unbounded, cameras, i), H, W, starts)
        rgb, t, prim = _cast(scene, geom, cameras, i, grid, 1.0 / f, cfg.chunk_rays, tiles)
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
                srgb, _, _ = _cast(scene, geom, cameras, i, pts, 1.0 / (f * ss), cfg.chunk_rays, tiles, ss * ss)
                flat = rgb.reshape(3, -1)
                flat[:, idx] = srgb.reshape(len(idx), ss * ss, 3).mean(1).T
        rgbs.append(rgb)
        depths.append(depth)
        prims.append(prim)
    return RenderOutput(rgb=torch.stack(rgbs), depth=torch.stack(depths), prim=torch.stack(prims))
