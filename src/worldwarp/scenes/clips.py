"""A rendered clip of a procedural world: frames, exact z-depth and cameras."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.scenes.generator import SceneConfig, generate_scene
from worldwarp.scenes.paths import PathConfig, camera_path
from worldwarp.scenes.render import RenderConfig, render

__all__ = ["Clip", "make_clip"]


@dataclass
class Clip:
    """``frames`` (N, 3, H, W) in [0, 1], ``depths`` (N, H, W) z-depth in scene units, ``cameras`` (N),
    and the scene seed, kind and trajectory that produced them."""

    frames: Tensor
    depths: Tensor
    cameras: Cameras
    seed: int
    kind: str
    trajectory: str

    def __len__(self) -> int:
        return len(self.cameras)


def make_clip(
    seed: int,
    frames: int,
    height: int,
    width: int,
    *,
    kind: Literal["room", "open"] | None = None,
    trajectory: str = "random",
    speed: float = 1.0,
    scene_config: SceneConfig | None = None,
    path_config: PathConfig | None = None,
    render_config: RenderConfig | None = None,
    device: torch.device | str | None = None,
) -> Clip:
    """Generate scene ``seed``, a collision-free path (random, or a preset spec) and render it on ``device``.

    The path's randomness is seeded from ``seed`` too, so the clip is a pure function of the arguments.
    """
    scene = generate_scene(seed, kind, scene_config)
    gen = torch.Generator().manual_seed(seed * 9973 + 1)
    cams = camera_path(scene, trajectory, frames, height, width, path_config, gen, speed)
    out = render(scene, cams.to(device), render_config)
    return Clip(out.rgb, out.depth, cams, seed, scene.kind, trajectory)
