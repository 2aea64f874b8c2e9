"""One entry for "a camera path from the user": a preset spec or a camera file, brought to N frames."""

from __future__ import annotations

import os
from pathlib import Path

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.trajectory.extend import FitMode, change_speed, fit_length
from worldwarp.trajectory.io import FORMATS, read_cameras
from worldwarp.trajectory.presets import trajectory_from_spec

__all__ = ["load_trajectory", "looks_like_path"]

_FILE_SUFFIXES = (".txt", ".json", ".npz", ".colmap", ".bin")


def looks_like_path(text: str) -> bool:
    """Whether ``text`` is meant as a file name rather than a preset spec (exists, has a path separator or a
    camera-file extension)."""
    return os.path.exists(text) or "/" in text or os.sep in text or text.lower().endswith(_FILE_SUFFIXES)


def load_trajectory(
    spec_or_file: str | os.PathLike[str],
    frames: int | None = None,
    *,
    format: str | None = None,
    height: int | None = None,
    width: int | None = None,
    fov_x_deg: float | None = None,
    speed: float = 1.0,
    scale: float = 1.0,
    look_at_distance: float | None = None,
    fit: FitMode = "resample",
    start: Cameras | None = None,
    fallback_size: tuple[int, int] | None = None,
) -> Cameras:
    """Cameras from a preset spec (see :mod:`worldwarp.trajectory.presets`) or a camera file (any format of
    :mod:`worldwarp.trajectory.io`).

    Presets: ``frames`` is required; ``height``/``width`` default to 480x720 and ``fov_x_deg`` to 60.

    Files: read at ``height``/``width`` when given (see :func:`~worldwarp.trajectory.io.read_cameras`; a file
    without an image size takes ``fallback_size``); then
    ``speed`` != 1 travels the path faster (:func:`~worldwarp.trajectory.extend.change_speed`), ``scale``
    multiplies the displacements from the first camera, and when ``frames`` is given the path is brought to
    that length by ``fit`` (resample along it, or extrapolate / loop / ping-pong past its end). With ``start``,
    the path is re-expressed relative to its first camera and attached to ``start``'s last pose (K and image
    size stay the file's).
    """
    text = os.fspath(spec_or_file)
    if format is not None or isinstance(spec_or_file, Path) or looks_like_path(text):
        if format is not None and format not in FORMATS:
            raise InputError(f"unknown camera file format {format!r}; known formats: {', '.join(FORMATS)}")
        if not os.path.exists(text):
            raise InputError(f"{text}: camera file not found")
        cams = read_cameras(text, format, height=height, width=width, fallback_size=fallback_size)
        if speed != 1.0:
            cams = change_speed(cams, speed)
        if scale != 1.0:
            if not scale > 0:
                raise InputError(f"scale must be > 0, got {scale}")
            c2w = cams.c2w.clone()
            c2w[:, :3, 3] = c2w[:1, :3, 3] + (c2w[:, :3, 3] - c2w[:1, :3, 3]) * scale
            cams = Cameras(c2w, cams.K, cams.height, cams.width)
        if frames is not None:
            cams = fit_length(cams, frames, fit)
        if start is not None:
            anchor = start[-1].to(cams.device, cams.dtype).c2w[0]
            cams = Cameras(anchor @ cams.w2c[0] @ cams.c2w, cams.K, cams.height, cams.width)
        return cams
    if frames is None:
        raise InputError(f"a number of frames is needed for the camera preset {text!r}")
    return trajectory_from_spec(
        text,
        frames,
        height=480 if height is None else height,
        width=720 if width is None else width,
        fov_x_deg=fov_x_deg,
        speed=speed,
        scale=scale,
        look_at_distance=look_at_distance,
        start=start,
    )
