"""Procedural and photographic textures evaluated at world-unit texture coordinates.

Every texture is a pure function of ``(uv, footprint)``: ``uv`` (R, 2) in metres on the surface (see
:mod:`worldwarp.scenes.geometry`) and ``footprint`` (R,) the size of one pixel (or sample) on the surface in
metres. Patterns whose period falls below about two footprints fade to their mean colour, and photographs are
sampled from a mip pyramid, so distant surfaces do not alias. Random variation comes from an integer hash of the
lattice cell and the texture's ``seed``: the same texture looks the same in every view and every run.

Photographs come from the images that ship with scikit-image (``skimage.data``), loaded lazily; see
:data:`PHOTOS`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from worldwarp.errors import InputError

__all__ = [
    "PHOTOS",
    "Texture",
    "TextureKind",
    "evaluate_texture",
    "fbm",
    "load_photo",
    "value_noise",
]

Vec3 = tuple[float, float, float]
TextureKind = Literal["solid", "checker", "stripes", "noise", "gradient", "bricks", "planks", "tiles", "image", "sky"]

# skimage.data loaders that ship inside the package (no download) -> True if the image is in colour.
PHOTOS: dict[str, bool] = {
    "astronaut": True,
    "coffee": True,
    "chelsea": True,
    "rocket": True,
    "hubble_deep_field": True,
    "camera": False,
    "brick": False,
    "grass": False,
    "gravel": False,
}


@dataclass(frozen=True)
class Texture:
    """A surface pattern.

    Attributes:
        kind: pattern family (see :data:`TextureKind`).
        color_a, color_b: the two colours the pattern mixes (bricks: brick / mortar; planks: light / dark wood;
            grey photographs: bright / dark; sky: zenith / horizon). Colour photographs ignore them.
        scale: metres per period (checker: one square; bricks and planks: one brick length / plank width;
            image: width of the photograph on the surface; sky: the dome radius).
        angle: rotation of the pattern on the surface, radians.
        seed: seed of the random variation (noise, per-brick colours, clouds).
        image: name of a photograph in :data:`PHOTOS` (kind ``"image"`` only).
        grime: amplitude of a low-frequency multiplicative brightness variation (0 = none).
    """

    kind: TextureKind
    color_a: Vec3 = (0.8, 0.8, 0.8)
    color_b: Vec3 = (0.2, 0.2, 0.2)
    scale: float = 1.0
    angle: float = 0.0
    seed: int = 0
    image: str | None = None
    grime: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in get_args(TextureKind):
            raise InputError(f"unknown texture kind {self.kind!r}; expected one of {', '.join(get_args(TextureKind))}")
        if not self.scale > 0:
            raise InputError(f"texture scale must be > 0, got {self.scale}")
        if self.kind == "image" and self.image not in PHOTOS:
            raise InputError(f"unknown photograph {self.image!r}; expected one of {', '.join(PHOTOS)}")


# ---------------------------------------------------------------------------------------------- noise
def _hash(ix: Tensor, iy: Tensor, seed: int) -> Tensor:
    """Deterministic hash of integer lattice points (int64 tensors) -> float in [0, 1) (exact integer mixing)."""
    h = ix * 374761393 + iy * 668265263 + (seed * 2246822519 % 4294967296)
    h = h & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).to(torch.float32) / float(1 << 24)


_TABLE_BITS = 8  # value noise repeats every 256 lattice cells


@functools.lru_cache(maxsize=8)
def _noise_table(device: torch.device, dtype: torch.dtype) -> Tensor:
    """(256 * 256,) lattice values of the value noise, from :func:`_hash` (fixed, seed-independent)."""
    n = 1 << _TABLE_BITS
    iy, ix = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    return _hash(ix.reshape(-1), iy.reshape(-1), 12345).to(device=device, dtype=dtype)


def value_noise(uv: Tensor, seed: int) -> Tensor:
    """Smooth 2D value noise in [0, 1] with unit lattice spacing; ``uv`` (R, 2) -> (R,).

    Lattice values come from a fixed 256 x 256 table; ``seed`` shifts the lattice (different seeds give
    different patterns).
    """
    table = _noise_table(uv.device, uv.dtype)
    mask = (1 << _TABLE_BITS) - 1
    sx, sy = (seed * 7919) % 251, (seed * 104729 + 13) % 241
    base = torch.floor(uv)
    f = uv - base
    i = base.to(torch.int64)
    s = f * f * (3 - 2 * f)
    ix0 = (i[:, 0] + sx) & mask
    iy0 = (i[:, 1] + sy) & mask
    ix1 = (ix0 + 1) & mask
    row0, row1 = iy0 << _TABLE_BITS, ((iy0 + 1) & mask) << _TABLE_BITS
    n00, n10 = table[row0 + ix0], table[row0 + ix1]
    n01, n11 = table[row1 + ix0], table[row1 + ix1]
    a = n00 + (n10 - n00) * s[:, 0]
    b = n01 + (n11 - n01) * s[:, 0]
    return a + (b - a) * s[:, 1]


def fbm(uv: Tensor, seed: int, octaves: int = 4, footprint: Tensor | None = None) -> Tensor:
    """Fractal sum of value noise in [0, 1] (R,); octaves finer than the footprint fade to their mean 0.5."""
    total = torch.zeros_like(uv[:, 0])
    amp, freq, norm = 0.5, 1.0, 0.0
    for k in range(octaves):
        n = value_noise(uv * freq + 17.0 * k, seed + 1013 * k)
        if footprint is not None:
            n = 0.5 + (n - 0.5) * (1 - _fade(footprint * freq))
        total = total + amp * n
        norm += amp
        amp *= 0.5
        freq *= 2.0
    return total / norm


def _fade(ratio: Tensor) -> Tensor:
    """0 while a pattern period spans > 4 footprints, 1 once it spans < 1.5 (``ratio`` = footprint / period)."""
    x = ((ratio - 0.25) / (0.67 - 0.25)).clamp(0, 1)
    return x * x * (3 - 2 * x)


# ---------------------------------------------------------------------------------------------- photographs
@functools.lru_cache(maxsize=16)
def _photo_pyramid_cpu(name: str, max_side: int) -> tuple[Tensor, ...]:
    from skimage import data

    img = torch.as_tensor(getattr(data, name)()).float() / 255.0
    if img.ndim == 2:
        img = img[..., None]
    img = img[..., :3].permute(2, 0, 1)[None]  # (1, C, h, w)
    h, w = img.shape[-2:]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        img = F.interpolate(img, size=(round(h * s), round(w * s)), mode="area")
    levels = [img[0].contiguous()]
    while min(levels[-1].shape[-2:]) >= 8:
        levels.append(F.avg_pool2d(levels[-1][None], 2, ceil_mode=True)[0].contiguous())
    return tuple(levels)


def load_photo(name: str, max_side: int = 512) -> Tensor:
    """Photograph ``name`` from :data:`PHOTOS` as (C, h, w) float32 in [0, 1] (C = 3, or 1 for grey ones)."""
    if name not in PHOTOS:
        raise InputError(f"unknown photograph {name!r}; expected one of {', '.join(PHOTOS)}")
    return _photo_pyramid_cpu(name, max_side)[0]


def _mirror_index(i: Tensor, n: int) -> Tensor:
    m = torch.remainder(i, 2 * n)
    return torch.where(m < n, m, 2 * n - 1 - m)


def _bilinear(img: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Sample (C, h, w) at continuous pixel coordinates (pixel centres at integers), mirror-repeat -> (R, C)."""
    C, h, w = img.shape
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.to(torch.int64), y0.to(torch.int64)
    xs = (_mirror_index(x0, w), _mirror_index(x0 + 1, w))
    ys = (_mirror_index(y0, h), _mirror_index(y0 + 1, h))
    flat = img.reshape(C, -1).T  # (h*w, C)
    c00, c10 = flat[ys[0] * w + xs[0]], flat[ys[0] * w + xs[1]]
    c01, c11 = flat[ys[1] * w + xs[0]], flat[ys[1] * w + xs[1]]
    top = c00 + (c10 - c00) * fx
    bot = c01 + (c11 - c01) * fx
    return top + (bot - top) * fy


def _sample_photo(tex: Texture, uv: Tensor, footprint: Tensor) -> Tensor:
    assert tex.image is not None
    levels = _photo_pyramid_cpu(tex.image, 512)
    h0, w0 = levels[0].shape[-2:]
    texel = tex.scale / w0  # metres per level-0 texel
    lod = torch.log2((footprint / texel).clamp_min(1e-6)).round().clamp(0, len(levels) - 1).to(torch.int64)
    out = uv.new_zeros(len(uv), levels[0].shape[0])
    su = uv[:, 0] / tex.scale + 0.5  # image-width units, centred
    sv = uv[:, 1] / (tex.scale * h0 / w0) + 0.5
    for level in lod.unique().tolist():
        sel = (lod == level).nonzero().squeeze(1)
        img = levels[level].to(device=uv.device, dtype=uv.dtype)
        h, w = img.shape[-2:]
        out[sel] = _bilinear(img, su[sel] * w - 0.5, sv[sel] * h - 0.5)
    if out.shape[1] == 1:
        a, b = uv.new_tensor(tex.color_a), uv.new_tensor(tex.color_b)
        out = b + (a - b) * out
    return out


# ---------------------------------------------------------------------------------------------- patterns
def _mix(tex: Texture, w: Tensor) -> Tensor:
    a, b = w.new_tensor(tex.color_a), w.new_tensor(tex.color_b)
    return b + (a - b) * w[:, None]


def _box_filtered_pulse(x: Tensor, duty: float, footprint: Tensor) -> Tensor:
    """1 where frac(x) < duty else 0, fading to ``duty`` as the footprint (in periods) grows."""
    p = (torch.remainder(x, 1.0) < duty).to(x.dtype)
    return p + (duty - p) * _fade(footprint)


def evaluate_texture(tex: Texture, uv: Tensor, footprint: Tensor) -> Tensor:
    """Colours (R, 3) in [0, 1] of texture ``tex`` at ``uv`` (R, 2) metres with pixel ``footprint`` (R,) metres."""
    if tex.angle:
        c, s = math.cos(tex.angle), math.sin(tex.angle)
        uv = torch.stack([c * uv[:, 0] - s * uv[:, 1], s * uv[:, 0] + c * uv[:, 1]], dim=-1)
    fp = footprint / tex.scale  # footprint in periods
    q = uv / tex.scale
    kind = tex.kind
    if kind == "solid":
        rgb = _mix(tex, torch.ones_like(q[:, 0]))
    elif kind == "checker":
        par = torch.remainder(torch.floor(q[:, 0]) + torch.floor(q[:, 1]), 2.0)
        rgb = _mix(tex, par + (0.5 - par) * _fade(fp * 2))
    elif kind == "stripes":
        main = _box_filtered_pulse(q[:, 0], 0.5, fp)
        fine = _box_filtered_pulse(q[:, 0] * 4 + 0.5, 0.15, fp * 4)
        rgb = _mix(tex, (0.85 * main + 0.15 * fine).clamp(0, 1))
    elif kind == "noise":
        n = fbm(q, tex.seed, octaves=5, footprint=fp)
        rgb = _mix(tex, ((n - 0.5) * 1.8 + 0.5).clamp(0, 1))
    elif kind == "gradient":
        tri = (torch.remainder(q[:, 0], 1.0) * 2 - 1).abs()
        smooth = tri * tri * (3 - 2 * tri)
        rgb = _mix(tex, smooth + (0.5 - smooth) * _fade(fp))
    elif kind in ("bricks", "tiles"):
        rgb = _bricks(tex, q, fp, staggered=kind == "bricks")
    elif kind == "planks":
        rgb = _planks(tex, q, fp)
    elif kind == "image":
        rgb = _sample_photo(tex, uv, footprint)
    else:  # sky
        rgb = _sky(tex, uv)
    if tex.grime > 0:
        g = fbm(uv / (3.0 * tex.scale) + 5.0, tex.seed + 77, octaves=3)
        rgb = rgb * (1 - tex.grime + 2 * tex.grime * g)[:, None]
    return rgb.clamp(0, 1)


def _bricks(tex: Texture, q: Tensor, fp: Tensor, staggered: bool) -> Tensor:
    """Bricks (length 1, height 1/3, staggered rows) or square tiles (size 1), colour per unit from the hash."""
    unit_h = 1.0 / 3.0 if staggered else 1.0
    row = torch.floor(q[:, 1] / unit_h)
    u = q[:, 0] + (0.5 * torch.remainder(row, 2.0) if staggered else 0.0)
    col = torch.floor(u)
    fu, fv = u - col, q[:, 1] / unit_h - row
    mortar = 0.04
    in_mortar = ((fu < mortar) | (fv < mortar / unit_h)).to(q.dtype)
    cover = 1 - (1 - mortar) * (1 - mortar / unit_h)  # mortar area fraction, the far-away mean
    m = in_mortar + (cover - in_mortar) * _fade(fp / mortar * 0.25)
    h1 = _hash(col.to(torch.int64), row.to(torch.int64), tex.seed).to(q.dtype)
    h2 = _hash(col.to(torch.int64), row.to(torch.int64), tex.seed + 1).to(q.dtype)
    a = q.new_tensor(tex.color_a)
    shade = 0.72 + 0.5 * h1
    brick = a[None] * shade[:, None] + 0.06 * (h2[:, None] - 0.5) * q.new_tensor([1.0, 0.3, -0.6])
    grain = fbm(q * 12.0, tex.seed + 5, octaves=3, footprint=fp * 12.0)
    brick = brick * (0.85 + 0.3 * grain)[:, None]
    b = q.new_tensor(tex.color_b)
    return brick + (b - brick) * m[:, None]


def _planks(tex: Texture, q: Tensor, fp: Tensor) -> Tensor:
    """Wooden planks: width 1 along v, length 6 along u with staggered joints, grain along u."""
    row = torch.floor(q[:, 1])
    shift = _hash(row.to(torch.int64), torch.zeros_like(row, dtype=torch.int64), tex.seed).to(q.dtype) * 6
    u = q[:, 0] + shift
    col = torch.floor(u / 6.0)
    h = _hash(col.to(torch.int64), row.to(torch.int64), tex.seed + 3).to(q.dtype)
    grain = fbm(torch.stack([q[:, 0] * 0.6, q[:, 1] * 9.0], dim=-1), tex.seed + 9, 4, footprint=fp * 9.0)
    w = (0.25 + 0.5 * h + 0.5 * (grain - 0.5)).clamp(0, 1)
    rgb = _mix(tex, w)
    fv = q[:, 1] - row
    fu = u / 6.0 - col
    gap = ((fv < 0.03) | (fu < 0.005)).to(q.dtype)
    gap = gap + (0.04 - gap) * _fade(fp / 0.03 * 0.25)
    return rgb * (1 - 0.55 * gap)[:, None]


def _sky(tex: Texture, uv: Tensor) -> Tensor:
    """Sky dome: elevation from ``v`` (v = -elevation * radius, ``scale`` = radius), soft clouds."""
    el = -uv[:, 1] / tex.scale  # radians
    az = uv[:, 0] / tex.scale
    t = (el / 0.9).clamp(0, 1)
    t = t**0.6
    zenith, horizon = uv.new_tensor(tex.color_a), uv.new_tensor(tex.color_b)
    sky = horizon + (zenith - horizon) * t[:, None]
    # clouds on a plane above the viewer: coordinates ~ direction / tan(elevation)
    cot = torch.cos(el) / torch.sin(el).clamp_min(0.08)
    cp = torch.stack([torch.sin(az) * cot, torch.cos(az) * cot], dim=-1) * 1.6
    c = fbm(cp, tex.seed, octaves=5)
    cloud = ((c - 0.5) / 0.18).clamp(0, 1) * ((el - 0.02) / 0.15).clamp(0, 1)
    white = uv.new_tensor([0.97, 0.97, 0.98])
    return sky + (white - sky) * (0.85 * cloud)[:, None]
