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

import json
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from worldwarp.io.atomic import atomic_write_text

__all__ = ["OUTPUT_FILES", "write_outputs", "run_info"]

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
    transforms_path.write_text(json.dumps(data, indent=2) + "\n")


def write_outputs(
    out_dir: str | os.PathLike[str],
    output: Any,
    run: dict[str, Any],
    *,
    fps: float = 16,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``output`` (a :class:`~worldwarp.pipeline.PipelineOutput`) and ``run`` (JSON-able) into ``out_dir``.

    ``cache_dir`` holds the chunks' PLY files written while the run went on (copied into ``cache/``).
    """
    from worldwarp.io.video import side_by_side, write_frames, write_video
    from worldwarp.trajectory.io import write_cameras

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stage = out / ".staging"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    frames = output.frames.detach().float().cpu()
    n = frames.shape[0]

    # 1. video and frames
    write_video(stage / "video.mp4", frames, fps=fps)
    write_frames(stage / "frames", frames)

    # 2. cameras in three layouts
    cams = output.cameras.to("cpu", torch.float64)
    write_cameras(stage / "cameras.json", cams, "cameras")
    write_cameras(stage / "transforms.json", cams, "transforms")
    _with_file_paths(stage / "transforms.json", n)
    write_cameras(stage / "cameras_re10k.txt", cams, "re10k")

    # 3. caches
    (stage / "cache").mkdir()
    if cache_dir is not None and Path(cache_dir).is_dir():
        for ply in sorted(Path(cache_dir).glob("chunk_*.ply")):
            shutil.copy2(ply, stage / "cache" / ply.name)

    # 4. debug video: prior | mask | result (frame 0 is its own prior)
    prior = frames.clone()
    mask = torch.ones(n, frames.shape[-2], frames.shape[-1])
    for rec in output.chunks:
        idx = [i for i in rec.new_indices if i < n]
        prior[idx] = rec.prior[: len(idx)].float().cpu()
        mask[idx] = rec.mask[: len(idx)].float().cpu()
    debug = side_by_side(prior, mask, frames, labels=["warped prior", "valid mask", "result"])
    write_video(stage / "debug.mp4", debug, fps=fps)

    # 5. move into place, then run.json last (an old run.json goes first: the folder is incomplete meanwhile)
    (out / "run.json").unlink(missing_ok=True)
    for name in OUTPUT_FILES:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(stage / name, target)
    stage.rmdir()
    atomic_write_text(out / "run.json", json.dumps(run, indent=2, default=str) + "\n")
    return out
