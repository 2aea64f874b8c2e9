"""Helpers shared by the camera-file readers and writers: one-line errors, validation, atomic writes."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from worldwarp.cameras import ORTHO_TOLERANCE, CameraError, Cameras
from worldwarp.errors import InputError

# OpenGL / NeRF camera axes (x right, y up, z backwards) <-> OpenCV (x right, y down, z forward): flip y and z.
# c2w_opencv = c2w_opengl @ FLIP_YZ and c2w_opengl = c2w_opencv @ FLIP_YZ (FLIP_YZ is its own inverse).
FLIP_YZ = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def where(path: str | os.PathLike[str], line: int | None = None, item: str | None = None) -> str:
    """``file:line`` or ``file (item)`` prefix for error messages."""
    s = str(path)
    if line is not None:
        s += f":{line}"
    if item is not None:
        s += f" ({item})"
    return s


def parse_numbers(tokens: Sequence[str], loc: str) -> list[float]:
    """Floats of ``tokens``; a non-number or a NaN/inf is an InputError prefixed with ``loc``."""
    out = []
    for tok in tokens:
        try:
            v = float(tok)
        except ValueError:
            raise InputError(f"{loc}: {tok!r} is not a number") from None
        if not math.isfinite(v):
            raise InputError(f"{loc}: value {tok!r} is NaN or infinite")
        out.append(v)
    return out


def check_finite(t: Tensor, loc: str, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{loc}: {what} has a NaN or infinite value")


def check_rotation(R: Tensor, loc: str) -> None:
    """InputError when R (3, 3) is not a proper rotation within the tolerance :class:`Cameras` accepts."""
    check_finite(R, loc, "rotation")
    err = float((R.T @ R - torch.eye(3, dtype=R.dtype)).abs().max())
    det = float(torch.det(R))
    if err > ORTHO_TOLERANCE or det <= 0:
        raise InputError(f"{loc}: rotation is not orthonormal (max |R^T R - I| = {err:.3g}, det = {det:.3g})")


def check_intrinsics(fx: float, fy: float, cx: float, cy: float, height: int, width: int, loc: str) -> None:
    for name, v in (("fx", fx), ("fy", fy), ("cx", cx), ("cy", cy)):
        if not math.isfinite(v):
            raise InputError(f"{loc}: {name} is NaN or infinite")
    if fx <= 0 or fy <= 0:
        raise InputError(f"{loc}: focal length must be > 0 (fx = {fx:g}, fy = {fy:g})")
    if not (0 <= cx <= width and 0 <= cy <= height):
        raise InputError(f"{loc}: principal point ({cx:g}, {cy:g}) lies outside the {width}x{height} image")


def rigid_inverse(T: Tensor) -> Tensor:
    """Inverse of rigid transforms (..., 4, 4)."""
    R = T[..., :3, :3]
    out = torch.zeros_like(T)
    out[..., :3, :3] = R.transpose(-1, -2)
    out[..., :3, 3:] = -R.transpose(-1, -2) @ T[..., :3, 3:]
    out[..., 3, 3] = 1.0
    return out


def make_cameras(c2w: Tensor, K: Tensor, height: int, width: int, path: str | os.PathLike[str]) -> Cameras:
    """Cameras, with any remaining validation error reported as an InputError naming ``path``."""
    if c2w.shape[0] == 0:
        raise InputError(f"{path}: contains no cameras")
    try:
        return Cameras(c2w.to(torch.float64), K.to(torch.float64), height, width)
    except CameraError as e:
        raise InputError(f"{path}: {e}") from None


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :mod:`worldwarp.io.atomic`); returns the path."""
    from worldwarp.io.atomic import atomic_write_bytes as write

    write(path, data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_text(path: str | os.PathLike[str]) -> str:
    """File contents as text; a missing file, a directory or bad UTF-8 is an InputError naming it."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: file not found")
    if p.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (invalid UTF-8)") from None


def fmt(v: float) -> str:
    """Shortest text that reads back as exactly the same float."""
    return repr(float(v))
