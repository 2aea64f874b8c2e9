"""Two fixed benchmark suites of procedural scenes, "dev" and "test", with 200-frame clips.

The seeds are committed here and never change (a changed seed is a new suite). Each suite mixes rooms and open
scenes and random and preset trajectories. :func:`render_suite_scene` renders one entry and caches it on disk
in the transforms.json layout of :mod:`worldwarp.scenes.export` (a second call reads the cache).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from worldwarp.errors import InputError
from worldwarp.scenes.clips import Clip, make_clip
from worldwarp.scenes.export import read_clip, write_clip
from worldwarp.scenes.render import RenderConfig

__all__ = ["SUITES", "SuiteScene", "render_suite_scene", "suite"]


@dataclass(frozen=True)
class SuiteScene:
    """One benchmark entry: scene ``seed`` of ``kind`` seen along ``trajectory`` for ``frames`` frames."""

    name: str
    seed: int
    kind: Literal["room", "open"]
    trajectory: str = "random"
    frames: int = 200


SUITES: dict[str, tuple[SuiteScene, ...]] = {
    "dev": (
        SuiteScene("dev-00", 1001, "room"),
        SuiteScene("dev-01", 1002, "room"),
        SuiteScene("dev-02", 1003, "open"),
        SuiteScene("dev-03", 1004, "room"),
        SuiteScene("dev-04", 1005, "open"),
        SuiteScene("dev-05", 1006, "room"),
        SuiteScene("dev-06", 1007, "room", "pan_left,dolly_in"),
        SuiteScene("dev-07", 1008, "open", "orbit"),
    ),
    "test": (
        SuiteScene("test-00", 2001, "room"),
        SuiteScene("test-01", 2002, "room"),
        SuiteScene("test-02", 2003, "open"),
        SuiteScene("test-03", 2004, "room"),
        SuiteScene("test-04", 2005, "open"),
        SuiteScene("test-05", 2006, "room"),
        SuiteScene("test-06", 2007, "room", "dolly_in,pan_right"),
        SuiteScene("test-07", 2008, "open", "orbit"),
    ),
}


def suite(name: str) -> tuple[SuiteScene, ...]:
    """The entries of suite ``name`` ("dev" or "test")."""
    if name not in SUITES:
        raise InputError(f"unknown scene suite {name!r}; expected one of {', '.join(SUITES)}")
    return SUITES[name]


def render_suite_scene(
    suite_name: str,
    index: int,
    cache_dir: str | Path,
    height: int = 256,
    width: int = 384,
    render_config: RenderConfig | None = None,
) -> Clip:
    """Entry ``index`` of suite ``suite_name`` at ``height x width``, rendered once and cached in
    ``cache_dir/<name>_<h>x<w>/`` (later calls read the cache)."""
    entries = suite(suite_name)
    if not 0 <= index < len(entries):
        raise InputError(f"suite {suite_name!r} has {len(entries)} scenes; index {index} is out of range")
    e = entries[index]
    folder = Path(cache_dir) / f"{e.name}_{height}x{width}"
    marker = folder / "transforms.json"
    if marker.is_file():
        doc = json.loads(marker.read_text())
        if doc.get("scene_seed") == e.seed and doc.get("trajectory") == e.trajectory and len(doc["frames"]) == e.frames:
            return read_clip(folder)
    clip = make_clip(e.seed, e.frames, height, width, kind=e.kind, trajectory=e.trajectory, render_config=render_config)
    write_clip(clip, folder, extra={"suite": suite_name, "suite_entry": e.name})
    return clip
