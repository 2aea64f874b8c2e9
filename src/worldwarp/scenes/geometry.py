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
    "Candidates",
    "Cylinder",
    "Hit",
    "PackedGeometry",
    "Plane",
    "Sphere",
    "Surface",
    "V3",
    "components",
    "first_hits",
    "intersect",
    "kind_subsets",
    "pack_geometry",
    "ray_first_hits",
    "signed_distance",
    "surface",
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
# Rays and points are handled as component triples (x, y, z) of 1-D tensors (contiguous, so elementwise kernels
# run at full speed); a component may be a 0-d tensor (one origin shared by every ray, or the parameters of one
# primitive tested against every ray), which broadcasting turns into scalar arithmetic. Each *_t function takes
# rays o, d and the primitives' parameters (gathered per ray, or one primitive's) and returns the hit parameter
# (inf where missed or behind). The arithmetic is the same whichever way a (ray, primitive) pair is batched, so
# culled and reference renders agree bit for bit.
V3 = tuple[Tensor, Tensor, Tensor]
_TINY = 9.999999960041972e-13  # |d| floor in _safe_inv: 1e-12 rounded to float32 (as before, for any dtype)


def _keep(t: Tensor, ok: Tensor) -> Tensor:
    """``t`` where ``ok``, else inf; ``t`` must be positive wherever ``ok`` holds.

    Equal to ``torch.where(ok, t, inf)`` there, but branch-free (where is slow on CPU for scattered masks).
    """
    return torch.maximum(t, ok.to(t.dtype).reciprocal_().sub_(1.0))


def _safe_inv(d: Tensor) -> Tensor:
    """1 / d with |d| raised to at least 1e-12 (a zero, also -0.0, counts as positive)."""
    return torch.reciprocal(torch.copysign(d.abs().clamp_min(_TINY), d + 0.0))


def _dot(a: V3, b: V3) -> Tensor:
    """Component dot product, summed in the order of ``(a * b).sum(-1)`` on (R, 3) tensors."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _sub(a: V3, b: V3) -> V3:
    return a[0] - b[0], a[1] - b[1], a[2] - b[2]


def _box_t(o: V3, d: V3, center: V3, half: V3, cos: Tensor, sin: Tensor) -> Tensor:
    px, py, pz = _sub(o, center)
    lox, loz = _yaw_local(px, pz, cos, sin)
    ldx, ldz = _yaw_local(d[0], d[2], cos, sin)
    tnear: Tensor | None = None
    tfar: Tensor | None = None
    for lo, ld, h in ((lox, ldx, half[0]), (py, d[1], half[1]), (loz, ldz, half[2])):
        inv = _safe_inv(ld)
        t1 = (-h - lo) * inv
        t2 = (h - lo) * inv
        near, far = torch.minimum(t1, t2), torch.maximum(t1, t2)
        tnear = near if tnear is None else torch.maximum(tnear, near)
        tfar = far if tfar is None else torch.minimum(tfar, far)
    assert tnear is not None and tfar is not None
    return _keep(tnear, (tfar >= tnear) & (tnear > _EPS_T))


def _sphere_t(o: V3, d: V3, center: V3, radius: Tensor) -> Tensor:
    """First positive hit (the far side when the origin is inside, as for a sky dome)."""
    oc = _sub(o, center)
    a = _dot(d, d)
    b = _dot(oc, d)
    c = _dot(oc, oc) - radius * radius
    disc = b * b - a * c
    sq = disc.clamp_min(0).sqrt()
    t0 = (-b - sq) / a
    t1 = (-b + sq) / a  # >= t0: the near root when it is in front, else the far one
    real = disc >= 0
    return torch.minimum(_keep(t0, real & (t0 > _EPS_T)), _keep(t1, real & (t1 > _EPS_T)))


def _cylinder_t(o: V3, d: V3, center: V3, radius: Tensor, half: Tensor) -> Tensor:
    ox, oy, oz = _sub(o, center)
    dx, dy, dz = d
    r2 = radius * radius
    a = (dx * dx + dz * dz).clamp_min(1e-30)
    b = ox * dx + oz * dz
    c = ox * ox + oz * oz - r2
    disc = b * b - a * c
    t_side = (-b - disc.clamp_min(0).sqrt()) / a
    y_side = oy + t_side * dy
    best = _keep(t_side, (disc >= 0) & (y_side.abs() <= half) & (t_side > _EPS_T))
    inv = _safe_inv(dy)
    for cap in (-half, half):
        tc = (cap - oy) * inv
        xc, zc = ox + tc * dx, oz + tc * dz
        best = torch.minimum(best, _keep(tc, (tc > _EPS_T) & (xc * xc + zc * zc <= r2)))
    return best


def _plane_t(o: V3, d: V3, normal: V3, offset: Tensor) -> Tensor:
    t = (offset - _dot(o, normal)) * _safe_inv(_dot(d, normal))
    return _keep(t, t > _EPS_T)


def _starts(g: PackedGeometry) -> list[int]:
    nb, ns, nc, _ = g.counts
    return [0, nb, nb + ns, nb + ns + nc, g.num]


def _take(x: Tensor, k: Tensor | int) -> Tensor:
    """Rows ``k`` of a per-primitive parameter (N,) or (N, 3): a gather, or one primitive's 0-d value(s)."""
    return x[k] if isinstance(k, int) else x.index_select(0, k)


def _take3(x: Tensor, k: Tensor | int) -> V3:
    """Components of rows ``k`` of an (N, 3) parameter (contiguous gathers, or 0-d values)."""
    if isinstance(k, int):
        r = x[k]
        return r[0], r[1], r[2]
    g = x.T.contiguous().index_select(1, k)
    return g[0], g[1], g[2]


def _kind_t(g: PackedGeometry, kind: int, o: V3, d: V3, k: Tensor | int) -> Tensor:
    """Hit parameters of rays o, d against primitives of ``kind`` with local ids ``k`` (one per ray, or one
    primitive for every ray)."""
    if kind == 0:
        return _box_t(o, d, _take3(g.box_center, k), _take3(g.box_half, k), _take(g.box_cos, k), _take(g.box_sin, k))
    if kind == 1:
        return _sphere_t(o, d, _take3(g.sph_center, k), _take(g.sph_radius, k))
    if kind == 2:
        return _cylinder_t(o, d, _take3(g.cyl_center, k), _take(g.cyl_radius, k), _take(g.cyl_half, k))
    return _plane_t(o, d, _take3(g.pln_normal, k), _take(g.pln_offset, k))


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


@dataclass
class Candidates:
    """Which primitives each ray is tested against (a conservative culling done by the caller).

    ``pairs[kind]`` (kind 0..3 = box, sphere, cylinder, plane): ``(ray index (M,), local primitive index (M,))``
    or None; ``dense``: global ids of primitives tested against every ray.
    """

    pairs: list[tuple[Tensor, Tensor] | None]
    dense: list[int]

    @staticmethod
    def everything(g: PackedGeometry) -> Candidates:
        """Every ray against every primitive (the reference)."""
        return Candidates([None] * 4, list(range(g.num)))

    @staticmethod
    def from_pairs(g: PackedGeometry, ray_idx: Tensor, prim_idx: Tensor) -> Candidates:
        """Split (ray, global primitive id) pairs by kind."""
        starts = _starts(g)
        pairs: list[tuple[Tensor, Tensor] | None] = []
        for kind in range(4):
            sel = ((prim_idx >= starts[kind]) & (prim_idx < starts[kind + 1])).nonzero().squeeze(1)
            pairs.append((ray_idx.index_select(0, sel), prim_idx.index_select(0, sel) - starts[kind]))
        return Candidates(pairs, [])


def first_hits(g: PackedGeometry, o: V3, d: V3, cand: Candidates) -> tuple[Tensor, Tensor]:
    """Hit parameter t (R,) (inf for none) and global primitive id (R,) (-1 for none) of rays ``o + t d``.

    ``o``, ``d``: component triples of 1-D tensors (R,); the components of ``o`` may be 0-d (a shared origin).
    Among equally near hits the highest primitive id wins.
    """
    n_rays = len(d[0])
    dev = d[0].device
    starts = _starts(g)
    shared = o[0].dim() == 0
    t = torch.full((n_rays,), math.inf, dtype=d[0].dtype, device=dev)
    pair_hits: list[tuple[Tensor, Tensor, Tensor]] = []
    for kind, pk in enumerate(cand.pairs):
        if pk is None or len(pk[0]) == 0:
            continue
        ray, k = pk
        dk = (d[0].index_select(0, ray), d[1].index_select(0, ray), d[2].index_select(0, ray))
        ok = o if shared else (o[0].index_select(0, ray), o[1].index_select(0, ray), o[2].index_select(0, ray))
        tk = _kind_t(g, kind, ok, dk, k)
        t.scatter_reduce_(0, ray, tk, reduce="amin")
        pair_hits.append((ray, tk, k + (starts[kind] + 1)))
    # primitive ids + 1 (0: none), with branch-free integer masks; dense primitives in increasing id order, so
    # the last one at the running minimum is the highest id among the nearest
    t_dense = torch.full_like(t, math.inf)
    prim_dense = torch.zeros(n_rays, dtype=torch.long, device=dev)
    for j in sorted(cand.dense):
        kind = max(i for i in range(4) if starts[i] <= j)
        tj = _kind_t(g, kind, o, d, j - starts[kind])
        upd = tj <= t_dense
        prim_dense = prim_dense * ~upd + upd * (j + 1)
        t_dense = torch.minimum(t_dense, tj)
    t = torch.minimum(t, t_dense)
    prim = prim_dense * (t_dense == t)
    for ray, tk, gid1 in pair_hits:
        prim.scatter_reduce_(0, ray, gid1 * (tk == t.index_select(0, ray)), reduce="amax")
    return t, prim * (t < math.inf) - 1


@dataclass
class Surface:
    """Surface attributes of hits on one primitive kind: unit outward ``normal`` and world-unit texture
    coordinates ``uv`` as component tuples, and the ``material`` id (long)."""

    normal: V3
    uv: tuple[Tensor, Tensor]
    material: Tensor


def surface(g: PackedGeometry, kind: int, point: V3, k: Tensor) -> Surface:
    """Attributes of hit points ``point`` (component triple (n,)) on primitives of ``kind`` with local ids ``k``."""
    if kind == 0:
        cos, sin = g.box_cos.index_select(0, k), g.box_sin.index_select(0, k)
        px, py, pz = _sub(point, _take3(g.box_center, k))
        lx, lz = _yaw_local(px, pz, cos, sin)
        hx, hy, hz = _take3(g.box_half.clamp_min(1e-12), k)
        rx, ry, rz = lx.abs() / hx, py.abs() / hy, lz.abs() / hz
        ax0 = (rx >= ry) & (rx >= rz)  # the first largest, as argmax
        ax2 = ~ax0 & (rz > ry)
        ax1 = ~(ax0 | ax2)
        sign = torch.where(ax0, lx, torch.where(ax1, py, lz)).sign()
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        zero = torch.zeros_like(sign)
        n0, n1, n2 = (torch.where(a, sign, zero) for a in (ax0, ax1, ax2))
        # local -> world for (x, z): inverse of _yaw_local
        normal = (cos * n0 + sin * n2, n1, -sin * n0 + cos * n2)
        ox, oy, oz = _take3(g.box_uv_offset, k)
        q0, q1, q2 = lx + ox, py + oy, lz + oz
        u = torch.where(ax0, sign * q2, torch.where(ax2, -sign * q0, q0))
        v = torch.where(ax1, q2, q1)
        return Surface(normal, (u, v), g.box_material.index_select(0, k))
    if kind == 1:
        r = g.sph_radius.index_select(0, k)
        c = _take3(g.sph_center, k)
        n = ((point[0] - c[0]) / r, (point[1] - c[1]) / r, (point[2] - c[2]) / r)
        az = torch.atan2(n[0], n[2])
        el = torch.asin((-n[1]).clamp(-1, 1))
        return Surface(n, (az * r, -el * r), g.sph_material.index_select(0, k))
    if kind == 2:
        px, py, pz = _sub(point, _take3(g.cyl_center, k))
        r, hh = g.cyl_radius.index_select(0, k), g.cyl_half.index_select(0, k)
        radial = torch.sqrt(px * px + pz * pz)
        # a cap hit lies on |y| = hh; pick whichever surface the point is closest to
        on_cap = (py.abs() - hh).abs() < (radial - r).abs()
        rc = radial.clamp_min(1e-12)
        zero = torch.zeros_like(r)
        normal = (
            torch.where(on_cap, zero, px / rc),
            torch.where(on_cap, torch.sign(py), zero / rc),
            torch.where(on_cap, zero, pz / rc),
        )
        az = torch.atan2(px, pz)
        uv = (torch.where(on_cap, point[0], az * r), torch.where(on_cap, point[2], point[1]))
        return Surface(normal, uv, g.cyl_material.index_select(0, k))
    n = _take3(g.pln_normal, k)
    uv = (_dot(point, _take3(g.pln_tangent_u, k)), _dot(point, _take3(g.pln_tangent_v, k)))
    return Surface(n, uv, g.pln_material.index_select(0, k))


def kind_subsets(g: PackedGeometry, prim: Tensor) -> list[tuple[int, Tensor, Tensor]]:
    """(kind, ray indices (n,), local primitive ids (n,)) of the rays whose hit ``prim`` is of each kind
    (kinds without hits left out)."""
    starts = _starts(g)
    out = []
    for kind in range(4):
        if starts[kind] == starts[kind + 1]:
            continue
        sel = ((prim >= starts[kind]) & (prim < starts[kind + 1])).nonzero().squeeze(1)
        if len(sel):
            out.append((kind, sel, prim.index_select(0, sel) - starts[kind]))
    return out


def components(x: Tensor) -> V3:
    """Contiguous x, y, z components of an (R, 3) tensor."""
    return x[:, 0].contiguous(), x[:, 1].contiguous(), x[:, 2].contiguous()  # 3x faster than x.T.contiguous()


def ray_first_hits(
    g: PackedGeometry, origins: Tensor, dirs: Tensor, pairs: tuple[Tensor, Tensor] | None = None
) -> tuple[V3, V3, Tensor, Tensor]:
    """Origins and directions (R, 3) as components (a shared origin as scalars), then :func:`first_hits`'s
    t (R,) and primitive id (R,) over every primitive or over the candidate ``pairs``."""
    if len(origins) > 1 and bool((origins == origins[:1]).all()):  # camera rays: one shared origin
        o0 = origins[0]
        o: V3 = (o0[0], o0[1], o0[2])
    else:
        o = components(origins)
    d = components(dirs)
    cand = Candidates.everything(g) if pairs is None else Candidates.from_pairs(g, *pairs)
    t, prim = first_hits(g, o, d, cand)
    return o, d, t, prim


def intersect(g: PackedGeometry, origins: Tensor, dirs: Tensor, pairs: tuple[Tensor, Tensor] | None = None) -> Hit:
    """First hit of every ray ``origins + t dirs`` (R, 3) with the geometry (exact, analytic).

    ``pairs``: optional candidate list (ray index (M,), global primitive id (M,)); a ray is only tested against
    its candidates (a conservative culling done by the caller). Default: every ray against every primitive.
    """
    R = len(origins)
    _, _, t, prim = ray_first_hits(g, origins, dirs, pairs)
    point = origins + torch.where(torch.isfinite(t), t, torch.zeros_like(t))[:, None] * dirs
    normal = torch.zeros_like(origins)
    uv = origins.new_zeros(R, 2)
    material = torch.full((R,), -1, dtype=torch.long, device=origins.device)
    p3 = components(point)
    for kind, sel, k in kind_subsets(g, prim):
        s = surface(g, kind, (p3[0].index_select(0, sel), p3[1].index_select(0, sel), p3[2].index_select(0, sel)), k)
        normal[sel] = torch.stack([x.expand(len(sel)) for x in s.normal], dim=-1)
        uv[sel] = torch.stack(s.uv, dim=-1)
        material[sel] = s.material
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
