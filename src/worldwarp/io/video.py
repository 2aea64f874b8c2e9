"""Videos and frame folders: mp4 via the ffmpeg binary that imageio-ffmpeg ships, plus debug compositions.

* :func:`write_video` (all at once) and :class:`VideoWriter` (batch by batch): H.264 in yuv420p (plays
  everywhere). yuv420p needs even sizes: an odd height or width is **padded** by repeating the last row /
  column (``even="pad"``, nothing is lost) or cropped (``even="crop"``). Written atomically.
* :func:`read_video`: (N, 3, H, W) float32 in [0, 1].
* :func:`sample_video`: every k-th frame as uint8, with the clip's frame count (long clips stay small).
* :func:`write_frames`: ``00000.png, 00001.png, ...``.
* :func:`side_by_side`: the debug video (prior | mask | result), with optional labels.
* :func:`frame_strip`: n evenly spaced frames in one row (README figures).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldwarp.errors import InputError

__all__ = [
    "VideoSample",
    "VideoWriter",
    "count_video_frames",
    "frame_strip",
    "read_video",
    "sample_video",
    "side_by_side",
    "to_uint8_frames",
    "write_frames",
    "write_video",
]


def to_uint8_frames(frames: Tensor | np.ndarray) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] or (N, H, W, 3) uint8 (tensor or array) -> (N, H, W, 3) uint8 numpy."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if frames.ndim != 4:
        raise ValueError(f"expected frames (N, 3, H, W) or (N, H, W, 3), got shape {tuple(frames.shape)}")
    if frames.dtype == torch.uint8:
        if frames.shape[-1] == 3:
            return frames.detach().cpu().contiguous().numpy()
        if frames.shape[1] == 3:
            return frames.detach().cpu().permute(0, 2, 3, 1).contiguous().numpy()
    elif frames.shape[1] == 3:
        x = frames.detach().float().cpu().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1).contiguous().numpy()
    raise ValueError(
        f"expected float frames (N, 3, H, W) or uint8 (N, H, W, 3), got {frames.dtype} of shape {tuple(frames.shape)}"
    )


def _make_even(frames: np.ndarray, even: str) -> np.ndarray:
    n, h, w, c = frames.shape
    ph, pw = h % 2, w % 2
    if not (ph or pw):
        return frames
    if even == "crop":
        if h - ph < 2 or w - pw < 2:
            raise ValueError(f"frames of size {w}x{h} are too small to crop to even sizes")
        return np.ascontiguousarray(frames[:, : h - ph, : w - pw])
    if even == "pad":
        return np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    raise ValueError(f"even must be 'pad' or 'crop', got {even!r}")


class VideoWriter:
    """Encode a video batch by batch (H.264 / yuv420p, like :func:`write_video`), atomically: the file appears
    under its name on :meth:`close`, and not at all when the block raises. Memory holds one batch at a time.

    Use as a context manager::

        with VideoWriter(path, fps=16) as video:
            for batch in batches:  # (n, 3, H, W) float in [0, 1] or (n, H, W, 3) uint8, same size each time
                video.add(batch)

    A full disk (ffmpeg failing with "No space left on device") is an :class:`InputError`.
    """

    def __init__(
        self, path: str | os.PathLike[str], fps: float = 16, *, crf: int = 18, even: Literal["pad", "crop"] = "pad"
    ) -> None:
        if not fps > 0 or not np.isfinite(fps):
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path, self.fps, self.crf, self.even = Path(path), fps, crf, even
        self.frames = 0
        self._ctx: Any = None
        self._tmp: Path | None = None
        self._writer: Any = None
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        from worldwarp.io.atomic import atomic_path

        self._ctx = atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        return self

    def _start(self, h: int, w: int) -> None:
        import imageio_ffmpeg

        self._size = (h, w)
        self._writer = imageio_ffmpeg.write_frames(
            str(self._tmp),
            size=(w, h),
            fps=self.fps,
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            quality=None,
            macro_block_size=1,
            output_params=["-crf", str(int(self.crf)), "-preset", "medium", "-movflags", "+faststart"],
        )
        self._writer.send(None)  # start ffmpeg

    def add(self, frames: Tensor | np.ndarray) -> None:
        """Append frames (n, 3, H, W) float in [0, 1] or (n, H, W, 3) uint8."""
        if self._ctx is None:
            raise RuntimeError("use VideoWriter as a context manager")
        arr = _make_even(to_uint8_frames(frames), self.even)
        if self._writer is None:
            self._start(*arr.shape[1:3])
        elif tuple(arr.shape[1:3]) != self._size:
            raise ValueError(f"frames of size {arr.shape[2]}x{arr.shape[1]} after {self._size[1]}x{self._size[0]}")
        try:
            for frame in arr:
                self._writer.send(np.ascontiguousarray(frame))
        except (OSError, RuntimeError) as e:
            raise _ffmpeg_error(e, self.path) from e
        self.frames += len(arr)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        ctx, self._ctx = self._ctx, None
        try:
            if self._writer is not None:
                try:
                    self._writer.close()
                except (OSError, RuntimeError) as e:
                    if exc is None:
                        raise _ffmpeg_error(e, self.path) from e
            if exc is None and self.frames == 0:
                raise ValueError("cannot write a video with no frames")
        except BaseException as e:
            ctx.__exit__(type(e), e, e.__traceback__)
            raise
        ctx.__exit__(exc_type, exc, tb)


def _ffmpeg_error(e: BaseException, path: Path) -> BaseException:
    """A full disk reported by ffmpeg becomes the same InputError as any other full-disk write."""
    import errno
    import shutil

    text = str(e)
    full = getattr(e, "errno", None) == errno.ENOSPC or "No space left" in text
    if not full:
        try:
            full = shutil.disk_usage(path.parent).free < (1 << 20)
        except OSError:
            pass
    return InputError(f"disk full while writing {path}") if full else e


def write_video(
    path: str | os.PathLike[str],
    frames: Tensor | np.ndarray,
    fps: float = 16,
    *,
    crf: int = 18,
    even: Literal["pad", "crop"] = "pad",
) -> Path:
    """Encode frames as H.264 / yuv420p (``crf`` 0-51, lower = better; 18 is visually lossless) atomically.

    Args:
        path: output file; the container follows the suffix (.mp4 recommended, .mov, .mkv).
        frames: (N, 3, H, W) float in [0, 1] or (N, H, W, 3) uint8.
        fps: frames per second.
        crf: x264 constant rate factor.
        even: make odd sizes even by padding (repeat the edge) or cropping one row / column.

    Returns the path written. For long videos, :class:`VideoWriter` encodes batch by batch.
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    arr = _make_even(to_uint8_frames(frames), even)
    if arr.shape[0] == 0:
        raise ValueError("cannot write a video with no frames")
    with VideoWriter(path, fps, crf=crf, even=even) as video:
        video.add(arr)
    return Path(path)


def read_video(path: str | os.PathLike[str], *, max_frames: int | None = None) -> Tensor:
    """Decode a video file to (N, 3, H, W) float32 in [0, 1] (at most ``max_frames`` frames).

    Raises:
        InputError: missing, empty or undecodable file.
    """
    import imageio_ffmpeg

    path = Path(path)
    if not path.exists():
        raise InputError(f"video not found: {path}")
    if path.is_dir() or path.stat().st_size == 0:
        raise InputError(f"{path}: not a video file (folder or empty file)")
    try:
        gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = gen.__next__()
        w, h = meta["size"]
        frames: list[np.ndarray] = []
        for buf in gen:
            frames.append(np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3))
            if max_frames is not None and len(frames) >= max_frames:
                break
        gen.close()
    except (OSError, RuntimeError, StopIteration, KeyError) as e:
        msg = str(e).strip().splitlines()
        raise InputError(f"{path}: cannot decode video ({msg[-1] if msg else type(e).__name__})") from e
    if not frames:
        raise InputError(f"{path}: video has no frames")
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous()


@dataclass
class VideoSample:
    """Frames ``indices`` of a clip of ``total`` frames: ``frames`` (len(indices), 3, H, W) uint8."""

    frames: Tensor
    indices: list[int]
    total: int
    fps: float


def _check_video_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"video not found: {path}")
    if path.is_dir() or path.stat().st_size == 0:
        raise InputError(f"{path}: not a video file (folder or empty file)")


def count_video_frames(path: str | os.PathLike[str]) -> int:
    """Number of frames of a video (ffmpeg decodes it once, without keeping frames)."""
    import imageio_ffmpeg

    path = Path(path)
    _check_video_file(path)
    try:
        n, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (OSError, RuntimeError, ValueError) as e:
        msg = str(e).strip().splitlines()
        raise InputError(f"{path}: cannot decode video ({msg[-1] if msg else type(e).__name__})") from e
    if n < 1:
        raise InputError(f"{path}: video has no frames")
    return int(n)


def sample_video(path: str | os.PathLike[str], every: int = 1) -> VideoSample:
    """Decode frames 0, ``every``, 2 ``every``, ... and the last frame of a video as uint8.

    Only the kept frames are held in memory. Raises :class:`InputError` for a missing, empty or undecodable
    file.
    """
    import imageio_ffmpeg

    if every < 1:
        raise InputError(f"frame step must be >= 1, got {every}")
    path = Path(path)
    _check_video_file(path)
    kept: list[np.ndarray] = []
    indices: list[int] = []
    last: np.ndarray | None = None
    total = 0
    try:
        gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = gen.__next__()
        w, h = meta["size"]
        fps = float(meta.get("fps") or 0.0)
        for buf in gen:
            last = np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3)
            if total % every == 0:
                kept.append(last)
                indices.append(total)
            total += 1
        gen.close()
    except (OSError, RuntimeError, StopIteration, KeyError) as e:
        msg = str(e).strip().splitlines()
        raise InputError(f"{path}: cannot decode video ({msg[-1] if msg else type(e).__name__})") from e
    if last is None:
        raise InputError(f"{path}: video has no frames")
    if indices[-1] != total - 1:
        kept.append(last)
        indices.append(total - 1)
    frames = torch.from_numpy(np.stack(kept)).permute(0, 3, 1, 2).contiguous()
    return VideoSample(frames, indices, total, fps)


def write_frames(
    folder: str | os.PathLike[str], frames: Tensor | np.ndarray, start_index: int = 0, *, digits: int = 5
) -> list[Path]:
    """Save frames as ``folder/00000.png, 00001.png, ...`` (numbering from ``start_index``), each atomically.

    Returns the paths written.
    """
    from worldwarp.io.images import save_image

    arr = to_uint8_frames(frames)
    folder = Path(folder)
    paths = []
    for i, frame in enumerate(arr):
        p = folder / f"{start_index + i:0{digits}d}.png"
        save_image(p, torch.from_numpy(frame))
        paths.append(p)
    return paths


def _as_rgb_video(v: Tensor) -> Tensor:
    """(N, 3, H, W) float, (N, H, W) mask/gray or (N, 1, H, W) -> (N, 3, H, W) float32 in [0, 1]."""
    if v.dtype == torch.uint8:
        v = v.float() / 255.0
    v = v.float()
    if v.ndim == 3:
        v = v[:, None]
    if v.ndim != 4 or v.shape[1] not in (1, 3):
        raise ValueError(f"expected (N, 3, H, W), (N, 1, H, W) or (N, H, W), got shape {tuple(v.shape)}")
    return v.expand(-1, 3, -1, -1).clamp(0.0, 1.0)


def _label_band(text: str, width: int, height: int) -> Tensor:
    """(3, height, width) dark band with ``text`` in white (Pillow's built-in font)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=max(8, int(height * 0.7)))
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = max(2, (width - (right - left)) // 2 - left)
    y = (height - (bottom - top)) // 2 - top
    draw.text((x, y), text, fill=(255, 255, 255), font=font)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)


def side_by_side(
    *videos: Tensor, labels: Sequence[str] | None = None, gap: int = 4, label_height: int | None = None
) -> Tensor:
    """Place videos next to each other: (N, 3, H, W_total) float32.

    Args:
        videos: each (N, 3, H, W) in [0, 1], or a mask / gray video (N, H, W) (bool or float), all with the
            same N. Videos of another height are resized (bilinear) to the first one's height, keeping aspect.
        labels: one caption per video, drawn on a band above it.
        gap: black columns between videos.
        label_height: band height (default: max(12, H // 12)).

    Panel k occupies columns ``[x_k, x_k + W_k)`` with ``x_k = sum(W_j + gap for j < k)`` and rows
    ``[band, band + H)``.
    """
    if not videos:
        raise ValueError("side_by_side needs at least one video")
    vids = [_as_rgb_video(v) for v in videos]
    n, h = vids[0].shape[0], vids[0].shape[2]
    if any(v.shape[0] != n for v in vids):
        raise ValueError(f"videos have different frame counts: {[v.shape[0] for v in vids]}")
    if labels is not None and len(labels) != len(vids):
        raise ValueError(f"got {len(labels)} labels for {len(vids)} videos")
    for i, v in enumerate(vids):
        if v.shape[2] != h:
            nw = max(1, round(v.shape[3] * h / v.shape[2]))
            vids[i] = F.interpolate(v, size=(h, nw), mode="bilinear", align_corners=False, antialias=True)
    widths = [v.shape[3] for v in vids]
    total = sum(widths) + gap * (len(vids) - 1)
    band = 0 if labels is None else (label_height or max(12, h // 12))
    out = torch.zeros(n, 3, band + h, total, dtype=torch.float32, device=vids[0].device)
    x = 0
    for k, (v, w) in enumerate(zip(vids, widths, strict=True)):
        out[:, :, band:, x : x + w] = v
        if labels is not None:
            out[:, :, :band, x : x + w] = _label_band(labels[k], w, band).to(out.device)
        x += w + gap
    return out


def frame_strip(frames: Tensor, n: int, *, gap: int = 0) -> Tensor:
    """``n`` evenly spaced frames (indices ``round(linspace(0, N-1, n))``) side by side: (3, H, n*W + gap*(n-1))."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected frames (N, 3, H, W), got shape {tuple(frames.shape)}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    total = frames.shape[0]
    idx = np.round(np.linspace(0, total - 1, n)).astype(int) if n > 1 else np.array([0])
    return side_by_side(*[frames[i : i + 1] for i in idx], gap=gap)[0]
