"""RealEstate10K camera files (``.txt``).

Convention (the dataset's): the first line is the source video's URL; then one line per frame with 19 numbers::

    timestamp fx fy cx cy k1 k2 r00 r01 r02 t0 r10 r11 r12 t1 r20 r21 r22 t2

* ``timestamp`` in microseconds (an integer);
* ``fx fy cx cy`` **normalised** intrinsics: fx and cx divided by the image width, fy and cy by the height;
* ``k1 k2`` are always 0 (no distortion);
* the 12 numbers are the 3x4 **world-to-camera** matrix [R | t], row-major, **OpenCV axes** (x right, y down,
  z forward); pixel centres at (j + 0.5, i + 0.5) like ours.

The image size is not in the file: the reader takes ``height``/``width`` (default 360x640, the dataset's
usual 16:9 frames, which gives square pixels for its typical fx ~ 0.48 W, fy ~ 0.86 H).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.trajectory.formats._common import (
    atomic_write_text,
    check_intrinsics,
    check_rotation,
    fmt,
    make_cameras,
    parse_numbers,
    read_text,
    rigid_inverse,
    where,
)

__all__ = ["DEFAULT_HEIGHT", "DEFAULT_WIDTH", "DEFAULT_URL", "Re10kClip", "parse_re10k", "read_re10k", "write_re10k"]

DEFAULT_HEIGHT, DEFAULT_WIDTH = 360, 640
DEFAULT_URL = "https://www.youtube.com/watch?v=unknown"
COLUMNS = 19


@dataclass
class Re10kClip:
    """Everything in a RealEstate10K file: the URL, the per-frame timestamps (microseconds) and the cameras."""

    url: str
    timestamps: list[int]
    cameras: Cameras


def _looks_like_row(line: str) -> bool:
    toks = line.split()
    if len(toks) != COLUMNS:
        return False
    try:
        [float(t) for t in toks]
    except ValueError:
        return False
    return True


def parse_re10k(path: str | os.PathLike[str], *, height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH) -> Re10kClip:
    """Read a RealEstate10K file (see the module docstring); errors name the file and line."""
    text = read_text(path)
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise InputError(f"{path}: file is empty (expected a URL line and one line per frame)")
    first = next(i for i, line in enumerate(lines) if line.strip())
    if _looks_like_row(lines[first]):  # tolerate a file without its URL line
        url, start = "", first
    else:
        url, start = lines[first].strip(), first + 1
    timestamps: list[int] = []
    c2ws, Ks = [], []
    for i in range(start, len(lines)):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        loc = where(path, i + 1)
        toks = line.split()
        if len(toks) != COLUMNS:
            raise InputError(
                f"{loc}: expected {COLUMNS} numbers (timestamp fx fy cx cy k1 k2 and a 3x4 world-to-camera "
                f"matrix), found {len(toks)}"
            )
        vals = parse_numbers(toks, loc)
        fx, fy, cx, cy = vals[1] * width, vals[2] * height, vals[3] * width, vals[4] * height
        check_intrinsics(fx, fy, cx, cy, height, width, loc)
        w2c = torch.eye(4, dtype=torch.float64)
        w2c[:3, :] = torch.tensor(vals[7:], dtype=torch.float64).reshape(3, 4)
        check_rotation(w2c[:3, :3], loc)
        timestamps.append(int(round(vals[0])))
        c2ws.append(rigid_inverse(w2c))
        Ks.append(torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64))
    if not c2ws:
        raise InputError(f"{path}: has a URL line but no camera lines")
    return Re10kClip(url, timestamps, make_cameras(torch.stack(c2ws), torch.stack(Ks), height, width, path))


def read_re10k(path: str | os.PathLike[str], *, height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH) -> Cameras:
    """Cameras of a RealEstate10K file for images of ``(height, width)``."""
    return parse_re10k(path, height=height, width=width).cameras


def write_re10k(
    path: str | os.PathLike[str],
    cameras: Cameras,
    *,
    url: str = DEFAULT_URL,
    timestamps: Sequence[int] | None = None,
    fps: float = 30.0,
) -> None:
    """Write ``cameras`` as a RealEstate10K file (atomically; numbers at full precision, exact on reading back).

    Timestamps default to ``round(k * 1e6 / fps)`` microseconds. K's skew is dropped (the format has none).
    """
    cams = cameras.to("cpu", torch.float64)
    n = len(cams)
    if timestamps is None:
        timestamps = [round(k * 1e6 / fps) for k in range(n)]
    if len(timestamps) != n:
        raise InputError(f"{path}: {len(timestamps)} timestamps for {n} cameras")
    if "\n" in url:
        raise InputError("the URL must be a single line")
    w2c = cams.w2c
    W, H = cams.width, cams.height
    rows = [url]
    for k in range(n):
        K = cams.K[k]
        intr = [K[0, 0] / W, K[1, 1] / H, K[0, 2] / W, K[1, 2] / H]
        nums = [fmt(float(v)) for v in intr] + ["0", "0"] + [fmt(float(v)) for v in w2c[k, :3, :].reshape(-1)]
        rows.append(" ".join([str(int(timestamps[k]))] + nums))
    atomic_write_text(path, "\n".join(rows) + "\n")
