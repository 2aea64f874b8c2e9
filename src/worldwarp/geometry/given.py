"""Depth the user supplies (files or tensors), validated against the images it belongs to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from worldwarp.errors import InputError
from worldwarp.geometry.base import DepthPrediction, check_images
from worldwarp.io.depth import check_depth_matches, load_depth, prepare_depth, sanitize_depth

if TYPE_CHECKING:  # pragma: no cover
    from worldwarp.cameras import Cameras

__all__ = ["GivenDepth", "GivenDepthConfig"]


@dataclass
class GivenDepthConfig:
    """User depth, one map per image.

    Attributes:
        sources: depth files (see :func:`worldwarp.io.depth.load_depth`) or (H, W) tensors, one per image.
        scale: multiply file values by this (default: the file format's unit, see ``load_depth``).
        fit: ``"exact"``: the depth must have the image's size (InputError stating both sizes otherwise);
            ``"prepare"``: a depth of another size is brought to the image size with the same cover-resize +
            centre crop as :func:`worldwarp.io.images.prepare_image` (nearest neighbour), which is right when the
            depth belongs to the original photo that was prepared to the working resolution.
    """

    sources: tuple[str | os.PathLike[str] | Tensor, ...] = ()
    scale: float | None = None
    fit: Literal["exact", "prepare"] = "prepare"

    def __post_init__(self) -> None:
        if isinstance(self.sources, (str, os.PathLike, Tensor)):
            self.sources = (self.sources,)
        self.sources = tuple(self.sources)
        if self.fit not in ("exact", "prepare"):
            raise InputError(f"depth fit must be 'exact' or 'prepare', got {self.fit!r}")


class GivenDepth:
    """:class:`~worldwarp.geometry.base.DepthEstimator` returning the user's depth (metric, valid where > 0)."""

    name = "given"

    def __init__(self, config: GivenDepthConfig) -> None:
        self.config = config
        self._maps: list[tuple[str, Tensor]] | None = None

    def _load(self) -> list[tuple[str, Tensor]]:
        if self._maps is None:
            maps = []
            for i, src in enumerate(self.config.sources):
                if isinstance(src, Tensor):
                    name = f"depth #{i}"
                    d = src.detach()
                    if d.ndim == 3 and d.shape[0] == 1:
                        d = d[0]
                    if d.ndim != 2:
                        raise InputError(f"{name}: depth must be (H, W), got shape {tuple(src.shape)}")
                    d = sanitize_depth(d.float(), name)
                else:
                    name = str(Path(src))
                    d = load_depth(src, scale=self.config.scale)
                maps.append((name, d))
            self._maps = maps
        return self._maps

    def estimate(self, images: Tensor, cameras: Cameras | None = None) -> DepthPrediction:
        """The given depth of each image, (N, H, W) on the images' device and dtype."""
        check_images(images)
        maps = self._load()
        n, _, h, w = images.shape
        if len(maps) != n:
            raise InputError(f"got {len(maps)} depth map(s) for {n} image(s)")
        out = []
        for i, (name, d) in enumerate(maps):
            if tuple(d.shape) != (h, w):
                if self.config.fit == "exact":
                    check_depth_matches(d, (h, w), depth_name=name, image_name=f"image {i}")
                d = prepare_depth(d, (h, w))
            out.append(d)
        depth = torch.stack(out).to(device=images.device, dtype=images.dtype)
        return DepthPrediction(depth=depth, valid=depth > 0, metric=True)
