"""Reading, validating, resizing and saving depth maps.

A depth map is a float32 tensor (H, W) of **z-depth** (along the optical axis) in scene units; 0 marks an
invalid pixel. Supported files:

* ``.npy`` / ``.npz`` (key ``depth`` or the only array): float arrays are taken as they are (times ``scale``
  when given); integer arrays are millimetres (``scale`` defaults to 0.001);
* 16-bit PNG / TIFF (``I;16`` / ``I``): millimetres by default (``scale`` = 0.001 unless given); float TIFF
  (mode ``F``) as it is; an 8-bit PNG is refused (too coarse to be depth);
* ``.exr``: first channel named Z, depth, Y, R or V (else the first one), read with the ``OpenEXR`` package
  (``pip install OpenEXR``, or ``pip install worldwarp[exr]``); without it an InputError says what to install;
* ``.pfm`` (Portable Float Map, grayscale or colour: the first channel is used).

Validation: NaN / inf and negative values become 0 (invalid) with a warning naming the file and the count; a
map with no positive value is an InputError. :func:`check_depth_matches` compares sizes with an image; resizing
depth (:func:`resize_depth`, :func:`prepare_depth`) always uses nearest neighbour so no depth is invented
across edges.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldwarp.errors import InputError
from worldwarp.io.images import ImagePrep, plan_prepare

__all__ = [
    "DepthWarning",
    "check_depth_matches",
    "load_depth",
    "prepare_depth",
    "resize_depth",
    "sanitize_depth",
    "save_depth",
]

DEPTH_SUFFIXES = (".npy", ".npz", ".png", ".tif", ".tiff", ".exr", ".pfm")
EXR_MAGIC = b"\x76\x2f\x31\x01"
_EXR_CHANNELS = ("Z", "depth", "Depth", "Y", "R", "V", "distance")


class DepthWarning(UserWarning):
    """A depth map had invalid values that were masked out."""


def _squeeze_2d(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:-1])
    if arr.ndim != 2:
        raise InputError(f"{path}: depth must be a 2-D array (H, W), got shape {tuple(arr.shape)}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{path}: depth map has zero size {tuple(arr.shape)}")
    return arr


def _read_npy(path: Path) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npy/.npz depth file ({str(e).splitlines()[0]})") from e
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            keys = list(data.keys())
            key = "depth" if "depth" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise InputError(f"{path}: .npz holds {keys}; name the depth array 'depth'")
            data = data[key]
    if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
        raise InputError(f"{path}: depth array has unsupported dtype {data.dtype}")
    return data


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                return np.asarray(img).astype(np.int64 if mode == "I" else np.uint16)
            if mode == "F":
                return np.asarray(img, dtype=np.float32)
    except UnidentifiedImageError as e:
        raise InputError(f"{path}: not an image file or an unsupported/corrupt format") from e
    except (OSError, SyntaxError, ValueError) as e:
        if "truncated" in str(e):
            raise InputError(f"{path}: depth image is truncated") from e
        raise InputError(f"{path}: cannot read depth image ({str(e).splitlines()[0]})") from e
    raise InputError(
        f"{path}: depth image has mode {mode} ({'8-bit' if mode in ('L', 'P', 'RGB', 'RGBA') else mode}); "
        "save depth as 16-bit PNG in millimetres, float TIFF, .npy, .pfm or .exr"
    )


def _read_exr(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        if f.read(4) != EXR_MAGIC:
            raise InputError(f"{path}: not an OpenEXR file (bad magic number)")
    try:
        import OpenEXR  # optional
    except ImportError:
        OpenEXR = None  # noqa: N806
    if OpenEXR is not None and hasattr(OpenEXR, "File"):
        try:
            with OpenEXR.File(str(path)) as exr:
                channels = exr.channels()
                names = list(channels)
                name = next((c for c in _EXR_CHANNELS if c in names), names[0] if names else None)
                if name is None:
                    raise InputError(f"{path}: EXR file has no channels")
                arr = np.asarray(channels[name].pixels)
        except InputError:
            raise
        except Exception as e:  # the bindings raise plain Exceptions on corrupt files
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputError(f"{path}: cannot read EXR ({msg})") from e
        if arr.ndim == 3:  # interleaved RGB(A) channel group
            arr = arr[..., 0]
        return arr.astype(np.float32)
    try:  # imageio with a plugin that truly reads EXR (freeimage)
        import imageio.v3 as iio

        return np.asarray(iio.imread(path, plugin="EXR-FI"), dtype=np.float32)
    except Exception as e:
        raise InputError(
            f"{path}: reading EXR depth needs the OpenEXR package: pip install OpenEXR "
            "(or pip install 'worldwarp[exr]'; imageio's freeimage plugin also works), or save depth as .npy"
        ) from e


def _read_pfm(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        data = f.read()
    m = re.match(rb"(P[Ff])\s+(\d+)\s+(\d+)\s+([-+0-9.eE]+)\s", data)
    if m is None:
        raise InputError(f"{path}: not a PFM file (bad header)")
    channels = 3 if m.group(1) == b"PF" else 1
    w, h, scale = int(m.group(2)), int(m.group(3)), float(m.group(4))
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    n = w * h * channels
    body = data[m.end() : m.end() + 4 * n]
    if len(body) != 4 * n:
        raise InputError(f"{path}: PFM file is truncated ({len(body)} of {4 * n} data bytes)")
    arr = np.frombuffer(body, dtype=dtype).reshape(h, w, channels)[..., 0]
    return np.ascontiguousarray(arr[::-1]).astype(np.float32)  # PFM rows run bottom to top


def sanitize_depth(depth: Tensor, name: str = "depth") -> Tensor:
    """Set NaN, inf and negative values to 0 (invalid); warn with the count; InputError if nothing is valid."""
    bad_finite = ~torch.isfinite(depth)
    negative = torch.isfinite(depth) & (depth < 0)
    n_bad = int(bad_finite.sum()) + int(negative.sum())
    out = torch.where(bad_finite | negative, torch.zeros_like(depth), depth)
    if not bool((out > 0).any()):
        raise InputError(f"{name}: depth map has no valid pixels (all zero, negative, NaN or inf)")
    if n_bad:
        pct = 100.0 * n_bad / depth.numel()
        warnings.warn(
            f"{name}: {int(bad_finite.sum())} NaN/inf and {int(negative.sum())} negative depth values "
            f"({pct:.2g}% of pixels) treated as invalid",
            DepthWarning,
            stacklevel=3,
        )
    return out


def load_depth(path: str | os.PathLike[str], *, scale: float | None = None) -> Tensor:
    """Read a depth map as float32 (H, W) z-depth; 0 = invalid (see module doc for formats and units).

    Args:
        path: .npy, .npz, .png, .tif, .exr or .pfm file.
        scale: multiply stored values by this to get scene units. Defaults: 0.001 for integer data
            (millimetres -> metres), 1 for float data.

    Raises:
        InputError: missing/corrupt file, unsupported format, or no valid pixel.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"depth file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path}: expected a depth file, got a folder")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: depth file is empty (0 bytes)")
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise InputError(f"depth scale must be a positive number, got {scale}")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        arr = _read_npy(path)
    elif suffix in (".png", ".tif", ".tiff"):
        arr = _read_png(path)
    elif suffix == ".exr":
        arr = _read_exr(path)
    elif suffix == ".pfm":
        arr = _read_pfm(path)
    else:
        raise InputError(f"{path}: unsupported depth format '{suffix}' (use one of {', '.join(DEPTH_SUFFIXES)})")
    arr = _squeeze_2d(np.asarray(arr), path)
    if scale is None:
        scale = 1.0 if np.issubdtype(arr.dtype, np.floating) else 0.001
    depth = torch.from_numpy(arr.astype(np.float64) * scale).float()
    return sanitize_depth(depth, str(path))


def save_depth(path: str | os.PathLike[str], depth: Tensor, *, scale: float = 0.001) -> None:
    """Save z-depth (H, W) atomically: .npy (float32), .png (uint16, value = depth / ``scale``, i.e.
    millimetres by default; values beyond 65535 clip, 0 stays invalid) or .pfm (float32)."""
    from worldwarp.io.atomic import atomic_save_npy, atomic_write

    path = Path(path)
    d = torch.as_tensor(depth).detach().float().cpu()
    if d.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {tuple(d.shape)}")
    d = torch.nan_to_num(d, nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0.0)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        atomic_save_npy(path, d.numpy())
    elif suffix == ".png":
        import io

        from PIL import Image

        q = np.clip(np.round(d.numpy() / scale), 0, 65535).astype(np.uint16)
        buf = io.BytesIO()
        Image.fromarray(q).save(buf, format="PNG")
        with atomic_write(path) as f:
            f.write(buf.getvalue())
    elif suffix == ".pfm":
        h, w = d.shape
        header = f"Pf\n{w} {h}\n-1.0\n".encode("ascii")
        body = np.ascontiguousarray(d.numpy()[::-1]).astype("<f4").tobytes()
        with atomic_write(path) as f:
            f.write(header + body)
    else:
        raise InputError(f"{path}: cannot save depth as '{suffix}' (use .npy, .png or .pfm)")


def check_depth_matches(
    depth: Tensor, image: Tensor | tuple[int, int], *, depth_name: str = "depth", image_name: str = "image"
) -> None:
    """InputError unless depth (..., H, W) has the size of ``image`` ((..., 3, H, W) or an (H, W) tuple)."""
    hw = tuple(image) if isinstance(image, tuple) else tuple(image.shape[-2:])
    dhw = tuple(depth.shape[-2:])
    if dhw != hw:
        raise InputError(
            f"{depth_name} is {dhw[1]}x{dhw[0]} (WxH) but {image_name} is {hw[1]}x{hw[0]}; "
            "depth must have the image's size"
        )


def resize_depth(depth: Tensor, height: int, width: int) -> Tensor:
    """Nearest-neighbour resize of (..., H, W) depth (pixel-centre convention: output pixel centre maps to the
    nearest input pixel centre), so invalid zeros and edges are never blended."""
    if tuple(depth.shape[-2:]) == (height, width):
        return depth.clone()
    lead = depth.shape[:-2]
    x = depth.reshape(-1, 1, *depth.shape[-2:])
    y = F.interpolate(x, size=(height, width), mode="nearest-exact")
    return y.reshape(*lead, height, width)


def prepare_depth(depth: Tensor, prep: ImagePrep | tuple[int, int]) -> Tensor:
    """Apply an image's :class:`ImagePrep` (cover-resize + centre crop) to its depth (..., H, W), nearest.

    ``prep`` may also be a target ``(height, width)``; the plan is then made from the depth's own size.
    """
    if isinstance(prep, tuple):
        prep = plan_prepare((int(depth.shape[-2]), int(depth.shape[-1])), *prep)
    check_depth_matches(depth, prep.source, image_name="the source image")
    d = resize_depth(depth, *prep.resized)
    return d[..., prep.top : prep.top + prep.height, prep.left : prep.left + prep.width].contiguous()
