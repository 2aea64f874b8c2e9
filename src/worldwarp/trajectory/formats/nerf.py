"""NeRF / nerfstudio / instant-ngp ``transforms.json``.

Convention (the format's): ``frames[i].transform_matrix`` is a 4x4 **camera-to-world** matrix with **OpenGL
axes** (x right, y up, z backwards: the camera looks down -z). We convert with ``c2w_opencv = c2w_opengl @
diag(1, -1, -1, 1)`` (and back with the same matrix). Intrinsics in pixels: ``fl_x fl_y cx cy w h``
(nerfstudio), or ``camera_angle_x`` (horizontal field of view in radians, original NeRF; ``camera_angle_y``
optional) with ``w h`` or the caller's image size; the principal point defaults to the image centre. Any key
may be overridden per frame. Pixel centres at (j + 0.5, i + 0.5) like ours. Distortion coefficients
(``k1 k2 k3 k4 p1 p2``) are ignored with a warning. Frames are kept in file order.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any

import torch

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.trajectory.formats._common import (
    FLIP_YZ,
    atomic_write_text,
    check_intrinsics,
    check_rotation,
    make_cameras,
    read_text,
    where,
)

__all__ = ["read_transforms", "write_transforms", "load_json"]

_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y")
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def load_json(path: str | os.PathLike[str]) -> Any:
    """Parsed JSON; a syntax error is an InputError naming the file and line."""
    text = read_text(path)
    if not text.strip():
        raise InputError(f"{path}: file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{where(path, e.lineno)}: not valid JSON ({e.msg}, column {e.colno})") from None


def _number(d: dict[str, Any], key: str, loc: str) -> float | None:
    if key not in d or d[key] is None:
        return None
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InputError(f"{loc}: {key!r} must be a number, got {v!r}")
    if not math.isfinite(v):
        raise InputError(f"{loc}: {key!r} is NaN or infinite")
    return float(v)


def read_transforms(path: str | os.PathLike[str], *, height: int | None = None, width: int | None = None) -> Cameras:
    """Cameras of a transforms.json file. ``height``/``width`` are used only when the file has no ``h``/``w``.

    All frames must share one image size.
    """
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise InputError(f"{path}: not a transforms.json file (no 'frames' list)")
    frames = data["frames"]
    if not frames:
        raise InputError(f"{path}: 'frames' is empty")
    top = {k: data[k] for k in _INTRINSIC_KEYS + _DISTORTION_KEYS if k in data}
    c2ws, Ks = [], []
    size: tuple[int, int] | None = None
    distorted = False
    for i, fr in enumerate(frames):
        name = fr.get("file_path", "?") if isinstance(fr, dict) else "?"
        loc = where(path, item=f"frame {i}, {name}")
        if not isinstance(fr, dict) or "transform_matrix" not in fr:
            raise InputError(f"{loc}: frame has no 'transform_matrix'")
        d = {**top, **{k: fr[k] for k in _INTRINSIC_KEYS + _DISTORTION_KEYS if k in fr}}
        w, h = _number(d, "w", loc), _number(d, "h", loc)
        W = int(w) if w is not None else width
        H = int(h) if h is not None else height
        if W is None or H is None:
            raise InputError(f"{loc}: no image size ('w'/'h') in the file; pass height and width")
        if size is None:
            size = (H, W)
        elif size != (H, W):
            raise InputError(f"{loc}: image size {W}x{H} differs from the first frame's {size[1]}x{size[0]}")
        fx, fy = _number(d, "fl_x", loc), _number(d, "fl_y", loc)
        ax, ay = _number(d, "camera_angle_x", loc), _number(d, "camera_angle_y", loc)
        if fx is None and ax is not None:
            fx = 0.5 * W / math.tan(0.5 * ax)
        if fy is None and ay is not None:
            fy = 0.5 * H / math.tan(0.5 * ay)
        if fx is None and fy is None:
            raise InputError(f"{loc}: no focal length ('fl_x' or 'camera_angle_x')")
        fx = fy if fx is None else fx
        fy = fx if fy is None else fy
        cx, cy = _number(d, "cx", loc), _number(d, "cy", loc)
        cx = W / 2 if cx is None else cx
        cy = H / 2 if cy is None else cy
        assert fx is not None and fy is not None
        check_intrinsics(fx, fy, cx, cy, H, W, loc)
        distorted |= any((_number(d, k, loc) or 0.0) != 0.0 for k in _DISTORTION_KEYS)
        try:
            M = torch.tensor(fr["transform_matrix"], dtype=torch.float64)
        except (TypeError, ValueError):
            raise InputError(f"{loc}: 'transform_matrix' is not a matrix of numbers") from None
        if M.shape == (3, 4):
            M = torch.cat([M, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
        if M.shape != (4, 4):
            raise InputError(f"{loc}: 'transform_matrix' must be 4x4, got shape {tuple(M.shape)}")
        if not bool(torch.isfinite(M).all()):
            raise InputError(f"{loc}: 'transform_matrix' has a NaN or infinite value")
        check_rotation(M[:3, :3], loc)
        c2ws.append(M @ FLIP_YZ)
        Ks.append(torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64))
    if distorted:
        warnings.warn(f"{path}: lens distortion coefficients are ignored (pinhole cameras)", stacklevel=2)
    assert size is not None
    return make_cameras(torch.stack(c2ws), torch.stack(Ks), size[0], size[1], path)


def write_transforms(
    path: str | os.PathLike[str], cameras: Cameras, *, image_pattern: str = "images/frame_{:05d}.png"
) -> None:
    """Write nerfstudio-style transforms.json (OpenGL c2w; shared intrinsics at the top level, per-frame
    ``fl_x fl_y cx cy`` when they vary; ``camera_angle_x`` too, for the original NeRF loaders)."""
    cams = cameras.to("cpu", torch.float64)
    K = cams.K
    shared = bool((K == K[:1]).all())
    gl = cams.c2w @ FLIP_YZ
    out: dict[str, Any] = {
        "camera_model": "OPENCV",
        "w": cams.width,
        "h": cams.height,
        "fl_x": float(K[0, 0, 0]),
        "fl_y": float(K[0, 1, 1]),
        "cx": float(K[0, 0, 2]),
        "cy": float(K[0, 1, 2]),
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
    }
    if shared:
        out["camera_angle_x"] = 2 * math.atan(0.5 * cams.width / float(K[0, 0, 0]))
    frames = []
    for k in range(len(cams)):
        fr: dict[str, Any] = {"file_path": image_pattern.format(k), "transform_matrix": gl[k].tolist()}
        if not shared:
            fr.update(fl_x=float(K[k, 0, 0]), fl_y=float(K[k, 1, 1]), cx=float(K[k, 0, 2]), cy=float(K[k, 1, 2]))
        frames.append(fr)
    out["frames"] = frames
    atomic_write_text(path, json.dumps(out, indent=2) + "\n")
