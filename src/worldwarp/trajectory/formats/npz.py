"""The official WorldWarp release's camera ``.npz``.

Convention (the release's): ``poses`` (1, N, 4, 4) **camera-to-world**, **OpenCV axes** (x right, y down,
z forward); ``intrinsics`` (1, N, 3, 3) in **pixels**. The leading batch axis may be absent; one (3, 3) K is
shared by all frames. The image size is not part of the release's files: we read it from the ``height``/
``width`` entries that our writer adds, else from the caller (the start image, when the principal point is
near its centre), else as twice the principal point (the release centres it). We write float64 so a round trip is exact.
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import torch

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.trajectory.formats._common import atomic_write_bytes, check_rotation, make_cameras, where

__all__ = ["read_release_npz", "write_release_npz"]


def read_release_npz(
    path: str | os.PathLike[str],
    *,
    height: int | None = None,
    width: int | None = None,
    fallback_size: tuple[int, int] | None = None,
) -> Cameras:
    """Cameras of a release ``.npz`` (see the module docstring for the image size). ``fallback_size`` (H, W), e.g.
    the start image's, is used when the file has no size and its principal point lies within 5% of that image's
    centre; otherwise the size is twice the principal point (a caller then scales the cameras to its image)."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"{path}: not a readable .npz file ({e})") from None
    for key in ("poses", "intrinsics"):
        if key not in arrays:
            raise InputError(f"{path}: missing array {key!r} (found: {', '.join(sorted(arrays)) or 'none'})")
    poses = torch.from_numpy(np.asarray(arrays["poses"], dtype=np.float64))
    K = torch.from_numpy(np.asarray(arrays["intrinsics"], dtype=np.float64))
    if poses.ndim == 4 and poses.shape[0] == 1:
        poses = poses[0]
    if K.ndim == 4 and K.shape[0] == 1:
        K = K[0]
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise InputError(f"{path}: 'poses' must have shape (1, N, 4, 4), got {tuple(arrays['poses'].shape)}")
    if K.ndim == 2:
        K = K.expand(poses.shape[0], 3, 3)
    if K.shape != (poses.shape[0], 3, 3):
        raise InputError(f"{path}: 'intrinsics' must have shape (1, {poses.shape[0]}, 3, 3), got {tuple(K.shape)}")
    for i in range(poses.shape[0]):
        loc = where(path, item=f"frame {i}")
        if not bool(torch.isfinite(poses[i]).all() and torch.isfinite(K[i]).all()):
            raise InputError(f"{loc}: pose or intrinsics has a NaN or infinite value")
        check_rotation(poses[i, :3, :3], loc)
    if "height" in arrays and "width" in arrays and height is None and width is None:
        height, width = int(arrays["height"]), int(arrays["width"])
    if (height is None or width is None) and fallback_size is not None:
        fh, fw = fallback_size
        cx, cy = float(K[0, 0, 2]), float(K[0, 1, 2])
        if abs(cx - fw / 2) <= 0.05 * fw and abs(cy - fh / 2) <= 0.05 * fh:
            height, width = fh, fw  # made for this image: its principal point is (near) the image's centre
    if height is None or width is None:
        width = width if width is not None else int(round(2 * float(K[0, 0, 2])))
        height = height if height is not None else int(round(2 * float(K[0, 1, 2])))
    return make_cameras(poses, K, height, width, path)


def write_release_npz(path: str | os.PathLike[str], cameras: Cameras) -> None:
    """Write ``poses`` (1, N, 4, 4), ``intrinsics`` (1, N, 3, 3) float64 plus ``height``/``width``, atomically."""
    cams = cameras.to("cpu", torch.float64)
    buf = io.BytesIO()
    np.savez(
        buf,
        poses=cams.c2w.numpy()[None],
        intrinsics=cams.K.numpy()[None],
        height=np.int64(cams.height),
        width=np.int64(cams.width),
    )
    atomic_write_bytes(path, buf.getvalue())
