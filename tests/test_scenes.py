"""Procedural worlds: exact geometry, z-depth, multi-view consistency, determinism, paths, CLI, dataset."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import Tensor

from worldwarp.cameras import Cameras, intrinsics_from_fov, look_at
from worldwarp.errors import InputError
from worldwarp.scenes import (
    PathConfig,
    RenderConfig,
    Scene,
    generate_scene,
    make_clip,
    path_clearance,
    preset_path,
    random_path,
    render,
)
from worldwarp.scenes.geometry import Box, Cylinder, Plane, Sphere, intersect, pack_geometry, signed_distance
from worldwarp.scenes.scene import Material
from worldwarp.scenes.textures import Texture, evaluate_texture, load_photo, value_noise

GREY = [Material(Texture("solid", (0.5, 0.5, 0.5)))]


def _yaw_camera(yaw: float, size: tuple[int, int] = (33, 33), fov: float = 60.0) -> Cameras:
    eye = torch.zeros(3, dtype=torch.float64)
    target = torch.tensor([math.sin(yaw), 0.0, math.cos(yaw)], dtype=torch.float64)
    h, w = size
    return Cameras(look_at(eye, target), intrinsics_from_fov(h, w, fov_x_deg=fov), h, w)


# ---------------------------------------------------------------------------------------------- geometry
def test_intersections_are_analytic() -> None:
    boxes = [Box((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 0, yaw=math.pi / 4)]
    g = pack_geometry(boxes, [], [], [], dtype=torch.float64)
    hit = intersect(g, torch.tensor([[-5.0, 0.0, 0.0]], dtype=torch.float64), torch.tensor([[2.0, 0.0, 0.0]]).double())
    # a 45-degree box presents its edge: the ray meets it at x = -sqrt(2), t = (5 - sqrt 2) / |d| with |d| = 2
    assert float(hit.t[0]) == pytest.approx((5 - math.sqrt(2)) / 2, abs=1e-12)
    n = hit.normal[0]
    assert float(n[1]) == 0 and float(n.norm()) == pytest.approx(1.0) and float(n[0]) < 0

    g = pack_geometry(
        [], [Sphere((0.0, 0.0, 4.0), 1.0, 0)], [Cylinder((0.0, 0.0, 0.0), 1.0, 2.0, 0)], [], dtype=torch.float64
    )
    o = torch.tensor([[0.0, 0.0, 10.0], [-5.0, 0.5, 0.0], [0.3, -6.0, 0.0], [0.0, 0.0, 4.0]], dtype=torch.float64)
    d = torch.tensor([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    hit = intersect(g, o, d)
    # sphere from outside (t=5), cylinder side (t=4), cylinder cap at y=-2 (t=4), sphere from inside (t=1)
    assert hit.t.tolist() == pytest.approx([5.0, 4.0, 4.0, 1.0], abs=1e-12)
    assert hit.prim.tolist() == [0, 1, 1, 0]
    assert hit.normal[2].tolist() == pytest.approx([0.0, -1.0, 0.0])


def test_signed_distance_exact() -> None:
    g = pack_geometry(
        [Box((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 0, yaw=0.3)],
        [Sphere((10.0, 0.0, 0.0), 2.0, 0)],
        [Cylinder((-10.0, 0.0, 0.0), 0.5, 1.0, 0)],
        [Plane((0.0, -1.0, 0.0), -5.0, 0)],  # the ground y = 5, free side y < 5 (up is -y)
        dtype=torch.float64,
    )
    p = [[0.0, 0.0, 0.0], [10.0, 0.0, 3.5], [-10.0, 0.0, 1.5], [-10.0, -1.2, 0.0], [0.0, 4.5, 30.0]]
    d = signed_distance(g, torch.tensor(p, dtype=torch.float64))
    assert d.tolist() == pytest.approx([-1.0, 1.5, 1.0, 0.2, 0.5], abs=1e-12)


def _plain_first_hit(
    boxes: list[Box], spheres: list[Sphere], cylinders: list[Cylinder], planes: list[Plane], o: Tensor, d: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Plain reference ray caster (float64): every ray against one primitive at a time with torch.where.

    Returns t (inf for none), primitive id (-1), outward normal and the gap between the nearest and second
    nearest hit (to skip rays that graze two surfaces at once).
    """
    inf = torch.full((len(o),), math.inf, dtype=torch.float64)
    ts, normals = [], []

    def first_positive(*cands: Tensor) -> Tensor:
        best = inf
        for c in cands:
            best = torch.where((c > 1e-4) & (c < best), c, best)
        return best

    for b in boxes:
        c, s = math.cos(b.yaw), math.sin(b.yaw)
        p = o - torch.tensor(b.center, dtype=torch.float64)
        lo = torch.stack([c * p[:, 0] - s * p[:, 2], p[:, 1], s * p[:, 0] + c * p[:, 2]], -1)
        ld = torch.stack([c * d[:, 0] - s * d[:, 2], d[:, 1], s * d[:, 0] + c * d[:, 2]], -1)
        h = torch.tensor(b.half, dtype=torch.float64)
        t1, t2 = (-h - lo) / ld, (h - lo) / ld
        near, far = torch.minimum(t1, t2).amax(-1), torch.maximum(t1, t2).amin(-1)
        t = torch.where((far >= near) & (near > 1e-4), near, inf)
        local = lo + near[:, None] * ld
        axis = (local.abs() / h).argmax(-1)
        n_local = torch.nn.functional.one_hot(axis, 3).double() * local.gather(1, axis[:, None]).sign()
        n = torch.stack([c * n_local[:, 0] + s * n_local[:, 2], n_local[:, 1], -s * n_local[:, 0] + c * n_local[:, 2]])
        ts.append(t)
        normals.append(n.T)
    for sp in spheres:
        oc = o - torch.tensor(sp.center, dtype=torch.float64)
        a, b, cc = (d * d).sum(-1), (oc * d).sum(-1), (oc * oc).sum(-1) - sp.radius**2
        disc = b * b - a * cc
        sq = disc.clamp_min(0).sqrt()
        t = torch.where(disc >= 0, first_positive((-b - sq) / a, (-b + sq) / a), inf)
        ts.append(t)
        normals.append(
            (o + torch.where(t < math.inf, t, 0)[:, None] * d - torch.tensor(sp.center, dtype=torch.float64))
            / sp.radius
        )
    for cy in cylinders:
        p = o - torch.tensor(cy.center, dtype=torch.float64)
        a = d[:, 0] ** 2 + d[:, 2] ** 2
        b = p[:, 0] * d[:, 0] + p[:, 2] * d[:, 2]
        disc = b * b - a * (p[:, 0] ** 2 + p[:, 2] ** 2 - cy.radius**2)
        side = (-b - disc.clamp_min(0).sqrt()) / a
        side = torch.where((disc >= 0) & ((p[:, 1] + side * d[:, 1]).abs() <= cy.half_height), side, inf)
        caps = []
        for cap in (-cy.half_height, cy.half_height):
            tc = (cap - p[:, 1]) / d[:, 1]
            xc, zc = p[:, 0] + tc * d[:, 0], p[:, 2] + tc * d[:, 2]
            caps.append(torch.where(xc**2 + zc**2 <= cy.radius**2, tc, inf))
        t = first_positive(side, *caps)
        q = p + torch.where(t < math.inf, t, 0)[:, None] * d
        on_cap = t != side
        side_n = torch.stack([q[:, 0], torch.zeros_like(t), q[:, 2]], -1) / cy.radius
        cap_n = torch.stack([torch.zeros_like(t), q[:, 1].sign(), torch.zeros_like(t)], -1)
        ts.append(t)
        normals.append(torch.where(on_cap[:, None], cap_n, side_n))
    for pl in planes:
        n = torch.tensor(pl.normal, dtype=torch.float64)
        t = (pl.offset - o @ n) / (d @ n)
        ts.append(torch.where(t > 1e-4, t, inf))
        normals.append(n.expand(len(o), 3))
    t_all = torch.stack(ts, 1)
    two = t_all.topk(2, dim=1, largest=False).values
    t, prim = two[:, 0], t_all.argmin(1)
    prim = torch.where(t < math.inf, prim, -1)
    normal = torch.stack(normals, 1)[torch.arange(len(o)), prim.clamp_min(0)]
    return t, prim, normal, two[:, 1] - two[:, 0]


def _random_world(seed: int) -> tuple[list[Box], list[Sphere], list[Cylinder], list[Plane]]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, lo: float = -1.0, hi: float = 1.0) -> list[float]:
        return (lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)).tolist()

    boxes = [Box(tuple(r(3, lo=-6, hi=6)), tuple(r(3, lo=0.2, hi=1.5)), 0, yaw=r(1, lo=-3, hi=3)[0]) for _ in range(6)]
    spheres = [Sphere(tuple(r(3, lo=-6, hi=6)), r(1, lo=0.3, hi=1.5)[0], 0) for _ in range(4)]
    spheres.append(Sphere((0.0, 0.0, 0.0), 40.0, 0))  # a dome around everything
    cylinders = [
        Cylinder(tuple(r(3, lo=-6, hi=6)), r(1, lo=0.2, hi=1.0)[0], r(1, lo=0.3, hi=2.0)[0], 0) for _ in range(3)
    ]
    planes = [Plane((0.0, -1.0, 0.0), -3.0, 0), Plane((0.6, 0.0, -0.8), -9.0, 0)]
    return boxes, spheres, cylinders, planes


@pytest.mark.parametrize("shared_origin", [False, True])
def test_fast_ray_caster_matches_plain_reference(shared_origin: bool) -> None:
    """The component-wise, branch-free caster against a plain one-primitive-at-a-time reference (float64)."""
    world = _random_world(4)
    g = pack_geometry(*world, dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    n = 4000
    o = (torch.rand(n, 3, generator=gen, dtype=torch.float64) - 0.5) * 4
    if shared_origin:
        o = o[:1].expand(n, 3).clone()
    d = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    hit = intersect(g, o, d)
    t, prim, normal, gap = _plain_first_hit(*world, o, d)
    assert torch.equal(torch.isinf(hit.t), torch.isinf(t)) and (t < math.inf).float().mean() > 0.9
    fin = t < math.inf
    assert torch.allclose(hit.t[fin], t[fin], rtol=1e-10, atol=0)
    clear = gap > 1e-6  # rays that do not graze two surfaces at once
    assert clear.float().mean() > 0.99
    assert torch.equal(hit.prim[clear], prim[clear])
    assert len(set(prim[fin].tolist())) >= 12, "the rays see most primitives"
    ok = clear & fin
    assert torch.allclose(hit.normal[ok], normal[ok], atol=1e-8)
    assert torch.allclose(hit.point[fin], o[fin] + t[fin, None] * d[fin], atol=1e-9)
    # culling lists (any order, any batching) give bit-identical hits, and the highest id wins a tie
    pairs = torch.cartesian_prod(torch.arange(n), torch.arange(g.num))
    pairs = pairs[torch.randperm(len(pairs), generator=gen)]
    listed = intersect(g, o, d, (pairs[:, 0], pairs[:, 1]))
    for name in ("t", "prim", "material", "point", "normal", "uv"):
        assert torch.equal(getattr(listed, name), getattr(hit, name)), name
    twins = pack_geometry([], [Sphere((0.0, 0.0, 5.0), 1.0, 0), Sphere((0.0, 0.0, 5.0), 1.0, 0)], [], [])
    assert intersect(twins, torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 1.0]])).prim.tolist() == [1]


def test_depth_is_z_depth_against_a_plane() -> None:
    # the plane z = 5 (free side towards the camera), seen straight on and turned by 25 degrees
    scene = Scene("custom", 0, GREY, planes=[Plane((0.0, 0.0, -1.0), -5.0, 0)], ambient=1.0)
    cfg = RenderConfig(supersample=1, dtype=torch.float64)
    straight = render(scene, _yaw_camera(0.0), cfg).depth[0]
    assert torch.allclose(straight, torch.full_like(straight, 5.0), atol=1e-12)
    cams = _yaw_camera(math.radians(25))
    depth = render(scene, cams, cfg).depth[0]
    uv = cams.pixel_grid()
    K, R = cams.K[0], cams.c2w[0, :3, :3]
    d_cam = torch.stack([(uv[..., 0] - K[0, 2]) / K[0, 0], (uv[..., 1] - K[1, 2]) / K[1, 1], torch.ones(33, 33)], -1)
    expected = 5.0 / (d_cam @ R[2])  # z-depth: distance along the optical axis of the hit
    assert torch.allclose(depth, expected, rtol=1e-10)
    ray_length = expected * d_cam.norm(dim=-1)
    assert (ray_length - depth).abs().max() > 0.5  # ... which is not the ray length
    # unprojecting the depth lands exactly on the plane
    assert torch.allclose(cams.unproject(depth[None])[..., 2], torch.full((1, 33, 33), 5.0, dtype=torch.float64))


@pytest.mark.parametrize(("seed", "kind"), [(0, "room"), (3, "open")])
def test_culling_matches_reference_renderer(seed: int, kind: str) -> None:
    scene = generate_scene(seed, kind)
    cams = random_path(scene, 2, 24, 32, generator=torch.Generator().manual_seed(1))
    fast = render(scene, cams, RenderConfig(supersample=2, cull=True))
    ref = render(scene, cams, RenderConfig(supersample=2, cull=False))
    assert torch.equal(fast.prim, ref.prim)
    assert torch.equal(fast.depth, ref.depth)
    assert torch.allclose(fast.rgb, ref.rgb, atol=1e-6)


@pytest.mark.parametrize("kind", ["room", "open"])
def test_grouped_shading_matches_plain_shading(kind: str) -> None:
    """shade_rays (per kind, then per material; light and footprints only where needed) against plain
    per-ray shading of the public intersect's hits."""
    from worldwarp.scenes.render import shade_rays

    scene = generate_scene(2, kind)
    geom = scene.pack()
    cams = random_path(scene, 1, 40, 60, generator=torch.Generator().manual_seed(3)).to(dtype=torch.float32)
    K, c2w = cams.K[0], cams.c2w[0]
    uv = cams.pixel_grid().reshape(-1, 2)
    d_cam = torch.stack([(uv[:, 0] - K[0, 2]) / K[0, 0], (uv[:, 1] - K[1, 2]) / K[1, 1], torch.ones(len(uv))], -1)
    dirs = d_cam @ c2w[:3, :3].T
    origins = c2w[:3, 3].expand_as(dirs)
    fpd = 1.0 / float(K[0, 0])
    rgb, t, prim = shade_rays(scene, geom, origins, dirs, fpd)
    hit = intersect(geom, origins, dirs)
    assert torch.equal(t, hit.t) and torch.equal(prim, hit.prim)
    n = hit.normal
    cos = (n * dirs / dirs.norm(dim=-1, keepdim=True)).sum(-1)
    n = torch.where((cos > 0)[:, None], -n, n)
    light = torch.full((len(uv), 3), scene.ambient)
    for L in scene.lights:
        if L.kind == "directional":
            lam = (n @ torch.tensor(L.vector)).clamp_min(0) / torch.tensor(L.vector).norm()
        else:
            to = torch.tensor(L.vector) - hit.point
            lam = ((n * to).sum(-1) / to.norm(dim=-1)).clamp_min(0) / (1 + (to.norm(dim=-1) / L.falloff) ** 2)
        light = light + lam[:, None] * (torch.tensor(L.color) * L.intensity)
    expected = torch.zeros(len(uv), 3)
    footprint = torch.where(prim >= 0, t, 0) * fpd / cos.abs().clamp_min(0.2)
    for m, mat in enumerate(scene.materials):
        sel = hit.material == m
        albedo = evaluate_texture(mat.texture, hit.uv[sel], footprint[sel])
        expected[sel] = albedo if mat.emissive else albedo * light[sel]
    assert len(hit.material.unique()) >= 5
    assert torch.allclose(rgb, expected.clamp(0, 1), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- textures
def test_textures_exact_values_and_filtering() -> None:
    tex = Texture("checker", (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), scale=0.5)
    uv = torch.tensor([[0.1, 0.1], [0.6, 0.1], [0.6, 0.6], [-0.1, 0.1]])
    rgb = evaluate_texture(tex, uv, torch.zeros(4))
    assert rgb.tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    far = evaluate_texture(tex, uv, torch.full((4,), 10.0))  # a footprint far above the period: the mean
    assert torch.allclose(far, torch.tensor([0.5, 0.0, 0.5]).expand(4, 3))
    n = value_noise(torch.rand(1000, 2, generator=torch.Generator().manual_seed(0)) * 50, seed=3)
    assert 0 <= float(n.min()) and float(n.max()) <= 1 and float(n.std()) > 0.1
    lattice = value_noise(torch.tensor([[3.0, 4.0], [3.0, 4.0]]), seed=3)
    assert lattice[0] == lattice[1]
    with pytest.raises(InputError, match="unknown texture kind"):
        Texture("marble")  # type: ignore[arg-type]


def test_value_noise_and_fbm_match_plain_formulas() -> None:
    """The one-gather-per-corner noise (int32 cells) and the fbm that skips faded octaves are exact."""
    from worldwarp.scenes.textures import _fade, _noise_table, fbm

    gen = torch.Generator().manual_seed(0)
    uv = torch.cat(
        [
            (torch.rand(3000, 2, generator=gen) - 0.5) * 600,
            torch.tensor([[3e9, -3e9], [-2.5e10, 7e12], [2147483520.0, -2147483648.0], [-0.0, 255.999]]),
        ]
    )

    def plain_noise(uv: torch.Tensor, seed: int) -> torch.Tensor:
        table, mask = _noise_table(uv.device, uv.dtype), 255
        base = torch.floor(uv)
        f, i = uv - base, base.to(torch.int64)
        s = f * f * (3 - 2 * f)
        ix0, iy0 = (i[:, 0] + (seed * 7919) % 251) & mask, (i[:, 1] + (seed * 104729 + 13) % 241) & mask
        ix1, row0, row1 = (ix0 + 1) & mask, iy0 << 8, ((iy0 + 1) & mask) << 8
        a = table[row0 + ix0] + (table[row0 + ix1] - table[row0 + ix0]) * s[:, 0]
        b = table[row1 + ix0] + (table[row1 + ix1] - table[row1 + ix0]) * s[:, 0]
        return a + (b - a) * s[:, 1]

    for seed in (0, 3, 12345):
        assert torch.equal(value_noise(uv, seed), plain_noise(uv, seed))
    # footprints from sharp to fully faded (every octave), in one batch
    fp = torch.rand(len(uv), generator=gen) ** 3 * 0.8
    total = torch.zeros(len(uv))
    for k in range(5):
        n = plain_noise(uv * 2.0**k + 17.0 * k, 7 + 1013 * k)
        total = total + 0.5**k / 2 * (0.5 + (n - 0.5) * (1 - _fade(fp * 2.0**k)))
    assert (_fade(fp * 16) == 1).float().mean() > 0.3 and (_fade(fp) == 1).float().mean() > 0.03
    assert torch.equal(fbm(uv, 7, octaves=5, footprint=fp), total / sum(0.5**k / 2 for k in range(5)))


def test_photographs_ship_with_scikit_image() -> None:
    img = load_photo("chelsea")
    assert img.shape[0] == 3 and img.shape[1:] == (300, 451)
    assert load_photo("brick").shape[0] == 1
    tex = Texture("image", scale=2.0, image="astronaut")
    centre = evaluate_texture(tex, torch.zeros(1, 2), torch.zeros(1))
    ref = load_photo("astronaut")[:, 255:257, 255:257].mean((1, 2))
    assert torch.allclose(centre[0], ref, atol=1e-6)


# ---------------------------------------------------------------------------------------------- worlds
def test_generator_is_deterministic_and_varied() -> None:
    a, b, c = generate_scene(5), generate_scene(5), generate_scene(6)
    assert a == b
    assert a != c
    rooms = [generate_scene(s, "room") for s in range(4)]
    for r in rooms:
        assert r.sky is not None and len(r.boxes) > 10
        photos = [m.texture.image for m in r.materials if m.texture.kind == "image"]
        assert photos, "every room hangs photographs"
    with pytest.raises(InputError, match="unknown scene kind"):
        generate_scene(0, "cave")  # type: ignore[arg-type]


def test_clip_is_deterministic_per_seed() -> None:
    a = make_clip(3, 3, 16, 24, render_config=RenderConfig(supersample=2))
    b = make_clip(3, 3, 16, 24, render_config=RenderConfig(supersample=2))
    assert torch.equal(a.frames, b.frames) and torch.equal(a.depths, b.depths)
    assert torch.equal(a.cameras.c2w, b.cameras.c2w)
    c = make_clip(4, 3, 16, 24, render_config=RenderConfig(supersample=2))
    assert not torch.equal(a.frames, c.frames)
    assert (a.depths > 0).all(), "the sky dome gives every pixel a finite depth"


@pytest.mark.parametrize("seed", [0, 3, 7, 11])
def test_random_paths_keep_clearance(seed: int) -> None:
    scene = generate_scene(seed)
    cfg = PathConfig(clearance=0.35)
    cams = random_path(scene, 120, 16, 24, cfg, torch.Generator().manual_seed(seed))
    assert len(cams) == 120
    assert float(path_clearance(scene, cams, substeps=8).min()) >= 0.35
    assert bool(scene.region.contains(cams.centers).all())
    steps = (cams.centers[1:] - cams.centers[:-1]).norm(dim=-1)
    # constant speed along the curve (chords are a little shorter than arcs in tight turns)
    assert float(steps.max()) <= cfg.step * (1 + 1e-9) and float(steps.min()) > 0.8 * cfg.step
    assert float(steps.mean()) == pytest.approx(cfg.step, rel=0.02)
    # the camera turns: it keeps looking at new parts of the world
    yaw = torch.atan2(cams.forward[:, 0], cams.forward[:, 2])
    assert float((yaw.max() - yaw.min()).abs()) > 0.3


def test_preset_paths_are_placed_and_validated() -> None:
    scene = generate_scene(3, "open")
    cams = preset_path(scene, "orbit", 25, 16, 24, generator=torch.Generator().manual_seed(0))
    assert float(path_clearance(scene, cams).min()) >= PathConfig().clearance
    with pytest.raises(InputError, match="does not fit"):
        preset_path(scene, "dolly_in", 5, 16, 24, PathConfig(max_tries=3), speed=100.0)


def test_multiview_consistency() -> None:
    """Unproject frame i with its depth, reproject into frame j: colours agree where visible."""
    scene = generate_scene(1, "room")
    H, W = 48, 72
    cams = random_path(scene, 21, H, W, generator=torch.Generator().manual_seed(2)).to(dtype=torch.float32)
    idx = [0, 10, 20]
    out = render(scene, cams[idx], RenderConfig(supersample=3))
    pts = cams[[0]].unproject(out.depth[:1]).reshape(1, -1, 3)
    errors, baseline = [], []
    for j in (1, 2):
        uv, z = cams[[idx[j]]].project(pts)
        u, v = uv[0, :, 0].floor().long(), uv[0, :, 1].floor().long()
        inside = (u >= 0) & (u < W) & (v >= 0) & (v < H) & (z[0] > 0)
        u, v, zz = u[inside], v[inside], z[0][inside]
        visible = (out.depth[j, v, u] - zz).abs() < 0.01 * zz  # occlusion check
        src = out.rgb[0].reshape(3, -1)[:, inside][:, visible]
        dst = out.rgb[j][:, v[visible], u[visible]]
        assert visible.float().mean() > 0.5
        errors.append(float((src - dst).abs().mean(0).median()))
        baseline.append(float((out.rgb[0] - out.rgb[j]).abs().mean(0).median()))
    # measured: median error 0.0008 / 0.0007 (frames 10 / 20 apart) against 0.015 / 0.064 without warping
    assert max(errors) < 0.005
    assert all(e < b / 3 for e, b in zip(errors, baseline, strict=True))


# ---------------------------------------------------------------------------------------------- CLI, dataset
def test_cli_writes_a_valid_transforms_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from worldwarp.cli import main
    from worldwarp.scenes.export import read_clip

    out = tmp_path / "clip"
    args = ["scenes", "render", "--seed", "2", "--frames", "3", "--height", "16", "--width", "24", "--out", str(out)]
    assert main([*args, "--supersample", "1"]) == 0
    doc = json.loads((out / "transforms.json").read_text())
    assert (doc["w"], doc["h"]) == (24, 16)
    assert [f["file_path"] for f in doc["frames"]] == ["frames/00000.png", "frames/00001.png", "frames/00002.png"]
    ref = make_clip(2, 3, 16, 24, render_config=RenderConfig(supersample=1))
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
    for i, fr in enumerate(doc["frames"]):
        gl = torch.tensor(fr["transform_matrix"], dtype=torch.float64)
        assert torch.allclose(gl @ flip, ref.cameras.c2w[i], atol=1e-12)  # OpenGL -> OpenCV matches
        depth = np.load(out / fr["depth_file_path"])
        assert depth.dtype == np.float32 and np.array_equal(depth, ref.depths[i].numpy())
    K = ref.cameras.K[0]
    assert [doc["fl_x"], doc["fl_y"], doc["cx"], doc["cy"]] == pytest.approx(
        [float(K[i, j]) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2))]
    )
    back = read_clip(out)
    assert torch.allclose(back.cameras.c2w, ref.cameras.c2w, atol=1e-12)
    assert (back.frames - ref.frames).abs().max() <= 0.5 / 255 + 1e-6
    assert not list(out.rglob("*.tmp"))


def test_cli_bad_input_exits_2(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from worldwarp.cli import main

    assert main(["scenes", "render", "--frames", "0", "--out", str(tmp_path / "x")]) == 2
    assert "argument --frames: must lie in [1, 100000], got '0'" in capsys.readouterr().err
    code = main(["scenes", "render", "--trajectory", "no_such_move", "--frames", "2", "--out", str(tmp_path / "y")])
    assert code == 2


def test_dataset_items() -> None:
    from worldwarp.scenes.dataset import ClipDatasetConfig, ProceduralClipDataset, collate_clips

    ds = ProceduralClipDataset(ClipDatasetConfig(length=4, clip_frames=3, path_frames=8, height=16, width=24))
    a, b = ds[1], ds[1]
    assert a["frames"].shape == (3, 3, 16, 24) and a["depths"].shape == (3, 16, 24) and len(a["cameras"]) == 3
    assert torch.equal(a["frames"], b["frames"]) and a["scene_seed"] == b["scene_seed"]
    assert 0 <= a["source"] < 3
    batch = collate_clips([ds[0], ds[1]])
    assert batch["frames"].shape == (2, 3, 3, 16, 24) and batch["scene_seed"].shape == (2,)
    with pytest.raises(IndexError):
        ds[4]


def test_suites_are_fixed_and_disjoint() -> None:
    from worldwarp.scenes.suites import SUITES, suite

    dev, test = suite("dev"), suite("test")
    assert len(dev) == 8 and len(test) == 8 and all(e.frames == 200 for e in dev + test)
    assert not {e.seed for e in dev} & {e.seed for e in test}
    assert {e.kind for e in dev} == {"room", "open"} == {e.kind for e in test}
    assert set(SUITES) == {"dev", "test"}
    with pytest.raises(InputError, match="unknown scene suite"):
        suite("train")


@pytest.mark.slow
def test_suite_scene_renders_and_caches(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from worldwarp.scenes.suites import render_suite_scene

    a = render_suite_scene("dev", 6, tmp_path, 16, 24, RenderConfig(supersample=1))
    b = render_suite_scene("dev", 6, tmp_path, 16, 24)
    assert len(a) == 200 and torch.allclose(a.cameras.c2w, b.cameras.c2w, atol=1e-12)
    assert (a.frames - b.frames).abs().max() <= 0.5 / 255 + 1e-6
