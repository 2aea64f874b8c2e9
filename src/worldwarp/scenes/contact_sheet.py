"""A grid of first frames of several procedural scenes (for docs and a quick look at the generator)."""

from __future__ import annotations

import torch
from torch import Tensor

from worldwarp.scenes.generator import generate_scene, scene_kind_for_seed
from worldwarp.scenes.paths import random_path
from worldwarp.scenes.render import RenderConfig, render

__all__ = ["DEFAULT_SHEET_SEEDS", "contact_sheet", "mixed_seeds"]

DEFAULT_SHEET_SEEDS = 12


def mixed_seeds(count: int, rooms: int, start: int = 0) -> list[int]:
    """The first ``count`` seeds from ``start`` on, ``rooms`` of them rooms and the rest open scenes."""
    want = {"room": rooms, "open": count - rooms}
    out: list[int] = []
    s = start
    while len(out) < count:
        k = scene_kind_for_seed(s)
        if want[k] > 0:
            want[k] -= 1
            out.append(s)
        s += 1
    return out


def contact_sheet(
    seeds: list[int], height: int = 160, width: int = 240, cols: int = 4, render_config: RenderConfig | None = None
) -> Tensor:
    """(3, rows * height, cols * width) grid of the first frame of each seed's random path (white gutters)."""
    rows = -(-len(seeds) // cols)
    gap = 4
    sheet = torch.ones(3, rows * height + (rows - 1) * gap, cols * width + (cols - 1) * gap)
    for k, seed in enumerate(seeds):
        scene = generate_scene(seed)
        cams = random_path(scene, 1, height, width, generator=torch.Generator().manual_seed(seed * 9973 + 1))
        img = render(scene, cams, render_config).rgb[0]
        r, c = divmod(k, cols)
        y, x = r * (height + gap), c * (width + gap)
        sheet[:, y : y + height, x : x + width] = img
    return sheet
