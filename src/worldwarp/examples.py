"""The examples bundled with the package (``worldwarp/assets/examples``), or any folder laid out like them.

An example is a folder ``NAME/`` with ``image.png``, an optional ``depth.png`` (16-bit z-depth in millimetres,
0 = invalid) and ``example.json`` (its field of view and trajectory settings). ``worldwarp demo`` and the web UI
start from them; :class:`~worldwarp.pipeline.WorldWarpPipeline` accepts their files directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from worldwarp.errors import InputError

__all__ = ["Example", "example_dir", "examples_dir", "list_examples", "load_example"]


def examples_dir() -> Path:
    """The bundled examples folder (``worldwarp/assets/examples``)."""
    return Path(str(resources.files("worldwarp") / "assets" / "examples"))


def example_dir(name: str = "room") -> Path:
    """Folder of the bundled example ``name``: image.png, depth.png (16-bit, millimetres), example.json."""
    return examples_dir() / name


@dataclass
class Example:
    """A bundled example: start image, its depth (or None) and the path settings of ``example.json``."""

    name: str
    image: Path
    depth: Path | None
    fov_x_deg: float = 60.0
    speed: float = 1.0
    scale: float = 1.0
    description: str = ""
    trajectory: str | None = None
    frames: int | None = None


def list_examples(folder: Path | None = None) -> list[str]:
    """Sorted names of the examples in ``folder`` (default: the bundled ones; sub-folders with an
    ``example.json``); [] if none."""
    folder = examples_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "example.json").is_file())


def load_example(folder: Path | None, name: str) -> Example:
    """Read the example ``folder/name`` (``folder`` None: the bundled examples); a missing or malformed example is
    an :class:`InputError`."""
    folder = examples_dir() if folder is None else Path(folder)
    root = folder / name
    meta_file = root / "example.json"
    if not name or not meta_file.is_file():
        raise InputError(f"no example named {name!r} in {folder}")
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{meta_file}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{meta_file}: expected a JSON object")
    image = root / "image.png"
    if not image.is_file():
        raise InputError(f"{image}: example image not found")
    depth = root / "depth.png"
    try:
        return Example(
            name=name,
            image=image,
            depth=depth if depth.is_file() else None,
            fov_x_deg=float(meta.get("fov_x_deg", 60.0)),
            speed=float(meta.get("speed", 1.0)),
            scale=float(meta.get("scale", 1.0)),
            description=str(meta.get("description", "")),
            trajectory=str(meta["trajectory"]) if "trajectory" in meta else None,
            frames=int(meta["frames"]) if "frames" in meta else None,
        )
    except (TypeError, ValueError) as e:
        raise InputError(f"{meta_file}: bad value ({e})") from None
