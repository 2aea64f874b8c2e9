"""Collision-free camera paths through a procedural scene.

* :func:`random_path`: a smoothed random walk (waypoints ~0.8 m apart chosen so every segment keeps clear of
  the geometry, joined by a Catmull-Rom spline and resampled at constant speed) with a look-ahead orientation
  plus a slow sideways sway, so the camera keeps turning towards parts it has not seen yet.
* :func:`preset_path`: a named preset of :mod:`worldwarp.trajectory.presets` placed at a random valid start
  (random heading) and accepted only if the whole path keeps its clearance.

Every path is validated against the geometry with :func:`path_clearance` (signed distance of camera centres,
sampled between frames too, to every solid primitive) and re-sampled when it fails. Randomness comes only from
the ``torch.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from worldwarp.cameras import Cameras, intrinsics_from_fov, look_at
from worldwarp.errors import InputError
from worldwarp.scenes.scene import Scene

__all__ = ["PathConfig", "camera_path", "path_clearance", "preset_path", "random_path"]

_UP = (0.0, -1.0, 0.0)  # world up (the scenes' convention)


@dataclass(frozen=True)
class PathConfig:
    """How camera paths are made.

    Attributes:
        fov_x_deg: horizontal field of view of the cameras.
        clearance: minimum distance (m) of every camera centre, and of the path between frames, to geometry.
        step: distance travelled per frame (m).
        waypoint_spacing: distance between random-walk waypoints (m).
        turn_std: standard deviation of the heading change between waypoints (radians).
        look_ahead: how far along the path the camera looks (m).
        sway: amplitude of the sideways look-around (radians); ``sway_period``: its period (m of path).
        pitch: maximum |pitch| (radians; positive looks down).
        max_tries: attempts before giving up.
        preset_scale: ``scale`` (m) given to preset specs.
    """

    fov_x_deg: float = 70.0
    clearance: float = 0.35
    step: float = 0.03
    waypoint_spacing: float = 0.8
    turn_std: float = 0.7
    look_ahead: float = 1.0
    sway: float = 0.5
    sway_period: float = 4.0
    pitch: float = 0.12
    max_tries: int = 60
    preset_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.fov_x_deg < 180:
            raise InputError(f"fov_x_deg must lie in (0, 180), got {self.fov_x_deg}")
        for name in ("clearance", "step", "waypoint_spacing", "look_ahead", "sway_period"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")


def _rand(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.rand(*shape, generator=gen, dtype=torch.float64)


def path_clearance(scene: Scene, cameras: Cameras, substeps: int = 4) -> Tensor:
    """Distance to the nearest solid surface of camera centres and of ``substeps - 1`` points between
    consecutive centres: ((N - 1) * substeps + 1,) float64 (negative inside geometry)."""
    c = cameras.centers.to("cpu", torch.float64)
    if len(c) > 1:
        w = torch.arange(substeps, dtype=torch.float64) / substeps
        pts = (c[:-1, None] + w[None, :, None] * (c[1:] - c[:-1])[:, None]).reshape(-1, 3)
        pts = torch.cat([pts, c[-1:]])
    else:
        pts = c
    return scene.clearance(pts)


def _free_points(scene: Scene, n: int, margin: float, gen: torch.Generator) -> Tensor:
    """Up to n points of the walk region with clearance > margin (M, 3), M may be 0."""
    r = scene.region
    u = _rand(gen, n, 3)
    x = r.x0 + (r.x1 - r.x0) * u[:, 0]
    z = r.z0 + (r.z1 - r.z0) * u[:, 1]
    h = r.h0 + (r.h1 - r.h0) * u[:, 2]
    pts = torch.stack([x, -h, z], dim=-1)
    ok = scene.clearance(pts) > margin
    return pts[ok]


def _catmull_rom(points: Tensor, per_segment: int) -> Tensor:
    """Dense samples (M, 3) of the uniform Catmull-Rom spline through ``points`` (P, 3)."""
    P = torch.cat([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])
    s = torch.arange(per_segment, dtype=points.dtype) / per_segment
    s2, s3 = s * s, s * s * s
    out = []
    for i in range(1, len(P) - 2):
        p0, p1, p2, p3 = P[i - 1], P[i], P[i + 1], P[i + 2]
        seg = 0.5 * (
            (2 * p1)[None]
            + (-p0 + p2)[None] * s[:, None]
            + (2 * p0 - 5 * p1 + 4 * p2 - p3)[None] * s2[:, None]
            + (-p0 + 3 * p1 - 3 * p2 + p3)[None] * s3[:, None]
        )
        out.append(seg)
    out.append(points[-1:])
    return torch.cat(out)


def _resample(curve: Tensor, distances: Tensor) -> Tensor:
    """Points at arc lengths ``distances`` (K,) along a polyline ``curve`` (M, 3) (clamped to its end)."""
    seg = (curve[1:] - curve[:-1]).norm(dim=-1)
    cum = torch.cat([torch.zeros(1, dtype=curve.dtype), torch.cumsum(seg, 0)])
    d = distances.clamp(0, float(cum[-1]))
    idx = torch.searchsorted(cum, d, right=True).clamp(1, len(curve) - 1)
    a, b = cum[idx - 1], cum[idx]
    w = ((d - a) / (b - a).clamp_min(1e-12))[:, None]
    return curve[idx - 1] + w * (curve[idx] - curve[idx - 1])


def _walk(scene: Scene, length: float, cfg: PathConfig, gen: torch.Generator) -> Tensor | None:
    """Waypoints (P, 3) of a random walk of at least ``length`` metres, or None if it got stuck."""
    margin = cfg.clearance * 1.6
    start = _free_points(scene, 256, margin * 1.5, gen)
    if len(start) == 0:
        return None
    pts = [start[0]]
    r = scene.region
    cx, cz = 0.5 * (r.x0 + r.x1), 0.5 * (r.z0 + r.z1)
    # head roughly towards the middle of the region: the walk crosses the scene and sees most of it
    heading = math.atan2(cx - float(start[0][0]), cz - float(start[0][2])) + float(torch.randn(1, generator=gen)) * 0.5
    need = int(math.ceil(length / cfg.waypoint_spacing)) + 3
    height = -float(start[0][1])
    checks = torch.linspace(0, 1, 9, dtype=torch.float64)[1:]
    while len(pts) < need:
        cand = heading + torch.randn(24, generator=gen, dtype=torch.float64) * cfg.turn_std
        cand = torch.cat([cand, heading + math.pi + torch.randn(8, generator=gen, dtype=torch.float64)])
        dh = (torch.randn(len(cand), generator=gen, dtype=torch.float64) * 0.08).tolist()
        moved = False
        for k, a in enumerate(cand.tolist()):
            h = min(max(height + dh[k], r.h0), r.h1)
            nxt = pts[-1] + torch.tensor(
                [math.sin(a) * cfg.waypoint_spacing, -h - float(pts[-1][1]), math.cos(a) * cfg.waypoint_spacing],
                dtype=torch.float64,
            )
            seg = pts[-1][None] + checks[:, None] * (nxt - pts[-1])[None]
            if bool(scene.region.contains(seg[-1:], margin=0.0).all()) and bool((scene.clearance(seg) > margin).all()):
                pts.append(nxt)
                heading, height, moved = a, h, True
                break
        if not moved:
            return None
    return torch.stack(pts)


def _orient(eyes: Tensor, ahead: Tensor, arc: Tensor, cfg: PathConfig, gen: torch.Generator) -> Tensor:
    """c2w (N, 4, 4): look from ``eyes`` towards ``ahead`` points, swayed sideways and pitched smoothly."""
    d = ahead - eyes
    d[:, 1] = 0.0
    yaw = torch.atan2(d[:, 0], d[:, 2])
    phase = float(_rand(gen, 1)) * 2 * math.pi
    yaw = yaw + cfg.sway * torch.sin(2 * math.pi * arc / cfg.sway_period + phase)
    pitch0 = (float(_rand(gen, 1)) * 2 - 1) * cfg.pitch * 0.5
    pitch = pitch0 + 0.5 * cfg.pitch * torch.sin(2 * math.pi * arc / (1.7 * cfg.sway_period) + 2 * phase)
    fwd = torch.stack([torch.sin(yaw) * torch.cos(pitch), torch.sin(pitch), torch.cos(yaw) * torch.cos(pitch)], dim=-1)
    return look_at(eyes, eyes + fwd, torch.tensor(_UP, dtype=torch.float64))


def random_path(
    scene: Scene,
    frames: int,
    height: int,
    width: int,
    config: PathConfig | None = None,
    generator: torch.Generator | None = None,
) -> Cameras:
    """A collision-free smooth random path of ``frames`` cameras (float64, CPU) through ``scene``.

    Raises :class:`~worldwarp.errors.InputError` when no valid path was found in ``config.max_tries``.
    """
    cfg = config or PathConfig()
    gen = generator or torch.Generator().manual_seed(0)
    if frames < 1:
        raise InputError(f"frames must be >= 1, got {frames}")
    K = intrinsics_from_fov(height, width, fov_x_deg=cfg.fov_x_deg)
    length = cfg.step * max(frames - 1, 1)
    for _ in range(cfg.max_tries):
        way = _walk(scene, length + cfg.look_ahead, cfg, gen)
        if way is None:
            continue
        curve = _catmull_rom(way, 24)
        arc = torch.arange(frames, dtype=torch.float64) * cfg.step
        eyes = _resample(curve, arc)
        ahead = _resample(curve, arc + cfg.look_ahead)
        cams = Cameras(_orient(eyes, ahead, arc, cfg, gen), K, height, width)
        if float(path_clearance(scene, cams).min()) >= cfg.clearance and bool(scene.region.contains(eyes).all()):
            return cams
    raise InputError(f"no collision-free path of {frames} frames found in scene {scene.seed} ({cfg.max_tries} tries)")


def preset_path(
    scene: Scene,
    spec: str,
    frames: int,
    height: int,
    width: int,
    config: PathConfig | None = None,
    generator: torch.Generator | None = None,
    speed: float = 1.0,
) -> Cameras:
    """The preset ``spec`` (e.g. ``"orbit"``, ``"dolly_in+pan_left"``) placed in ``scene``.

    The start is a random free point with a random heading (level camera); the placement is accepted when the
    whole path keeps ``config.clearance`` from the geometry and stays in the walk region. Raises
    :class:`~worldwarp.errors.InputError` if no placement works.
    """
    from worldwarp.trajectory.presets import trajectory_from_spec

    cfg = config or PathConfig()
    gen = generator or torch.Generator().manual_seed(0)
    K = intrinsics_from_fov(height, width, fov_x_deg=cfg.fov_x_deg)
    trajectory_from_spec(spec, 2, height=height, width=width)  # fail early on a bad spec
    for _ in range(cfg.max_tries):
        start = _free_points(scene, 64, cfg.clearance * 2, gen)
        if len(start) == 0:
            continue
        eye = start[0]
        yaw = float(_rand(gen, 1)) * 2 * math.pi
        c2w = look_at(eye, eye + torch.tensor([math.sin(yaw), 0.0, math.cos(yaw)], dtype=torch.float64))
        cams = trajectory_from_spec(
            spec, frames, start=Cameras(c2w, K, height, width), scale=cfg.preset_scale, speed=speed
        )
        ok = float(path_clearance(scene, cams).min()) >= cfg.clearance
        if ok and bool(scene.region.contains(cams.centers).all()):
            return cams
    raise InputError(
        f"trajectory {spec!r} ({frames} frames) does not fit in scene {scene.seed} without collision "
        f"({cfg.max_tries} placements tried); try a smaller --speed or another seed"
    )


def camera_path(
    scene: Scene,
    trajectory: str,
    frames: int,
    height: int,
    width: int,
    config: PathConfig | None = None,
    generator: torch.Generator | None = None,
    speed: float = 1.0,
) -> Cameras:
    """``trajectory="random"``: :func:`random_path`; anything else is a preset spec for :func:`preset_path`."""
    if trajectory == "random":
        return random_path(scene, frames, height, width, config, generator)
    return preset_path(scene, trajectory, frames, height, width, config, generator, speed)
