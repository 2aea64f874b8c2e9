"""COLMAP sparse models (``cameras.txt``/``images.txt`` or ``cameras.bin``/``images.bin``).

Convention (COLMAP's): each image stores its **world-to-camera** pose as a quaternion ``QW QX QY QZ``
(**wxyz**, Hamilton, rotation R_w2c) and a translation ``TX TY TZ`` (so x_cam = R x_world + t), with **OpenCV
axes** (x right, y down, z forward). Intrinsics are in pixels with pixel centres at (j + 0.5, i + 0.5), as ours.
Camera models read: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV, FULL_OPENCV (distortion ignored
with a warning); written: PINHOLE, one camera per distinct K. Images are ordered by name (natural order:
``img2`` before ``img10``). A model may be given as its folder, as a folder holding ``sparse/0`` or ``sparse``,
or as any of its files.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from pathlib import Path

import torch

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.trajectory.formats._common import (
    atomic_write_bytes,
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
from worldwarp.trajectory.rotations import matrix_to_quaternion, quaternion_to_matrix

__all__ = ["find_colmap_model", "is_colmap_model", "read_colmap", "write_colmap"]

# model id -> (name, number of params); only the perspective models we read have a pinhole part.
MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
_NPARAMS = {name: n for name, n in MODELS.values()}
_SUPPORTED = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV")


def is_colmap_model(folder: Path) -> bool:
    return folder.is_dir() and any(
        (folder / f"cameras{e}").is_file() and (folder / f"images{e}").is_file() for e in (".txt", ".bin")
    )


def find_colmap_model(path: str | os.PathLike[str]) -> Path:
    """The folder holding cameras.{txt,bin} and images.{txt,bin} for ``path`` (see the module docstring)."""
    p = Path(path)
    if p.is_file():
        p = p.parent
    for cand in (p, p / "sparse" / "0", p / "sparse"):
        if is_colmap_model(cand):
            return cand
    raise InputError(f"{path}: no COLMAP model found (expected cameras.txt + images.txt or cameras.bin + images.bin)")


def _pinhole(model: str, params: list[float], loc: str) -> tuple[float, float, float, float, bool]:
    """(fx, fy, cx, cy, has_distortion) of a camera model's parameters."""
    if model not in _SUPPORTED:
        raise InputError(f"{loc}: camera model {model} is not supported (use one of {', '.join(_SUPPORTED)})")
    if len(params) != _NPARAMS[model]:
        raise InputError(f"{loc}: {model} takes {_NPARAMS[model]} parameters, found {len(params)}")
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        f, cx, cy = params[:3]
        return f, f, cx, cy, any(v != 0 for v in params[3:])
    fx, fy, cx, cy = params[:4]
    return fx, fy, cx, cy, any(v != 0 for v in params[4:])


_Cam = tuple[int, int, float, float, float, float, bool]  # width, height, fx, fy, cx, cy, distorted
_Img = tuple[str, list[float], list[float], int, str]  # name, qvec, tvec, camera id, location


def _read_text_model(folder: Path) -> tuple[dict[int, _Cam], list[_Img]]:
    cams: dict[int, _Cam] = {}
    cpath = folder / "cameras.txt"
    for i, line in enumerate(read_text(cpath).splitlines()):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        loc = where(cpath, i + 1)
        toks = line.split()
        if len(toks) < 5:
            raise InputError(f"{loc}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS..., found {len(toks)} fields")
        try:
            cid, w, h = int(toks[0]), int(toks[2]), int(toks[3])
        except ValueError:
            raise InputError(f"{loc}: camera id, width and height must be integers") from None
        fx, fy, cx, cy, dist = _pinhole(toks[1], parse_numbers(toks[4:], loc), loc)
        check_intrinsics(fx, fy, cx, cy, h, w, loc)
        cams[cid] = (w, h, fx, fy, cx, cy, dist)
    ipath = folder / "images.txt"
    lines = read_text(ipath).splitlines()
    images: list[_Img] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        loc = where(ipath, i + 1)
        toks = line.split()
        if len(toks) < 10:
            raise InputError(f"{loc}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, found {len(toks)} fields")
        nums = parse_numbers(toks[1:8], loc)
        try:
            cid = int(toks[8])
        except ValueError:
            raise InputError(f"{loc}: camera id {toks[8]!r} is not an integer") from None
        images.append((" ".join(toks[9:]), nums[:4], nums[4:], cid, loc))
        i += 2  # the next line lists the image's 2D points (possibly empty)
    return cams, images


class _Reader:
    """Little-endian struct reader that reports truncation as an InputError naming the file."""

    def __init__(self, path: Path) -> None:
        self.path, self.data, self.pos = path, path.read_bytes(), 0

    def take(self, fmt_: str) -> tuple:
        size = struct.calcsize("<" + fmt_)
        if self.pos + size > len(self.data):
            raise InputError(f"{self.path}: truncated binary file (at byte {self.pos} of {len(self.data)})")
        out = struct.unpack_from("<" + fmt_, self.data, self.pos)
        self.pos += size
        return out

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise InputError(f"{self.path}: truncated binary file (unterminated image name)")
        s = self.data[self.pos : end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return s


def _read_binary_model(folder: Path) -> tuple[dict[int, _Cam], list[_Img]]:
    cams: dict[int, _Cam] = {}
    r = _Reader(folder / "cameras.bin")
    if not r.data:
        raise InputError(f"{r.path}: file is empty")
    (n,) = r.take("Q")
    for k in range(n):
        loc = where(r.path, item=f"camera record {k}")
        cid, model_id, w, h = r.take("iiQQ")
        if model_id not in MODELS:
            raise InputError(f"{loc}: unknown camera model id {model_id}")
        name, nparams = MODELS[model_id]
        params = list(r.take("d" * nparams))
        fx, fy, cx, cy, dist = _pinhole(name, parse_numbers([repr(v) for v in params], loc), loc)
        check_intrinsics(fx, fy, cx, cy, h, w, loc)
        cams[cid] = (w, h, fx, fy, cx, cy, dist)
    r = _Reader(folder / "images.bin")
    if not r.data:
        raise InputError(f"{r.path}: file is empty")
    (n,) = r.take("Q")
    images: list[_Img] = []
    for _ in range(n):
        _, *pose, cid = r.take("I" + "d" * 7 + "i")
        name = r.cstring()
        loc = where(r.path, item=f"image {name!r}")
        (npts,) = r.take("Q")
        if r.pos + 24 * npts > len(r.data):
            raise InputError(f"{r.path}: truncated binary file (2D points of image {name!r})")
        r.pos += 24 * npts
        vals = parse_numbers([repr(v) for v in pose], loc)
        images.append((name, vals[:4], vals[4:], cid, loc))
    return cams, images


def _natural_key(name: str) -> list[int | str]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def read_colmap(path: str | os.PathLike[str]) -> Cameras:
    """Cameras of a COLMAP sparse model (text or binary), ordered by image name; all images must share a size."""
    folder = find_colmap_model(path)
    text = (folder / "cameras.txt").is_file() and (folder / "images.txt").is_file()
    cams, images = _read_text_model(folder) if text else _read_binary_model(folder)
    if not images:
        raise InputError(f"{folder}: the model has no images")
    images.sort(key=lambda im: _natural_key(im[0]))
    c2ws, Ks = [], []
    size: tuple[int, int] | None = None
    distorted = False
    for name, q, t, cid, loc in images:
        if cid not in cams:
            raise InputError(f"{loc}: image {name!r} refers to camera {cid}, which is not in the model")
        w, h, fx, fy, cx, cy, dist = cams[cid]
        distorted |= dist
        if size is None:
            size = (h, w)
        elif size != (h, w):
            raise InputError(f"{loc}: image {name!r} is {w}x{h}, the first image is {size[1]}x{size[0]}")
        qv = torch.tensor(q, dtype=torch.float64)
        if not 0.9 < float(qv.norm()) < 1.1:
            raise InputError(f"{loc}: quaternion of image {name!r} is not unit length (|q| = {float(qv.norm()):.3g})")
        w2c = torch.eye(4, dtype=torch.float64)
        w2c[:3, :3] = quaternion_to_matrix(qv)
        w2c[:3, 3] = torch.tensor(t, dtype=torch.float64)
        check_rotation(w2c[:3, :3], loc)
        c2ws.append(rigid_inverse(w2c))
        Ks.append(torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64))
    if distorted:
        warnings.warn(f"{folder}: lens distortion parameters are ignored (pinhole cameras)", stacklevel=2)
    assert size is not None
    return make_cameras(torch.stack(c2ws), torch.stack(Ks), size[0], size[1], folder)


def write_colmap(
    path: str | os.PathLike[str],
    cameras: Cameras,
    *,
    binary: bool = False,
    image_pattern: str = "frame_{:05d}.png",
) -> Path:
    """Write a COLMAP sparse model into folder ``path`` (created): PINHOLE cameras, images, empty points3D.

    Each file is written atomically. Returns the folder.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{path}: exists and is not a folder (a COLMAP model is a folder)")
    folder.mkdir(parents=True, exist_ok=True)
    cams = cameras.to("cpu", torch.float64)
    w2c = cams.w2c
    q = matrix_to_quaternion(w2c[:, :3, :3])
    cam_ids: dict[tuple[float, float, float, float], int] = {}
    image_cam = []
    for k in range(len(cams)):
        key = (float(cams.K[k, 0, 0]), float(cams.K[k, 1, 1]), float(cams.K[k, 0, 2]), float(cams.K[k, 1, 2]))
        image_cam.append(cam_ids.setdefault(key, len(cam_ids) + 1))
    W, H = cams.width, cams.height
    if binary:
        cb = struct.pack("<Q", len(cam_ids))
        for key, cid in cam_ids.items():
            cb += struct.pack("<iiQQ4d", cid, 1, W, H, *key)
        ib = struct.pack("<Q", len(cams))
        for k in range(len(cams)):
            ib += struct.pack("<I7di", k + 1, *q[k].tolist(), *w2c[k, :3, 3].tolist(), image_cam[k])
            ib += image_pattern.format(k).encode() + b"\0" + struct.pack("<Q", 0)
        atomic_write_bytes(folder / "cameras.bin", cb)
        atomic_write_bytes(folder / "images.bin", ib)
        atomic_write_bytes(folder / "points3D.bin", struct.pack("<Q", 0))
        return folder
    clines = [
        "# Camera list with one line of data per camera:",
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
        f"# Number of cameras: {len(cam_ids)}",
    ]
    clines += [f"{cid} PINHOLE {W} {H} " + " ".join(fmt(v) for v in key) for key, cid in cam_ids.items()]
    ilines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
        f"# Number of images: {len(cams)}, mean observations per image: 0",
    ]
    for k in range(len(cams)):
        nums = " ".join(fmt(v) for v in q[k].tolist() + w2c[k, :3, 3].tolist())
        ilines += [f"{k + 1} {nums} {image_cam[k]} {image_pattern.format(k)}", ""]
    atomic_write_text(folder / "cameras.txt", "\n".join(clines) + "\n")
    atomic_write_text(folder / "images.txt", "\n".join(ilines) + "\n")
    atomic_write_text(
        folder / "points3D.txt",
        "# 3D point list with one line of data per point:\n"
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
        "# Number of points: 0, mean track length: 0\n",
    )
    return folder
