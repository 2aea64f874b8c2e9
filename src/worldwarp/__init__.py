"""worldwarp: one image and a camera path in, a long 3D-consistent fly-through video out.

Importing this package is cheap: it never compiles, downloads or touches CUDA, and does not even import torch
until one of the names below is used (so the CLI can configure the OpenMP runtime before torch loads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["CameraError", "Cameras", "InputError", "WorldWarpError", "__version__"]

if TYPE_CHECKING:
    from worldwarp.cameras import CameraError, Cameras
    from worldwarp.errors import InputError, WorldWarpError


def __getattr__(name: str) -> Any:
    if name in ("CameraError", "Cameras"):
        from worldwarp import cameras

        return getattr(cameras, name)
    if name in ("InputError", "WorldWarpError"):
        from worldwarp import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'worldwarp' has no attribute {name!r}")
