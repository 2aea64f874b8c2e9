"""Seeded generator of procedural worlds: furnished indoor rooms and open outdoor scenes.

A room has a floor, a ceiling and four walls with doorways, windows or wide openings (through which the
outside world - ground, trees, a neighbouring building, sky - is visible), furniture built from boxes (some
rotated), cylinders and spheres, rugs, framed photographs on the walls and ceiling lights. An open scene has a
textured ground, a sky dome with clouds, buildings, walls, trees, boulders, columns and crates around a free
area where the camera moves. Everything is drawn from ``numpy.random.default_rng(seed)``: one seed, one world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from worldwarp.errors import InputError
from worldwarp.scenes.geometry import Box, Cylinder, Plane, Sphere
from worldwarp.scenes.scene import Light, Material, Scene, WalkRegion
from worldwarp.scenes.textures import Texture

__all__ = ["SceneConfig", "generate_scene", "scene_kind_for_seed"]

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class SceneConfig:
    """Ranges the generator samples from (metres).

    Attributes:
        room_probability: chance that ``kind=None`` gives a room rather than an open scene.
        room_width, room_length, room_height: room interior size ranges.
        furniture: range of the number of furniture pieces in a room.
        open_radius: half size of the free square an open-scene camera moves in.
        open_objects: range of the number of objects in an open scene.
        photo_probability: chance that a wall, floor or ground uses a photograph rather than a pattern.
        sky_radius: radius of the sky dome.
    """

    room_probability: float = 0.6
    room_width: tuple[float, float] = (4.0, 7.0)
    room_length: tuple[float, float] = (5.0, 9.0)
    room_height: tuple[float, float] = (2.6, 3.2)
    furniture: tuple[int, int] = (5, 9)
    open_radius: float = 7.0
    open_objects: tuple[int, int] = (14, 24)
    photo_probability: float = 0.25
    sky_radius: float = 150.0


def scene_kind_for_seed(seed: int, config: SceneConfig | None = None) -> Literal["room", "open"]:
    """The kind :func:`generate_scene` picks for ``seed`` when ``kind`` is None."""
    cfg = config or SceneConfig()
    rng = np.random.default_rng([seed, 7])
    return "room" if rng.random() < cfg.room_probability else "open"


def generate_scene(seed: int, kind: Literal["room", "open"] | None = None, config: SceneConfig | None = None) -> Scene:
    """The world of ``seed`` (deterministic). ``kind`` None picks room or open from the seed."""
    cfg = config or SceneConfig()
    if kind is None:
        kind = scene_kind_for_seed(seed, cfg)
    if kind not in ("room", "open"):
        raise InputError(f"unknown scene kind {kind!r}; expected 'room' or 'open'")
    b = _Builder(np.random.default_rng(seed), cfg, seed)
    if kind == "room":
        b.room()
    else:
        b.open_scene()
    return b.scene(kind)


# ---------------------------------------------------------------------------------------------- palettes
_PAINTS: list[Vec3] = [
    (0.92, 0.9, 0.85),
    (0.86, 0.82, 0.74),
    (0.72, 0.78, 0.7),
    (0.66, 0.74, 0.8),
    (0.9, 0.8, 0.68),
    (0.82, 0.66, 0.58),
    (0.78, 0.8, 0.84),
    (0.94, 0.88, 0.74),
    (0.6, 0.68, 0.62),
    (0.85, 0.74, 0.78),
]
_WOODS: list[tuple[Vec3, Vec3]] = [
    ((0.78, 0.6, 0.4), (0.52, 0.34, 0.2)),
    ((0.62, 0.42, 0.26), (0.36, 0.22, 0.12)),
    ((0.86, 0.74, 0.56), (0.66, 0.5, 0.34)),
    ((0.45, 0.3, 0.2), (0.25, 0.15, 0.1)),
]
_FABRICS: list[Vec3] = [
    (0.55, 0.2, 0.2),
    (0.2, 0.32, 0.5),
    (0.3, 0.45, 0.32),
    (0.6, 0.55, 0.45),
    (0.35, 0.35, 0.38),
    (0.75, 0.6, 0.25),
    (0.5, 0.36, 0.55),
    (0.15, 0.45, 0.5),
    (0.82, 0.45, 0.3),
]
_BRICKS: list[Vec3] = [(0.62, 0.3, 0.22), (0.55, 0.38, 0.3), (0.7, 0.55, 0.42), (0.5, 0.5, 0.52)]
_COLOUR_PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field"]


class _Builder:
    def __init__(self, rng: np.random.Generator, cfg: SceneConfig, seed: int) -> None:
        self.rng, self.cfg, self.seed = rng, cfg, seed
        self.materials: list[Material] = []
        self.boxes: list[Box] = []
        self.spheres: list[Sphere] = []
        self.cylinders: list[Cylinder] = []
        self.planes: list[Plane] = []
        self.lights: list[Light] = []
        self.sky: Sphere | None = None
        self.ambient = 0.45
        self.region = WalkRegion(-1, 1, -1, 1, 1.2, 1.8)
        self.footprints: list[tuple[float, float, float, float]] = []  # (x0, z0, x1, z1) occupied

    # ------------------------------------------------------------------ helpers
    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def pick(self, xs: list):  # type: ignore[no-untyped-def]
        return xs[int(self.rng.integers(len(xs)))]

    def jitter(self, c: Vec3, amount: float = 0.05) -> Vec3:
        return tuple(float(np.clip(v + self.rng.uniform(-amount, amount), 0, 1)) for v in c)  # type: ignore[return-value]

    def mat(self, tex: Texture, emissive: bool = False) -> int:
        self.materials.append(Material(tex, emissive))
        return len(self.materials) - 1

    def tex(self, kind: str, a: Vec3, b: Vec3 = (0.2, 0.2, 0.2), scale: float = 1.0, **kw: object) -> Texture:
        return Texture(kind, a, b, scale, seed=int(self.rng.integers(1 << 30)), **kw)  # type: ignore[arg-type]

    def scene(self, kind: Literal["room", "open"]) -> Scene:
        return Scene(
            kind=kind,
            seed=self.seed,
            materials=self.materials,
            boxes=self.boxes,
            spheres=self.spheres,
            cylinders=self.cylinders,
            planes=self.planes,
            sky=self.sky,
            lights=self.lights,
            ambient=self.ambient,
            region=self.region,
        )

    def box(self, center: Vec3, half: Vec3, material: int, yaw: float = 0.0, uv_object: bool = False) -> None:
        self.boxes.append(Box(center, half, material, yaw, uv_object))

    def local_box(
        self, origin: Vec3, yaw: float, offset: Vec3, half: Vec3, material: int, uv_object: bool = False
    ) -> None:
        """A box placed at ``offset`` in a furniture piece's frame (origin on the floor, rotated by yaw)."""
        c, s = math.cos(yaw), math.sin(yaw)
        x = origin[0] + c * offset[0] + s * offset[2]
        z = origin[2] - s * offset[0] + c * offset[2]
        self.box((x, origin[1] + offset[1], z), half, material, yaw, uv_object)

    # ------------------------------------------------------------------ materials
    def wall_texture(self) -> Texture:
        r = self.rng.random()
        paint = self.pick(_PAINTS)
        if r < self.cfg.photo_probability * 0.6:
            return self.tex("image", self.jitter(paint, 0.05), _scale(paint, 0.45), scale=1.6, image="brick")
        if r < 0.3:
            return self.tex("bricks", self.pick(_BRICKS), (0.78, 0.76, 0.72), scale=self.u(0.22, 0.3), grime=0.1)
        if r < 0.5:
            return self.tex("stripes", paint, _scale(paint, 0.88), scale=self.u(0.15, 0.4), grime=0.06)
        if r < 0.65:
            return self.tex("noise", paint, _scale(paint, 0.85), scale=self.u(0.6, 1.5), grime=0.05)
        if r < 0.75:
            return self.tex("tiles", (0.88, 0.9, 0.9), (0.6, 0.62, 0.62), scale=self.u(0.15, 0.3), grime=0.05)
        if r < 0.85:
            return self.tex("gradient", paint, _scale(paint, 0.8), scale=self.u(1.0, 2.5), grime=0.08)
        return self.tex("solid", paint, paint, grime=0.15)

    def floor_texture(self) -> Texture:
        r = self.rng.random()
        if r < 0.45:
            a, b = self.pick(_WOODS)
            return self.tex("planks", a, b, scale=self.u(0.12, 0.22), angle=self.pick([0.0, math.pi / 2]))
        if r < 0.65:
            a = self.pick([(0.85, 0.85, 0.82), (0.3, 0.3, 0.32), (0.7, 0.6, 0.5)])
            return self.tex("checker", a, _scale(a, 0.45), scale=self.u(0.3, 0.6), grime=0.1)
        if r < 0.8:
            return self.tex("tiles", (0.75, 0.72, 0.68), (0.45, 0.42, 0.4), scale=self.u(0.3, 0.6), grime=0.15)
        if r < 0.8 + self.cfg.photo_probability * 0.8:
            return self.tex("image", (0.72, 0.7, 0.66), (0.2, 0.2, 0.2), scale=self.u(1.2, 2.5), image="gravel")
        a = self.pick(_FABRICS)
        return self.tex("noise", a, _scale(a, 0.7), scale=0.3, grime=0.1)

    def furniture_texture(self) -> Texture:
        r = self.rng.random()
        if r < 0.4:
            a, b = self.pick(_WOODS)
            return self.tex("planks", a, b, scale=self.u(0.08, 0.2), grime=0.05)
        if r < 0.7:
            a = self.pick(_FABRICS)
            return self.tex("noise", a, _scale(a, 0.75), scale=self.u(0.05, 0.2), grime=0.1)
        if r < 0.8:
            a = self.pick(_FABRICS)
            return self.tex("checker", a, _scale(a, 0.6), scale=self.u(0.08, 0.2))
        if r < 0.9:
            a = self.pick(_FABRICS)
            return self.tex("stripes", a, (0.9, 0.88, 0.82), scale=self.u(0.1, 0.25))
        return self.tex("solid", self.pick(_PAINTS + _FABRICS), (0, 0, 0), grime=0.12)

    # ------------------------------------------------------------------ room
    def room(self) -> None:
        cfg = self.cfg
        W, L, Hc = self.u(*cfg.room_width), self.u(*cfg.room_length), self.u(*cfg.room_height)
        t = 0.15
        self.room_size = (W, L, Hc)
        wall = self.mat(self.wall_texture())
        accent = self.mat(self.wall_texture()) if self.rng.random() < 0.5 else wall
        floor = self.mat(self.floor_texture())
        ceiling = self.mat(self.tex("noise", (0.95, 0.94, 0.92), (0.82, 0.81, 0.8), scale=1.0))
        # floor slab and ceiling slab (world up is -y: the floor's top face is y = 0)
        self.box((0.0, 0.1, 0.0), (W / 2 + t, 0.1, L / 2 + t), floor)
        self.box((0.0, -Hc - 0.1, 0.0), (W / 2 + t, 0.1, L / 2 + t), ceiling)
        # walls: (axis of the wall's length, fixed coordinate, length, interior normal)
        walls = [("x", -L / 2 - t / 2, W + 2 * t), ("x", L / 2 + t / 2, W + 2 * t)]
        walls += [("z", -W / 2 - t / 2, L), ("z", W / 2 + t / 2, L)]
        n_open = [int(self.rng.integers(0, 3)) for _ in walls]
        while sum(n_open) < 2:
            n_open[int(self.rng.integers(4))] += 1
        self.openings: list[tuple[str, float, float, float]] = []  # (axis, fixed, lo, hi) along the wall
        self.wall_spans: list[tuple[str, float, float, float, float]] = []  # solid spans for pictures
        for wi, ((axis, fixed, length), n) in enumerate(zip(walls, n_open, strict=True)):
            self._wall(axis, fixed, length, n, t, Hc, accent if wi == 0 else wall)
        # outside world: ground, sky, trees and a neighbouring building seen through the openings
        self._outside(W, L)
        # lights: one or two ceiling lamps, a soft fill
        n_lamps = 1 if L < 6.5 else 2
        lamp_mat = self.mat(Texture("solid", (1.0, 0.97, 0.9), (1.0, 0.97, 0.9)), emissive=True)
        for k in range(n_lamps):
            z = 0.0 if n_lamps == 1 else (-L / 4 if k == 0 else L / 4)
            self.cylinders.append(Cylinder((0.0, -Hc + 0.03, z), 0.22, 0.03, lamp_mat))
            self.lights.append(Light("point", (0.0, -Hc + 0.3, z), (1.0, 0.95, 0.85), 0.85, falloff=3.5))
        self.lights.append(Light("directional", (0.3, -1.0, 0.45), (0.9, 0.95, 1.0), 0.25))
        self.lights.append(Light("directional", (-0.2, 1.0, -0.3), (1.0, 0.97, 0.92), 0.3))  # bounce from the floor
        self.ambient = 0.42
        # furniture, rugs, pictures
        self._rugs(W, L)
        n = int(self.rng.integers(cfg.furniture[0], cfg.furniture[1] + 1))
        for _ in range(n):
            self._furniture(W, L, Hc)
        self._pictures(Hc)
        self.region = WalkRegion(-W / 2, W / 2, -L / 2, L / 2, 1.2, min(1.75, Hc - 0.6))

    def _wall(self, axis: str, fixed: float, length: float, n_open: int, t: float, Hc: float, mat: int) -> None:
        lo_end, hi_end = -length / 2, length / 2
        margin = 0.45 + (t if axis == "x" else 0.0)
        holes: list[tuple[float, float, float, float]] = []  # (lo, hi, bottom height, top height)
        for _ in range(n_open):
            kind = self.rng.random()
            if kind < 0.4:
                w, bot, top = self.u(0.9, 1.3), 0.0, self.u(2.05, min(2.3, Hc - 0.25))
            elif kind < 0.8:
                w, bot, top = self.u(0.9, 2.0), self.u(0.75, 1.0), self.u(1.9, min(2.3, Hc - 0.2))
            else:
                w, bot, top = self.u(1.6, 2.6), 0.0, min(self.u(2.3, 2.6), Hc - 0.2)
            for _try in range(20):
                c = self.u(lo_end + margin + w / 2, hi_end - margin - w / 2) if hi_end - lo_end > 2 * margin + w else 0
                if all(c - w / 2 > h[1] + 0.4 or c + w / 2 < h[0] - 0.4 for h in holes):
                    holes.append((c - w / 2, c + w / 2, bot, top))
                    break
        holes.sort()
        cuts = [lo_end] + [v for h in holes for v in (h[0], h[1])] + [hi_end]

        def seg(a: float, b: float, h0: float, h1: float) -> None:
            if b - a < 1e-3 or h1 - h0 < 1e-3:
                return
            mid, half_len = (a + b) / 2, (b - a) / 2
            center_h = -(h0 + h1) / 2
            if axis == "x":
                self.box((mid, center_h, fixed), (half_len, (h1 - h0) / 2, t / 2), mat)
            else:
                self.box((fixed, center_h, mid), (t / 2, (h1 - h0) / 2, half_len), mat)

        for i in range(len(cuts) // 2):
            a, b = cuts[2 * i], cuts[2 * i + 1]
            seg(a, b, 0.0, Hc)
            if b - a > 1.0:
                self.wall_spans.append((axis, fixed, a + 0.3, b - 0.3, Hc))
        frame = self.mat(self.tex("solid", (0.95, 0.95, 0.93), (0, 0, 0), grime=0.05))
        for lo, hi, bot, top in holes:
            seg(lo, hi, 0.0, bot)
            seg(lo, hi, top, Hc)
            self.openings.append((axis, fixed, lo, hi))
            if bot > 0:  # window sill
                if axis == "x":
                    self.box(((lo + hi) / 2, -bot + 0.02, fixed), ((hi - lo) / 2 + 0.05, 0.02, t / 2 + 0.05), frame)
                else:
                    self.box((fixed, -bot + 0.02, (lo + hi) / 2), (t / 2 + 0.05, 0.02, (hi - lo) / 2 + 0.05), frame)

    def _outside(self, W: float, L: float) -> None:
        ground = self.mat(self._ground_texture())
        self.planes.append(Plane((0.0, -1.0, 0.0), -0.02, ground))  # y = 0.02, a little below the room floor
        self._sky()
        trunk = self.mat(self.tex("noise", (0.4, 0.3, 0.22), (0.25, 0.18, 0.12), scale=0.3))
        leaves = self.mat(self.tex("noise", (0.3, 0.55, 0.25), (0.12, 0.3, 0.1), scale=0.5))
        for _ in range(int(self.rng.integers(5, 10))):
            ang = self.u(0, 2 * math.pi)
            dist = self.u(max(W, L) / 2 + 2.5, max(W, L) / 2 + 12)
            x, z = dist * math.cos(ang), dist * math.sin(ang)
            self._tree(x, z, trunk, leaves)
        bmat = self.mat(self.tex("bricks", self.pick(_BRICKS), (0.8, 0.78, 0.74), scale=0.25, grime=0.1))
        side = self.pick([-1, 1])
        d = L / 2 + self.u(6, 10)
        self.box((self.u(-3, 3), -3.0, side * d), (self.u(4, 8), 3.0, 1.5), bmat, yaw=self.u(-0.3, 0.3))

    def _ground_texture(self) -> Texture:
        r = self.rng.random()
        if r < 0.35 + self.cfg.photo_probability:
            g = self.pick(
                [((0.45, 0.62, 0.3), (0.15, 0.28, 0.1), "grass"), ((0.75, 0.72, 0.66), (0.3, 0.29, 0.27), "gravel")]
            )
            return self.tex("image", g[0], g[1], scale=self.u(2.0, 4.0), image=g[2])
        if r < 0.75:
            return self.tex("noise", (0.42, 0.55, 0.28), (0.3, 0.36, 0.18), scale=self.u(1.0, 3.0), grime=0.1)
        if r < 0.88:
            return self.tex("tiles", (0.68, 0.64, 0.58), (0.42, 0.4, 0.37), scale=self.u(0.5, 1.0), grime=0.15)
        return self.tex("checker", (0.7, 0.68, 0.64), (0.45, 0.44, 0.42), scale=self.u(0.8, 1.5), grime=0.15)

    def _sky(self) -> None:
        zenith = self.jitter((0.3, 0.5, 0.85), 0.06)
        horizon = self.jitter((0.78, 0.85, 0.92), 0.04)
        sky = self.mat(Texture("sky", zenith, horizon, self.cfg.sky_radius, seed=int(self.rng.integers(1 << 30))), True)
        self.sky = Sphere((0.0, 0.0, 0.0), self.cfg.sky_radius, sky)

    def _tree(self, x: float, z: float, trunk: int, leaves: int) -> None:
        h = self.u(1.5, 3.0)
        r = self.u(0.1, 0.25)
        self.cylinders.append(Cylinder((x, -h / 2, z), r, h / 2, trunk))
        for _ in range(int(self.rng.integers(1, 4))):
            cr = self.u(0.8, 1.6)
            self.spheres.append(Sphere((x + self.u(-0.5, 0.5), -h - cr * 0.6, z + self.u(-0.5, 0.5)), cr, leaves))

    # ------------------------------------------------------------------ furniture
    def _free(self, x0: float, z0: float, x1: float, z1: float) -> bool:
        return all(x1 < a0 or x0 > a1 or z1 < b0 or z0 > b1 for a0, b0, a1, b1 in self.footprints)

    def _near_opening(self, x0: float, z0: float, x1: float, z1: float) -> bool:
        for axis, fixed, lo, hi in self.openings:
            if axis == "x":
                if min(abs(z0 - fixed), abs(z1 - fixed)) < 1.0 and not (x1 < lo - 0.3 or x0 > hi + 0.3):
                    return True
            elif min(abs(x0 - fixed), abs(x1 - fixed)) < 1.0 and not (z1 < lo - 0.3 or z0 > hi + 0.3):
                return True
        return False

    def _place(self, W: float, L: float, w: float, d: float, against_wall: bool) -> tuple[float, float, float] | None:
        """(x, z, yaw) of a footprint w x d (local x by z) that is free; against a wall faces the room."""
        for _ in range(40):
            if against_wall:
                side = int(self.rng.integers(4))
                yaw = [0.0, math.pi, -math.pi / 2, math.pi / 2][side]  # local +z (front) points into the room
                if side < 2:
                    x = self.u(-W / 2 + w / 2 + 0.05, W / 2 - w / 2 - 0.05) if W > w + 0.1 else 0.0
                    z = (-L / 2 + d / 2 + 0.02) * (1 if side == 0 else -1)
                    ex, ez = w / 2, d / 2
                else:
                    z = self.u(-L / 2 + w / 2 + 0.05, L / 2 - w / 2 - 0.05) if L > w + 0.1 else 0.0
                    x = (W / 2 - d / 2 - 0.02) * (1 if side == 2 else -1)
                    ex, ez = d / 2, w / 2
            else:
                yaw = self.u(-math.pi, math.pi)
                ext = math.hypot(w, d) / 2
                x = self.u(-W / 2 + ext + 0.6, W / 2 - ext - 0.6) if W > 2 * ext + 1.2 else 0.0
                z = self.u(-L / 2 + ext + 0.6, L / 2 - ext - 0.6) if L > 2 * ext + 1.2 else 0.0
                ex = ez = ext
            fp = (x - ex, z - ez, x + ex, z + ez)
            if self._free(*fp) and not self._near_opening(*fp):
                self.footprints.append((fp[0] - 0.1, fp[1] - 0.1, fp[2] + 0.1, fp[3] + 0.1))
                return x, z, yaw
        return None

    def _furniture(self, W: float, L: float, Hc: float) -> None:
        kind = self.pick(
            ["table", "table", "cabinet", "bookcase", "sofa", "bed", "lamp", "plant", "pillar", "ball", "crates"]
        )
        m = self.mat(self.furniture_texture())
        if kind == "table":
            w, d, h = self.u(0.8, 1.6), self.u(0.6, 0.9), self.u(0.72, 0.78)
            p = self._place(W, L, w, d, against_wall=False)
            if p is None:
                return
            o = (p[0], 0.0, p[1])
            self.local_box(o, p[2], (0, -h + 0.02, 0), (w / 2, 0.02, d / 2), m)
            legm = self.mat(self.tex("solid", (0.25, 0.2, 0.18), (0, 0, 0), grime=0.1))
            for sx in (-1, 1):
                for sz in (-1, 1):
                    self.local_box(
                        o,
                        p[2],
                        (sx * (w / 2 - 0.06), -(h - 0.04) / 2, sz * (d / 2 - 0.06)),
                        (0.03, (h - 0.04) / 2, 0.03),
                        legm,
                    )
            if self.rng.random() < 0.7:  # a vase or a bowl on the table
                vm = self.mat(self.tex("solid", self.pick(_FABRICS), (0, 0, 0)))
                self.spheres.append(Sphere((p[0] + self.u(-0.2, 0.2), -h - 0.1, p[1] + self.u(-0.1, 0.1)), 0.1, vm))
        elif kind == "cabinet":
            w, d, h = self.u(0.6, 1.6), self.u(0.4, 0.6), self.u(0.8, 2.0)
            p = self._place(W, L, w, d, against_wall=True)
            if p is None:
                return
            self.local_box((p[0], 0.0, p[1]), p[2], (0, -h / 2, 0), (w / 2, h / 2, d / 2), m)
        elif kind == "bookcase":
            w, d, h = self.u(0.8, 1.6), 0.35, min(self.u(1.6, 2.2), Hc - 0.3)
            p = self._place(W, L, w, d, against_wall=True)
            if p is None:
                return
            o, yaw = (p[0], 0.0, p[1]), p[2]
            a, b = self.pick(_WOODS)
            wood = self.mat(self.tex("planks", a, b, scale=0.1))
            self.local_box(o, yaw, (0, -h / 2, -d / 2 + 0.02), (w / 2, h / 2, 0.02), wood)  # back
            for sx in (-1, 1):
                self.local_box(o, yaw, (sx * (w / 2 - 0.02), -h / 2, 0), (0.02, h / 2, d / 2), wood)
            n_sh = max(2, int(h / 0.4))
            books = [self.mat(self.tex("stripes", c, _scale(c, 0.6), scale=0.04)) for c in _FABRICS[:4]]
            for k in range(n_sh + 1):
                y = -k * h / n_sh
                self.local_box(o, yaw, (0, y - 0.015 if k == 0 else y, 0), (w / 2, 0.015, d / 2), wood)
                if k < n_sh and self.rng.random() < 0.85:
                    bh = self.u(0.18, 0.3)
                    bw = self.u(0.3, w - 0.15)
                    self.local_box(
                        o,
                        yaw,
                        (self.u(-(w - bw) / 2 + 0.04, (w - bw) / 2 - 0.04), y - bh / 2 - 0.015, 0.0),
                        (bw / 2, bh / 2, 0.12),
                        self.pick(books),
                    )
        elif kind == "sofa":
            w, d = self.u(1.6, 2.4), self.u(0.8, 1.0)
            p = self._place(W, L, w, d, against_wall=self.rng.random() < 0.6)
            if p is None:
                return
            o, yaw = (p[0], 0.0, p[1]), p[2]
            self.local_box(o, yaw, (0, -0.22, 0.05), (w / 2 - 0.12, 0.22, d / 2 - 0.05), m)
            self.local_box(o, yaw, (0, -0.45, -d / 2 + 0.12), (w / 2, 0.45, 0.12), m)
            for sx in (-1, 1):
                self.local_box(o, yaw, (sx * (w / 2 - 0.1), -0.3, 0), (0.1, 0.3, d / 2), m)
        elif kind == "bed":
            w, d = self.u(1.4, 1.9), self.u(2.0, 2.2)
            p = self._place(W, L, w, d, against_wall=True)
            if p is None:
                return
            o, yaw = (p[0], 0.0, p[1]), p[2]
            a, b = self.pick(_WOODS)
            wood = self.mat(self.tex("planks", a, b, scale=0.12))
            sheet = self.mat(self.tex("noise", (0.92, 0.92, 0.9), (0.8, 0.8, 0.82), scale=0.2))
            self.local_box(o, yaw, (0, -0.15, 0), (w / 2, 0.15, d / 2), wood)
            self.local_box(o, yaw, (0, -0.4, 0.05), (w / 2 - 0.03, 0.1, d / 2 - 0.06), sheet)
            self.local_box(o, yaw, (0, -0.5, 0.3), (w / 2 - 0.02, 0.11, d / 2 - 0.3), m)  # blanket
            self.local_box(o, yaw, (0, -0.55, -d / 2 + 0.04), (w / 2, 0.55, 0.04), wood)  # headboard
        elif kind == "lamp":
            p = self._place(W, L, 0.5, 0.5, against_wall=False)
            if p is None:
                return
            h = self.u(1.3, 1.7)
            pole = self.mat(self.tex("solid", (0.2, 0.2, 0.22), (0, 0, 0)))
            shade = self.mat(self.tex("noise", (0.95, 0.9, 0.78), (0.85, 0.78, 0.6), scale=0.1), emissive=True)
            self.cylinders.append(Cylinder((p[0], -0.015, p[1]), 0.2, 0.015, pole))
            self.cylinders.append(Cylinder((p[0], -h / 2, p[1]), 0.02, h / 2, pole))
            self.cylinders.append(Cylinder((p[0], -h - 0.1, p[1]), 0.2, 0.14, shade))
        elif kind == "plant":
            p = self._place(W, L, 0.6, 0.6, against_wall=False)
            if p is None:
                return
            pot = self.mat(self.tex("solid", (0.7, 0.4, 0.28), (0, 0, 0), grime=0.2))
            leaves = self.mat(self.tex("noise", (0.3, 0.6, 0.25), (0.1, 0.3, 0.08), scale=0.12))
            ph = self.u(0.3, 0.5)
            self.cylinders.append(Cylinder((p[0], -ph / 2, p[1]), 0.2, ph / 2, pot))
            r = self.u(0.3, 0.45)
            self.spheres.append(Sphere((p[0], -ph - r * 0.8, p[1]), r, leaves))
        elif kind == "pillar":
            p = self._place(W, L, 0.6, 0.6, against_wall=False)
            if p is None:
                return
            pm = self.mat(
                self.pick(
                    [
                        self.tex("noise", (0.9, 0.88, 0.84), (0.7, 0.68, 0.64), scale=0.5),
                        self.tex("stripes", (0.85, 0.82, 0.76), (0.7, 0.66, 0.6), scale=0.12),
                    ]
                )
            )
            self.cylinders.append(Cylinder((p[0], -Hc / 2, p[1]), self.u(0.15, 0.25), Hc / 2, pm))
        elif kind == "ball":
            r = self.u(0.15, 0.35)
            p = self._place(W, L, 2 * r, 2 * r, against_wall=False)
            if p is None:
                return
            bm = self.mat(
                self.pick(
                    [
                        self.tex("checker", self.pick(_FABRICS), (0.95, 0.95, 0.95), scale=0.12),
                        self.tex("stripes", self.pick(_FABRICS), (0.95, 0.95, 0.9), scale=0.15),
                    ]
                )
            )
            self.spheres.append(Sphere((p[0], -r, p[1]), r, bm))
        else:  # crates: a small stack of rotated boxes
            p = self._place(W, L, 1.0, 1.0, against_wall=False)
            if p is None:
                return
            a, b = self.pick(_WOODS)
            cm = self.mat(self.tex("planks", a, b, scale=0.1, grime=0.15))
            s = self.u(0.25, 0.35)
            self.box((p[0], -s, p[1]), (s, s, s), cm, yaw=p[2], uv_object=True)
            if self.rng.random() < 0.6:
                s2 = s * self.u(0.6, 0.85)
                self.box(
                    (p[0] + self.u(-0.05, 0.05), -2 * s - s2, p[1]),
                    (s2, s2, s2),
                    cm,
                    yaw=p[2] + self.u(-0.6, 0.6),
                    uv_object=True,
                )

    def _rugs(self, W: float, L: float) -> None:
        if self.rng.random() < 0.7:
            a = self.pick(_FABRICS)
            t = self.pick(
                [
                    self.tex("stripes", a, (0.9, 0.86, 0.78), scale=self.u(0.2, 0.5)),
                    self.tex("checker", a, _scale(a, 0.6), scale=self.u(0.2, 0.4)),
                    self.tex("noise", a, _scale(a, 0.5), scale=0.15),
                ]
            )
            rw, rl = self.u(1.2, min(2.5, W - 1.0)), self.u(1.5, min(3.5, L - 1.0))
            self.box((self.u(-0.3, 0.3), -0.005, self.u(-0.5, 0.5)), (rw / 2, 0.005, rl / 2), self.mat(t))

    def _pictures(self, Hc: float) -> None:
        frame_wood = self.mat(self.tex("solid", (0.18, 0.13, 0.1), (0, 0, 0)))
        spans = list(self.wall_spans)
        self.rng.shuffle(spans)
        placed = 0
        for axis, fixed, a, b, _ in spans:
            if placed >= 3 or b - a < 0.8:
                continue
            photo = self.pick(_COLOUR_PHOTOS)
            pw = min(self.u(0.6, 1.3), b - a)
            aspect = {"astronaut": 1.0, "coffee": 0.667, "chelsea": 0.665, "rocket": 0.667, "hubble_deep_field": 0.872}[
                photo
            ]
            ph = pw * aspect
            c = self.u(a + pw / 2, b - pw / 2)
            cy = -self.u(1.35, min(1.75, Hc - ph / 2 - 0.2))
            inward = -1.0 if fixed > 0 else 1.0  # the room is on the side of the origin
            pm = self.mat(Texture("image", scale=pw, image=photo))
            # frame behind the picture, picture slightly proud of it
            if axis == "x":
                self.box((c, cy, fixed + inward * (0.075 + 0.015)), (pw / 2 + 0.04, ph / 2 + 0.04, 0.015), frame_wood)
                self.box((c, cy, fixed + inward * (0.075 + 0.035)), (pw / 2, ph / 2, 0.006), pm, uv_object=True)
            else:
                self.box((fixed + inward * (0.075 + 0.015), cy, c), (0.015, ph / 2 + 0.04, pw / 2 + 0.04), frame_wood)
                self.box((fixed + inward * (0.075 + 0.035), cy, c), (0.006, ph / 2, pw / 2), pm, uv_object=True)
            placed += 1

    # ------------------------------------------------------------------ open scene
    def open_scene(self) -> None:
        R = self.cfg.open_radius
        ground = self.mat(self._ground_texture())
        self.planes.append(Plane((0.0, -1.0, 0.0), 0.0, ground))
        self._sky()
        sun = (self.u(-0.6, 0.6), -1.0, self.u(-0.6, 0.6))
        self.lights.append(Light("directional", sun, (1.0, 0.96, 0.88), 0.7))
        self.ambient = 0.5
        trunk = self.mat(self.tex("noise", (0.42, 0.32, 0.22), (0.25, 0.18, 0.12), scale=0.3))
        leaves = self.mat(self.tex("noise", self.jitter((0.3, 0.55, 0.25), 0.05), (0.12, 0.3, 0.1), scale=0.5))
        rock = self.mat(self.tex("image", (0.7, 0.68, 0.64), (0.3, 0.29, 0.27), scale=1.5, image="gravel"))
        n = int(self.rng.integers(self.cfg.open_objects[0], self.cfg.open_objects[1] + 1))
        for k in range(n):
            # objects inside the free square are sparse, most stand around it
            inner = k < n // 3
            for _ in range(30):
                x, z = self.u(-R - 6, R + 6), self.u(-R - 6, R + 6)
                if inner != (max(abs(x), abs(z)) < R):
                    continue
                if all(math.hypot(x - a, z - b) > 2.0 for a, b, _, _ in self.footprints):
                    break
            self.footprints.append((x, z, 0.0, 0.0))
            kind = self.pick(
                ["tree", "tree", "boulder", "column", "crate", "wall", "building"]
                if not inner
                else ["tree", "boulder", "column", "crate", "crate"]
            )
            if kind == "tree":
                self._tree(x, z, trunk, leaves)
            elif kind == "boulder":
                r = self.u(0.4, 1.2)
                self.spheres.append(Sphere((x, -r * 0.6, z), r, rock))
            elif kind == "column":
                h = self.u(2.0, 4.5)
                cm = self.mat(self.tex("stripes", (0.9, 0.88, 0.82), (0.72, 0.7, 0.66), scale=0.15, grime=0.1))
                r = self.u(0.2, 0.4)
                self.cylinders.append(Cylinder((x, -h / 2, z), r, h / 2, cm))
                if self.rng.random() < 0.5:
                    self.spheres.append(Sphere((x, -h - r, z), r * 1.2, cm))
            elif kind == "crate":
                a, b = self.pick(_WOODS)
                cm = self.mat(self.tex("planks", a, b, scale=0.12, grime=0.15))
                s = self.u(0.3, 0.6)
                self.box((x, -s, z), (s, s, s), cm, yaw=self.u(-math.pi, math.pi), uv_object=True)
            elif kind == "wall":
                wm = self.mat(self.tex("bricks", self.pick(_BRICKS), (0.8, 0.78, 0.74), scale=0.25, grime=0.12))
                h = self.u(1.0, 2.5)
                self.box((x, -h / 2, z), (self.u(1.5, 4.0), h / 2, 0.2), wm, yaw=self.u(-math.pi, math.pi))
            else:
                wm = self.mat(self.wall_texture())
                h = self.u(3.0, 8.0)
                self.box((x, -h / 2, z), (self.u(1.5, 3.5), h / 2, self.u(1.5, 3.5)), wm, yaw=self.u(-math.pi, math.pi))
                roof = self.mat(self.tex("tiles", (0.55, 0.28, 0.2), (0.35, 0.18, 0.12), scale=0.3))
                if self.rng.random() < 0.5:
                    self.cylinders.append(Cylinder((x, -h - 0.3, z), 1.2, 0.3, roof))
        self.region = WalkRegion(-R, R, -R, R, 1.0, 2.2)


def _scale(c: Vec3, f: float) -> Vec3:
    return (c[0] * f, c[1] * f, c[2] * f)
