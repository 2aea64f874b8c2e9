"""Training clips for :func:`worldwarp.diffusion.training.train`: items ``(frames (T, 3, H, W), depths (T, H, W),
cameras (T))`` with exact or measured depth, as the ST-Diff recipe needs (docs/training.md).

* :class:`ProceduralClips`: rendered procedural worlds (:class:`worldwarp.scenes.dataset.ProceduralClipDataset`);
* :class:`TransformsClips`: windows of nerfstudio ``transforms.json`` scenes with ``depth_file_path`` entries
  (read with :func:`worldwarp.eval.datasets.load_transforms_scene`);
* :func:`training_dataset`: either, by the name ``worldwarp train --dataset`` takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError

__all__ = ["ProceduralClips", "TransformsClips", "training_dataset"]


class TransformsClips:
    """Clips of T consecutive frames (with a stride) from transforms.json scenes with depth, resized to H x W.

    ``clips[i]`` takes scene ``i % scenes`` and a window start drawn from a generator seeded with ``i``.
    """

    def __init__(self, root: Path, frames: int, height: int, width: int, stride: int = 1) -> None:
        import torch

        from worldwarp.eval.datasets import DatasetConfig, load_transforms_scene

        root = Path(root)
        if not root.is_dir():
            raise InputError(f"{root}: dataset folder not found")
        folders = (
            [root] if (root / "transforms.json").is_file() else sorted(p.parent for p in root.glob("*/transforms.json"))
        )
        if not folders:
            raise InputError(f"{root}: no transforms.json in it or in its sub-folders")
        cfg = DatasetConfig(name="transforms", size=(height, width), frames=(1,))
        self.scenes = []
        for folder in folders:
            scene = load_transforms_scene(folder, cfg)
            if scene.load_depth is None:
                raise InputError(f"{folder / 'transforms.json'}: frames have no depth_file_path; training needs depth")
            if scene.num_frames < 1 + (frames - 1) * stride:
                raise InputError(f"{folder}: {scene.num_frames} frames, a clip needs {1 + (frames - 1) * stride}")
            self.scenes.append(scene)
        self.frames, self.stride = frames, stride
        self._torch = torch

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Cameras]:
        torch = self._torch
        scene = self.scenes[index % len(self.scenes)]
        span = 1 + (self.frames - 1) * self.stride
        g = torch.Generator().manual_seed(int(index))
        start = int(torch.randint(scene.num_frames - span + 1, (1,), generator=g))
        idx = list(range(start, start + span, self.stride))
        frames = scene.frames(idx)
        assert scene.load_depth is not None
        depths = torch.stack([scene.load_depth(i) for i in idx])
        return frames, depths, scene.cameras[idx]


class ProceduralClips:
    """Rendered procedural clips (:class:`worldwarp.scenes.dataset.ProceduralClipDataset`) as (frames, depths, cams).

    The dataset's own source-frame choice is ignored: the trainer draws the source frame from its step generator.
    """

    LENGTH = 1_000_000

    def __init__(self, frames: int, height: int, width: int, seed: int) -> None:
        from worldwarp.scenes.dataset import ClipDatasetConfig, ProceduralClipDataset

        cfg = ClipDatasetConfig(
            seed=seed, length=self.LENGTH, clip_frames=frames, path_frames=max(60, frames), height=height, width=width
        )
        self.data = ProceduralClipDataset(cfg)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Cameras]:
        item = self.data[index % len(self.data)]
        return item["frames"], item["depths"], item["cameras"]


def training_dataset(spec: str, frames: int, height: int, width: int, stride: int = 1, seed: int = 0) -> Any:
    """The clips ``spec`` names: ``"procedural"`` (:class:`ProceduralClips`) or ``"transforms:DIR"``
    (:class:`TransformsClips`); anything else is an :class:`~worldwarp.errors.InputError`."""
    if spec.startswith("transforms:"):
        return TransformsClips(Path(spec.split(":", 1)[1]), frames, height, width, stride)
    if spec == "procedural":
        return ProceduralClips(frames, height, width, seed)
    raise InputError(f"unknown dataset {spec!r}: use 'procedural' or 'transforms:DIR'")
