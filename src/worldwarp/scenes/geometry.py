"""Analytic primitives, exact vectorised ray casting and signed distances.

World axes follow the project's convention for worlds (the default of :func:`worldwarp.cameras.look_at`):
**up is -y**, so the ground is the plane ``y = 0`` and everything above it has ``y < 0``. Boxes may be rotated
about the vertical axis (``yaw``, radians, right-handed about +y); cylinders are vertical.

Rays are ``o + t d`` with any non-zero ``d``; :func:`intersect` returns the parameter ``t`` of the first hit,
so with camera rays built as ``d = R K^-1 (u, v, 1)`` the returned ``t`` *is* the z-depth.

Texture coordinates are in world units (metres) and attached to the surface, so a texture looks the same
from every view:

* box faces use box-aligned coordinates (``uv_offset`` added, so segments of one wall line up);
  the ``u`` axis points to the viewer's right on every side face and ``v`` points down;
* spheres use (azimuth * r, -elevation * r); cylinder sides (azimuth * r, y), caps (x, z);
* planes use two fixed tangent vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "Box",
    "Cylinder",
    "Hit",
    "PackedGeometry",
    "Plane",
    "Sphere",
    "intersect",
    "pack_geometry",
    "signed_distance",
]

Vec3 = tuple[float, float, float]
_EPS_T = 1e-4  # hits closer than this along the ray are ignored (self-intersection guard)


@dataclass(frozen=True)
class Box:
    """A solid box: ``center`` (x, y, z), ``half`` extents along its local axes, ``yaw`` about the y axis.

    ``uv_object``: texture coordinates relative to the box centre (a picture stays on its frame) instead of
    aligned world coordinates (a brick pattern continues across wall segments).
    """

    center: Vec3
    half: Vec3
    material: int
    yaw: float = 0.0
    uv_object: bool = False


@dataclass(frozen=True)
class Sphere:
    """A solid sphere (a ray starting inside it, as in a sky dome, hits its far side)."""

    center: Vec3
    radius: float
    material: int


@dataclass(frozen=True)
class Cylinder:
    """A vertical solid cylinder with axis through (x, z) = ``center[0], center[2]``, spanning
    ``center[1] - half_height .. center[1] + half_height`` in y."""

    center: Vec3
    radius: float
    half_height: float
    material: int


@dataclass(frozen=True)
class Plane:
    """The plane ``normal . p = offset``; ``normal`` (unit) points to the free side."""

    normal: Vec3
    offset: float
    material: int


@dataclass
class PackedGeometry:
    """All primitives as tensors (one dtype/device). Primitive ids: boxes, then spheres, cylinders, planes."""

    box_center: Tensor  # (B, 3)
    box_half: Tensor  # (B, 3)
    box_cos: Tensor  # (B,)
    box_sin: Tensor  # (B,)
    box_uv_offset: Tensor  # (B, 3) added to local coordinates before taking uv
    box_material: Tensor  # (B,) long
    sph_center: Tensor  # (S, 3)
    sph_radius: Tensor  # (S,)
    sph_material: Tensor  # (S,)
    cyl_center: Tensor  # (C, 3)
    cyl_radius: Tensor  # (C,)
    cyl_half: Tensor  # (C,)
    cyl_material: Tensor  # (C,)
    pln_normal: Tensor  # (P, 3)
    pln_offset: Tensor  # (P,)
    pln_tangent_u: Tensor  # (P, 3)
    pln_tangent_v: Tensor  # (P, 3)
    pln_material: Tensor  # (P,)
    solid: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))  # (num,) counts for SDF

    @property
    def counts(self) -> tuple[int, int, int, int]:
        return (len(self.box_center), len(self.sph_center), len(self.cyl_center), len(self.pln_normal))

    @property
    def num(self) -> int:
        return sum(self.counts)


@dataclass
class Hit:
    """First hits of R rays. ``t`` is inf and ``prim``/``material`` are -1 where a ray hits nothing."""

    t: Tensor  # (R,)
    prim: Tensor  # (R,) long, global primitive id
    material: Tensor  # (R,) long
    point: Tensor  # (R, 3)
    normal: Tensor  # (R, 3) unit, outward (not yet flipped towards the viewer)
    uv: Tensor  # (R, 2) world-unit texture coordinates


def _yaw_local(x: Tensor, z: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """World (x, z) -> box-local (x, z) for a yaw rotation local->world [[c, s], [-s, c]] in (x, z)."""
    return cos * x - sin * z, sin * x + cos * z


def _plane_tangents(n: Tensor) -> tuple[Tensor, Tensor]:
    """Unit tangents (u, v) of unit normal ``n`` (3,): world x / z for a horizontal plane; otherwise u points
    to the right of a viewer facing the plane and v points down."""
    if n[1].abs() > 0.9:
        return n.new_tensor([1.0, 0.0, 0.0]), n.new_tensor([0.0, 0.0, 1.0])
    down = n.new_tensor([0.0, 1.0, 0.0])
    u = torch.linalg.cross(n, down)
    v = down - (down @ n) * n
    return u / u.norm(), v / v.norm()


def pack_geometry(
    boxes: list[Box],
    spheres: list[Sphere],
    cylinders: list[Cylinder],
    planes: list[Plane],
    *,
    non_solid: set[int] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> PackedGeometry:
    """Pack primitive lists into tensors. ``non_solid`` lists global ids ignored by :func:`signed_distance`."""

    def t(x: object, shape: tuple[int, ...]) -> Tensor:
        return torch.tensor(x, dtype=torch.float64).reshape(shape)

    nb, ns, nc, npl = len(boxes), len(spheres), len(cylinders), len(planes)
    yaw = t([b.yaw for b in boxes], (nb,))
    bc = t([b.center for b in boxes], (nb, 3))
    cos, sin = torch.cos(yaw), torch.sin(yaw)
    lx, lz = _yaw_local(bc[:, 0], bc[:, 2], cos, sin)
    uv_off = torch.stack([lx, bc[:, 1], lz], dim=-1)
    obj = torch.tensor([b.uv_object for b in boxes], dtype=torch.bool).reshape(nb)
    uv_off[obj] = 0.0
    normals = t([p.normal for p in planes], (npl, 3))
    normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    tu = torch.zeros(npl, 3, dtype=torch.float64)
    tv = torch.zeros(npl, 3, dtype=torch.float64)
    for i in range(npl):
        tu[i], tv[i] = _plane_tangents(normals[i])
    solid = torch.ones(nb + ns + nc + npl, dtype=torch.bool)
    for i in non_solid or ():
        solid[i] = False

    def long(xs: list[int]) -> Tensor:
        return torch.tensor(xs, dtype=torch.long, device=device).reshape(len(xs))

    def f(x: Tensor) -> Tensor:
        return x.to(device=device, dtype=dtype)

    return PackedGeometry(
        box_center=f(bc),
        box_half=f(t([b.half for b in boxes], (nb, 3))),
        box_cos=f(cos),
        box_sin=f(sin),
        box_uv_offset=f(uv_off),
        box_material=long([b.material for b in boxes]),
        sph_center=f(t([s.center for s in spheres], (ns, 3))),
        sph_radius=f(t([s.radius for s in spheres], (ns,))),
        sph_material=long([s.material for s in spheres]),
        cyl_center=f(t([c.center for c in cylinders], (nc, 3))),
        cyl_radius=f(t([c.radius for c in cylinders], (nc,))),
        cyl_half=f(t([c.half_height for c in cylinders], (nc,))),
        cyl_material=long([c.material for c in cylinders]),
        pln_normal=f(normals),
        pln_offset=f(t([p.offset for p in planes], (npl,))),
        pln_tangent_u=f(tu),
        pln_tangent_v=f(tv),
        pln_material=long([p.material for p in planes]),
        solid=solid.to(device),
    )


# ---------------------------------------------------------------------------------------------- hit distances
# Each *_t function takes M (ray, primitive) pairs: origins/dirs (M, 3) and the primitives' parameters gathered
# to (M, ...), and returns (M,) hit parameters (inf where missed or behind).
def _safe_inv(d: Tensor) -> Tensor:
    tiny = 1e-12
    return 1.0 / torch.where(d.abs() < tiny, torch.where(d < 0, -tiny, tiny), d)


def _box_t(o: Tensor, d: Tensor, center: Tensor, half: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    p = o - center
    lox, loz = _yaw_local(p[:, 0], p[:, 2], cos, sin)
    ldx, ldz = _yaw_local(d[:, 0], d[:, 2], cos, sin)
    tnear = torch.full_like(lox, -math.inf)
    tfar = torch.full_like(lox, math.inf)
    for lo, ld, h in ((lox, ldx, half[:, 0]), (p[:, 1], d[:, 1], half[:, 1]), (loz, ldz, half[:, 2])):
        inv = _safe_inv(ld)
        t1 = (-h - lo) * inv
        t2 = (h - lo) * inv
        tnear = torch.maximum(tnear, torch.minimum(t1, t2))
        tfar = torch.minimum(tfar, torch.maximum(t1, t2))
    ok = (tfar >= tnear) & (tnear > _EPS_T)
    return torch.where(ok, tnear, torch.full_like(tnear, math.inf))


def _sphere_t(o: Tensor, d: Tensor, center: Tensor, radius: Tensor) -> Tensor:
    """First positive hit (the far side when the origin is inside, as for a sky dome)."""
    oc = o - center
    a = (d * d).sum(-1)
    b = (oc * d).sum(-1)
    c = (oc * oc).sum(-1) - radius**2
    disc = b * b - a * c
    sq = disc.clamp_min(0).sqrt()
    t0 = (-b - sq) / a
    t1 = (-b + sq) / a
    inf = torch.full_like(t0, math.inf)
    t = torch.where(t0 > _EPS_T, t0, torch.where(t1 > _EPS_T, t1, inf))
    return torch.where(disc >= 0, t, inf)


def _cylinder_t(o: Tensor, d: Tensor, center: Tensor, radius: Tensor, half: Tensor) -> Tensor:
    p = o - center
    ox, oy, oz = p[:, 0], p[:, 1], p[:, 2]
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    r2 = radius * radius
    a = (dx * dx + dz * dz).clamp_min(1e-30)
    b = ox * dx + oz * dz
    c = ox * ox + oz * oz - r2
    disc = b * b - a * c
    t_side = (-b - disc.clamp_min(0).sqrt()) / a
    y_side = oy + t_side * dy
    inf = torch.full_like(t_side, math.inf)
    best = torch.where((disc >= 0) & (y_side.abs() <= half) & (t_side > _EPS_T), t_side, inf)
    inv = _safe_inv(dy)
    for cap in (-half, half):
        tc = (cap - oy) * inv
        xc, zc = ox + tc * dx, oz + tc * dz
        okc = (tc > _EPS_T) & (xc * xc + zc * zc <= r2)
        best = torch.minimum(best, torch.where(okc, tc, inf))
    return best


def _plane_t(o: Tensor, d: Tensor, normal: Tensor, offset: Tensor) -> Tensor:
    t = (offset - (o * normal).sum(-1)) * _safe_inv((d * normal).sum(-1))
    return torch.where(t > _EPS_T, t, torch.full_like(t, math.inf))


def _pair_t(g: PackedGeometry, o: Tensor, d: Tensor, prim: Tensor) -> Tensor:
    """(M,) hit parameters of pairs: rays o, d (M, 3) against global primitive ids ``prim`` (M,)."""
    nb, ns, nc, _ = g.counts
    starts = [0, nb, nb + ns, nb + ns + nc, g.num]
    t = o.new_full((len(o),), math.inf)
    for kind in range(4):
        sel = ((prim >= starts[kind]) & (prim < starts[kind + 1])).nonzero().squeeze(1)
        if len(sel) == 0:
            continue
        k = prim[sel] - starts[kind]
        os_, ds = o[sel], d[sel]
        if kind == 0:
            t[sel] = _box_t(os_, ds, g.box_center[k], g.box_half[k], g.box_cos[k], g.box_sin[k])
        elif kind == 1:
            t[sel] = _sphere_t(os_, ds, g.sph_center[k], g.sph_radius[k])
        elif kind == 2:
            t[sel] = _cylinder_t(os_, ds, g.cyl_center[k], g.cyl_radius[k], g.cyl_half[k])
        else:
            t[sel] = _plane_t(os_, ds, g.pln_normal[k], g.pln_offset[k])
    return t


def primitive_corners(g: PackedGeometry) -> tuple[Tensor, Tensor]:
    """Corners (num, 8, 3) of a box enclosing each primitive (oriented for boxes) and (num,) bool
    ``unbounded`` (planes, and spheres larger than 1e3 are treated as covering every view)."""
    signs = torch.tensor(
        [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=g.box_center.dtype
    ).to(g.box_center.device)  # (8, 3)
    # boxes: local corners rotated by yaw
    lc = signs[None] * g.box_half[:, None]  # (B, 8, 3)
    cos, sin = g.box_cos[:, None], g.box_sin[:, None]
    wx = cos * lc[..., 0] + sin * lc[..., 2]
    wz = -sin * lc[..., 0] + cos * lc[..., 2]
    box = torch.stack([wx, lc[..., 1], wz], dim=-1) + g.box_center[:, None]
    sph = g.sph_center[:, None] + signs[None] * g.sph_radius[:, None, None]
    ext = torch.stack([g.cyl_radius, g.cyl_half, g.cyl_radius], dim=-1)
    cyl = g.cyl_center[:, None] + signs[None] * ext[:, None]
    pln = g.pln_normal.new_zeros(len(g.pln_normal), 8, 3)
    corners = torch.cat([box, sph, cyl, pln])
    unbounded = torch.zeros(g.num, dtype=torch.bool, device=corners.device)
    nb, ns, _, npl = g.counts
    unbounded[nb : nb + ns] = g.sph_radius > 1e3
    if npl:
        unbounded[-npl:] = True
    return corners, unbounded


# the 12 edges of a box whose corners are ordered as in primitive_corners (index = 4 sx + 2 sy + sz)
BOX_EDGES = torch.tensor(
    [[a, b] for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1], dtype=torch.long
)


def intersect(g: PackedGeometry, origins: Tensor, dirs: Tensor, pairs: tuple[Tensor, Tensor] | None = None) -> Hit:
    """First hit of every ray ``origins + t dirs`` (R, 3) with the geometry (exact, analytic).

    ``pairs``: optional candidate list (ray index (M,), global primitive id (M,)); a ray is only tested against
    its candidates (a conservative culling done by the caller). Default: every ray against every primitive.
    """
    R = len(origins)
    dev = origins.device
    if pairs is None:
        ray_idx = torch.arange(R, device=dev).repeat_interleave(g.num)
        prim_idx = torch.arange(g.num, device=dev).repeat(R)
    else:
        ray_idx, prim_idx = pairs
    if R > 1 and bool((origins == origins[:1]).all()):  # camera rays: one shared origin, no gather needed
        o_pair = origins[:1].expand(len(ray_idx), 3)
    else:
        o_pair = origins[ray_idx]
    t_pair = _pair_t(g, o_pair, dirs[ray_idx], prim_idx)
    t = origins.new_full((R,), math.inf)
    t.scatter_reduce_(0, ray_idx, t_pair, reduce="amin")
    win = (t_pair == t[ray_idx]) & torch.isfinite(t_pair)
    prim = torch.full((R,), -1, dtype=torch.long, device=dev)
    prim.scatter_reduce_(0, ray_idx[win], prim_idx[win], reduce="amax")
    point = origins + torch.where(torch.isfinite(t), t, torch.zeros_like(t))[:, None] * dirs
    normal = torch.zeros_like(origins)
    uv = origins.new_zeros(R, 2)
    material = torch.full((R,), -1, dtype=torch.long, device=dev)
    nb, ns, nc, _ = g.counts
    starts = [0, nb, nb + ns, nb + ns + nc, g.num]

    # boxes
    sel = ((prim >= starts[0]) & (prim < starts[1])).nonzero().squeeze(1)
    if len(sel):
        k = prim[sel] - starts[0]
        cos, sin = g.box_cos[k], g.box_sin[k]
        p = point[sel] - g.box_center[k]
        lx, lz = _yaw_local(p[:, 0], p[:, 2], cos, sin)
        local = torch.stack([lx, p[:, 1], lz], dim=-1)
        rel = local.abs() / g.box_half[k].clamp_min(1e-12)
        axis = rel.argmax(dim=-1)
        sign = torch.sign(local.gather(1, axis[:, None]).squeeze(1))
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        n_local = torch.zeros_like(local)
        n_local.scatter_(1, axis[:, None], sign[:, None])
        # local -> world for (x, z): inverse of _yaw_local
        nx = cos * n_local[:, 0] + sin * n_local[:, 2]
        nz = -sin * n_local[:, 0] + cos * n_local[:, 2]
        normal[sel] = torch.stack([nx, n_local[:, 1], nz], dim=-1)
        q = local + g.box_uv_offset[k]
        u = torch.where(axis == 0, sign * q[:, 2], torch.where(axis == 2, -sign * q[:, 0], q[:, 0]))
        v = torch.where(axis == 1, q[:, 2], q[:, 1])
        uv[sel] = torch.stack([u, v], dim=-1)
        material[sel] = g.box_material[k]
    # spheres
    sel = ((prim >= starts[1]) & (prim < starts[2])).nonzero().squeeze(1)
    if len(sel):
        k = prim[sel] - starts[1]
        r = g.sph_radius[k]
        n = (point[sel] - g.sph_center[k]) / r[:, None]
        normal[sel] = n
        az = torch.atan2(n[:, 0], n[:, 2])
        el = torch.asin((-n[:, 1]).clamp(-1, 1))
        uv[sel] = torch.stack([az * r, -el * r], dim=-1)
        material[sel] = g.sph_material[k]
    # cylinders
    sel = ((prim >= starts[2]) & (prim < starts[3])).nonzero().squeeze(1)
    if len(sel):
        k = prim[sel] - starts[2]
        p = point[sel] - g.cyl_center[k]
        r, hh = g.cyl_radius[k], g.cyl_half[k]
        radial = torch.sqrt(p[:, 0] ** 2 + p[:, 2] ** 2)
        # a cap hit lies on |y| = hh; pick whichever surface the point is closest to
        on_cap = (p[:, 1].abs() - hh).abs() < (radial - r).abs()
        side_n = torch.stack([p[:, 0], torch.zeros_like(r), p[:, 2]], dim=-1) / radial.clamp_min(1e-12)[:, None]
        cap_n = torch.stack([torch.zeros_like(r), torch.sign(p[:, 1]), torch.zeros_like(r)], dim=-1)
        normal[sel] = torch.where(on_cap[:, None], cap_n, side_n)
        az = torch.atan2(p[:, 0], p[:, 2])
        pt = point[sel]
        side_uv = torch.stack([az * r, pt[:, 1]], dim=-1)
        cap_uv = torch.stack([pt[:, 0], pt[:, 2]], dim=-1)
        uv[sel] = torch.where(on_cap[:, None], cap_uv, side_uv)
        material[sel] = g.cyl_material[k]
    # planes
    sel = (prim >= starts[3]).nonzero().squeeze(1)
    if len(sel):
        k = prim[sel] - starts[3]
        normal[sel] = g.pln_normal[k]
        pt = point[sel]
        uv[sel] = torch.stack([(pt * g.pln_tangent_u[k]).sum(-1), (pt * g.pln_tangent_v[k]).sum(-1)], dim=-1)
        material[sel] = g.pln_material[k]
    return Hit(t=t, prim=prim, material=material, point=point, normal=normal, uv=uv)


def signed_distance(g: PackedGeometry, points: Tensor) -> Tensor:
    """(P,) distance from each point (P, 3) to the nearest solid primitive; negative inside one.

    Exact for every primitive kind (boxes, spheres, cylinders, planes measured to their free side); primitives
    marked non-solid (a sky dome) are ignored. +inf when there is no solid primitive.
    """
    out = []
    nb, ns, nc, npl = g.counts
    solid = g.solid.to(points.device)
    if nb:
        p = points[:, None, :] - g.box_center[None]
        lx, lz = _yaw_local(p[..., 0], p[..., 2], g.box_cos[None], g.box_sin[None])
        q = torch.stack([lx, p[..., 1], lz], dim=-1).abs() - g.box_half[None]
        outside = q.clamp_min(0).norm(dim=-1)
        inside = q.max(dim=-1).values.clamp_max(0)
        out.append(outside + inside)
    if ns:
        out.append((points[:, None, :] - g.sph_center[None]).norm(dim=-1) - g.sph_radius[None])
    if nc:
        p = points[:, None, :] - g.cyl_center[None]
        dr = torch.sqrt(p[..., 0] ** 2 + p[..., 2] ** 2) - g.cyl_radius[None]
        dy = p[..., 1].abs() - g.cyl_half[None]
        q = torch.stack([dr, dy], dim=-1)
        out.append(q.clamp_min(0).norm(dim=-1) + q.max(dim=-1).values.clamp_max(0))
    if npl:
        out.append(points @ g.pln_normal.T - g.pln_offset[None])
    if not out:
        return points.new_full((len(points),), math.inf)
    d = torch.cat(out, dim=1)
    d = torch.where(solid[None], d, torch.full_like(d, math.inf))
    return d.min(dim=1).values
