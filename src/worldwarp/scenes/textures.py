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
# Internally, 2D coordinates travel as two contiguous 1-D tensors (u, v): elementwise kernels on columns of an
# (R, 2) tensor are several times slower. The public functions take (R, 2) as before.
def _hash(ix: Tensor, iy: Tensor, seed: int) -> Tensor:
    """Deterministic hash of integer lattice points (int64 tensors) -> float in [0, 1) (exact integer mixing)."""
    return _hash_mix(ix * 374761393 + iy * 668265263, seed)


def _hash_mix(h: Tensor, seed: int) -> Tensor:
    """The rest of :func:`_hash` after the lattice term ``ix * 374761393 + iy * 668265263``."""
    h = h + (seed * 2246822519 % 4294967296)
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


@functools.lru_cache(maxsize=8)
def _noise_corners(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The lattice values at the four corners (x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1) of every
    cell, each a (256 * 256,) table indexed by ``y0 * 256 + x0`` (one gather per corner)."""
    n = 1 << _TABLE_BITS
    table = _noise_table(device, dtype).reshape(n, n)
    right = table.roll(-1, dims=1)
    return (
        table.reshape(-1),
        right.reshape(-1).contiguous(),
        table.roll(-1, dims=0).reshape(-1).contiguous(),
        right.roll(-1, dims=0).reshape(-1).contiguous(),
    )


def _value_noise(x: Tensor, y: Tensor, seed: int) -> Tensor:
    """:func:`value_noise` at points (x, y) (two 1-D tensors)."""
    c00, c10, c01, c11 = _noise_corners(x.device, x.dtype)
    mask = (1 << _TABLE_BITS) - 1
    sx, sy = (seed * 7919) % 251, (seed * 104729 + 13) % 241
    bx, by = torch.floor(x), torch.floor(y)
    fx, fy = x - bx, y - by
    # int32 cell indices are exact for float32 input (a float32 beyond 2^31 is a multiple of 256, and an
    # overflowing conversion gives -2^31: both leave the low 8 bits 0, as int64 would)
    itype = torch.int32 if torch.finfo(x.dtype).bits <= 32 else torch.int64
    cell = ((by.to(itype) + sy) & mask) * (1 << _TABLE_BITS) + ((bx.to(itype) + sx) & mask)
    s0 = _smoothstep(fx)
    s1 = _smoothstep(fy)
    n00, n10 = c00.index_select(0, cell), c10.index_select(0, cell)
    n01, n11 = c01.index_select(0, cell), c11.index_select(0, cell)
    a = n10.sub_(n00).mul_(s0).add_(n00)  # n00 + (n10 - n00) * s0, in place
    b = n11.sub_(n01).mul_(s0).add_(n01)
    return b.sub_(a).mul_(s1).add_(a)


def value_noise(uv: Tensor, seed: int) -> Tensor:
    """Smooth 2D value noise in [0, 1] with unit lattice spacing; ``uv`` (R, 2) -> (R,).

    Lattice values come from a fixed 256 x 256 table; ``seed`` shifts the lattice (different seeds give
    different patterns).
    """
    return _value_noise(uv[:, 0].contiguous(), uv[:, 1].contiguous(), seed)


def _fbm(x: Tensor, y: Tensor, seed: int, octaves: int, footprint: Tensor | None) -> Tensor:
    """:func:`fbm` at points (x, y) (two 1-D tensors).

    An octave that has faded completely at a point (weight 0) is exactly its mean 0.5 there, and so is every
    finer one: once enough points have faded, the noise is only evaluated at the others.
    """
    total: Tensor | None = None
    amp, freq, norm = 0.5, 1.0, 0.0
    xs, ys, fs = x, y, footprint  # the points still evaluated ...
    live: Tensor | None = None  # ... and their indices (None: all)
    for k in range(octaves):
        off = 17.0 * k
        w = None
        if fs is not None:
            w = torch.rsub(_fade(fs * freq), 1)
            alive = w != 0
            n_alive = int(alive.sum())
            if n_alive <= len(w) - max(1, len(x) // 8):
                sel = alive.nonzero().squeeze(1)
                xs, ys, fs, w = (v.index_select(0, sel) for v in (xs, ys, fs, w))
                live = sel if live is None else live.index_select(0, sel)
        n = _value_noise(xs * freq + off, ys * freq + off, seed + 1013 * k)
        if w is not None:
            n = 0.5 + (n - 0.5) * w
        if live is not None:
            n = torch.full_like(x, 0.5).index_copy_(0, live, n)
        total = amp * n if total is None else total + amp * n  # 0 + a == a: as summing from zeros
        norm += amp
        amp *= 0.5
        freq *= 2.0
    if total is None:
        return torch.full_like(x, math.nan)  # 0 / 0, as summing no octaves from zeros
    return total / norm


def fbm(uv: Tensor, seed: int, octaves: int = 4, footprint: Tensor | None = None) -> Tensor:
    """Fractal sum of value noise in [0, 1] (R,); octaves finer than the footprint fade to their mean 0.5."""
    return _fbm(uv[:, 0].contiguous(), uv[:, 1].contiguous(), seed, octaves, footprint)


def _fade(ratio: Tensor) -> Tensor:
    """0 while a pattern period spans > 4 footprints, 1 once it spans < 1.5 (``ratio`` = footprint / period)."""
    return _smoothstep(((ratio - 0.25) / (0.67 - 0.25)).clamp(0, 1))


def _smoothstep(x: Tensor) -> Tensor:
    """``x * x * (3 - 2 * x)`` (the same roundings, fewer temporaries)."""
    return (x * x).mul_(torch.rsub(2 * x, 3))


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


@functools.lru_cache(maxsize=64)
def _photo_texels(name: str, level: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Level ``level`` of a photograph's pyramid as a contiguous (h * w, C) table on ``device``."""
    img = _photo_pyramid_cpu(name, 512)[level]
    return img.reshape(img.shape[0], -1).T.contiguous().to(device=device, dtype=dtype)


def load_photo(name: str, max_side: int = 512) -> Tensor:
    """Photograph ``name`` from :data:`PHOTOS` as (C, h, w) float32 in [0, 1] (C = 3, or 1 for grey ones)."""
    if name not in PHOTOS:
        raise InputError(f"unknown photograph {name!r}; expected one of {', '.join(PHOTOS)}")
    return _photo_pyramid_cpu(name, max_side)[0]


def _mirror_index(i: Tensor, n: int) -> Tensor:
    m = torch.remainder(i, 2 * n)
    return torch.where(m < n, m, torch.rsub(m, 2 * n - 1))


def _bilinear(texels: Tensor, h: int, w: int, x: Tensor, y: Tensor) -> Tensor:
    """Sample an image given as (h * w, C) ``texels`` at continuous pixel coordinates (pixel centres at
    integers), mirror-repeat -> (R, C)."""
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.to(torch.int64), y0.to(torch.int64)
    xs = (_mirror_index(x0, w), _mirror_index(x0 + 1, w))
    ys = (_mirror_index(y0, h), _mirror_index(y0 + 1, h))
    r0, r1 = ys[0] * w, ys[1] * w
    c00, c10 = texels.index_select(0, r0 + xs[0]), texels.index_select(0, r0 + xs[1])
    c01, c11 = texels.index_select(0, r1 + xs[0]), texels.index_select(0, r1 + xs[1])
    top = c00 + (c10 - c00) * fx
    bot = c01 + (c11 - c01) * fx
    return top + (bot - top) * fy


def _sample_photo(tex: Texture, u: Tensor, v: Tensor, footprint: Tensor) -> Tensor:
    assert tex.image is not None
    levels = _photo_pyramid_cpu(tex.image, 512)
    h0, w0 = levels[0].shape[-2:]
    texel = tex.scale / w0  # metres per level-0 texel
    lod = torch.log2((footprint / texel).clamp_min(1e-6)).round().clamp(0, len(levels) - 1).to(torch.int64)
    channels = levels[0].shape[0]
    su = u / tex.scale + 0.5  # image-width units, centred
    sv = v / (tex.scale * h0 / w0) + 0.5
    present = torch.bincount(lod, minlength=len(levels)).nonzero().squeeze(1).tolist()
    out = u.new_zeros(len(u), channels)
    for level in present:
        texels = _photo_texels(tex.image, level, u.device, u.dtype)
        h, w = levels[level].shape[-2:]
        if len(present) == 1:
            out = _bilinear(texels, h, w, su * w - 0.5, sv * h - 0.5)
        else:
            sel = (lod == level).nonzero().squeeze(1)
            x, y = su.index_select(0, sel) * w - 0.5, sv.index_select(0, sel) * h - 0.5
            out.index_copy_(0, sel, _bilinear(texels, h, w, x, y))
    if out.shape[1] == 1:
        a, b = u.new_tensor(tex.color_a), u.new_tensor(tex.color_b)
        out = b + (a - b) * out
    return out


# ---------------------------------------------------------------------------------------------- patterns
def _mix(tex: Texture, w: Tensor) -> Tensor:
    a, b = w.new_tensor(tex.color_a), w.new_tensor(tex.color_b)
    return b + (a - b) * w[:, None]


def _box_filtered_pulse(x: Tensor, duty: float, footprint: Tensor) -> Tensor:
    """1 where frac(x) < duty else 0, fading to ``duty`` as the footprint (in periods) grows."""
    p = (torch.remainder(x, 1.0) < duty).to(x.dtype)
    return p + torch.rsub(p, duty) * _fade(footprint)


def needs_footprint(tex: Texture) -> bool:
    """Whether :func:`evaluate_texture` reads the footprint for ``tex`` (solid colours and skies do not)."""
    return tex.kind not in ("solid", "sky")


def evaluate_texture(tex: Texture, uv: Tensor, footprint: Tensor) -> Tensor:
    """Colours (R, 3) in [0, 1] of texture ``tex`` at ``uv`` (R, 2) metres with pixel ``footprint`` (R,) metres."""
    return texture_colors(tex, uv[:, 0].contiguous(), uv[:, 1].contiguous(), footprint)


def texture_colors(tex: Texture, u: Tensor, v: Tensor, footprint: Tensor | None) -> Tensor:
    """:func:`evaluate_texture` at coordinates (u, v) (two 1-D tensors); ``footprint`` may be None when
    :func:`needs_footprint` is false."""
    if tex.angle:
        c, s = math.cos(tex.angle), math.sin(tex.angle)
        u, v = c * u - s * v, s * u + c * v
    fp = footprint / tex.scale if footprint is not None else None  # footprint in periods
    q0, q1 = u / tex.scale, v / tex.scale
    kind = tex.kind
    if kind == "solid":
        rgb = _mix(tex, torch.ones_like(q0))
    elif kind == "sky":
        rgb = _sky(tex, u, v)
    else:
        if fp is None or footprint is None:
            raise InputError(f"texture kind {kind!r} needs a footprint")
        if kind == "checker":
            par = torch.remainder(torch.floor(q0) + torch.floor(q1), 2.0)
            rgb = _mix(tex, par + torch.rsub(par, 0.5) * _fade(fp * 2))
        elif kind == "stripes":
            main = _box_filtered_pulse(q0, 0.5, fp)
            fine = _box_filtered_pulse(q0 * 4 + 0.5, 0.15, fp * 4)
            rgb = _mix(tex, (0.85 * main + 0.15 * fine).clamp(0, 1))
        elif kind == "noise":
            n = _fbm(q0, q1, tex.seed, 5, fp)
            rgb = _mix(tex, ((n - 0.5) * 1.8 + 0.5).clamp(0, 1))
        elif kind == "gradient":
            tri = (torch.remainder(q0, 1.0) * 2 - 1).abs()
            smooth = _smoothstep(tri)
            rgb = _mix(tex, smooth + torch.rsub(smooth, 0.5) * _fade(fp))
        elif kind in ("bricks", "tiles"):
            rgb = _bricks(tex, q0, q1, fp, staggered=kind == "bricks")
        elif kind == "planks":
            rgb = _planks(tex, q0, q1, fp)
        else:  # image
            rgb = _sample_photo(tex, u, v, footprint)
    if tex.grime > 0:
        div = 3.0 * tex.scale
        g = _fbm(u / div + 5.0, v / div + 5.0, tex.seed + 77, 3, None)
        rgb = rgb * (1 - tex.grime + 2 * tex.grime * g)[:, None]
    return rgb.clamp(0, 1)


def _bricks(tex: Texture, q0: Tensor, q1: Tensor, fp: Tensor, staggered: bool) -> Tensor:
    """Bricks (length 1, height 1/3, staggered rows) or square tiles (size 1), colour per unit from the hash."""
    unit_h = 1.0 / 3.0 if staggered else 1.0
    qv = q1 / unit_h
    row = torch.floor(qv)
    u = q0 + (0.5 * torch.remainder(row, 2.0) if staggered else 0.0)
    col = torch.floor(u)
    fu, fv = u - col, qv - row
    mortar = 0.04
    in_mortar = ((fu < mortar) | (fv < mortar / unit_h)).to(q0.dtype)
    cover = 1 - (1 - mortar) * (1 - mortar / unit_h)  # mortar area fraction, the far-away mean
    m = in_mortar + torch.rsub(in_mortar, cover) * _fade(fp / mortar * 0.25)
    lattice = col.to(torch.int64) * 374761393 + row.to(torch.int64) * 668265263
    h1 = _hash_mix(lattice, tex.seed).to(q0.dtype)
    h2 = _hash_mix(lattice, tex.seed + 1).to(q0.dtype)
    a = q0.new_tensor(tex.color_a)
    shade = 0.72 + 0.5 * h1
    brick = a[None] * shade[:, None] + 0.06 * (h2[:, None] - 0.5) * q0.new_tensor([1.0, 0.3, -0.6])
    grain = _fbm(q0 * 12.0, q1 * 12.0, tex.seed + 5, 3, fp * 12.0)
    brick = brick * (0.85 + 0.3 * grain)[:, None]
    b = q0.new_tensor(tex.color_b)
    return brick + (b - brick) * m[:, None]


def _planks(tex: Texture, q0: Tensor, q1: Tensor, fp: Tensor) -> Tensor:
    """Wooden planks: width 1 along v, length 6 along u with staggered joints, grain along u."""
    row = torch.floor(q1)
    irow = row.to(torch.int64)
    shift = _hash(irow, torch.zeros_like(irow), tex.seed).to(q0.dtype) * 6
    u = q0 + shift
    col = torch.floor(u / 6.0)
    h = _hash(col.to(torch.int64), irow, tex.seed + 3).to(q0.dtype)
    grain = _fbm(q0 * 0.6, q1 * 9.0, tex.seed + 9, 4, fp * 9.0)
    w = (0.25 + 0.5 * h + 0.5 * (grain - 0.5)).clamp(0, 1)
    rgb = _mix(tex, w)
    fv = q1 - row
    fu = u / 6.0 - col
    gap = ((fv < 0.03) | (fu < 0.005)).to(q0.dtype)
    gap = gap + torch.rsub(gap, 0.04) * _fade(fp / 0.03 * 0.25)
    return rgb * torch.rsub(0.55 * gap, 1)[:, None]


def _sky(tex: Texture, u: Tensor, v: Tensor) -> Tensor:
    """Sky dome: elevation from ``v`` (v = -elevation * radius, ``scale`` = radius), soft clouds."""
    el = -v / tex.scale  # radians
    az = u / tex.scale
    t = (el / 0.9).clamp(0, 1)
    t = t**0.6
    zenith, horizon = u.new_tensor(tex.color_a), u.new_tensor(tex.color_b)
    sky = horizon + (zenith - horizon) * t[:, None]
    # clouds on a plane above the viewer: coordinates ~ direction / tan(elevation)
    cot = torch.cos(el) / torch.sin(el).clamp_min(0.08)
    c = _fbm(torch.sin(az) * cot * 1.6, torch.cos(az) * cot * 1.6, tex.seed, 5, None)
    cloud = ((c - 0.5) / 0.18).clamp(0, 1) * ((el - 0.02) / 0.15).clamp(0, 1)
    white = u.new_tensor([0.97, 0.97, 0.98])
    return sky + (white - sky) * (0.85 * cloud)[:, None]
