"""Turn what a user gives (an image file, optional depth, a preset spec or camera file) into pipeline inputs.

Shared by the CLI and the web UI, so both validate and prepare inputs the same way: the image is read
(EXIF, alpha, 16-bit, grayscale handled), cover-resized and centre-cropped to the working resolution; depth
comes from the user's file, a transformers depth model, or (with a warning) a weight-free ground-plane prior;
preset paths are scaled to the scene (translations in units of half the median start depth, looking at the
median depth); camera files' intrinsics follow the image's resize and crop (:func:`fit_cameras_to_image`).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError

if TYPE_CHECKING:
    from worldwarp.io.images import ImagePrep

__all__ = ["PreparedInputs", "fit_cameras_to_image", "prepare_inputs", "trajectory_for_scene"]

MAX_INPUT_SIDE = 4096
MAX_UPSCALE = 4.0  # a start image enlarged more than this gets a note


@dataclass
class PreparedInputs:
    """Start image (3, H, W) in [0, 1], its z-depth (H, W), the N target cameras, and notes for the user."""

    image: Tensor
    depth: Tensor
    cameras: Cameras
    depth_source: str
    notes: list[str] = field(default_factory=list)


def trajectory_for_scene(
    trajectory: str | os.PathLike[str],
    frames: int,
    height: int,
    width: int,
    median_depth: float,
    *,
    fov_x_deg: float = 60.0,
    speed: float = 1.0,
    scale: float = 1.0,
    fit: str = "resample",
    prep: ImagePrep | None = None,
    notes: list[str] | None = None,
) -> Cameras:
    """Cameras for a preset spec (scaled to the scene), a camera file or a video (its camera motion, scaled so
    the video's scene depth is ``median_depth``; see
    :func:`~worldwarp.trajectory.from_video.video_trajectory_for_scene`), at ``height`` x ``width``.

    A camera file's intrinsics follow what was done to the start image (``prep``: the cover-resize and centre
    crop to the working resolution): the file is read at its own image size (files without one, re10k and the
    release's npz, at the start image's size), brought to the image's size, then resized and cropped like it.
    A file made for another aspect ratio is an :class:`InputError`. Without ``prep`` the file's own image size
    is resized and cropped the same way. A file with fewer or more cameras than ``frames`` is resampled, with a
    note.
    """
    from worldwarp.trajectory.extend import fit_length
    from worldwarp.trajectory.from_video import is_video_file, video_trajectory_for_scene
    from worldwarp.trajectory.load import load_trajectory, looks_like_path

    text = os.fspath(trajectory)
    if is_video_file(text):
        return video_trajectory_for_scene(
            text, frames, height, width, median_depth, fov_x_deg=fov_x_deg, speed=speed, scale=scale
        )
    if isinstance(trajectory, Path) or looks_like_path(text):
        if prep is None:  # no image: the file's own images are brought to the working resolution
            from worldwarp.io.images import plan_prepare

            cams = load_trajectory(text, None, speed=speed, scale=scale)
            cams = plan_prepare((cams.height, cams.width), height, width).apply_to_cameras(cams)
        else:
            cams = load_trajectory(text, None, speed=speed, scale=scale, fallback_size=prep.source)
            cams = fit_cameras_to_image(cams, prep, text)
        if len(cams) != frames:
            if notes is not None:
                how = "resampled along the path" if fit == "resample" else f"brought to length ({fit})"
                notes.append(f"{text}: the file has {len(cams)} cameras, {how} to {frames} frames")
            cams = fit_length(cams, frames, fit)  # type: ignore[arg-type]
        return cams
    return load_trajectory(
        text,
        frames,
        height=height,
        width=width,
        fov_x_deg=fov_x_deg,
        speed=speed,
        scale=0.5 * median_depth * scale,
        look_at_distance=median_depth,
    )


ASPECT_TOLERANCE = 0.01


def fit_cameras_to_image(cameras: Cameras, prep: ImagePrep, name: str = "camera file") -> Cameras:
    """Cameras made for images of ``cameras``' size -> cameras of the start image after ``prep``.

    The cameras are first scaled to the start image's size (same aspect ratio within 1%, else an
    :class:`InputError`), then resized and cropped exactly as the image was."""
    H0, W0 = prep.source
    h, w = cameras.height, cameras.width
    if (h, w) != (H0, W0):
        a_cam, a_img = w / h, W0 / H0
        if abs(a_cam - a_img) > ASPECT_TOLERANCE * a_img:
            raise InputError(
                f"{name}: the cameras are for {w}x{h} images (aspect {a_cam:.3f}) but the start image is {W0}x{H0} "
                f"(aspect {a_img:.3f}); crop the image to the cameras' aspect ratio or use a matching camera file"
            )
        cameras = cameras.resize(H0, W0)
    return prep.apply_to_cameras(cameras)


def _start_depth(
    image: Tensor, depth_path: str | None, depth_model: str | None, prep: ImagePrep, notes: list[str]
) -> tuple[Tensor, str]:
    """z-depth (H, W) of the prepared start image and where it came from."""
    H, W = image.shape[-2:]
    if depth_path is not None:
        from worldwarp.io.depth import load_depth, prepare_depth

        raw = load_depth(depth_path)
        src = prep.source
        if tuple(raw.shape) != tuple(src):
            raise InputError(f"{depth_path}: depth is {raw.shape[1]}x{raw.shape[0]} but the image is {src[1]}x{src[0]}")
        return prepare_depth(raw, prep), "given"
    from worldwarp.geometry import get_estimator

    if depth_model is not None:
        est = get_estimator("transformers", model=depth_model)
        return est.estimate(image[None]).depth[0].float(), f"transformers:{depth_model}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = get_estimator("prior")
        depth = est.estimate(image[None]).depth[0].float()
    notes.extend(str(w.message) for w in caught)
    assert depth.shape == (H, W)
    return depth, "prior"


def prepare_inputs(
    image_path: str | os.PathLike[str],
    trajectory: str | os.PathLike[str],
    frames: int,
    height: int,
    width: int,
    *,
    depth_path: str | None = None,
    depth_model: str | None = None,
    fov_x_deg: float = 60.0,
    speed: float = 1.0,
    scale: float = 1.0,
) -> PreparedInputs:
    """Read, validate and prepare everything the pipeline needs; every problem is an :class:`InputError`."""
    from worldwarp.io.images import ImageResizedWarning, load_image, prepare_image

    if not isinstance(frames, int) or frames < 2:
        raise InputError(f"--frames must be a whole number >= 2, got {frames}")
    for name, value in (("--speed", speed), ("--scale", scale)):
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a finite number > 0, got {value}")
    if not (math.isfinite(fov_x_deg) and 0 < fov_x_deg < 180):
        raise InputError(f"--fov must lie in (0, 180) degrees, got {fov_x_deg}")
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ImageResizedWarning)
        raw, info = load_image(image_path, max_side=MAX_INPUT_SIDE)
    notes.extend(str(w.message) for w in caught if issubclass(w.category, ImageResizedWarning))
    if info.resized and depth_path is not None:
        raise InputError(
            f"{image_path}: image is larger than {MAX_INPUT_SIDE} px; resize it and its depth map together first"
        )
    image, prep = prepare_image(raw, height, width)
    upscale = max(height / prep.source[0], width / prep.source[1])
    if upscale > MAX_UPSCALE:
        notes.append(
            f"the image is only {prep.source[1]}x{prep.source[0]}: it is enlarged {upscale:.0f}x to the working "
            f"resolution {width}x{height}, so the result will be blurry"
        )
    elif prep.source != (height, width):
        notes.append(
            f"image {prep.source[1]}x{prep.source[0]} resized to {prep.resized[1]}x{prep.resized[0]} and "
            f"centre-cropped to {width}x{height}"
        )
    depth, source = _start_depth(image, depth_path, depth_model, prep, notes)
    valid = depth[torch.isfinite(depth) & (depth > 0)]
    if valid.numel() == 0:
        raise InputError("the start depth has no valid (positive) value")
    median = float(valid.median())
    cameras = trajectory_for_scene(
        trajectory, frames, height, width, median, fov_x_deg=fov_x_deg, speed=speed, scale=scale, prep=prep,
        notes=notes,
    )  # fmt: skip
    if len(cameras) != frames:
        raise InputError(f"the trajectory has {len(cameras)} cameras, expected {frames}")
    return PreparedInputs(image=image.clamp(0, 1), depth=depth, cameras=cameras, depth_source=source, notes=notes)
