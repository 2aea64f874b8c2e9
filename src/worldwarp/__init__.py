"""worldwarp: one image and a camera path in, a long 3D-consistent fly-through video out.

    >>> from worldwarp import WorldWarpPipeline
    >>> pipe = WorldWarpPipeline.from_pretrained("tiny")  # doctest: +SKIP
    >>> out = pipe(image="photo.jpg", trajectory="orbit+zoom_in", num_frames=100)  # doctest: +SKIP
    >>> out.frames.shape  # doctest: +SKIP
    torch.Size([100, 3, 128, 192])

Importing this package is cheap: it never compiles, downloads or touches CUDA, and does not even import torch
until one of the names below is used (so the CLI can configure the OpenMP runtime before torch loads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "CameraError",
    "Cameras",
    "InputError",
    "Overrides",
    "PipelineConfig",
    "PipelineOutput",
    "WorldWarpError",
    "WorldWarpPipeline",
    "__version__",
]

if TYPE_CHECKING:
    from worldwarp.cameras import CameraError, Cameras
    from worldwarp.errors import InputError, WorldWarpError
    from worldwarp.pipeline import PipelineConfig, PipelineOutput, WorldWarpPipeline
    from worldwarp.settings import Overrides

# public name -> the module that defines it (imported on first use)
_LAZY = {
    "CameraError": "worldwarp.cameras",
    "Cameras": "worldwarp.cameras",
    "InputError": "worldwarp.errors",
    "WorldWarpError": "worldwarp.errors",
    "PipelineConfig": "worldwarp.pipeline",
    "PipelineOutput": "worldwarp.pipeline",
    "WorldWarpPipeline": "worldwarp.pipeline",
    "Overrides": "worldwarp.settings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'worldwarp' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
