"""Named camera moves and their composition into camera paths.

A *spec* names moves and says how to combine them:

* ``a+b`` applies moves **together** over the same frames: their displacements add, their rotation vectors add
  (so ``+`` is commutative) and their focal-length factors multiply, e.g. ``dolly_in+pan_left`` or
  ``orbit+zoom_in``;
* ``a,b`` (or ``a>b``; quote it in a shell) plays moves **one after the other**, each segment starting from the
  pose and focal length where the previous one ended; the frames are shared equally between segments;
* ``name*2`` scales one move's amount (here: twice as far / twice the angle).

Every segment eases in and out (cosine velocity ramps over ``ease`` of its length), so the path starts from rest
and the joins between segments have a continuous velocity: position and angle have bounded second differences.

Amounts at ``speed=1`` (per segment, whatever the number of frames): moves translate ``scale``; pans, tilts and
rolls turn 30 degrees; orbits travel 90 degrees around the look-at point; ``zoom_in`` doubles the focal length
(``zoom_out`` halves it); dolly zooms move half the look-at distance and change the focal length so that an
object at the look-at distance keeps its image size. ``speed`` multiplies every amount.

Axes are OpenCV (x right, y down, z forward). Camera 0 is the identity pose, or ``start`` when given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from worldwarp.cameras import Cameras, intrinsics_from_fov, look_at
from worldwarp.errors import InputError
from worldwarp.trajectory.rotations import matrix_to_rotvec, rotvec_to_matrix

__all__ = [
    "ALIASES",
    "PRESETS",
    "PresetParams",
    "ease_progress",
    "parse_spec",
    "preset_names",
    "trajectory_from_spec",
]

PAN_DEG = 30.0  # pan / tilt / roll angle at speed 1
ORBIT_DEG = 90.0  # orbit arc at speed 1


@dataclass(frozen=True)
class PresetParams:
    """How large the moves of a spec are.

    Attributes:
        speed: multiplies every move's amount (distance, angle, zoom exponent).
        scale: scene scale: translations are in units of ``scale``.
        look_at_distance: distance along the first camera's +z of the point that orbits circle around, that
            spirals and lemniscates look at, and whose image size dolly zooms keep; ``None`` = ``2 * scale``.
        ease: fraction of each segment spent accelerating (and again decelerating), in [0, 0.5]; 0 = constant
            speed (then joins between segments have a velocity jump).
    """

    speed: float = 1.0
    scale: float = 1.0
    look_at_distance: float | None = None
    ease: float = 0.15

    def __post_init__(self) -> None:
        for name in ("speed", "scale"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise InputError(f"{name} must be a finite number >= 0, got {v}")
        if self.scale == 0:
            raise InputError("scale must be > 0")
        if self.look_at_distance is not None and not (
            math.isfinite(self.look_at_distance) and self.look_at_distance > 0
        ):
            raise InputError(f"look_at_distance must be > 0, got {self.look_at_distance}")
        if not 0 <= self.ease <= 0.5:
            raise InputError(f"ease must lie in [0, 0.5], got {self.ease}")

    @property
    def distance(self) -> float:
        """Look-at distance actually used."""
        return self.look_at_distance if self.look_at_distance is not None else 2.0 * self.scale


@dataclass(frozen=True)
class _Motion:
    """A move evaluated at progress values p (M,): translation (M, 3), rotation vector (M, 3), focal factor (M,)."""

    t: Tensor
    r: Tensor
    f: Tensor


# A move: (progress p (M,) float64 in [0, 1], params, amount) -> _Motion. amount = speed * per-move multiplier.
MoveFn = Callable[[Tensor, PresetParams, float], _Motion]


def _zeros(p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return p.new_zeros(p.shape[0], 3), p.new_zeros(p.shape[0], 3), p.new_ones(p.shape[0])


def _static(p: Tensor, prm: PresetParams, a: float) -> _Motion:
    return _Motion(*_zeros(p))


def _translate(axis: int, sign: float) -> MoveFn:
    def fn(p: Tensor, prm: PresetParams, a: float) -> _Motion:
        t, r, f = _zeros(p)
        t[:, axis] = sign * prm.scale * a * p
        return _Motion(t, r, f)

    return fn


def _rotate(axis: int, sign: float) -> MoveFn:
    def fn(p: Tensor, prm: PresetParams, a: float) -> _Motion:
        t, r, f = _zeros(p)
        r[:, axis] = sign * math.radians(PAN_DEG) * a * p
        return _Motion(t, r, f)

    return fn


def _orbit(sign: float) -> MoveFn:
    """sign +1: the camera travels to its right around the look-at point (turning left to keep it centred)."""

    def fn(p: Tensor, prm: PresetParams, a: float) -> _Motion:
        t, r, f = _zeros(p)
        D = prm.distance
        theta = sign * math.radians(ORBIT_DEG) * a * p
        t[:, 0] = D * torch.sin(theta)
        t[:, 2] = D * (1 - torch.cos(theta))
        r[:, 1] = -theta  # R_y(-theta) keeps the target on the optical axis
        return _Motion(t, r, f)

    return fn


def _looking_at(t: Tensor, target: Tensor) -> Tensor:
    """Rotation vectors (M, 3) of cameras at ``t`` (M, 3) looking at ``target`` (M, 3), image up = world -y."""
    return matrix_to_rotvec(look_at(t, target)[:, :3, :3])


def _spiral(p: Tensor, prm: PresetParams, a: float) -> _Motion:
    """One turn of a circle of growing radius (0 -> scale/4) in the image plane while moving scale/2 forward."""
    t, _, f = _zeros(p)
    rho = 0.25 * prm.scale * a * p
    phi = 2 * math.pi * p
    t[:, 0] = rho * torch.cos(phi)
    t[:, 1] = rho * torch.sin(phi)
    t[:, 2] = 0.5 * prm.scale * a * p
    target = torch.zeros_like(t)
    target[:, 2] = t[:, 2] + prm.distance
    return _Motion(t, _looking_at(t, target), f)


def _lemniscate(p: Tensor, prm: PresetParams, a: float) -> _Motion:
    """A figure-of-eight (Gerono lemniscate, half-width scale/2) in the image plane, looking at the look-at point."""
    t, _, f = _zeros(p)
    phi = 2 * math.pi * p
    w = 0.5 * prm.scale * a
    t[:, 0] = w * torch.sin(phi)
    t[:, 1] = w * torch.sin(phi) * torch.cos(phi)
    target = torch.zeros_like(t)
    target[:, 2] = prm.distance
    return _Motion(t, _looking_at(t, target), f)


def _zoom(sign: float) -> MoveFn:
    def fn(p: Tensor, prm: PresetParams, a: float) -> _Motion:
        t, r, _ = _zeros(p)
        return _Motion(t, r, torch.exp2(sign * a * p))

    return fn


def _dolly_zoom(sign: float) -> MoveFn:
    """sign +1: move towards the look-at point by D/2 and widen the view so that it keeps its image size."""

    def fn(p: Tensor, prm: PresetParams, a: float) -> _Motion:
        t, r, _ = _zeros(p)
        D = prm.distance
        move = 0.5 * D * a
        if sign > 0 and move >= 0.95 * D:
            raise InputError(f"dolly_zoom_in with amount {a:g} would reach the subject (use an amount below 1.9)")
        t[:, 2] = sign * move * p
        return _Motion(t, r, (D - t[:, 2]) / D)

    return fn


# canonical name -> (move, one-line description)
PRESETS: dict[str, tuple[MoveFn, str]] = {
    "static": (_static, "hold the first pose"),
    "orbit_left": (_orbit(-1.0), "circle 90 deg to the left around the look-at point, keeping it centred"),
    "orbit": (_orbit(1.0), "circle 90 deg to the right around the look-at point, keeping it centred"),
    "spiral": (_spiral, "spiral outwards in the image plane while moving forward, looking at the look-at point"),
    "lemniscate": (_lemniscate, "trace a figure of eight in the image plane, looking at the look-at point"),
    "zoom_in": (_zoom(1.0), "double the focal length (camera does not move)"),
    "zoom_out": (_zoom(-1.0), "halve the focal length (camera does not move)"),
    "dolly_zoom_in": (_dolly_zoom(1.0), "move in by half the look-at distance, widening the view (vertigo)"),
    "dolly_zoom_out": (_dolly_zoom(-1.0), "move out by half the look-at distance, narrowing the view"),
    "move_forward": (_translate(2, 1.0), "translate one scene unit along the view direction (+z)"),
    "move_backward": (_translate(2, -1.0), "translate one scene unit backwards (-z)"),
    "move_left": (_translate(0, -1.0), "translate one scene unit to the left (-x)"),
    "move_right": (_translate(0, 1.0), "translate one scene unit to the right (+x)"),
    "move_up": (_translate(1, -1.0), "translate one scene unit up (-y, OpenCV y points down)"),
    "move_down": (_translate(1, 1.0), "translate one scene unit down (+y)"),
    "pan_left": (_rotate(1, -1.0), "turn 30 deg left about the camera's y axis, centre fixed"),
    "pan_right": (_rotate(1, 1.0), "turn 30 deg right about the camera's y axis, centre fixed"),
    "tilt_up": (_rotate(0, 1.0), "turn 30 deg up about the camera's x axis, centre fixed"),
    "tilt_down": (_rotate(0, -1.0), "turn 30 deg down about the camera's x axis, centre fixed"),
    "roll_cw": (_rotate(2, 1.0), "roll 30 deg clockwise (seen from behind the camera) about its z axis"),
    "roll_ccw": (_rotate(2, -1.0), "roll 30 deg counter-clockwise about the camera's z axis"),
}

ALIASES: dict[str, str] = {
    "still": "static",
    "none": "static",
    "hold": "static",
    "orbit_right": "orbit",
    "arc_left": "orbit_left",
    "arc_right": "orbit",
    "zoom": "zoom_in",
    "dolly_zoom": "dolly_zoom_in",
    "vertigo": "dolly_zoom_in",
    "dolly_in": "move_forward",
    "push_in": "move_forward",
    "forward": "move_forward",
    "dolly_out": "move_backward",
    "pull_out": "move_backward",
    "backward": "move_backward",
    "truck_left": "move_left",
    "left": "move_left",
    "truck_right": "move_right",
    "right": "move_right",
    "pedestal_up": "move_up",
    "crane_up": "move_up",
    "up": "move_up",
    "pedestal_down": "move_down",
    "crane_down": "move_down",
    "down": "move_down",
    "yaw_left": "pan_left",
    "yaw_right": "pan_right",
    "pitch_up": "tilt_up",
    "pitch_down": "tilt_down",
    "roll_right": "roll_cw",
    "roll_left": "roll_ccw",
}


def preset_names(include_aliases: bool = False) -> list[str]:
    """Sorted canonical preset names (and their aliases when asked)."""
    names = list(PRESETS)
    if include_aliases:
        names += list(ALIASES)
    return sorted(names)


def _resolve(name: str) -> str:
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = ALIASES.get(key, key)
    if key not in PRESETS:
        raise InputError(
            f"unknown camera preset {name.strip()!r}; known presets: {', '.join(preset_names())} "
            f"(aliases: {', '.join(sorted(ALIASES))})"
        )
    return key


def parse_spec(spec: str) -> list[list[tuple[str, float]]]:
    """Parse a spec into segments (played in order) of simultaneous ``(canonical name, amount)`` moves.

    >>> parse_spec("dolly_in+pan_left*2, zoom")
    [[('move_forward', 1.0), ('pan_left', 2.0)], [('zoom_in', 1.0)]]
    """
    if not spec or not spec.strip():
        raise InputError("empty camera spec; give a preset name such as 'orbit' or 'dolly_in+pan_left'")
    segments: list[list[tuple[str, float]]] = []
    for seg in spec.replace(">", ",").split(","):
        if not seg.strip():
            raise InputError(f"camera spec {spec!r} has an empty segment (doubled ',' or '>')")
        moves: list[tuple[str, float]] = []
        for term in seg.split("+"):
            name, _, amount_txt = term.partition("*")
            if not name.strip():
                raise InputError(f"camera spec {spec!r} has an empty term (doubled '+')")
            amount = 1.0
            if amount_txt:
                try:
                    amount = float(amount_txt)
                except ValueError:
                    raise InputError(f"camera spec {spec!r}: amount {amount_txt.strip()!r} is not a number") from None
                if not math.isfinite(amount) or amount < 0:
                    raise InputError(f"camera spec {spec!r}: amount must be finite and >= 0, got {amount_txt}")
            moves.append((_resolve(name), amount))
        segments.append(moves)
    return segments


def ease_progress(u: Tensor, ease: float) -> Tensor:
    """Progress p(u) in [0, 1] for time u in [0, 1] with cosine velocity ramps over ``ease`` at each end.

    The velocity rises as (1 - cos(pi u / ease)) / 2, stays constant, and falls symmetrically; p(0) = 0,
    p(1) = 1, p'(0) = p'(1) = 0 and p is C^2 (its second derivative is continuous).
    """
    u = u.clamp(0, 1)
    if ease <= 0:
        return u
    r = ease

    def head(x: Tensor) -> Tensor:  # integral of the ramp from 0 to x (x <= r)
        return x / 2 - r / (2 * math.pi) * torch.sin(math.pi * x / r)

    area = 1 - r
    mid = r / 2 + (u - r)
    out = torch.where(u < r, head(u), torch.where(u > 1 - r, area - head(1 - u), mid))
    return out / area


def _segment_motion(moves: list[tuple[str, float]], p: Tensor, prm: PresetParams) -> tuple[Tensor, Tensor]:
    """Relative poses (M, 4, 4) and focal factors (M,) of a '+' group at progress p (M,)."""
    t = p.new_zeros(p.shape[0], 3)
    r = p.new_zeros(p.shape[0], 3)
    f = p.new_ones(p.shape[0])
    for name, amount in moves:
        m = PRESETS[name][0](p, prm, prm.speed * amount)
        t, r, f = t + m.t, r + m.r, f * m.f
    T = torch.eye(4, dtype=p.dtype).repeat(p.shape[0], 1, 1)
    T[:, :3, :3] = rotvec_to_matrix(r)
    T[:, :3, 3] = t
    return T, f


def trajectory_from_spec(
    spec: str,
    frames: int,
    *,
    height: int = 480,
    width: int = 720,
    fov_x_deg: float | None = None,
    K: Tensor | None = None,
    speed: float = 1.0,
    scale: float = 1.0,
    look_at_distance: float | None = None,
    ease: float = 0.15,
    start: Cameras | None = None,
) -> Cameras:
    """Cameras (frames,) following a preset spec (see the module docstring for the syntax and amounts).

    Args:
        spec: e.g. ``"orbit"``, ``"dolly_in+pan_left"``, ``"orbit+zoom_in,static,dolly_zoom_in"``.
        frames: number of cameras (>= 1); camera 0 is the start pose.
        height, width: image size (ignored when ``start`` is given).
        fov_x_deg: horizontal field of view for K (default 60 degrees); or give ``K`` (3, 3) in pixels.
        speed, scale, look_at_distance, ease: see :class:`PresetParams`.
        start: the path starts at ``start``'s last camera (its pose, K and image size); default: identity pose.

    Returns:
        float64 Cameras on the CPU; zooms change K's focal lengths over time, principal points stay fixed.
    """
    if not isinstance(frames, int) or frames < 1:
        raise InputError(f"frames must be an integer >= 1, got {frames!r}")
    prm = PresetParams(speed=speed, scale=scale, look_at_distance=look_at_distance, ease=ease)
    segments = parse_spec(spec)
    if start is not None:
        start = start[-1].to("cpu", torch.float64)
        c2w0, K0, height, width = start.c2w[0], start.K[0], start.height, start.width
    else:
        c2w0 = torch.eye(4, dtype=torch.float64)
        if K is not None:
            if fov_x_deg is not None:
                raise InputError("give either fov_x_deg or K, not both")
            K0 = torch.as_tensor(K, dtype=torch.float64)
            if K0.shape != (3, 3):
                raise InputError(f"K must be a 3x3 matrix, got shape {tuple(K0.shape)}")
        else:
            K0 = intrinsics_from_fov(height, width, fov_x_deg=60.0 if fov_x_deg is None else fov_x_deg)

    S = len(segments)
    tau = torch.linspace(0, 1, frames, dtype=torch.float64) if frames > 1 else torch.zeros(1, dtype=torch.float64)
    seg_idx = (tau * S).floor().clamp(max=S - 1).long()
    u = tau * S - seg_idx
    rel = torch.eye(4, dtype=torch.float64).repeat(frames, 1, 1)
    focal = torch.ones(frames, dtype=torch.float64)
    base_T = torch.eye(4, dtype=torch.float64)
    base_f = 1.0
    for i, moves in enumerate(segments):
        sel = seg_idx == i
        if sel.any():
            T, f = _segment_motion(moves, ease_progress(u[sel], prm.ease), prm)
            rel[sel] = base_T @ T
            focal[sel] = base_f * f
        T_end, f_end = _segment_motion(moves, torch.ones(1, dtype=torch.float64), prm)
        base_T, base_f = base_T @ T_end[0], base_f * float(f_end[0])

    c2w = c2w0 @ rel
    Ks = K0.expand(frames, 3, 3).clone()
    Ks[:, 0, 0] *= focal
    Ks[:, 1, 1] *= focal
    Ks[:, 0, 1] *= focal
    return Cameras(c2w, Ks, height, width)
