"""Reading, validating, resizing and saving images.

Library images are float32 tensors in [0, 1] of shape (3, H, W) (or (N, 3, H, W) for batches).

:func:`load_image` accepts anything Pillow reads and normalises it:

* EXIF orientation is applied, so pixels come out the way a photo viewer shows them;
* grayscale, palette, CMYK and 1-bit images become RGB;
* transparency is **composited on white** by default (``background="black"`` for black): transparent
  PNGs are mostly cut-outs and logos drawn for a white page, and a white backdrop keeps dark foreground
  edges readable. The choice is recorded in :class:`ImageInfo`;
* 16-bit images (``I;16``, ``I`` from 16-bit PNG, 16-bit RGB PNG when OpenCV is installed) keep their
  precision: values are divided by 65535; float images (mode ``F``) are clipped to [0, 1];
* images larger than ``max_side`` are downscaled (area-preserving, antialiased) and a
  :class:`ImageResizedWarning` says so. The bulk of the reduction happens before any float copy exists (JPEG:
  Pillow's draft mode decodes at 1/2, 1/4 or 1/8 scale; others: a whole-factor box reduction of the 8-bit
  image), so a 12000 x 12000 photo never costs more than a small multiple of its 8-bit size.

Every problem with the file (missing, empty, not an image, truncated, zero size, too large for Pillow's
decompression-bomb guard) raises :class:`~worldwarp.errors.InputError` with one line naming the file.

:func:`prepare_image` brings an image to the working resolution by a cover-resize and a centre crop and
returns the :class:`ImagePrep` that applies the same change to intrinsics (:meth:`ImagePrep.apply_to_cameras`)
and to depth maps (:func:`worldwarp.io.depth.prepare_depth`).
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldwarp.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image as PILImage

    from worldwarp.cameras import Cameras

__all__ = [
    "ImageInfo",
    "ImagePrep",
    "ImageResizedWarning",
    "center_crop_to_aspect",
    "load_image",
    "load_image_header",
    "plan_prepare",
    "prepare_image",
    "resize_image",
    "save_image",
    "to_uint8",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class ImageResizedWarning(UserWarning):
    """An input image was larger than the allowed size and was downscaled."""


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`load_image` found and did.

    Attributes:
        path: the file read.
        format: Pillow's format name ("PNG", "JPEG", ...).
        mode: Pillow's mode of the file ("RGB", "RGBA", "P", "I;16", ...).
        original_size: (height, width) after EXIF orientation, before any resize.
        size: (height, width) of the returned tensor.
        exif_orientation: EXIF orientation tag (1 = none).
        had_alpha: the image had transparency, composited on ``background``.
        background: "white" or "black".
        bit_depth: bits per channel of the source (8, 16 or 32).
    """

    path: Path
    format: str
    mode: str
    original_size: tuple[int, int]
    size: tuple[int, int]
    exif_orientation: int
    had_alpha: bool
    background: str
    bit_depth: int

    @property
    def resized(self) -> bool:
        return self.size != self.original_size


@dataclass(frozen=True)
class ImagePrep:
    """A cover-resize to ``resized`` followed by the crop ``[top:top+height, left:left+width]``.

    Attributes:
        source: (height, width) of the input.
        resized: (height, width) after the resize (each side >= the target).
        top, left: crop offset in the resized image.
        height, width: the working resolution.
    """

    source: tuple[int, int]
    resized: tuple[int, int]
    top: int
    left: int
    height: int
    width: int

    def apply_to_cameras(self, cameras: Cameras) -> Cameras:
        """Cameras of the source image (size ``source``) -> cameras of the prepared image."""
        if (cameras.height, cameras.width) != self.source:
            raise InputError(
                f"cameras are for {cameras.width}x{cameras.height} images but the image is "
                f"{self.source[1]}x{self.source[0]}"
            )
        rh, rw = self.resized
        return cameras.resize(rh, rw).crop(self.top, self.left, self.height, self.width)


def _open_error(path: Path, e: BaseException) -> InputError:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return InputError(f"{path}: cannot read image ({msg})")


def _check_file(path: Path, what: str = "image") -> None:
    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    if path.is_dir():
        raise InputError(f"{path}: expected an {what} file, got a folder")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: {what} file is empty (0 bytes)")


def _read_16bit_rgb_png(path: Path) -> np.ndarray | None:
    """(H, W, 3|4) uint16 of a 16-bit colour PNG via OpenCV, or None when OpenCV is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
        return None
    return arr[..., [2, 1, 0, 3][: arr.shape[2]]]  # BGR(A) -> RGB(A)


_EXIF_TRANSPOSE = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}  # orientation -> Image.Transpose (as exif_transpose)


def _rotate_like_exif(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an (H, W, C) array, as ImageOps.exif_transpose does."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """(H, W, C) -> (ceil(H / f), ceil(W / f), C) float32 means of f x f blocks (edge blocks may be smaller)."""
    h, w, c = a.shape
    out = np.empty((-(-h // f), -(-w // f), c), dtype=np.float32)
    for i in range(out.shape[0]):
        rows = a[i * f : (i + 1) * f].astype(np.float32)
        full = (w // f) * f
        out[i, : w // f] = rows[:, :full].reshape(rows.shape[0], w // f, f, c).mean(axis=(0, 2))
        if full < w:
            out[i, w // f :] = rows[:, full:].mean(axis=(0, 1))
    return out


def _to_float_rgba(img: PILImage.Image) -> tuple[np.ndarray, bool, int]:
    """(H, W, 4) float32 RGBA in [0, 1] (alpha 1 when absent), had_alpha, bit depth of the source."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(img).astype(np.float64)
        gray = np.clip(a / 65535.0, 0.0, 1.0).astype(np.float32)
        return np.dstack([gray, gray, gray, np.ones_like(gray)]), False, 16 if mode != "I" or a.max() <= 65535 else 32
    if mode == "F":
        gray = np.clip(np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0), 0.0, 1.0)
        return np.dstack([gray, gray, gray, np.ones_like(gray)]), False, 32
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode in ("P", "L", "RGB") and "transparency" in img.info)
    img = img.convert("RGBA") if has_alpha else img.convert("RGB")
    a = np.asarray(img, dtype=np.float32) / 255.0
    if not has_alpha:
        a = np.dstack([a, np.ones_like(a[..., :1])])
    return a, has_alpha, 8


def load_image(
    path: str | os.PathLike[str],
    *,
    max_side: int | None = None,
    background: Literal["white", "black"] = "white",
) -> tuple[Tensor, ImageInfo]:
    """Read an image file as a float32 tensor (3, H, W) in [0, 1] plus what was found (see module doc).

    Args:
        path: image file (PNG, JPEG, WebP, BMP, TIFF, ... anything Pillow opens).
        max_side: downscale (keeping the aspect ratio) so that max(H, W) <= max_side, with a warning.
        background: colour transparent pixels are composited on.

    Raises:
        InputError: missing, empty, unreadable, corrupt, truncated or zero-size image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if background not in ("white", "black"):
        raise ValueError(f"background must be 'white' or 'black', got {background!r}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # big photos are resized below
            img = Image.open(path)
            tile_args = str(img.tile[0].args) if getattr(img, "tile", None) else ""  # "RGB;16B": 16-bit PNG
            fmt = img.format or path.suffix.lstrip(".").upper()
            mode = img.mode
            if img.width == 0 or img.height == 0:
                raise InputError(f"{path}: image has zero size ({img.width}x{img.height})")
            orientation = int(img.getexif().get(0x0112, 1) or 1)
            header_w, header_h = img.size
            if max_side is not None and fmt == "JPEG" and max(img.size) > 2 * max_side:
                img.draft("RGB", (max_side, max_side))  # decode at 1/2, 1/4 or 1/8 scale: fast and light
            img.load()
    except InputError:
        raise
    except Image.DecompressionBombError as e:
        raise InputError(f"{path}: image is too large to decode safely ({e})") from e
    except UnidentifiedImageError as e:
        raise InputError(f"{path}: not an image file or an unsupported/corrupt format") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        if "truncated" in str(e):
            raise InputError(f"{path}: image file is truncated (incomplete download or copy?)") from e
        raise _open_error(path, e) from e

    # a huge image is reduced by a whole factor right after decoding (JPEG: already while decoding, by draft),
    # before any float copy, so memory stays a small multiple of the 8-bit image
    factor = 1
    if max_side is not None and max(img.size) > max_side:
        factor = -(-max(img.size) // max_side)
    with img:
        raw16 = _read_16bit_rgb_png(path) if fmt == "PNG" and "16" in tile_args and mode in ("RGB", "RGBA") else None
        if raw16 is not None:
            if factor > 1:
                raw16 = _block_mean(raw16, factor)
            a = raw16.astype(np.float32) / 65535.0
            had_alpha = a.shape[2] == 4
            if not had_alpha:
                a = np.dstack([a, np.ones_like(a[..., :1])])
            rgba = _rotate_like_exif(a, orientation)
            bit_depth = 16
        else:
            src = img
            if factor > 1:
                try:
                    src = img.reduce(factor)
                except (ValueError, NotImplementedError):  # a mode Pillow cannot reduce: resized as floats below
                    src = img
            if src is not img and orientation in _EXIF_TRANSPOSE:
                src = src.transpose(_EXIF_TRANSPOSE[orientation])
            elif src is img:
                try:
                    src = ImageOps.exif_transpose(img)
                except Exception:  # a broken EXIF block must not make the pixels unreadable
                    src = img
            rgba, had_alpha, bit_depth = _to_float_rgba(src)
    if had_alpha:
        bg = 1.0 if background == "white" else 0.0
        rgb = rgba[..., :3] * rgba[..., 3:] + bg * (1.0 - rgba[..., 3:])
    else:
        rgb = rgba[..., :3]
    del rgba
    image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().clamp_(0.0, 1.0)
    del rgb

    # size as a viewer shows it: the header's, swapped for 90-degree orientations (a JPEG draft decodes smaller)
    file_size = (header_w, header_h) if orientation in (5, 6, 7, 8) else (header_h, header_w)
    if max_side is not None and max(image.shape[1:]) > max_side:
        h, w = image.shape[1:]
        s = max_side / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        image = resize_image(image, nh, nw, mode="area")
    if max_side is not None and max(file_size) > max_side:
        warnings.warn(
            f"{path}: image is {file_size[1]}x{file_size[0]}, resized to {image.shape[2]}x{image.shape[1]} "
            f"(max side {max_side})",
            ImageResizedWarning,
            stacklevel=2,
        )
    info = ImageInfo(
        path=path,
        format=fmt,
        mode=mode,
        original_size=file_size,
        size=(int(image.shape[1]), int(image.shape[2])),
        exif_orientation=orientation,
        had_alpha=had_alpha,
        background=background,
        bit_depth=bit_depth,
    )
    return image, info


def load_image_header(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(height, width) of an image file as stored (no EXIF rotation), reading only its header: a quick check that
    :func:`load_image` can open it. Missing, empty and non-image files raise the same one-line
    :class:`InputError` as there."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
    except Image.DecompressionBombError as e:
        raise InputError(f"{path}: image is too large to decode safely ({e})") from e
    except UnidentifiedImageError as e:
        raise InputError(f"{path}: not an image file or an unsupported/corrupt format") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise _open_error(path, e) from e
    if w == 0 or h == 0:
        raise InputError(f"{path}: image has zero size ({w}x{h})")
    return h, w


def to_uint8(image: Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] (or (H, W, 3) uint8) -> (H, W, 3) uint8 numpy, rounding to nearest."""
    if image.ndim != 3:
        raise ValueError(f"expected one image (3, H, W) or (H, W, 3), got shape {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        arr = image if image.shape[-1] == 3 else image.permute(1, 2, 0)
        return arr.detach().cpu().contiguous().numpy()
    if image.shape[0] != 3:
        raise ValueError(f"expected a float image (3, H, W), got shape {tuple(image.shape)}")
    x = image.detach().float().cpu().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return x.permute(1, 2, 0).contiguous().numpy()


def save_image(path: str | os.PathLike[str], image: Tensor, *, quality: int = 95) -> None:
    """Save an image (3, H, W) float in [0, 1] or (H, W, 3) uint8 atomically.

    The format follows the suffix (.png default, .jpg/.jpeg with ``quality``, .webp, .bmp, .tif).
    """
    from PIL import Image

    from worldwarp.io.atomic import atomic_write

    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}.get(
        path.suffix.lower(), "PNG"
    )
    pil = Image.fromarray(to_uint8(torch.as_tensor(image)))
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {}))
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())


def resize_image(
    image: Tensor,
    height: int,
    width: int,
    *,
    mode: Literal["area", "bilinear", "bicubic", "nearest"] = "bilinear",
) -> Tensor:
    """Resize (..., C, H, W) to (..., C, height, width).

    ``bilinear``/``bicubic`` are antialiased when shrinking (``bicubic`` is clamped to [0, 1]); ``area``
    averages the covered source area (exact box filter for integer factors); ``nearest`` picks the pixel
    whose centre is nearest (pixel-centre convention, ``nearest-exact``).
    """
    if height < 1 or width < 1:
        raise ValueError(f"target size must be positive, got {height}x{width}")
    if image.ndim < 3:
        raise ValueError(f"expected (..., C, H, W), got shape {tuple(image.shape)}")
    lead = image.shape[:-3]
    x = image.reshape(-1, *image.shape[-3:])
    if tuple(x.shape[-2:]) == (height, width):
        return image.clone()
    dtype = x.dtype
    if not x.is_floating_point():
        x = x.float()
    if mode == "nearest":
        y = F.interpolate(x, size=(height, width), mode="nearest-exact")
    elif mode == "area":
        y = F.interpolate(x, size=(height, width), mode="area")
    elif mode in ("bilinear", "bicubic"):
        y = F.interpolate(x, size=(height, width), mode=mode, align_corners=False, antialias=True)
        if mode == "bicubic":
            y = y.clamp(0.0, 1.0)
    else:
        raise ValueError(f"unknown resize mode {mode!r}")
    if not dtype.is_floating_point:
        y = y.round().to(dtype)
    return y.reshape(*lead, *y.shape[-3:])


def center_crop_to_aspect(image: Tensor, aspect: float) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Largest centred crop of (..., H, W) with width / height ~= ``aspect``.

    Returns the crop and its box ``(top, left, height, width)`` (for :meth:`Cameras.crop`).
    """
    if aspect <= 0:
        raise ValueError(f"aspect must be > 0, got {aspect}")
    h, w = image.shape[-2:]
    if w / h > aspect:
        cw, ch = max(1, min(w, round(h * aspect))), h
    else:
        cw, ch = w, max(1, min(h, round(w / aspect)))
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[..., top : top + ch, left : left + cw], (top, left, ch, cw)


def plan_prepare(source: tuple[int, int], height: int, width: int) -> ImagePrep:
    """The :class:`ImagePrep` that maps an image of size ``source`` (H, W) to ``(height, width)``.

    The image is scaled by ``s = max(height / H, width / W)`` (so it covers the target), rounded to whole
    pixels, then centre-cropped.
    """
    if height < 1 or width < 1:
        raise ValueError(f"working size must be positive, got {height}x{width}")
    h0, w0 = source
    s = max(height / h0, width / w0)
    rh, rw = max(height, round(h0 * s)), max(width, round(w0 * s))
    return ImagePrep(source=(h0, w0), resized=(rh, rw), top=(rh - height) // 2, left=(rw - width) // 2,
                     height=height, width=width)  # fmt: skip


def prepare_image(image: Tensor, height: int, width: int) -> tuple[Tensor, ImagePrep]:
    """Cover-resize (antialiased) and centre-crop (..., 3, H, W) to (..., 3, height, width).

    Returns the prepared image and the :class:`ImagePrep`; ``prep.apply_to_cameras(cams)`` updates
    intrinsics of the source image to match.
    """
    prep = plan_prepare((int(image.shape[-2]), int(image.shape[-1])), height, width)
    x = resize_image(image, *prep.resized, mode="bilinear")
    x = x[..., prep.top : prep.top + height, prep.left : prep.left + width]
    return x.contiguous(), prep
