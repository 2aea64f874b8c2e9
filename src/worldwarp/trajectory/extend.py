"""Resample, speed up / slow down, and extend camera paths.

* :func:`resample` — N cameras to M along the same path: centres on a uniform Catmull-Rom spline through the
  input centres (end tangents by reflection, so straight constant-speed paths stay exact), rotations by slerp
  between neighbours, K interpolated linearly. The first and last cameras are kept exactly.
* :func:`change_speed` — resample so the path is travelled ``speed`` times faster (fewer frames).
* :func:`extrapolate` — continue past the end with the constant linear and angular velocity (in the camera's
  own frame) averaged over the last ``window`` steps: straight paths stay straight, orbits keep circling.
* :func:`loop`, :func:`pingpong` — repeat the path from its start, or back and forth.
* :func:`fit_length` — one entry that brings a path to a number of frames with one of the above.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.trajectory.rotations import matrix_to_rotvec, rotvec_to_matrix, slerp

__all__ = ["FitMode", "FIT_MODES", "change_speed", "extrapolate", "fit_length", "loop", "pingpong", "resample"]

FitMode = Literal["resample", "extrapolate", "loop", "pingpong"]
FIT_MODES: tuple[str, ...] = get_args(FitMode)


def _check_frames(frames: int) -> None:
    if not isinstance(frames, int) or frames < 1:
        raise InputError(f"frames must be an integer >= 1, got {frames!r}")


def _catmull_rom(P: Tensor, idx: Tensor, s: Tensor) -> Tensor:
    """Points (M, D) on the uniform Catmull-Rom spline through P (N, D) at segment idx (M,) and offset s (M,)."""
    ext = torch.cat([2 * P[:1] - P[1:2], P, 2 * P[-1:] - P[-2:-1]])  # (N + 2, D), reflected ends
    p0, p1, p2, p3 = ext[idx], ext[idx + 1], ext[idx + 2], ext[idx + 3]
    s = s[:, None]
    return 0.5 * (2 * p1 + (p2 - p0) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s**2 + (3 * p1 - p0 - 3 * p2 + p3) * s**3)


def resample(cameras: Cameras, frames: int) -> Cameras:
    """``frames`` cameras spaced evenly in the input's index along its path (endpoints kept exactly)."""
    _check_frames(frames)
    n = len(cameras)
    if n == 1:
        return Cameras(cameras.c2w.expand(frames, 4, 4).clone(), cameras.K.expand(frames, 3, 3).clone(),
                       cameras.height, cameras.width)  # fmt: skip
    x = torch.linspace(0, n - 1, frames, dtype=cameras.dtype, device=cameras.device)
    idx = x.floor().long().clamp(max=n - 2)
    s = x - idx
    centers = _catmull_rom(cameras.centers, idx, s)
    R = slerp(cameras.c2w[idx, :3, :3], cameras.c2w[idx + 1, :3, :3], s)
    K = torch.lerp(cameras.K[idx], cameras.K[idx + 1], s[:, None, None])
    c2w = torch.zeros(frames, 4, 4, dtype=cameras.dtype, device=cameras.device)
    c2w[:, :3, :3], c2w[:, :3, 3], c2w[:, 3, 3] = R, centers, 1.0
    # exact endpoints (the spline already passes through them; this removes rounding)
    c2w[0], c2w[-1], K[0], K[-1] = cameras.c2w[0], cameras.c2w[-1], cameras.K[0], cameras.K[-1]
    return Cameras(c2w, K, cameras.height, cameras.width)


def change_speed(cameras: Cameras, speed: float) -> Cameras:
    """The same path travelled ``speed`` times faster: ``round((N - 1) / speed) + 1`` cameras."""
    if not speed > 0:
        raise InputError(f"speed must be > 0, got {speed}")
    return resample(cameras, max(1, round((len(cameras) - 1) / speed) + 1))


def extrapolate(cameras: Cameras, frames: int, *, window: int = 8) -> Cameras:
    """The path continued to ``frames`` cameras in total (the input first, unchanged; truncated if shorter).

    Each new step applies the mean relative motion (rotation vector and translation, in the camera's own frame)
    of the last ``window`` steps; K stays that of the last camera. A single camera is held still.
    """
    _check_frames(frames)
    n = len(cameras)
    if frames <= n:
        return cameras[:frames]
    if window < 1:
        raise InputError(f"window must be >= 1, got {window}")
    w = min(window, n - 1)
    T = cameras.c2w
    if w == 0:
        step = torch.eye(4, dtype=T.dtype, device=T.device)
    else:
        rel = torch.linalg.inv(T[n - 1 - w : n - 1]) @ T[n - w : n]  # (w, 4, 4) steps in the camera frame
        step = torch.eye(4, dtype=T.dtype, device=T.device)
        step[:3, :3] = rotvec_to_matrix(matrix_to_rotvec(rel[:, :3, :3]).mean(0))
        step[:3, 3] = rel[:, :3, 3].mean(0)
    new = [T[-1]]
    for _ in range(frames - n):
        new.append(new[-1] @ step)
    c2w = torch.cat([T, torch.stack(new[1:])])
    K = torch.cat([cameras.K, cameras.K[-1:].expand(frames - n, 3, 3)])
    return Cameras(c2w, K, cameras.height, cameras.width)


def loop(cameras: Cameras, frames: int) -> Cameras:
    """Cameras 0, 1, ..., N-1, 0, 1, ... (``frames`` in total)."""
    _check_frames(frames)
    return cameras[torch.arange(frames) % len(cameras)]


def pingpong(cameras: Cameras, frames: int) -> Cameras:
    """Cameras 0, ..., N-1, N-2, ..., 0, 1, ... (``frames`` in total; the turning cameras are not doubled)."""
    _check_frames(frames)
    n = len(cameras)
    if n == 1:
        return loop(cameras, frames)
    k = torch.arange(frames) % (2 * n - 2)
    return cameras[torch.where(k < n, k, 2 * n - 2 - k)]


def fit_length(cameras: Cameras, frames: int, mode: FitMode = "resample") -> Cameras:
    """``frames`` cameras from a path: resampled along it, or (past its end) extrapolated, looped or ping-ponged.

    Except for ``resample``, a path longer than ``frames`` is truncated.
    """
    if mode not in FIT_MODES:
        raise InputError(f"unknown mode {mode!r}; use one of {', '.join(FIT_MODES)}")
    fn = {"resample": resample, "extrapolate": extrapolate, "loop": loop, "pingpong": pingpong}[mode]
    return fn(cameras, frames)
