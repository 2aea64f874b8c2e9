"""A training dataset of procedural clips with exact depth and cameras.

Item ``i`` is a pure function of ``(config.seed, i)``: a random scene, a random collision-free path, a random
window of ``clip_frames`` frames of it and a random source frame inside the window (the frame the ST-Diff
training warps into the others). Scenes are rendered on the fly, so the dataset is as large as you like; use it
with a ``torch.utils.data.DataLoader`` and :func:`collate_clips`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.scenes.generator import SceneConfig, generate_scene
from worldwarp.scenes.paths import PathConfig, random_path
from worldwarp.scenes.render import RenderConfig, render

__all__ = ["ClipDatasetConfig", "ClipSample", "ProceduralClipDataset", "collate_clips"]


@dataclass(frozen=True)
class ClipDatasetConfig:
    """Attributes:
    seed: base seed (different seeds give disjoint-looking datasets; keep it apart from the suites' seeds,
        which are 1001-1008 and 2001-2008).
    length: number of items.
    clip_frames: frames per item (T).
    path_frames: frames of the whole path a window is cut from.
    height, width: image size.
    scene, path, render: configs of the generator, the paths and the renderer.
    """

    seed: int = 0
    length: int = 10000
    clip_frames: int = 13
    path_frames: int = 60
    height: int = 64
    width: int = 96
    scene: SceneConfig = field(default_factory=SceneConfig)
    path: PathConfig = field(default_factory=PathConfig)
    render: RenderConfig = field(default_factory=lambda: RenderConfig(supersample=2))

    def __post_init__(self) -> None:
        if not 1 <= self.clip_frames <= self.path_frames:
            raise InputError(f"need 1 <= clip_frames <= path_frames, got {self.clip_frames}, {self.path_frames}")
        if self.length < 1:
            raise InputError(f"length must be >= 1, got {self.length}")


class ClipSample(TypedDict):
    frames: Tensor  # (T, 3, H, W)
    depths: Tensor  # (T, H, W)
    cameras: Cameras  # T cameras, float64
    source: int  # index of the source frame in [0, T)
    scene_seed: int


class ProceduralClipDataset(Dataset):
    """Map-style dataset of :class:`ClipSample` items (CPU float32 tensors)."""

    def __init__(self, config: ClipDatasetConfig | None = None) -> None:
        self.config = config or ClipDatasetConfig()

    def __len__(self) -> int:
        return self.config.length

    def __getitem__(self, index: int) -> ClipSample:
        cfg = self.config
        if not 0 <= index < cfg.length:
            raise IndexError(index)
        rng = np.random.default_rng([cfg.seed, index, 31337])
        scene_seed = int(rng.integers(10_000, 2**31 - 1))
        scene = generate_scene(scene_seed, None, cfg.scene)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        cams = random_path(scene, cfg.path_frames, cfg.height, cfg.width, cfg.path, gen)
        start = int(rng.integers(0, cfg.path_frames - cfg.clip_frames + 1))
        cams = cams[start : start + cfg.clip_frames]
        out = render(scene, cams, cfg.render)
        return ClipSample(
            frames=out.rgb,
            depths=out.depth,
            cameras=cams,
            source=int(rng.integers(0, cfg.clip_frames)),
            scene_seed=scene_seed,
        )


def collate_clips(items: list[ClipSample]) -> dict[str, object]:
    """Batch items: frames (B, T, 3, H, W), depths (B, T, H, W), cameras (list of B Cameras),
    source (B,) long, scene_seed (B,) long."""
    return {
        "frames": torch.stack([it["frames"] for it in items]),
        "depths": torch.stack([it["depths"] for it in items]),
        "cameras": [it["cameras"] for it in items],
        "source": torch.tensor([it["source"] for it in items], dtype=torch.long),
        "scene_seed": torch.tensor([it["scene_seed"] for it in items], dtype=torch.long),
    }
