"""Write a finished run into its output folder.

Layout of ``OUT``::

    video.mp4                 the generated video
    frames/00000.png ...      every frame
    cameras.json              our cameras (OpenCV c2w, K in pixels)
    transforms.json           nerfstudio / NeRF layout (OpenGL c2w), with file paths of the frames
    cameras_re10k.txt         RealEstate10K layout
    cache/chunk_000.ply ...   the 3DGS cache of every chunk (standard 3DGS PLY)
    debug.mp4                 prior | mask | result for every frame
    run.json                  config, versions, seeds, inputs, per-chunk timings (written last)

Everything is first written into a hidden staging folder inside ``OUT`` and moved into place at the end, and
``run.json`` comes last, so a folder with ``run.json`` is complete and a failed run leaves no output that looks
finished.
"""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from worldwarp.io.atomic import atomic_write_text

__all__ = ["OUTPUT_FILES", "FrameBatch", "check_output_dir", "output_batches", "run_info", "write_outputs"]

OUTPUT_FILES = ("video.mp4", "frames", "cameras.json", "transforms.json", "cameras_re10k.txt", "cache", "debug.mp4")


def run_info(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Versions of everything that affects the result."""
    import numpy

    from worldwarp import __version__

    info: dict[str, Any] = {
        "worldwarp": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }
    if extra:
        info.update(extra)
    return info


def _with_file_paths(transforms_path: Path, n: int) -> None:
    """Add ``file_path`` of each frame to a transforms.json written by the camera exporter."""
    data = json.loads(transforms_path.read_text())
    for i, frame in enumerate(data.get("frames", [])[:n]):
        frame["file_path"] = f"frames/{i:05d}.png"
    atomic_write_text(transforms_path, json.dumps(data, indent=2) + "\n")


FrameBatch = tuple[list[int], Tensor, Tensor, Tensor]
"""``(indices, frames, prior, mask)``: frames and prior (n, 3, H, W) float in [0, 1] or uint8, mask (n, H, W)."""


def output_batches(output: Any) -> Iterator[FrameBatch]:
    """The frames of a :class:`~worldwarp.pipeline.PipelineOutput` held in memory, chunk by chunk (frame 0 is
    its own prior)."""
    frames = output.frames.detach().cpu()
    n = frames.shape[0]
    yield [0], frames[:1], frames[:1], torch.ones(1, *frames.shape[-2:], dtype=torch.bool)
    for rec in output.chunks:
        idx = [i for i in rec.new_indices if i < n]
        if idx:
            yield idx, frames[idx], rec.prior[: len(idx)].cpu(), rec.mask[: len(idx)].cpu()


def finite_json(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (so the JSON written is valid JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def check_output_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` if needed and check that files can be written there (before any work is done)."""
    from worldwarp.errors import InputError

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        reason = "disk full" if e.errno == errno.ENOSPC else (e.strerror or type(e).__name__).lower()
        raise InputError(f"cannot write to the output folder {out} ({reason})") from None
    return out


def write_outputs(
    out_dir: str | os.PathLike[str],
    output: Any,
    run: dict[str, Any],
    *,
    fps: float = 16,
    cache_dir: str | os.PathLike[str] | None = None,
    batches: Iterable[FrameBatch] | None = None,
) -> Path:
    """Write ``output`` (a :class:`~worldwarp.pipeline.PipelineOutput`) and ``run`` (JSON-able) into ``out_dir``.

    ``cache_dir`` holds the chunks' PLY files written while the run went on (copied into ``cache/``).
    ``batches`` (frame 0 first, then chunk by chunk, see :data:`FrameBatch`) replaces ``output``'s frames, so a
    long run is written one chunk at a time from its saved chunks (memory stays flat); ``output.cameras`` still
    gives the cameras.
    """
    from worldwarp.io.atomic import _user_error

    out = check_output_dir(out_dir)
    stage = out / ".staging"
    if stage.exists():
        shutil.rmtree(stage)
    try:
        stage.mkdir()
        _write_staged(out, stage, output, run, fps, cache_dir, batches)
    except OSError as e:
        err = _user_error(e, Path(e.filename) if e.filename else out)
        if err is None:
            raise
        raise err from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # frees the space of a failed write; gone after a good one
    return out


def _write_staged(
    out: Path,
    stage: Path,
    output: Any,
    run: dict[str, Any],
    fps: float,
    cache_dir: str | os.PathLike[str] | None,
    batches: Iterable[FrameBatch] | None,
) -> None:
    from worldwarp.io.video import VideoWriter, side_by_side, write_frames
    from worldwarp.trajectory.io import write_cameras

    labels = ["warped prior", "valid mask", "result"]
    n = 0

    # 1. video, frames and the debug video (prior | mask | result), one batch at a time
    with VideoWriter(stage / "video.mp4", fps=fps) as video, VideoWriter(stage / "debug.mp4", fps=fps) as debug:
        for idx, frames, prior, mask in batches if batches is not None else output_batches(output):
            if idx[0] != n:
                raise ValueError(f"frame batches out of order: expected frame {n}, got {idx[0]}")
            video.add(frames)
            write_frames(stage / "frames", frames, start_index=n)
            f = frames.float() / 255 if frames.dtype == torch.uint8 else frames.float()
            pr = prior.float() / 255 if prior.dtype == torch.uint8 else prior.float()
            debug.add(side_by_side(pr, mask.float(), f, labels=labels))
            n += len(idx)

    # 2. cameras in three layouts
    cams = output.cameras[:n].to("cpu", torch.float64)
    write_cameras(stage / "cameras.json", cams, "cameras")
    write_cameras(stage / "transforms.json", cams, "transforms")
    _with_file_paths(stage / "transforms.json", n)
    write_cameras(stage / "cameras_re10k.txt", cams, "re10k")

    # 3. caches
    (stage / "cache").mkdir()
    if cache_dir is not None and Path(cache_dir).is_dir():
        for ply in sorted(Path(cache_dir).glob("chunk_*.ply")):
            shutil.copy2(ply, stage / "cache" / ply.name)

    # 4. move into place, then run.json last (an old run.json goes first: the folder is incomplete meanwhile)
    (out / "run.json").unlink(missing_ok=True)
    for name in OUTPUT_FILES:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(stage / name, target)
    text = json.dumps(finite_json(run), indent=2, default=str, allow_nan=False) + "\n"
    atomic_write_text(out / "run.json", text)
