"""worldwarp's own ``cameras.json``.

Schema (version 1)::

    {
      "format": "worldwarp.cameras",
      "version": 1,
      "convention": "c2w OpenCV (x right, y down, z forward); K in pixels; pixel centres at (j+0.5, i+0.5)",
      "height": H, "width": W,
      "frames": [{"c2w": [[4 numbers] x 4], "K": [[3 numbers] x 3]}, ...]
    }

``c2w`` is **camera-to-world** with **OpenCV axes**, ``K`` in **pixels** for an image of ``height`` x
``width`` -- exactly :class:`~worldwarp.cameras.Cameras`. Frames may carry extra keys (ignored).
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.trajectory.formats._common import atomic_write_text, check_rotation, make_cameras, where
from worldwarp.trajectory.formats.nerf import load_json

__all__ = ["FORMAT_TAG", "VERSION", "read_cameras_json", "write_cameras_json", "is_cameras_json"]

FORMAT_TAG = "worldwarp.cameras"
VERSION = 1
CONVENTION = "c2w OpenCV (x right, y down, z forward); K in pixels; pixel centres at (j+0.5, i+0.5)"


def is_cameras_json(data: Any) -> bool:
    """Whether parsed JSON looks like our schema (tag, or frames with 'c2w')."""
    if not isinstance(data, dict):
        return False
    if data.get("format") == FORMAT_TAG:
        return True
    frames = data.get("frames")
    return isinstance(frames, list) and bool(frames) and isinstance(frames[0], dict) and "c2w" in frames[0]


def read_cameras_json(path: str | os.PathLike[str]) -> Cameras:
    """Cameras of a cameras.json file."""
    data = load_json(path)
    if not is_cameras_json(data):
        raise InputError(f"{path}: not a worldwarp cameras.json file (no 'format': {FORMAT_TAG!r})")
    version = data.get("version", VERSION)
    if version != VERSION:
        raise InputError(f"{path}: cameras.json version {version!r} is not supported (expected {VERSION})")
    try:
        H, W = int(data["height"]), int(data["width"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: 'height' and 'width' must be integers") from None
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InputError(f"{path}: 'frames' must be a non-empty list")
    c2ws, Ks = [], []
    for i, fr in enumerate(frames):
        loc = where(path, item=f"frame {i}")
        try:
            c2w = torch.tensor(fr["c2w"], dtype=torch.float64)
            K = torch.tensor(fr["K"], dtype=torch.float64)
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{loc}: needs 'c2w' (4x4) and 'K' (3x3) matrices of numbers") from None
        if c2w.shape != (4, 4) or K.shape != (3, 3):
            raise InputError(f"{loc}: 'c2w' must be 4x4 and 'K' 3x3, got {tuple(c2w.shape)} and {tuple(K.shape)}")
        if not bool(torch.isfinite(c2w).all() and torch.isfinite(K).all()):
            raise InputError(f"{loc}: 'c2w' or 'K' has a NaN or infinite value")
        check_rotation(c2w[:3, :3], loc)
        c2ws.append(c2w)
        Ks.append(K)
    return make_cameras(torch.stack(c2ws), torch.stack(Ks), H, W, path)


def write_cameras_json(path: str | os.PathLike[str], cameras: Cameras) -> None:
    """Write ``cameras`` as cameras.json (full float precision, atomically)."""
    cams = cameras.to("cpu", torch.float64)
    out = {
        "format": FORMAT_TAG,
        "version": VERSION,
        "convention": CONVENTION,
        "height": cams.height,
        "width": cams.width,
        "frames": [{"c2w": cams.c2w[k].tolist(), "K": cams.K[k].tolist()} for k in range(len(cams))],
    }
    atomic_write_text(path, json.dumps(out, indent=1) + "\n")
