"""Procedural worlds with exact ground truth: frames, z-depth and cameras.

Layers: :mod:`.geometry` (primitives, ray casting, signed distances) and :mod:`.textures` (procedural and
photographic patterns) are stateless tensor functions; :mod:`.scene` holds a world; :mod:`.generator` samples
rooms and open scenes from a seed; :mod:`.paths` makes collision-free camera paths; :mod:`.render` renders;
:mod:`.clips`, :mod:`.export`, :mod:`.dataset`, :mod:`.suites` and :mod:`.contact_sheet` build on them.
World up is -y (the ground is y = 0). See docs/scenes.md.
"""

from worldwarp.scenes.clips import Clip, make_clip
from worldwarp.scenes.generator import SceneConfig, generate_scene, scene_kind_for_seed
from worldwarp.scenes.paths import PathConfig, camera_path, path_clearance, preset_path, random_path
from worldwarp.scenes.render import RenderConfig, RenderOutput, render
from worldwarp.scenes.scene import Light, Material, Scene, WalkRegion

__all__ = [
    "Clip",
    "Light",
    "Material",
    "PathConfig",
    "RenderConfig",
    "RenderOutput",
    "Scene",
    "SceneConfig",
    "WalkRegion",
    "camera_path",
    "generate_scene",
    "make_clip",
    "path_clearance",
    "preset_path",
    "random_path",
    "render",
    "scene_kind_for_seed",
]
