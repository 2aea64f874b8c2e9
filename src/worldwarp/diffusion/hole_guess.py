"""A deterministic first guess for the holes of a warped frame: push-pull (pyramid) interpolation.

Models trained with ``hole_init="push_pull"`` (:class:`~worldwarp.diffusion.denoisers.tiny.TinyDenoiserConfig`)
start their holes from this guess instead of pure noise. Push-pull fills every hole pixel with a smooth blend of the
valid pixels around it, at the scale of the hole:

1. **push**: halve the image repeatedly; each coarser pixel holds the mask-weighted mean colour of its 2 x 2 block
   and the share of valid pixels under it (``w``, in [0, 1]);
2. **pull**: from the coarsest level up, each level's colour is ``a c + (1 - a) up(coarser)`` with
   ``a = min(1, gain w)``, where ``c`` is the level's mean colour and ``up`` bilinear upsampling; at full resolution
   ``w`` is the mask, so valid pixels are returned exactly. ``gain`` 1 is the classic blend; a larger gain lets a
   block with a few valid pixels keep its own colour, so holes take the colours next to them rather than a blur of
   the whole neighbourhood (:data:`DEFAULT_GAIN`, chosen on the procedural dev suite: docs/training.md).

Pure torch, any device and dtype, no learned weights; the cost is about two image-sized passes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DEFAULT_GAIN", "push_pull_fill"]

DEFAULT_GAIN = 16.0


def push_pull_fill(rgb: Tensor, mask: Tensor, empty: float = 0.5, gain: float = DEFAULT_GAIN) -> Tensor:
    """Frames (N, C, H, W) with the pixels where ``mask`` (N, H, W) is False filled by push-pull interpolation.

    Valid pixels are returned unchanged; a frame with no valid pixel becomes ``empty`` everywhere. ``gain`` >= 1
    scales the pull weights (module docstring).
    """
    if gain < 1:
        raise ValueError(f"gain must be >= 1, got {gain}")
    if rgb.ndim != 4 or mask.shape != (rgb.shape[0], *rgb.shape[2:]):
        raise ValueError(f"rgb must be (N, C, H, W) and mask (N, H, W), got {tuple(rgb.shape)}, {tuple(mask.shape)}")
    w = mask[:, None].to(rgb.dtype)  # (N, 1, H, W)
    x = rgb * w
    levels: list[tuple[Tensor, Tensor]] = []
    # 1. push: mask-weighted means on a pyramid down to one pixel along the shorter side
    while True:
        levels.append((x, w))
        if min(x.shape[-2:]) <= 1:
            break
        x = F.avg_pool2d(x, 2, ceil_mode=True)  # (N, C, ceil(h/2), ceil(w/2)), sums / 4
        w = F.avg_pool2d(w, 2, ceil_mode=True)
    # 2. pull: the coarsest level's mean colour (or ``empty``), then blend upward
    x, w = levels[-1]
    total = w.sum(dim=(-2, -1), keepdim=True)
    mean = x.sum(dim=(-2, -1), keepdim=True) / total.clamp_min(1e-12)
    out = torch.where(total > 0, mean, torch.full_like(mean, empty)).expand_as(x)
    for x, w in reversed(levels):
        up = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        colour = x / w.clamp_min(1e-12)
        a = (gain * w).clamp(max=1.0)
        out = torch.where(w > 0, a * colour + (1 - a) * up, up)
    return torch.where(mask[:, None], rgb, out)
