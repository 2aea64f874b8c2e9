"""Write and read rendered clips in nerfstudio's ``transforms.json`` layout.

Layout of a clip folder::

    frames/00000.png ...      8-bit RGB
    depth/00000.npy ...       float32 z-depth in scene units (0 = no surface)
    transforms.json           nerfstudio: per frame ``file_path``, ``depth_file_path``, ``transform_matrix``
                              (camera-to-world, **OpenGL** axes: x right, y up, looking down -z), and
                              ``fl_x fl_y cx cy w h`` in pixels (shared, or per frame when they vary)

Our cameras are OpenCV c2w; the conversion is ``c2w_gl = c2w_cv @ diag(1, -1, -1, 1)`` (its own inverse).
Every file is written atomically (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.scenes.clips import Clip

__all__ = ["OPENCV_TO_OPENGL", "read_clip", "write_clip"]

OPENCV_TO_OPENGL = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def _atomic_write(path: Path, write: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)  # type: ignore[operator]
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_clip(clip: Clip, out_dir: str | Path, extra: dict | None = None) -> Path:
    """Write ``clip`` to ``out_dir`` (created); returns the path of transforms.json."""
    from PIL import Image

    out = Path(out_dir)
    cams = clip.cameras.to("cpu", torch.float64)
    frames_meta = []
    rgb = (clip.frames.detach().to("cpu", torch.float32).clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    depth = clip.depths.detach().to("cpu", torch.float32).numpy()
    K = cams.K
    shared_K = bool((K == K[:1]).all())
    for i in range(len(cams)):
        name = f"{i:05d}"
        img = rgb[i].permute(1, 2, 0).numpy()
        _atomic_write(out / "frames" / f"{name}.png", lambda p, im=img: Image.fromarray(im).save(p, format="PNG"))
        _atomic_write(out / "depth" / f"{name}.npy", lambda p, d=depth[i]: _save_npy(p, d))
        meta = {
            "file_path": f"frames/{name}.png",
            "depth_file_path": f"depth/{name}.npy",
            "transform_matrix": (cams.c2w[i] @ OPENCV_TO_OPENGL).tolist(),
        }
        if not shared_K:
            meta.update(_intrinsics(K[i]))
        frames_meta.append(meta)
    doc: dict = {"camera_model": "OPENCV", "w": cams.width, "h": cams.height}
    if shared_K:
        doc.update(_intrinsics(K[0]))
    doc.update({"scene_seed": clip.seed, "scene_kind": clip.kind, "trajectory": clip.trajectory})
    doc["depth_unit_scale_factor"] = 1.0
    if extra:
        doc.update(extra)
    doc["frames"] = frames_meta
    path = out / "transforms.json"
    _atomic_write(path, lambda p: Path(p).write_text(json.dumps(doc, indent=1)))
    return path


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def _intrinsics(K: torch.Tensor) -> dict[str, float]:
    return {"fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2])}


def read_clip(folder: str | Path) -> Clip:
    """Read a folder written by :func:`write_clip` back (frames, depths, OpenCV cameras)."""
    from PIL import Image

    folder = Path(folder)
    path = folder / "transforms.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no transforms.json in this folder") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    try:
        h, w = int(doc["h"]), int(doc["w"])
        c2w, Ks, frames, depths = [], [], [], []
        for i, fr in enumerate(doc["frames"]):
            src = fr if "fl_x" in fr else doc
            Ks.append([[src["fl_x"], 0.0, src["cx"]], [0.0, src["fl_y"], src["cy"]], [0.0, 0.0, 1.0]])
            m = torch.tensor(fr["transform_matrix"], dtype=torch.float64)
            if m.shape != (4, 4):
                raise InputError(f"{path}: frame {i}: transform_matrix must be 4x4")
            c2w.append(m @ OPENCV_TO_OPENGL)
            img = np.asarray(Image.open(folder / fr["file_path"]).convert("RGB"))
            frames.append(torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 255.0)
            depths.append(torch.from_numpy(np.load(folder / fr["depth_file_path"])))
    except KeyError as e:
        raise InputError(f"{path}: missing key {e.args[0]!r}") from None
    cams = Cameras(torch.stack(c2w), torch.tensor(Ks, dtype=torch.float64), h, w)
    return Clip(
        torch.stack(frames),
        torch.stack(depths),
        cams,
        int(doc.get("scene_seed", -1)),
        str(doc.get("scene_kind", "")),
        str(doc.get("trajectory", "")),
    )
