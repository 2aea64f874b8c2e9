"""Camera files in every supported format, behind two calls: :func:`read_cameras` and :func:`write_cameras`.

Formats (conventions in docs/conventions.md and in each reader's module):

==============  ===========================================================  ========================
name            what                                                         detected from
==============  ===========================================================  ========================
``re10k``       RealEstate10K ``.txt``: URL line, then timestamp, normalised  ``.txt``
                intrinsics and a 3x4 world-to-camera matrix per frame
``transforms``  NeRF / nerfstudio ``transforms.json`` (OpenGL c2w)           ``.json`` with
                                                                              ``transform_matrix``
``colmap``      COLMAP sparse model, text or binary (w2c, qvec wxyz)          a folder, ``.colmap``,
                                                                              ``cameras/images.txt|bin``
``npz``         the official WorldWarp release's ``poses``/``intrinsics``     ``.npz``
``cameras``     our ``cameras.json`` (OpenCV c2w, K in pixels)               ``.json`` with ``c2w``
                                                                              (written: ``*cameras.json``)
==============  ===========================================================  ========================

Every reader returns float64 :class:`~worldwarp.cameras.Cameras` (OpenCV c2w, K in pixels); every writer is
exact on a round trip (to 1e-6 or better) and writes atomically. Bad files raise
:class:`~worldwarp.errors.InputError` with one line that names the file (and the line, in text formats).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError

__all__ = ["FORMATS", "CameraFormat", "detect_format", "output_format", "read_cameras", "write_cameras"]

CameraFormat = Literal["re10k", "transforms", "colmap", "npz", "cameras"]
FORMATS: tuple[str, ...] = get_args(CameraFormat)
_COLMAP_FILES = {"cameras.txt", "images.txt", "points3d.txt", "cameras.bin", "images.bin", "points3d.bin"}


def _check_format(fmt: str) -> CameraFormat:
    if fmt not in FORMATS:
        raise InputError(f"unknown camera file format {fmt!r}; known formats: {', '.join(FORMATS)}")
    return fmt  # type: ignore[return-value]


def detect_format(path: str | os.PathLike[str]) -> CameraFormat:
    """Format of an existing camera file or folder, from its extension and, for ``.json``, its content."""
    from worldwarp.trajectory.formats.cameras_json import is_cameras_json
    from worldwarp.trajectory.formats.nerf import load_json

    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: file not found")
    name = p.name.lower()
    if p.is_dir() or name in _COLMAP_FILES or name.endswith(".colmap"):
        return "colmap"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".json"):
        return "cameras" if is_cameras_json(load_json(p)) else "transforms"
    if name.endswith(".txt"):
        return "re10k"
    head = p.read_bytes()[:64].lstrip()
    if head.startswith(b"PK"):
        return "npz"
    if head.startswith(b"{"):
        return "cameras" if is_cameras_json(load_json(p)) else "transforms"
    if head:
        return "re10k"
    raise InputError(f"{path}: file is empty")


def output_format(path: str | os.PathLike[str]) -> CameraFormat:
    """Format to write ``path`` in, from its name: ``.txt`` re10k; ``*cameras.json`` cameras; other ``.json``
    transforms; ``.npz`` npz; ``.colmap``, an existing folder or a name ending in ``/`` colmap."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".txt"):
        return "re10k"
    if name.endswith("cameras.json"):
        return "cameras"
    if name.endswith(".json"):
        return "transforms"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".colmap") or p.is_dir() or str(path).endswith(("/", os.sep)):
        return "colmap"
    raise InputError(
        f"{path}: cannot tell the camera format from the name (use .txt, .json, cameras.json, .npz, .colmap or "
        f"a folder, or give the format: {', '.join(FORMATS)})"
    )


def read_cameras(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    height: int | None = None,
    width: int | None = None,
    fallback_size: tuple[int, int] | None = None,
) -> Cameras:
    """Cameras from a camera file or COLMAP folder.

    Args:
        path: the file (or COLMAP folder).
        format: one of :data:`FORMATS`; detected when ``None``.
        height, width: image size. Files without one (re10k, npz) use it (re10k default 360x640; npz: its own
            entries, else twice the principal point). Files with one (transforms, colmap, cameras) are resized
            to it when it differs, so the cameras always describe images of the size asked for.
        fallback_size: (height, width) of the images for files that carry no size (re10k; npz without
            ``height``/``width`` entries) when ``height``/``width`` are not given, e.g. the start image's size.
    """
    from worldwarp.trajectory.formats.cameras_json import read_cameras_json
    from worldwarp.trajectory.formats.colmap import read_colmap
    from worldwarp.trajectory.formats.nerf import read_transforms
    from worldwarp.trajectory.formats.npz import read_release_npz
    from worldwarp.trajectory.formats.re10k import DEFAULT_HEIGHT, DEFAULT_WIDTH, read_re10k

    if (height is None) != (width is None):
        raise InputError("give both height and width, or neither")
    fmt = _check_format(format) if format is not None else detect_format(path)
    fh, fw = fallback_size if fallback_size is not None else (None, None)
    if fmt == "re10k":
        return read_re10k(path, height=height or fh or DEFAULT_HEIGHT, width=width or fw or DEFAULT_WIDTH)
    if fmt == "npz":
        return read_release_npz(path, height=height, width=width, fallback_size=fallback_size)
    if fmt == "transforms":
        cams = read_transforms(path, height=height, width=width)
    elif fmt == "colmap":
        cams = read_colmap(path)
    else:
        cams = read_cameras_json(path)
    if height is not None and width is not None and (cams.height, cams.width) != (height, width):
        cams = cams.resize(height, width)
    return cams


def write_cameras(path: str | os.PathLike[str], cameras: Cameras, format: str | None = None) -> CameraFormat:
    """Write ``cameras`` to ``path`` in ``format`` (from the name when ``None``, see :func:`output_format`).

    COLMAP models are written as text into the folder ``path``. Returns the format used.
    """
    from worldwarp.trajectory.formats.cameras_json import write_cameras_json
    from worldwarp.trajectory.formats.colmap import write_colmap
    from worldwarp.trajectory.formats.nerf import write_transforms
    from worldwarp.trajectory.formats.npz import write_release_npz
    from worldwarp.trajectory.formats.re10k import write_re10k

    fmt = _check_format(format) if format is not None else output_format(path)
    writers = {
        "re10k": write_re10k,
        "transforms": write_transforms,
        "colmap": write_colmap,
        "npz": write_release_npz,
        "cameras": write_cameras_json,
    }
    writers[fmt](path, cameras)
    return fmt
